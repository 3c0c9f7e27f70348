"""SelfAttentionGuidance (issue 30): Hong et al. 2022's self-attention guidance as diffusers'
StableDiffusionSAGPipeline computes it (same latents on the tiny SD model with DDIM, where the model's
input is the DDPM-form latent both work on), the blur and mask on values, and its refusals."""
from __future__ import annotations

import pytest
import torch

from nodeforge.core.errors import NodeError, NodeExecutionError
from nodeforge.core.registry import builtin_module

sag = builtin_module("sag")


def _with_sag(wf, scale, blur_sigma):
    wf.add("SelfAttentionGuidance", {"scale": scale, "blur_sigma": blur_sigma}, {"unet": ("ckpt", "unet")},
           node_id="sag")
    wf.nodes["denoise"].inputs["unet"] = ("sag", "unet")
    return wf


def _latent(engine, wf):
    return engine.run(wf, outputs=["denoise"]).outputs["denoise"]["latent"]["samples"]


@pytest.fixture(scope="module")
def sag_pipeline(models_dir):
    from diffusers import DDIMScheduler, StableDiffusionSAGPipeline

    pipe = StableDiffusionSAGPipeline.from_pretrained(str(models_dir / "checkpoints" / "tiny-sd"),
                                                      local_files_only=True, safety_checker=None,
                                                      requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    pipe.scheduler = DDIMScheduler.from_config(pipe.scheduler.config, clip_sample=False)
    return pipe


@pytest.mark.parametrize("scale, cfg", [(0.75, 5.0), (1.5, 1.0)])
def test_self_attention_guidance_matches_diffusers_sag_pipeline(engine, sag_pipeline, make_txt2img, scale, cfg):
    wf = _with_sag(make_txt2img(text="a red circle", seed=21, steps=4, cfg=cfg, sampler="ddim"), scale, 1.0)
    ours = _latent(engine, wf)
    theirs = sag_pipeline("a red circle", negative_prompt="", num_inference_steps=4, guidance_scale=cfg,
                          sag_scale=scale, height=32, width=32, generator=torch.Generator().manual_seed(21),
                          output_type="latent").images
    torch.testing.assert_close(ours, theirs, atol=1e-4, rtol=1e-4)
    plain = _latent(engine, make_txt2img(text="a red circle", seed=21, steps=4, cfg=cfg, sampler="ddim"))
    assert (ours - plain).abs().max() > 1e-3
    off = _with_sag(make_txt2img(text="a red circle", seed=21, steps=4, cfg=cfg, sampler="ddim"), 0.0, 2.0)
    assert torch.equal(_latent(engine, off), plain)


def test_the_blur_is_a_normalised_gaussian_that_reflects_at_the_edges():
    x = torch.zeros(1, 1, 17, 17)
    x[0, 0, 8, 8] = 1.0
    out = sag.blur(x, 1.0)
    line = torch.exp(-0.5 * torch.arange(-4.0, 5.0) ** 2)
    line = line / line.sum()
    torch.testing.assert_close(out[0, 0, 4:13, 4:13], line[:, None] * line[None, :])
    assert out.sum() == pytest.approx(1.0) and out[0, 0, :4].abs().max() == 0
    flat = torch.full((1, 2, 6, 7), 0.25)
    torch.testing.assert_close(sag.blur(flat, 2.0), flat)         # a flat latent stays flat up to its edges


def test_only_where_attention_gathers_is_the_prediction_blurred():
    # 2 heads over a 2x2 map: query rows sum to 1, so a key column summed over queries averages 1;
    # keys 0 and 3 draw more (1.5 each), keys 1 and 2 less: only their latent pixels are blurred.
    one_head = torch.tensor([[0.5, 0.0, 0.0, 0.5], [0.5, 0.0, 0.0, 0.5], [0.25, 0.25, 0.25, 0.25],
                             [0.25, 0.25, 0.25, 0.25]])
    probs = torch.stack([one_head, one_head])       # [batch 1 x 2 heads, 4 queries, 4 keys]
    x0 = torch.rand(1, 1, 8, 8)
    alpha = torch.tensor(1.0)                       # no noise: the input is x0 itself
    out = sag.degraded_input(x0, torch.zeros_like(x0), probs, (2, 2), alpha, "epsilon", 1.0)
    blurred = sag.blur(x0, 1.0)
    torch.testing.assert_close(out[..., :4, :4], blurred[..., :4, :4])     # key 0: top left
    torch.testing.assert_close(out[..., 4:, 4:], blurred[..., 4:, 4:])     # key 3: bottom right
    torch.testing.assert_close(out[..., :4, 4:], x0[..., :4, 4:])
    torch.testing.assert_close(out[..., 4:, :4], x0[..., 4:, :4])


def test_self_attention_guidance_refuses_flow_models_and_area_prompts(engine, make_txt2img):
    class Flow:
        name, family, prediction_type, self_attention_guidance = "tiny-sd3", "sd3", "flow", None
        unet = object()

    with pytest.raises(NodeError, match="SelfAttentionGuidance works on UNet models"):
        sag.run_self_attention_guidance(None, Flow(), 0.5, 2.0)
    wf = _with_sag(make_txt2img(seed=1, steps=2), 0.5, 2.0)
    wf.add("ConditioningSetArea", {"width": 16, "height": 16, "x": 0, "y": 0, "strength": 1.0},
           {"conditioning": ("pos", "conditioning")}, node_id="area")
    wf.nodes["denoise"].inputs["positive"] = ("area", "conditioning")
    with pytest.raises(NodeExecutionError, match="SelfAttentionGuidance works with one plain prompt per side"):
        engine.run(wf, outputs=["denoise"])
