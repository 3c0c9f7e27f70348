"""PerturbedAttentionGuidance: on the tiny SD model, the latents of diffusers' StableDiffusionPAGPipeline with
its middle block perturbed (the same guidance: CFG + scale x (positive - perturbed), the self-attention map
the identity); the adaptive scale's rule; and what it refuses."""
from __future__ import annotations

import pytest
import torch

from nodeforge.core.errors import NodeExecutionError
from nodeforge.core.registry import builtin_module


def _pag_graph(make_txt2img, scale=3.0, adaptive=0.0, **kw):
    wf = make_txt2img(text="a red circle", seed=21, steps=4, cfg=5.0, **kw)
    wf.add("PerturbedAttentionGuidance", {"scale": scale, "adaptive_scale": adaptive}, {"unet": ("ckpt", "unet")},
           node_id="pag")
    wf.nodes["denoise"].inputs["unet"] = ("pag", "unet")
    return wf


def _latent(engine, wf):
    return engine.run(wf, outputs=["denoise"]).outputs["denoise"]["latent"]["samples"]


@pytest.mark.parametrize("cfg", [5.0, 1.0])
def test_pag_samples_as_diffusers_pag_pipeline_on_the_middle_block(engine, models_dir, make_txt2img, cfg):
    from diffusers import EulerDiscreteScheduler, StableDiffusionPAGPipeline

    wf = _pag_graph(make_txt2img)
    wf.nodes["denoise"].params["cfg"] = cfg
    ours = _latent(engine, wf)
    pipe = StableDiffusionPAGPipeline.from_pretrained(str(models_dir / "checkpoints" / "tiny-sd"), local_files_only=True,
                                                      safety_checker=None, requires_safety_checker=False,
                                                      pag_applied_layers=["mid"])
    pipe.set_progress_bar_config(disable=True)
    pipe.scheduler = EulerDiscreteScheduler.from_config(pipe.scheduler.config)
    theirs = pipe("a red circle", negative_prompt="", num_inference_steps=4, guidance_scale=cfg, pag_scale=3.0,
                  height=32, width=32, generator=torch.Generator().manual_seed(21), output_type="latent").images
    torch.testing.assert_close(ours, theirs, atol=1e-4, rtol=1e-4)
    plain = make_txt2img(text="a red circle", seed=21, steps=4, cfg=cfg)
    assert (_latent(engine, plain) - ours).abs().max() > 1e-3


def test_the_adaptive_scale_lowers_the_scale_at_high_noise():
    pag = builtin_module("pag")
    settings = pag.PerturbedAttention(3.0, 0.1)                    # 3 x 0.1^4 = 0.0003 per timestep below 1000
    assert pag.signal_scale(settings, 999.0) == pytest.approx(2.9997)
    assert pag.signal_scale(settings, 0.0) == pytest.approx(2.7)
    assert pag.signal_scale(pag.PerturbedAttention(3.0, 0.5), 900.0) == 0.0      # 3 - 0.1875 x 100 < 0: off
    assert pag.signal_scale(pag.PerturbedAttention(3.0, 0.0), 10.0) == 3.0


def test_pag_refuses_prompts_it_cannot_pair(engine, make_txt2img):
    wf = _pag_graph(make_txt2img)
    wf.add("ConditioningSetArea", {"width": 16, "height": 16, "x": 0, "y": 0, "strength": 1.0},
           {"conditioning": ("pos", "conditioning")}, node_id="area")
    wf.nodes["denoise"].inputs["positive"] = ("area", "conditioning")
    with pytest.raises(NodeExecutionError, match="PerturbedAttentionGuidance works with one plain prompt per side"):
        engine.run(wf, outputs=["denoise"])
