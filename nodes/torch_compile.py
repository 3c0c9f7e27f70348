"""TorchCompileModel: the MODEL's network run through torch.compile while it samples (ComfyUI's TorchCompileModel,
KJNodes' TorchCompileModelQwenImage and its siblings for other models).

The node only records the settings on a copy of the wrapper (`torch_compile`); the denoise loop's
`UNetModel.patched()` swaps in the compiled network for the run and puts the plain one back after, so the
model the node received never changes and a graph without the node runs as before. By default only the
network's repeated blocks are compiled (transformer_blocks, single_transformer_blocks, layers,
down_blocks / up_blocks ...: KJNodes' compile_transformer_blocks_only, faster to compile and less fragile);
otherwise the whole forward. Compiled blocks are kept per block and setting, so a second run does not
compile again. The values are the network's own (compilation changes speed, not results, up to float
rounding); the first run pays the compile time (inductor needs a C++ compiler; cudagraphs an NVIDIA GPU).
"""
from __future__ import annotations

import contextlib
import dataclasses
import weakref
from dataclasses import dataclass
from typing import Any, Iterator

import torch

from nodeforge.core.errors import NodeError

# The repeated blocks of the families' networks, compiled one by one with blocks_only.
BLOCK_LISTS = ("transformer_blocks", "single_transformer_blocks", "joint_blocks", "layers", "noise_refiner",
               "context_refiner", "down_blocks", "up_blocks")
BACKENDS = ("inductor", "cudagraphs", "aot_eager", "eager")
MODES = ("default", "max-autotune", "max-autotune-no-cudagraphs", "reduce-overhead")


@dataclass(frozen=True)
class CompileSettings:
    backend: str = "inductor"
    mode: str = "default"
    fullgraph: bool = False
    dynamic: bool = False
    blocks_only: bool = True
    cache_size_limit: int = 64

    def compile(self, fn: Any) -> Any:
        mode = None if self.mode == "default" or self.backend != "inductor" else self.mode
        return torch.compile(fn, backend=self.backend, mode=mode, fullgraph=self.fullgraph, dynamic=self.dynamic)


# per block (or network): its compiled version per setting
_compiled: "weakref.WeakKeyDictionary[torch.nn.Module, dict[CompileSettings, Any]]" = weakref.WeakKeyDictionary()


def _compiled_block(block: torch.nn.Module, settings: CompileSettings) -> Any:
    found = _compiled.setdefault(block, {})
    if settings not in found:
        found[settings] = settings.compile(block)
    return found[settings]


def _compiled_forward(module: torch.nn.Module, settings: CompileSettings) -> Any:
    """The class's forward bound to `module`, compiled (not the instance's, which this one replaces for a while)."""
    import types

    found = _compiled.setdefault(module, {})
    key = dataclasses.replace(settings, blocks_only=False)
    if key not in found:
        found[key] = settings.compile(types.MethodType(type(module).forward, module))
    return found[key]


def block_slots(module: torch.nn.Module) -> list[tuple[torch.nn.ModuleList, int]]:
    """(list, index) of each repeated block of the network."""
    slots = []
    for name in BLOCK_LISTS:
        blocks = getattr(module, name, None)
        if isinstance(blocks, torch.nn.ModuleList):
            slots += [(blocks, i) for i in range(len(blocks))]
    return slots


@contextlib.contextmanager
def compiled(module: torch.nn.Module, settings: CompileSettings) -> Iterator[None]:
    """`module` running compiled inside the block; exactly the plain module again after it."""
    import torch._dynamo

    limit = torch._dynamo.config.cache_size_limit
    torch._dynamo.config.cache_size_limit = max(limit, settings.cache_size_limit)
    slots = block_slots(module) if settings.blocks_only else []
    originals = [blocks[i] for blocks, i in slots]
    try:
        if slots:
            for (blocks, i), block in zip(slots, originals):
                blocks[i] = _compiled_block(block, settings)
        else:
            module.forward = _compiled_forward(module, settings)
        yield
    finally:
        for (blocks, i), block in zip(slots, originals):
            blocks[i] = block
        if not slots:
            module.__dict__.pop("forward", None)
        torch._dynamo.config.cache_size_limit = limit


def run_torch_compile_model(ctx: Any, unet: Any, backend: str, mode: str = "default", fullgraph: bool = False,
                            dynamic: bool = False, blocks_only: bool = True, cache_size_limit: int = 64) -> dict[str, Any]:
    if backend == "cudagraphs" and not torch.cuda.is_available():
        raise NodeError("backend cudagraphs needs an NVIDIA GPU; use inductor (or remove the node)", field="backend")
    settings = CompileSettings(backend, mode, bool(fullgraph), bool(dynamic), bool(blocks_only), int(cache_size_limit))
    return {"unet": dataclasses.replace(unet, torch_compile=settings)}
