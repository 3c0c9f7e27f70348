"""`nodeforge train-flow` on a 3-step run: it writes a StableDiffusion3Pipeline folder (no T5) that
diffusers and NodeForge's CheckpointLoader both load, trained on the flow-matching objective."""
from __future__ import annotations

import json

import torch

from nodeforge.training import flow


def test_the_flow_target_is_the_velocity_from_the_clean_latent_to_the_noise():
    x0 = torch.randn(4, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    x_t, t, target = flow.flow_batch(x0, 3.0, torch.Generator().manual_seed(1))
    sigma = (t / 1000).view(-1, 1, 1, 1)
    noise = target + x0
    torch.testing.assert_close(x_t, (1 - sigma) * x0 + sigma * noise)
    assert ((t > 0) & (t < 1000)).all() and t.float().mean() > 500   # shift 3 leans to high noise


def test_a_three_step_run_saves_a_flow_model_both_loaders_read(tmp_path):
    from diffusers import StableDiffusion3Pipeline

    from nodeforge.core.registry import builtin_module

    load_checkpoint = builtin_module("loading").load_checkpoint   # the pack, as installed or checked out

    out = tmp_path / "shapes-flow"
    numbers = tmp_path / "numbers.json"
    assert flow.main(["--out", str(out), "--steps", "3", "--batch", "4", "--images", "16", "--layers", "1",
                      "--width", "64", "--json", str(numbers)]) == 0
    report = json.loads(numbers.read_text())
    assert report["steps"] == 3 and torch.isfinite(torch.tensor(report["final_loss"]))
    pipe = StableDiffusion3Pipeline.from_pretrained(str(out), local_files_only=True, text_encoder_3=None,
                                                    tokenizer_3=None)   # diffusers asks for the absent T5 by name
    assert pipe.text_encoder_3 is None and pipe.scheduler.config.shift == 3.0
    unet, clip, vae = load_checkpoint(out, "cpu").wrappers()
    assert (unet.family, unet.latent_channels, vae.factor) == ("sd3", 4, 4) and clip.text_encoder_3 is None
    image = pipe("a red circle", num_inference_steps=2, height=64, width=64, output_type="np",
                 generator=torch.Generator().manual_seed(0)).images
    assert image.shape == (1, 64, 64, 3)
