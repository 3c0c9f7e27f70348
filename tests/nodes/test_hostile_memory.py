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
