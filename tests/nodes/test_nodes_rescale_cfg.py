"""RescaleCFG (issue 30): the CFG rescale of Lin et al. 2023, section 3.4, on the UNet's noise
prediction as diffusers' StableDiffusionPipeline(guidance_rescale=m) applies it."""
from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from nodeforge.core.errors import NodeError
from nodeforge.core.registry import builtin_module

cfg_rescale = builtin_module("cfg_rescale")


def _rescaled_graph(make_txt2img, multiplier, **kw):
    wf = make_txt2img(**kw)
    wf.add("RescaleCFG", {"multiplier": multiplier}, {"unet": ("ckpt", "unet")}, node_id="rescale")
    wf.nodes["denoise"].inputs["unet"] = ("rescale", "unet")
    return wf


def _latent(engine, wf):
    return engine.run(wf, outputs=["denoise"]).outputs["denoise"]["latent"]["samples"]


def test_the_formula_on_values_written_out_by_hand():
    # guided = 2 cond: std(cond) / std(guided) = 1/2, so the fully rescaled prediction is cond itself
    cond = torch.tensor([[[[1.0, -1.0], [3.0, -3.0]]], [[[0.5, 0.0], [0.0, -0.5]]]])
    guided = 2 * cond
    torch.testing.assert_close(cfg_rescale.rescaled(guided, cond, 1.0), cond)
    torch.testing.assert_close(cfg_rescale.rescaled(guided, cond, 0.7), 0.7 * cond + 0.3 * guided)
    torch.testing.assert_close(cfg_rescale.rescaled(guided, cond, 0.0), guided)
    # per batch item: an item already at the positive's spread is unchanged
    same = torch.stack([guided[0], cond[1]])
    torch.testing.assert_close(cfg_rescale.rescaled(same, cond, 1.0), torch.stack([cond[0], cond[1]]))


@pytest.fixture(scope="module")
def pipeline(models_dir):
    from diffusers import EulerDiscreteScheduler, StableDiffusionPipeline

    pipe = StableDiffusionPipeline.from_pretrained(str(models_dir / "checkpoints" / "tiny-sd"), local_files_only=True,
                                                   safety_checker=None, requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    pipe.scheduler = EulerDiscreteScheduler.from_config(pipe.scheduler.config)
    return pipe


@pytest.mark.parametrize("multiplier, cfg", [(0.7, 7.5), (1.0, 12.0), (0.3, 3.0)])
def test_rescale_cfg_matches_diffusers_guidance_rescale(engine, pipeline, make_txt2img, multiplier, cfg):
    ours = _latent(engine, _rescaled_graph(make_txt2img, multiplier, text="a red circle", seed=21, steps=4, cfg=cfg))
    theirs = pipeline("a red circle", negative_prompt="", num_inference_steps=4, guidance_scale=cfg,
                      guidance_rescale=multiplier, height=32, width=32, generator=torch.Generator().manual_seed(21),
                      output_type="latent").images
    plain = pipeline("a red circle", negative_prompt="", num_inference_steps=4, guidance_scale=cfg, height=32,
                     width=32, generator=torch.Generator().manual_seed(21), output_type="latent").images
    torch.testing.assert_close(ours, theirs, atol=1e-4, rtol=1e-4)
    assert (ours - plain).abs().max() > 1e-3     # the rescale did something measurable


def test_multiplier_zero_is_plain_cfg_bit_for_bit_and_the_input_model_is_unchanged(engine, make_txt2img):
    plain = _latent(engine, make_txt2img(seed=5, cfg=6.0))
    assert torch.equal(_latent(engine, _rescaled_graph(make_txt2img, 0.0, seed=5, cfg=6.0)), plain)
    out = engine.run(_rescaled_graph(make_txt2img, 0.7, seed=5, cfg=6.0), outputs=["ckpt", "rescale"]).outputs
    assert out["ckpt"]["unet"].cfg_rescale == 0.0 and out["rescale"]["unet"].cfg_rescale == 0.7
    assert out["rescale"]["unet"].unet is out["ckpt"]["unet"].unet      # shares the weights


def test_a_model_without_unet_guidance_is_refused_naming_the_input():
    with pytest.raises(NodeError) as info:
        cfg_rescale.run_rescale_cfg(None, SimpleNamespace(family="sd3"), 0.7)
    assert info.value.field == "unet" and "UNet models" in str(info.value) and "sd3" in str(info.value)
