"""A denoise that cannot fit the device is refused before its first step (issue 27), with the
estimate and what to do; never hours of swapping."""
from __future__ import annotations

import pytest

import nodeforge


def _memory():
    from nodeforge.core.registry import builtin_module

    return builtin_module("memory")     # the pack's one copy, the one the engine runs


def test_an_8192_pixel_sdxl_image_is_estimated_in_tens_of_gigabytes():
    activation_bytes = _memory().activation_bytes

    # SDXL: a 1024x1024 latent, 320 channels in the first block, fp16, CFG.
    need = activation_bytes(1, 1024, 1024, 320, 2, guided=True)
    assert 16 * 2 ** 30 < need < 64 * 2 ** 30
    assert activation_bytes(1, 128, 128, 320, 2, guided=True) < 2 ** 30     # 1024x1024 pixels: well under 1 GB
    assert activation_bytes(4, 64, 64, 320, 4, True) == 4 * activation_bytes(1, 64, 64, 320, 4, True)
    assert activation_bytes(1, 64, 64, 320, 4, False) * 2 == activation_bytes(1, 64, 64, 320, 4, True)


def test_the_cpu_reports_what_it_has_free():
    free = _memory().free_bytes("cpu")
    assert free is not None and 2 ** 26 < free < 2 ** 50


def test_a_run_larger_than_the_device_is_refused_before_any_step(fresh_engine, make_txt2img, monkeypatch):
    memory = _memory()

    monkeypatch.setattr(memory, "free_bytes", lambda device: 1_000)     # 1 KB free
    steps = []
    with pytest.raises(nodeforge.WorkflowError) as caught:
        fresh_engine.run(make_txt2img(steps=3), on_event=lambda e: steps.append(e) if type(e).__name__ ==
                         "NodeProgress" else None)
    text = str(caught.value)
    assert "needs about" in text and "has 0.0 GB free" in text and "on cpu" in text
    assert "smaller image" in text and "tiles" in text and "another device" in text and "\n" not in text
    assert steps == [], "refused before the first step"


def test_a_run_that_fits_is_not_refused(fresh_engine, make_txt2img, monkeypatch):
    memory = _memory()

    seen = []
    real = memory.free_bytes
    monkeypatch.setattr(memory, "free_bytes", lambda device: seen.append(device) or real(device))
    fresh_engine.run(make_txt2img(steps=1))
    assert seen, "the check ran"


def _shipped_config(family: str):
    import json
    from types import SimpleNamespace

    from nodeforge.paths import builtin_dir

    path = builtin_dir("resources") / "configs" / family / "transformer" / "config.json"
    return SimpleNamespace(**json.loads(path.read_text()))


def test_a_flow_transformer_is_estimated_from_its_image_tokens_and_width():
    estimate = _memory().transformer_activation_bytes
    sd3 = _shipped_config("sd3")        # SD3 medium: 24 heads x 64, patch 2
    one_k = estimate(sd3, (1, 16, 128, 128), 2, True)     # 1024x1024 pixels, fp16, CFG: 4096 tokens
    assert one_k == 2 * 4096 * 1536 * 2 * _memory().FLOW_LIVE_MAPS and one_k < 2 ** 30
    assert 16 * 2 ** 30 < estimate(sd3, (1, 16, 1024, 1024), 2, True) < 64 * 2 ** 30    # 8192x8192
    flux = _shipped_config("flux")      # 2x2 latents packed into 64 channels: the same 4096 tokens at 1024 px
    assert estimate(flux, (1, 16, 128, 128), 2, False) == 4096 * 3072 * 2 * _memory().FLOW_LIVE_MAPS
    assert estimate(object(), (1, 16, 128, 128), 2, False) is None


def test_an_sd3_run_larger_than_the_device_is_refused_before_any_step(make_engine, tmp_path, monkeypatch):
    import tiny_sd3 as ts

    from nodeforge import load_workflow
    from nodeforge.paths import builtin_dir

    (tmp_path / "checkpoints").mkdir()
    ts.save_sd3_folder(ts.make_sd3_components(0, t5=False), tmp_path / "checkpoints" / "tiny-sd3")
    wf = load_workflow(builtin_dir("workflows") / "txt2img.json")
    wf.nodes["1"].params["checkpoint"] = "tiny-sd3"
    wf.nodes["4"].params.update(width=512, height=512)
    monkeypatch.setattr(_memory(), "free_bytes", lambda device: 1_000)
    with pytest.raises(nodeforge.WorkflowError) as caught:
        make_engine(tmp_path / "out", tmp_path).run(wf)
    assert "a 512x512 image (a 256x256 latent, batch 1, twice for CFG) needs about" in str(caught.value)


def test_dual_cfg_guidance_is_estimated_at_three_passes_a_step(monkeypatch):
    from types import SimpleNamespace

    import torch

    from nodeforge.core.errors import NodeError

    memory = _memory()
    model = SimpleNamespace(unet=SimpleNamespace(config=SimpleNamespace(block_out_channels=(320,))),
                            dtype=torch.float16, device="cpu", vae_factor=8)
    one = memory.activation_bytes(1, 128, 128, 320, 2, False)
    monkeypatch.setattr(memory, "free_bytes", lambda device: int(2.5 * one))
    memory.check_denoise_fits(model, (1, 4, 128, 128), 7.0)                  # positive + negative: fits
    memory.check_denoise_fits(model, (1, 4, 128, 128), 1.0, prompts=3)       # no CFG: one pass
    with pytest.raises(NodeError) as caught:                                 # DualCFGGuider: three prompts a step
        memory.check_denoise_fits(model, (1, 4, 128, 128), 7.0, prompts=3)
    assert "batch 1, 3 times for CFG) needs about" in str(caught.value)
