"""Declarations of the nodes about how a graph runs rather than what it makes (torch-free; run functions in
nodes/torch_compile.py and nodes/memory.py, imported when a node first runs): a MODEL run through
torch.compile, and a point in the graph where memory no longer used is given back."""
from __future__ import annotations

from nodeforge.core.spec import Input, NodeSpec, Output, Param
from nodeforge.core.types import PortType

from .declare import lazy

MODEL = PortType.MODEL.value
_BACKENDS = ("inductor", "cudagraphs", "aot_eager", "eager")             # nodes/torch_compile.py BACKENDS
_MODES = ("default", "max-autotune", "max-autotune-no-cudagraphs", "reduce-overhead")   # its MODES

RUNTIME_NODES: list[NodeSpec] = [
    NodeSpec(
        "TorchCompileModel", "advanced/model", lazy("torch_compile", "run_torch_compile_model"),
        inputs=(Input("unet", MODEL, description="the model to run compiled (left unchanged)"),),
        params=(Param.choice("backend", list(_BACKENDS), default="inductor",
                             description="torch.compile's backend: inductor (needs a C++ compiler on a CPU), "
                                         "cudagraphs (NVIDIA GPUs), aot_eager / eager (for checking)"),
                Param.choice("mode", list(_MODES), default="default", description="inductor's mode"),
                Param.bool("fullgraph", False, description="fail instead of falling back where a graph breaks"),
                Param.bool("dynamic", False, description="compile for changing sizes instead of once per size"),
                Param.bool("blocks_only", True, description="compile the repeated blocks only (faster to compile, "
                                                            "less fragile), else the whole network"),
                Param.int("cache_size_limit", 64, min=0, max=1024,
                          description="torch._dynamo's cache_size_limit while it runs (at least its own)")),
        outputs=(Output("unet", MODEL, description="the same model, sampling compiled"),),
        description="Run the model's network through torch.compile while it samples (ComfyUI's TorchCompileModel, "
                    "KJNodes' TorchCompileModelQwenImage and kin): faster steps after a first run that compiles; "
                    "the same values.",
        display_name="Torch Compile Model"),
    NodeSpec(
        "FreeMemory", "utilities", lazy("memory", "run_free_memory"),
        inputs=(Input("value", "*", description="any value: passed on unchanged, after the memory is given back"),),
        outputs=(Output("output", "*", description="the value, unchanged"),),
        output_node=True,   # as Easy-Use's: it runs with the graph even when nothing reads its output
        description="Give back memory no longer used where the graph passes this point (Python's garbage and the "
                    "GPU's cached blocks; Easy-Use's easy cleanGpuUsed). Models the graph still uses stay loaded: "
                    "NodeForge's model cache decides what is unloaded.",
        display_name="Free Memory"),
]
