"""TorchCompileModel (ComfyUI's TorchCompileModel, KJNodes' TorchCompileModelQwenImage) and FreeMemory (Easy-Use's
easy cleanGpuUsed): the compiled model samples the same latents as the plain one, its network is the plain
one again after the run (the node's input never changes), the compiled blocks are kept for the next run; Free
Memory passes its value on and empties the GPU's cache. Compiled with aot_eager, which captures the graphs as
inductor does without its minute of C++ compilation on a CPU."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

import tiny_models as tm
import tiny_qwenimage as tq
from tiny_models import latent_of


@pytest.fixture(scope="module")
def qwen_engine(make_engine, tmp_path_factory):
    torch.set_num_threads(2)
    root = tmp_path_factory.mktemp("compilemodels")
    (root / "checkpoints").mkdir()
    tq.save_qwenimage_folder(tq.make_qwenimage_components(0), root / "checkpoints" / "tiny-qwen")
    return make_engine(tmp_path_factory.mktemp("compileout"), root)


def compiled_txt2img(**compile_params):
    wf = tm.shipped_txt2img("tiny-qwen", width=64, height=64, steps=2, seed=9, cfg=1.0)
    wf.add("TorchCompileModel", {"backend": "aot_eager", **compile_params}, {"unet": ("1", "unet")}, node_id="compile")
    wf.nodes["5"].inputs["unet"] = ("compile", "unet")
    return wf


@pytest.mark.parametrize("blocks_only", [True, False])
def test_the_compiled_model_samples_the_plain_models_latents(qwen_engine, blocks_only):
    from nodeforge.core.registry import builtin_module

    _compiled = builtin_module("torch_compile")._compiled   # the engine's copy of the pack's module
    plain = latent_of(qwen_engine, tm.shipped_txt2img("tiny-qwen", width=64, height=64, steps=2, seed=9, cfg=1.0))
    run = qwen_engine.run(compiled_txt2img(blocks_only=blocks_only), outputs=["5", "1"])
    ours = run.outputs["5"]["latent"]["samples"]
    assert float((ours - plain).abs().max()) < 1e-5
    transformer = run.outputs["1"]["unet"].unet
    blocks = list(transformer.transformer_blocks)
    assert all(type(b).__name__ == "QwenImageTransformerBlock" for b in blocks) and "forward" not in vars(transformer)
    compiled_ones = [_compiled.get(b, {}) for b in blocks] if blocks_only else [_compiled.get(transformer, {})]
    assert all(found for found in compiled_ones)   # compiled, and kept for the next run


def test_cudagraphs_without_a_gpu_is_refused_naming_inductor(qwen_engine):
    from nodeforge.core.errors import NodeExecutionError

    if torch.cuda.is_available():
        pytest.skip("a GPU runs cudagraphs")
    with pytest.raises(NodeExecutionError) as info:
        qwen_engine.run(compiled_txt2img(backend="cudagraphs"), outputs=["5"])
    assert "cudagraphs needs an NVIDIA GPU; use inductor" in str(info.value)


def test_free_memory_passes_its_value_on_and_empties_the_gpus_cache(monkeypatch):
    from nodes.memory import run_free_memory

    calls = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: calls.append("empty_cache"))
    monkeypatch.setattr(torch.cuda, "ipc_collect", lambda: calls.append("ipc_collect"))
    latent = {"samples": torch.zeros(1, 4, 8, 8)}
    assert run_free_memory(None, latent)["output"] is latent
    assert calls == ["empty_cache", "ipc_collect"]
