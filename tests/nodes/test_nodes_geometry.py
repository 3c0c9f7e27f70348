"""Resizing and padding nodes (hires fix, outpainting, inpainting fill) and clip skip."""
from __future__ import annotations

import pytest
import torch

import nodeforge
from nodeforge.core.registry import builtin_module


def _run(engine, wf, node):
    return engine.run(wf, outputs=[node]).outputs[node]


def _denoised(engine, make_txt2img, **kw):
    wf = make_txt2img(**kw)
    return wf, _run(engine, wf, "denoise")["latent"]


def test_latent_upscale_gives_the_requested_image_size_in_latent_pixels(engine, make_txt2img):
    wf, latent = _denoised(engine, make_txt2img)
    factor = latent["factor"]
    assert latent["samples"].shape[-2:] == (32 // factor, 32 // factor)
    wf.add("LatentUpscale", {"upscale_method": "nearest-exact", "width": 64, "height": 0, "crop": "disabled"},
           {"latent": ("denoise", "latent")}, node_id="up")
    up = _run(engine, wf, "up")["latent"]["samples"]
    assert up.shape[-2:] == (64 // factor, 64 // factor)        # height 0 followed the aspect ratio
    # nearest-exact at 2x repeats every latent pixel into a 2x2 block
    torch.testing.assert_close(up[..., ::2, ::2], latent["samples"])
    torch.testing.assert_close(up[..., 1::2, 1::2], latent["samples"])


def test_latent_upscale_by_equals_upscale_to_the_scaled_size(engine, make_txt2img):
    wf, _ = _denoised(engine, make_txt2img)
    wf.add("LatentUpscaleBy", {"upscale_method": "bicubic", "scale_by": 2.0}, {"latent": ("denoise", "latent")},
           node_id="by")
    wf.add("LatentUpscale", {"upscale_method": "bicubic", "width": 64, "height": 64, "crop": "disabled"},
           {"latent": ("denoise", "latent")}, node_id="to")
    torch.testing.assert_close(_run(engine, wf, "by")["latent"]["samples"], _run(engine, wf, "to")["latent"]["samples"],
                               rtol=0, atol=0)


def test_hires_fix_denoises_the_upscaled_latent_into_a_larger_image(engine, make_txt2img):
    wf, _ = _denoised(engine, make_txt2img)
    wf.add("LatentUpscaleBy", {"upscale_method": "bilinear", "scale_by": 2.0}, {"latent": ("denoise", "latent")},
           node_id="up")
    wf.add("UNetDenoise", {"seed": 1, "steps": 4, "cfg": 5.0, "sampler": "euler", "schedule": "default", "denoise": 0.5},
           {"unet": ("ckpt", "unet"), "positive": ("pos", "conditioning"), "negative": ("neg", "conditioning"),
            "latent": ("up", "latent")}, node_id="second")
    wf.add("VAEDecode", {}, {"vae": ("ckpt", "vae"), "latent": ("second", "latent")}, node_id="big")
    image = _run(engine, wf, "big")["image"]
    assert image.shape == (1, 64, 64, 3)
    upscaled = _run(engine, wf, "up")["latent"]["samples"]
    second = _run(engine, wf, "second")["latent"]["samples"]
    assert not torch.equal(upscaled, second)    # the second pass changed the latent


def test_lazy_latent_upscale_only_changes_its_size(engine, make_txt2img):
    wf = make_txt2img(width=32, height=48)
    wf.add("LatentUpscaleBy", {"upscale_method": "area", "scale_by": 1.5}, {"latent": ("empty", "latent")},
           node_id="up")
    out = _run(engine, wf, "up")["latent"]
    assert (out["samples"], out["width"], out["height"]) == (None, 48, 72)


def _image(h=6, w=8):
    torch.manual_seed(0)
    return torch.rand(2, h, w, 3)


def test_image_scale_sizes_and_center_crop():
    geometry = builtin_module("geometry")
    image = _image(6, 8)
    out = geometry.run_image_scale(None, image, "bicubic", 16, 0, "disabled")["image"]
    assert out.shape == (2, 12, 16, 3) and 0 <= out.min() and out.max() <= 1
    square = geometry.run_image_scale(None, image, "nearest-exact", 6, 6, "center")["image"]
    torch.testing.assert_close(square, image[:, :, 1:7])      # the centre 6x6, unscaled
    lanczos = geometry.run_image_scale(None, image, "lanczos", 4, 3, "disabled")["image"]
    assert lanczos.shape == (2, 3, 4, 3)
    by = geometry.run_image_scale_by(None, image, "area", 0.5)["image"]
    torch.testing.assert_close(by, image.permute(0, 3, 1, 2).unflatten(2, (3, 2)).unflatten(4, (4, 2))
                               .mean((3, 5)).permute(0, 2, 3, 1))


def test_pad_for_outpaint_keeps_the_image_and_masks_the_new_area_with_a_feather():
    geometry = builtin_module("geometry")
    image = _image(6, 8)
    out = geometry.run_image_pad_for_outpaint(None, image, left=4, top=0, right=2, bottom=3, feathering=2)
    canvas, mask = out["image"], out["mask"]
    assert canvas.shape == (2, 9, 14, 3) and mask.shape == (2, 9, 14)
    torch.testing.assert_close(canvas[:, 0:6, 4:12], image)
    assert torch.all(canvas[:, 6:, :] == 0.5) and torch.all(canvas[:, :, :4] == 0.5)
    assert torch.all(mask[:, 6:, :] == 1) and torch.all(mask[:, :, :4] == 1) and torch.all(mask[:, :, 12:] == 1)
    # inside: 1 at the padded left edge, (1/2)^2 one pixel in, 0 from two pixels in; the unpadded top is not feathered
    assert mask[0, 2, 4].item() == 1.0 and mask[0, 2, 5].item() == 0.25 and mask[0, 2, 6].item() == 0.0
    assert mask[0, 0, 7].item() == 0.0
    none = geometry.run_image_pad_for_outpaint(None, image, 0, 0, 0, 0, 40)
    torch.testing.assert_close(none["image"], image)
    assert torch.all(none["mask"] == 0)


def test_vae_encode_for_inpaint_greys_the_grown_mask_and_sets_it_as_noise_mask(engine, make_txt2img):
    geometry, vae_module = builtin_module("geometry"), builtin_module("vae")
    vae = _run(engine, make_txt2img(), "ckpt")["vae"]
    image = _image(16, 16)[:1]
    mask = torch.zeros(1, 16, 16)
    mask[:, 6:8, 6:8] = 1
    out = geometry.run_vae_encode_for_inpaint(None, vae, image, mask, grow_mask_by=2)["latent"]
    grown = torch.zeros(16, 16)
    grown[4:10, 4:10] = 1
    grey = image.clone()
    grey[:, 4:10, 4:10] = 0.5
    torch.testing.assert_close(out["samples"], vae_module.encode(vae, grey))
    f = vae.factor
    assert out["noise_mask"].shape == (1, 1, 16 // f, 16 // f)
    assert out["noise_mask"].max() == 1 and out["noise_mask"][0, 0, 0, 0] == 0


def test_clip_skip_minus_one_is_no_clip_skip_and_minus_two_reads_the_layer_before(engine, make_txt2img):
    prompt = builtin_module("prompt")
    wf = make_txt2img()
    wf.add("CLIPSetLastLayer", {"stop_at_layer": -1}, {"clip": ("ckpt", "clip")}, node_id="skip1")
    wf.add("CLIPSetLastLayer", {"stop_at_layer": -2}, {"clip": ("ckpt", "clip")}, node_id="skip2")
    clip = _run(engine, wf, "ckpt")["clip"]
    plain = prompt.encode(clip, "a red circle")["embeds"]
    assert torch.equal(prompt.encode(_run(engine, wf, "skip1")["clip"], "a red circle")["embeds"], plain)
    skipped = prompt.encode(_run(engine, wf, "skip2")["clip"], "a red circle")["embeds"]
    ids = [i for i, *_ in prompt.prompt_chunks(clip.tokenizer, "a red circle")][0]
    with torch.inference_mode():
        out = clip.text_encoder(torch.tensor([ids]), output_hidden_states=True)
        expected = prompt.final_layer_norm(clip.text_encoder)(out.hidden_states[-2])
    torch.testing.assert_close(skipped, expected)
    assert not torch.allclose(skipped, plain)


def test_clip_skip_beyond_the_encoder_names_the_field(engine, make_txt2img):
    wf = make_txt2img()
    layers = _run(engine, wf, "ckpt")["clip"].text_encoder.config.num_hidden_layers
    wf.add("CLIPSetLastLayer", {"stop_at_layer": -(layers + 1)}, {"clip": ("ckpt", "clip")}, node_id="skip")
    wf.nodes["pos"].inputs["clip"] = ("skip", "clip")
    with pytest.raises(nodeforge.WorkflowError) as info:
        engine.run(wf)
    assert "stop_at_layer" in str(info.value) and f"-{layers}" in str(info.value)
