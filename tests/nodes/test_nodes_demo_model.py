"""The bundled demo model and LoRA: part of the project, so these tests FAIL (not skip) when they are missing."""
from __future__ import annotations

import numpy as np
import pytest

from nodeforge.paths import builtin_dir

DEMO = builtin_dir("resources") / "models" / "nodeforge-shapes"
LORA = builtin_dir("resources") / "loras"



def test_the_demo_model_and_lora_are_bundled():
    assert (DEMO / "model_index.json").is_file(), f"the demo model {DEMO} is missing (it ships with NodeForge)"
    assert any(LORA.glob("shapes-star.*")), f"the demo LoRA shapes-star is missing from {LORA}"


@pytest.fixture(scope="module")
def demo_engine(registry, tmp_path_factory):
    assert (DEMO / "model_index.json").is_file(), f"the demo model {DEMO} is missing (it ships with NodeForge)"
    from nodeforge import Engine
    from nodeforge.core.models import ModelPaths

    return Engine(device="cpu", output_dir=tmp_path_factory.mktemp("demo-out"), registry=registry,
                  model_paths=ModelPaths(roots=[]))


def test_demo_model_makes_a_64px_image_with_vae_factor_4(demo_engine, make_txt2img):
    wf = make_txt2img("nodeforge-shapes", "a red circle on a blue background", width=64, height=64, steps=6)
    out = demo_engine.run(wf)
    model = demo_engine.run(wf, outputs=["ckpt"]).outputs["ckpt"]
    assert model["vae"].factor == 4
    image = np.asarray(out.outputs["preview"][0])
    assert image.shape == (64, 64, 3) and image.std() > 5


def test_demo_lora_changes_the_image(demo_engine, make_txt2img):
    assert any(LORA.glob("shapes-star.*")), f"the demo LoRA shapes-star is missing from {LORA}"
    base = make_txt2img("nodeforge-shapes", "a star", width=64, height=64, steps=6)
    star = make_txt2img("nodeforge-shapes", "a star", width=64, height=64, steps=6, lora=[("shapes-star", 1.0, 1.0)])
    a = np.asarray(demo_engine.run(base).outputs["preview"][0]).astype(float)
    b = np.asarray(demo_engine.run(star).outputs["preview"][0]).astype(float)
    assert np.abs(a - b).mean() > 1


def test_demo_model_txt2img_equals_the_diffusers_pipeline(demo_engine, make_txt2img):
    import torch
    from diffusers import StableDiffusionPipeline

    wf = make_txt2img("nodeforge-shapes", "a red circle on a blue background", width=64, height=64, steps=4, seed=42)
    ours = demo_engine.run(wf, outputs=["denoise"]).outputs["denoise"]["latent"]["samples"]
    pipe = StableDiffusionPipeline.from_pretrained(str(DEMO), local_files_only=True, safety_checker=None,
                                                   requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    theirs = pipe("a red circle on a blue background", negative_prompt="", num_inference_steps=4, guidance_scale=5.0,
                  height=64, width=64, generator=torch.Generator().manual_seed(42), output_type="latent").images
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=1e-5)
