"""CLIP Vision Encode and unCLIP Conditioning (issue 30; ComfyUI's unCLIP and SDXL Revision) on tiny
models: the encoder's outputs are transformers' on CLIP's processor pixels; an SDXL denoise with
unCLIP images is diffusers' StableDiffusionXLPipeline given the prompt's embeddings and, as the pooled
vector, the strength-weighted sum of the image embeddings; SD 1.x does not read them (as ComfyUI)."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from nodeforge.core.errors import WorkflowError
from nodeforge.core.registry import builtin_module

import tiny_models as tm

STEPS, SEED, CFG = 4, 5, 5.0
# projection 24 wide: the tiny SDXL's pooled vector (its second text encoder's projection)
VISION = dict(hidden_size=32, intermediate_size=37, num_attention_heads=4, num_hidden_layers=3, image_size=32,
              patch_size=4, projection_dim=24, hidden_act="gelu")
unclip = builtin_module("unclip")


def _encoder(projection: int = 24):
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    torch.manual_seed(0)
    return CLIPVisionModelWithProjection(CLIPVisionConfig(**dict(VISION, projection_dim=projection))).eval()


def _processor():
    from transformers import CLIPImageProcessorPil

    return CLIPImageProcessorPil(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    root = tmp_path_factory.mktemp("unclip")
    tm.save_diffusers(tm.make_components(0, sdxl=True), root / "checkpoints" / "tiny-xl")
    for name, projection in (("vision-24", 24), ("vision-16", 16)):
        _encoder(projection).save_pretrained(str(root / "clip_vision" / name))
        _processor().save_pretrained(str(root / "clip_vision" / name))
    return root


@pytest.fixture(scope="module")
def engine(models_dir, root, registry, tmp_path_factory):
    from nodeforge import Engine
    from nodeforge.core.models import ModelPaths

    return Engine(device="cpu", output_dir=tmp_path_factory.mktemp("out"), registry=registry,
                  model_paths=ModelPaths(roots=[models_dir, root]))


def _image(seed: int) -> torch.Tensor:
    return torch.randint(0, 256, (1, 40, 56, 3), generator=torch.Generator().manual_seed(seed)).float() / 255


def _pil(image: torch.Tensor):
    from PIL import Image

    return Image.fromarray((image[0].numpy() * 255).round().astype(np.uint8))


def _workflow(folder, checkpoint, unclips, encoder="vision-24", crop="center"):
    """txt2img whose positive prompt gets unCLIPConditioning for each (image, strength, noise), chained."""
    wf = tm.txt2img(checkpoint, seed=SEED, steps=STEPS, cfg=CFG)
    wf.add("CLIPVisionLoader", {"clip_vision": encoder}, node_id="vision")
    positive = ("pos", "conditioning")
    for i, (image, strength, noise) in enumerate(unclips):
        path = folder / f"unclip-{i}-{abs(hash(image.numpy().tobytes()))}.png"
        _pil(image).save(path)
        wf.add("LoadImage", {"path": str(path)}, node_id=f"img{i}")
        wf.add("CLIPVisionEncode", {"crop": crop}, {"clip_vision": ("vision", "clip_vision"),
                                                    "image": (f"img{i}", "image")}, node_id=f"encode{i}")
        wf.add("UnCLIPConditioning", {"strength": strength, "noise_augmentation": noise},
               {"conditioning": positive, "clip_vision_output": (f"encode{i}", "clip_vision_output")},
               node_id=f"unclip{i}")
        positive = (f"unclip{i}", "conditioning")
    wf.nodes["denoise"].inputs["positive"] = positive
    return wf


def _embeds(image, crop="center"):
    pil = _pil(image)
    if crop == "none":
        from PIL import Image

        pil = pil.resize((32, 32), Image.BICUBIC)
    with torch.inference_mode():
        return _encoder()(_processor()(images=[pil], return_tensors="pt").pixel_values).image_embeds


@pytest.mark.parametrize("crop", ["center", "none"])
def test_clip_vision_encode_gives_the_encoders_outputs_on_clips_own_preparation(engine, root, tmp_path, crop):
    image = _image(1)
    wf = _workflow(tmp_path, "tiny-xl", [(image, 1.0, 0.0)], crop=crop)
    out = engine.run(wf, outputs=["encode0"]).outputs["encode0"]["clip_vision_output"]
    torch.testing.assert_close(out["image_embeds"], _embeds(image, crop), atol=1e-6, rtol=1e-6)
    assert out["image_embeds"].shape == (1, 24) and out["penultimate_hidden_states"].shape == (1, 65, 32)
    other = _embeds(image, "none" if crop == "center" else "center")
    assert (out["image_embeds"] - other).abs().max() > 1e-3   # the crop matters on a 56x40 image


def test_sdxl_reads_the_images_as_its_pooled_vector_exactly_as_diffusers_given_it(engine, root, tmp_path):
    from diffusers import StableDiffusionXLPipeline

    a, b = _image(2), _image(3)
    ours = tm.denoised(engine, _workflow(tmp_path, "tiny-xl", [(a, 1.0, 0.0), (b, 0.6, 0.0)]))
    pipe = StableDiffusionXLPipeline.from_pretrained(str(root / "checkpoints" / "tiny-xl"), local_files_only=True)
    pipe.set_progress_bar_config(disable=True)
    embeds, negative, _, negative_pooled = pipe.encode_prompt("a red circle", negative_prompt="", device="cpu")
    pooled = 1.0 * _embeds(a) + 0.6 * _embeds(b)   # the image embeddings, weighted and summed
    theirs = pipe(prompt_embeds=embeds, pooled_prompt_embeds=pooled, negative_prompt_embeds=negative,
                  negative_pooled_prompt_embeds=negative_pooled, num_inference_steps=STEPS, guidance_scale=CFG,
                  height=32, width=32, generator=torch.Generator().manual_seed(SEED), output_type="latent").images
    torch.testing.assert_close(ours, theirs, atol=1e-4, rtol=1e-4)
    plain = tm.denoised(engine, _workflow(tmp_path, "tiny-xl", []))
    assert (ours - plain).abs().max() > 1e-2    # the images steer
    zero = tm.denoised(engine, _workflow(tmp_path, "tiny-xl", [(a, 0.0, 0.0)]))
    assert torch.equal(zero, plain)             # strength 0 leaves the prompt as it was (ComfyUI's rule)


def test_noise_augmentation_q_samples_the_embedding_on_the_cosine_schedule():
    embeds = torch.linspace(-1, 1, 24)[None]
    assert torch.equal(unclip.augmented(embeds, 0.0), embeds)
    # level round(999 x 0.3) = 300 of 1000; alpha_bar(t) = cos((t + 0.008) / 1.008 x pi / 2)^2, betas capped at 0.999
    bar = lambda t: math.cos((t + 0.008) / 1.008 * math.pi / 2) ** 2  # noqa: E731
    alpha = math.prod(1 - min(1 - bar((i + 1) / 1000) / bar(i / 1000), 0.999) for i in range(301))
    noise = torch.randn(1, 24, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(unclip.augmented(embeds, 0.3), math.sqrt(alpha) * embeds + math.sqrt(1 - alpha) * noise)
    assert alpha == pytest.approx(bar(0.301) / bar(0.0))   # the product telescopes (no beta is capped): 0.786


def test_sd1_models_do_not_read_unclip_images_as_in_comfyui(engine, tmp_path):
    plain = tm.denoised(engine, _workflow(tmp_path, "tiny-sd", []))
    assert torch.equal(tm.denoised(engine, _workflow(tmp_path, "tiny-sd", [(_image(4), 1.0, 0.2)])), plain)


def test_an_encoder_of_another_width_is_one_line_naming_the_encoder_to_use(engine, tmp_path):
    with pytest.raises(WorkflowError) as info:
        engine.run(_workflow(tmp_path, "tiny-xl", [(_image(5), 1.0, 0.0)], encoder="vision-16"), outputs=["denoise"])
    message = str(info.value)
    assert "\n" not in message and "16 wide" in message and "24" in message and "clip_vision_g" in message
