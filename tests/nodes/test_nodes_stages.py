"""UNetDenoise stages (ComfyUI's KSamplerAdvanced): start/end steps, add_noise, leftover noise, and
SDXL refiner micro-conditioning (aesthetic score)."""
from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from nodeforge import Workflow
from nodeforge.core.registry import builtin_module


def _two_stage(sampler: str, steps: int = 25, split: int = 20, *, leftover: bool = True,
               add_noise_second: bool = False) -> Workflow:
    wf = Workflow()
    wf.add("CheckpointLoader", {"checkpoint": "tiny-sd"}, node_id="ckpt")
    wf.add("TextEncoder", {"text": "a red circle"}, {"clip": ("ckpt", "clip")}, node_id="pos")
    wf.add("TextEncoder", {"text": ""}, {"clip": ("ckpt", "clip")}, node_id="neg")
    wf.add("EmptyLatent", {"width": 32, "height": 32, "batch_size": 2}, node_id="empty")
    common = {"seed": 5, "steps": steps, "cfg": 5.0, "sampler": sampler, "schedule": "default", "denoise": 1.0}
    conds = {"unet": ("ckpt", "unet"), "positive": ("pos", "conditioning"), "negative": ("neg", "conditioning")}
    wf.add("UNetDenoise", dict(common, end_at_step=split, return_with_leftover_noise=leftover),
           dict(conds, latent=("empty", "latent")), node_id="base")
    wf.add("UNetDenoise", dict(common, start_at_step=split, add_noise=add_noise_second),
           dict(conds, latent=("base", "latent")), node_id="refine")
    wf.add("UNetDenoise", common, dict(conds, latent=("empty", "latent")), node_id="single")
    return wf


def _samples(out, node):
    return out[node]["latent"]["samples"]


@pytest.mark.parametrize("sampler", ["euler", "euler_ancestral", "ddim", "ddpm", "dpm_2_ancestral", "lcm"])
def test_base_and_refiner_stages_of_one_model_equal_the_single_run(engine, sampler):
    out = engine.run(_two_stage(sampler), outputs=["base", "refine", "single"]).outputs
    single, refined = _samples(out, "single"), _samples(out, "refine")
    assert torch.equal(refined, single)
    # the hand-over really is partial: the base stage's latent still carries noise
    assert (_samples(out, "base") - single).abs().max() > 0.05


def test_defaults_keep_todays_run_and_full_range_is_the_default(engine):
    wf = _two_stage("euler", steps=6, split=6)
    out = engine.run(wf, outputs=["base", "single"]).outputs
    assert torch.equal(_samples(out, "base"), _samples(out, "single"))


def test_a_cut_schedule_without_leftover_noise_ends_clean(engine):
    # end_at_step < steps and leftover off: the last step predicts the clean latent, unlike leftover on
    clean = engine.run(_two_stage("euler", steps=8, split=4, leftover=False), outputs=["base"]).outputs
    noisy = engine.run(_two_stage("euler", steps=8, split=4, leftover=True), outputs=["base"]).outputs
    a, b = _samples(clean, "base"), _samples(noisy, "base")
    assert not torch.allclose(a, b)
    assert torch.isfinite(a).all()


def test_adding_noise_again_in_the_second_stage_changes_it(engine):
    out = engine.run(_two_stage("euler", steps=8, split=4, add_noise_second=True),
                     outputs=["refine", "single"]).outputs
    assert not torch.allclose(_samples(out, "refine"), _samples(out, "single"))


def test_start_at_or_past_end_returns_the_latent(engine):
    wf = _two_stage("euler", steps=8, split=8)
    out = engine.run(wf, outputs=["base", "refine"]).outputs
    assert torch.equal(_samples(out, "refine"), _samples(out, "base"))


def _tiny_sdxl_unet(n_ids: int):
    from diffusers import UNet2DConditionModel

    torch.manual_seed(0)
    return UNet2DConditionModel(
        block_out_channels=(32, 64), layers_per_block=1, sample_size=8, in_channels=4, out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=48, attention_head_dim=8, norm_num_groups=8, addition_embed_type="text_time",
        addition_time_embed_dim=8, projection_class_embeddings_input_dim=8 * n_ids + 24, use_linear_projection=True)


def _sdxl_inputs(model, positive, negative, batch, cfg):
    """The UNet inputs UNetDenoise builds for full-frame prompts: (embeds, added_cond_kwargs)."""
    guidance = builtin_module("conditioning").Guidance(model, [positive], [negative], batch, (8, 6), cfg)
    [(_, embeds, added)] = guidance.groups
    return embeds, added


def test_refiner_unet_gets_aesthetic_scores_instead_of_the_target_size():
    unet = _tiny_sdxl_unet(5)
    model = SimpleNamespace(unet=unet, device=torch.device("cpu"), dtype=torch.float32, vae_factor=8)
    pos = {"embeds": torch.randn(1, 77, 48), "pooled": torch.randn(1, 24)}
    neg = {"embeds": torch.randn(1, 77, 48), "pooled": torch.randn(1, 24)}
    embeds, added = _sdxl_inputs(model, pos, neg, 2, 5.0)
    assert added["time_ids"].tolist() == [[64, 48, 0, 0, 2.5]] * 2 + [[64, 48, 0, 0, 6.0]] * 2
    with torch.inference_mode():
        pred = unet(torch.randn(4, 4, 8, 6), 10, encoder_hidden_states=embeds, added_cond_kwargs=added).sample
    assert pred.shape == (4, 4, 8, 6) and torch.isfinite(pred).all()
    # the score is read from the conditioning when a node sets it, and changes the prediction
    _, higher = _sdxl_inputs(model, dict(pos, aesthetic_score=9.0), neg, 2, 5.0)
    assert higher["time_ids"][-1, 4] == 9.0
    with torch.inference_mode():
        other = unet(torch.randn(4, 4, 8, 6), 10, encoder_hidden_states=embeds, added_cond_kwargs=higher).sample
    assert not torch.allclose(other, pred)
    # a base UNet keeps the target-size ids
    base = SimpleNamespace(unet=_tiny_sdxl_unet(6), device=torch.device("cpu"), dtype=torch.float32, vae_factor=8)
    _, added = _sdxl_inputs(base, pos, neg, 1, 1.0)
    assert added["time_ids"].tolist() == [[64, 48, 0, 0, 64, 48]]
