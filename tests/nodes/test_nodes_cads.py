"""CADS (asagi4's ComfyUI-CADS): its annealing schedule and noising rule on values, which rows and which key
it noises, and the node on the tiny SD model (off where gamma is 1, reproducible from its seed)."""
from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch

from nodeforge.core.registry import builtin_module


def test_gamma_falls_from_one_at_t1_to_zero_at_t2_in_timesteps_over_999():
    cads = builtin_module("cads")
    settings = cads.CADS(2.0, 0.6, 0.9)
    assert cads.gamma(settings, 999.0) == 0.0                  # t = 1.0 >= t2
    assert cads.gamma(settings, 500.0) == 1.0                  # t = 0.5 <= t1
    assert cads.gamma(settings, 749.25) == pytest.approx(0.5)  # t = 0.75: halfway


def test_a_chosen_row_is_sqrt_gamma_y_plus_scaled_noise_and_rescale_restores_its_statistics():
    cads = builtin_module("cads")
    torch.manual_seed(0)
    rows = torch.randn(3, 5, 8)
    settings = cads.CADS(2.0, 0.6, 0.9)
    out = cads.noised(settings, rows, [True, False, True], 0.25, torch.Generator().manual_seed(7))
    draws = torch.Generator().manual_seed(7)
    first, third = (torch.empty(5, 8).normal_(generator=draws) for _ in range(2))
    torch.testing.assert_close(out[0], 0.5 * rows[0] + 2.0 * math.sqrt(0.75) * first)
    torch.testing.assert_close(out[2], 0.5 * rows[2] + 2.0 * math.sqrt(0.75) * third)
    assert torch.equal(out[1], rows[1])
    full = cads.noised(cads.CADS(2.0, 0.6, 0.9, rescale=1.0), rows, [True, True, True], 0.25, torch.Generator())
    torch.testing.assert_close(full.mean(dim=(1, 2)), rows.mean(dim=(1, 2)), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(full.std(dim=(1, 2)), rows.std(dim=(1, 2)), atol=1e-5, rtol=1e-5)
    assert cads.chosen_rows(cads.CADS(1.0, 0.6, 0.9, apply_to="uncond"), [0, 1], 2) == [True, True, False, False]
    assert cads.chosen_rows(cads.CADS(1.0, 0.6, 0.9, apply_to="cond"), [0, 1], 1) == [False, True]


def test_key_y_noises_the_sdxl_added_vector_and_c_crossattn_the_tokens():
    cads = builtin_module("cads")
    torch.manual_seed(1)
    adder = torch.nn.Linear(6, 3)
    unet = SimpleNamespace(add_embedding=adder)
    embeds, vector = torch.randn(2, 4, 6), torch.randn(2, 6)
    for key, tokens_change, vector_changes in (("y", False, True), ("c_crossattn", True, False), ("both", True, True)):
        settings = cads.CADS(1.0, 0.6, 0.9, apply_to="cond", key=key)
        guidance = SimpleNamespace(model=SimpleNamespace(cads=settings, unet=unet), batch=1, cads_generator=None)
        with cads.conditioning_noise(guidance, [0, 1], embeds, torch.tensor(999.0)) as got:    # gamma 0: all noise
            added = adder(vector)
        assert torch.equal(got[0], embeds[0]) and torch.equal(added[0], adder(vector)[0])      # negative row kept
        assert (not torch.equal(got[1], embeds[1])) == tokens_change
        assert (not torch.allclose(added[1], adder(vector)[1])) == vector_changes
    assert adder._forward_pre_hooks == {}                                                      # the hook is removed


def _cads_graph(make_txt2img, **params):
    wf = make_txt2img(text="a red circle", seed=21, steps=4, cfg=5.0)
    wf.add("CADS", {"noise_scale": 1.0, "t1": 0.6, "t2": 0.9, "key": "c_crossattn", **params},
           {"unet": ("ckpt", "unet")}, node_id="cads")
    wf.nodes["denoise"].inputs["unet"] = ("cads", "unet")
    return wf


def _latent(engine, wf):
    engine.cache.clear()
    return engine.run(wf, outputs=["denoise"]).outputs["denoise"]["latent"]["samples"]


def test_the_node_noises_early_steps_reproducibly_and_nothing_where_gamma_is_one(engine, make_txt2img):
    plain = _latent(engine, make_txt2img(text="a red circle", seed=21, steps=4, cfg=5.0))
    noised = _latent(engine, _cads_graph(make_txt2img, seed=3))
    assert (noised - plain).abs().max() > 1e-3
    assert torch.equal(_latent(engine, _cads_graph(make_txt2img, seed=3)), noised)
    assert not torch.equal(_latent(engine, _cads_graph(make_txt2img, seed=4)), noised)
    assert torch.equal(_latent(engine, _cads_graph(make_txt2img, t1=1.0, t2=1.0)), plain)     # t <= t1 always
    assert torch.equal(_latent(engine, _cads_graph(make_txt2img, key="y")), plain)            # SD 1.x has no y
