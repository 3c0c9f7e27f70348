"""ComfyUI's small utility nodes, numerically as ComfyUI defines them: ConditioningZeroOut,
ConditioningAverage, ConditioningConcat, ConditioningSetAreaPercentage, RepeatLatentBatch,
LatentFromBatch, LoadImageMask, InvertMask, ImageInvert, ImageToMask, MaskToImage, SolidMask, GrowMask,
ImageScaleToTotalPixels, ImageScaleToMaxDimension, ConditioningSetTimestepRange, ConditioningSetAreaStrength, ImageCrop, ImageBatch,
LatentBlend, EmptyImage, ImageCompositeMasked, LatentCompositeMasked."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from nodeforge import Workflow
from nodeforge.core.errors import NodeError
from nodeforge.core.registry import builtin_module

conditioning = builtin_module("conditioning")


def _entry(length, width=8, pooled=True, seed=0, **extra):
    gen = torch.Generator().manual_seed(seed)
    return dict({"embeds": torch.randn(1, length, width, generator=gen),
                 "pooled": torch.randn(1, 4, generator=gen) if pooled else None, "family": "sdxl"}, **extra)


def test_zero_out_zeros_the_prompt_and_the_pooled_vector_and_keeps_the_rest():
    entry = _entry(77, area=(16, 16, 0, 0), strength=0.5)
    [out] = conditioning.run_conditioning_zero_out(None, [entry])["conditioning"]
    assert torch.equal(out["embeds"], torch.zeros(1, 77, 8)) and torch.equal(out["pooled"], torch.zeros(1, 4))
    assert out["area"] == (16, 16, 0, 0) and out["strength"] == 0.5
    assert entry["embeds"].abs().sum() > 0   # the input is not changed
    [sd] = conditioning.run_conditioning_zero_out(None, [_entry(77, pooled=False)])["conditioning"]
    assert sd["pooled"] is None


def test_average_mixes_to_and_from_as_comfyui_cutting_or_padding_from():
    to = [_entry(154, seed=1, area=(8, 8, 0, 0)), _entry(77, seed=2)]
    source = [_entry(77, seed=3), _entry(77, seed=4)]   # only the first entry of conditioning_from counts
    out = conditioning.run_conditioning_average(None, to, source, 0.3)["conditioning"]
    f = source[0]["embeds"]
    padded = torch.cat([f, torch.zeros(1, 77, 8)], 1)   # from is shorter: zeros after it
    torch.testing.assert_close(out[0]["embeds"], to[0]["embeds"] * 0.3 + padded * 0.7, atol=0, rtol=0)
    torch.testing.assert_close(out[1]["embeds"], to[1]["embeds"] * 0.3 + f * 0.7, atol=0, rtol=0)
    torch.testing.assert_close(out[0]["pooled"], to[0]["pooled"] * 0.3 + source[0]["pooled"] * 0.7, atol=0, rtol=0)
    assert out[0]["area"] == (8, 8, 0, 0)
    # a longer from is cut to to's length; strength 1 is to itself
    [cut] = conditioning.run_conditioning_average(None, [_entry(77, seed=5)], [_entry(154, seed=6)], 1.0)["conditioning"]
    assert torch.equal(cut["embeds"], _entry(77, seed=5)["embeds"])
    # to without a pooled vector takes from's (SD 1.x entries carry None)
    [sd] = conditioning.run_conditioning_average(None, [_entry(77, pooled=False)], [_entry(77, seed=7)],
                                                 0.5)["conditioning"]
    assert torch.equal(sd["pooled"], _entry(77, seed=7)["pooled"])
    with pytest.raises(NodeError) as info:
        conditioning.run_conditioning_average(None, [_entry(77)], [_entry(77, width=16)], 0.5)
    assert info.value.field == "conditioning_from"


def test_concat_appends_the_first_from_entry_to_each_to_entry():
    to, source = [_entry(77, seed=1, strength=2.0)], [_entry(154, seed=2), _entry(77, seed=3)]
    [out] = conditioning.run_conditioning_concat(None, to, source)["conditioning"]
    assert out["embeds"].shape == (1, 231, 8)
    assert torch.equal(out["embeds"], torch.cat([to[0]["embeds"], source[0]["embeds"]], 1))
    assert torch.equal(out["pooled"], to[0]["pooled"]) and out["strength"] == 2.0


def test_area_percentage_rounds_in_latent_pixels_as_comfyui():
    [entry] = conditioning.run_conditioning_set_area_percentage(None, [_entry(77, area=(8, 8, 8, 8))], 0.25, 0.5,
                                                                0.35, 0.125, 1.5)["conditioning"]
    assert "area" not in entry and entry["strength"] == 1.5
    # frame 8 x 10 latent pixels: h max(1, round(4.0)), w round(2.5) = 2 (Python's rounding, ComfyUI's), y 1, x round(3.5) = 4
    assert conditioning._box(entry, 8, (8, 10), "positive") == (4, 2, 1, 4)
    [tiny] = conditioning.run_conditioning_set_area_percentage(None, [_entry(77)], 0.01, 0.01, 0.0, 0.0,
                                                               1.0)["conditioning"]
    assert conditioning._box(tiny, 8, (8, 10), "positive") == (1, 1, 0, 0)   # at least one latent pixel
    [outside] = conditioning.run_conditioning_set_area_percentage(None, [_entry(77)], 0.5, 0.5, 1.0, 0.0,
                                                                  1.0)["conditioning"]
    with pytest.raises(NodeError):
        conditioning._box(outside, 8, (8, 10), "positive")
    # a later ConditioningSetArea replaces it (as ComfyUI's one "area" key)
    [pixels] = conditioning.run_conditioning_set_area(None, [entry], 16, 16, 0, 0, 1.0)["conditioning"]
    assert "area_fraction" not in pixels and conditioning._box(pixels, 8, (8, 10), "positive") == (2, 2, 0, 0)


def _latent(engine, wf, node="denoise"):
    return engine.run(wf, outputs=[node]).outputs[node]["latent"]["samples"]


def test_an_area_in_fractions_denoises_as_the_same_area_in_pixels(engine, make_txt2img):
    def halves(node_type, params):
        wf = make_txt2img(seed=5)
        wf.add("TextEncoder", {"text": "green square"}, {"clip": ("ckpt", "clip")}, node_id="right")
        wf.add(node_type, params, {"conditioning": ("right", "conditioning")}, node_id="area")
        wf.add("ConditioningCombine", {}, {"conditioning_1": ("pos", "conditioning"),
                                           "conditioning_2": ("area", "conditioning")}, node_id="both")
        wf.nodes["denoise"].inputs["positive"] = ("both", "conditioning")
        return wf
    fraction = _latent(engine, halves("ConditioningSetAreaPercentage",
                                      {"width": 0.5, "height": 1.0, "x": 0.5, "y": 0.0, "strength": 1.0}))
    pixels = _latent(engine, halves("ConditioningSetArea", {"width": 16, "height": 32, "x": 16, "y": 0, "strength": 1.0}))
    assert torch.equal(fraction, pixels)
    assert (fraction - _latent(engine, make_txt2img(seed=5))).abs().max() > 1e-3


def test_repeat_latent_batch_gives_each_copy_its_own_seed(engine, make_txt2img):
    three = _latent(engine, make_txt2img(seed=20, batch_size=3))
    wf = make_txt2img(seed=20, batch_size=1)
    wf.add("RepeatLatentBatch", {"amount": 3}, {"latent": ("empty", "latent")}, node_id="repeat")
    wf.nodes["denoise"].inputs["latent"] = ("repeat", "latent")
    repeated = _latent(engine, wf)
    assert repeated.shape[0] == 3
    torch.testing.assert_close(repeated, three, atol=1e-5, rtol=1e-4)


def test_latent_from_batch_keeps_an_items_noise_so_it_reruns_alone_the_same(engine, make_txt2img):
    batch = _latent(engine, make_txt2img(seed=30, batch_size=3))
    wf = make_txt2img(seed=30, batch_size=3)
    wf.add("LatentFromBatch", {"batch_index": 1, "length": 5}, {"latent": ("empty", "latent")}, node_id="pick")
    wf.nodes["denoise"].inputs["latent"] = ("pick", "latent")
    picked = _latent(engine, wf)
    assert picked.shape[0] == 2    # length clipped to what the batch has
    torch.testing.assert_close(picked, batch[1:], atol=1e-5, rtol=1e-4)
    # on denoised samples it is a slice; batch_index past the end takes the last item
    wf = make_txt2img(seed=30, batch_size=3)
    wf.add("LatentFromBatch", {"batch_index": 9, "length": 1}, {"latent": ("denoise", "latent")}, node_id="last")
    out = engine.run(wf, outputs=["last"]).outputs["last"]["latent"]
    assert torch.equal(out["samples"], batch[2:]) and out["batch_index"] == [2]


def test_repeat_then_pick_on_samples_and_masks():
    latents = builtin_module("latents")
    samples = torch.arange(2 * 4 * 2 * 2, dtype=torch.float32).reshape(2, 4, 2, 2)
    mask = torch.rand(2, 1, 2, 2)
    out = latents.run_repeat_latent_batch(None, {"samples": samples, "noise_mask": mask}, 2)["latent"]
    assert torch.equal(out["samples"], torch.cat([samples, samples]))
    assert torch.equal(out["noise_mask"], torch.cat([mask, mask])) and out["batch_index"] == [0, 1, 2, 3]
    again = latents.run_repeat_latent_batch(None, out, 2)["latent"]
    assert again["batch_index"] == [0, 1, 2, 3, 4, 5, 6, 7]
    one = latents.run_latent_from_batch(None, out, 3, 1)["latent"]
    assert torch.equal(one["samples"], samples[1:]) and torch.equal(one["noise_mask"], mask[1:])
    assert one["batch_index"] == [3]


def _run(engine, node_type, params, inputs=None, output="mask"):
    wf = Workflow()
    wf.add(node_type, params, inputs or {}, node_id="n")
    return engine.run(wf, outputs=["n"]).outputs["n"][output]


def test_load_image_mask_takes_one_channel_and_inverts_alpha(engine, tmp_path):
    rgba = np.zeros((4, 6, 4), dtype=np.uint8)
    rgba[..., 0] = np.arange(24).reshape(4, 6) * 10
    rgba[..., 1] = 7
    rgba[..., 3] = 255
    rgba[0, :, 3] = 0
    path = tmp_path / "mask.png"
    Image.fromarray(rgba, "RGBA").save(path)
    red = _run(engine, "LoadImageMask", {"path": str(path), "channel": "red"})
    assert red.shape == (1, 4, 6)
    torch.testing.assert_close(red[0], torch.from_numpy(rgba[..., 0] / 255.0).float(), atol=1e-7, rtol=0)
    assert torch.allclose(_run(engine, "LoadImageMask", {"path": str(path), "channel": "green"}), torch.tensor(7 / 255))
    alpha = _run(engine, "LoadImageMask", {"path": str(path), "channel": "alpha"})
    assert torch.equal(alpha[0, 0], torch.ones(6)) and torch.equal(alpha[0, 1:], torch.zeros(3, 6))   # transparent = 1
    rgb = tmp_path / "rgb.png"
    Image.fromarray(rgba[..., :3], "RGB").save(rgb)
    assert torch.equal(_run(engine, "LoadImageMask", {"path": str(rgb), "channel": "alpha"}), torch.zeros(1, 4, 6))


def test_invert_mask_and_image_invert_are_one_minus(engine, tmp_path):
    rgba = np.zeros((2, 2, 4), dtype=np.uint8)
    rgba[..., 0] = [[0, 51], [102, 255]]
    rgba[..., 3] = 255
    path = tmp_path / "m.png"
    Image.fromarray(rgba, "RGBA").save(path)
    wf = Workflow()
    wf.add("LoadImage", {"path": str(path)}, node_id="load")
    wf.add("LoadImageMask", {"path": str(path), "channel": "red"}, node_id="mask")
    wf.add("InvertMask", {}, {"mask": ("mask", "mask")}, node_id="inv")
    wf.add("ImageInvert", {}, {"image": ("load", "image")}, node_id="neg")
    out = engine.run(wf, outputs=["load", "mask", "inv", "neg"]).outputs
    torch.testing.assert_close(out["inv"]["mask"], 1 - out["mask"]["mask"], atol=0, rtol=0)
    torch.testing.assert_close(out["neg"]["image"], 1 - out["load"]["image"], atol=0, rtol=0)
    assert float(out["neg"]["image"][0, 1, 1, 0]) == 0.0 and float(out["neg"]["image"][0, 0, 0, 2]) == 1.0


def test_image_to_mask_mask_to_image_and_solid_mask():
    images = builtin_module("images")
    image = torch.rand(2, 3, 4, 3)
    assert torch.equal(images.run_image_to_mask(None, image, "green")["mask"], image[..., 1])
    with pytest.raises(NodeError) as info:
        images.run_image_to_mask(None, image, "alpha")
    assert info.value.field == "channel"
    mask = torch.rand(2, 3, 4)
    grey = images.run_mask_to_image(None, mask)["image"]
    assert grey.shape == (2, 3, 4, 3) and all(torch.equal(grey[..., c], mask) for c in range(3))
    assert torch.equal(images.run_solid_mask(None, 0.25, 5, 3)["mask"], torch.full((1, 3, 5), 0.25))


def test_grow_mask_dilates_and_erodes_one_pixel_a_step_as_scipys_grey_morphology():
    images = builtin_module("images")
    mask = torch.zeros(1, 7, 7)
    mask[0, 3, 3] = 1.0
    cross = images.run_grow_mask(None, mask, 1, True)["mask"]
    square = images.run_grow_mask(None, mask, 1, False)["mask"]
    assert cross[0, 2:5, 2:5].tolist() == [[0, 1, 0], [1, 1, 1], [0, 1, 0]]
    assert torch.equal(square[0, 2:5, 2:5], torch.ones(3, 3)) and square.sum() == 9
    two = images.run_grow_mask(None, mask, 2, True)["mask"]
    assert two.sum() == 13 and two[0, 1, 3] == 1 and two[0, 1, 2] == 0   # a diamond of radius 2
    assert torch.equal(images.run_grow_mask(None, square, -1, False)["mask"], mask)   # erosion undoes it
    edge = torch.ones(1, 4, 4)
    assert torch.equal(images.run_grow_mask(None, edge, -1, True)["mask"], edge)   # borders repeat, so no shrink there
    assert torch.equal(images.run_grow_mask(None, mask, 0, True)["mask"], mask)


def test_scale_to_total_pixels_keeps_the_aspect_and_rounds_to_the_steps():
    geometry = builtin_module("geometry")
    image = torch.rand(1, 300, 400, 3)
    # 0.25 MP = 262144 px: scale sqrt(262144 / 120000) = 1.478 -> 591 x 443
    out = geometry.run_image_scale_to_total_pixels(None, image, "bilinear", 0.25)["image"]
    assert out.shape == (1, 443, 591, 3)
    stepped = geometry.run_image_scale_to_total_pixels(None, image, "nearest-exact", 0.25, 64)["image"]
    assert stepped.shape == (1, 448, 576, 3)


def test_scale_to_max_dimension_makes_the_longer_side_the_size_as_comfyui():
    geometry = builtin_module("geometry")
    image = torch.rand(2, 300, 600, 3)
    out = geometry.run_image_scale_to_max_dimension(None, image, "area", 512)["image"]
    # ComfyUI's area method is torch's area interpolation on [B, C, H, W]
    expected = torch.nn.functional.interpolate(image.permute(0, 3, 1, 2), size=(256, 512), mode="area")
    torch.testing.assert_close(out, expected.clamp(0, 1).permute(0, 2, 3, 1))
    tall = geometry.run_image_scale_to_max_dimension(None, torch.rand(1, 700, 300, 3), "bilinear", 100)["image"]
    assert tall.shape == (1, 100, 43, 3)                       # 300 / 700 x 100 = 42.86
    square = geometry.run_image_scale_to_max_dimension(None, torch.rand(1, 40, 40, 3), "lanczos", 1024)["image"]
    assert square.shape == (1, 1024, 1024, 3)
    # Python's round, as ComfyUI: halves go to the even side; a sliver never becomes 0 pixels
    assert geometry.max_dimension_size(1, 2, 5) == (2, 5) and geometry.max_dimension_size(3, 1, 9) == (9, 3)
    assert geometry.max_dimension_size(1000, 1, 64) == (64, 1)


def _ranged(wf, nid, src, start, end):
    wf.add("ConditioningSetTimestepRange", {"start": start, "end": end}, {"conditioning": (src, "conditioning")},
           node_id=nid)
    return nid


def test_timestep_ranges_switch_prompts_mid_schedule_like_two_stages(engine, make_txt2img):
    """Prompt A for the first half of the schedule, B for the rest, equals denoising A's steps
    then B's from A's leftover noise (euler hands over exactly)."""
    wf = make_txt2img(seed=8, steps=4)
    wf.add("TextEncoder", {"text": "green square"}, {"clip": ("ckpt", "clip")}, node_id="b")
    wf.add("ConditioningCombine", {}, {"conditioning_1": (_ranged(wf, "ra", "pos", 0.0, 0.5), "conditioning"),
                                       "conditioning_2": (_ranged(wf, "rb", "b", 0.5, 1.0), "conditioning")},
           node_id="both")
    wf.nodes["denoise"].inputs["positive"] = ("both", "conditioning")
    switched = _latent(engine, wf)
    stages = make_txt2img(seed=8, steps=4)
    stages.add("TextEncoder", {"text": "green square"}, {"clip": ("ckpt", "clip")}, node_id="b")
    stages.nodes["denoise"].params.update(end_at_step=2, return_with_leftover_noise=True)
    stages.add("UNetDenoise", dict(stages.nodes["denoise"].params, start_at_step=2, end_at_step=10000,
                                   add_noise=False, return_with_leftover_noise=False),
               {"unet": ("ckpt", "unet"), "positive": ("b", "conditioning"), "negative": ("neg", "conditioning"),
                "latent": ("denoise", "latent")}, node_id="second")
    # Ranged entries get their own UNet call (another batch shape): float noise up to ~1.4e-5 on 2 threads.
    torch.testing.assert_close(switched, _latent(engine, stages, "second"), atol=1e-4, rtol=1e-3)
    plain = _latent(engine, make_txt2img(seed=8, steps=4))
    assert (switched - plain).abs().max() > 1e-3
    # the whole range is the plain prompt (in its own UNet call, so float rounding only)
    full = make_txt2img(seed=8, steps=4)
    full.nodes["denoise"].inputs["positive"] = (_ranged(full, "r", "pos", 0.0, 1.0), "conditioning")
    torch.testing.assert_close(_latent(engine, full), plain, atol=1e-4, rtol=1e-3)


def test_timestep_range_rule_is_controlnets_percent_rule():
    assert conditioning.in_timestep_range(None, 500.0)
    assert conditioning.in_timestep_range((0.0, 0.5), 999.0) and not conditioning.in_timestep_range((0.0, 0.5), 499.0)
    assert conditioning.in_timestep_range((0.5, 1.0), 0.0) and not conditioning.in_timestep_range((0.5, 1.0), 500.0)
    assert not conditioning.in_timestep_range((0.3, 0.3), 699.3) and not conditioning.in_timestep_range((0.0, 0.0), 999)


def test_area_strength_crop_batch_blend_and_empty_image():
    geometry, images = builtin_module("geometry"), builtin_module("images")
    [entry] = conditioning.run_conditioning_set_area_strength(None, [_entry(77, area=(8, 8, 0, 0))], 0.7)["conditioning"]
    assert entry["strength"] == 0.7 and entry["area"] == (8, 8, 0, 0)
    image = torch.rand(2, 10, 12, 3)
    assert torch.equal(geometry.run_image_crop(None, image, 4, 3, 5, 6)["image"], image[:, 6:9, 5:9])
    assert torch.equal(geometry.run_image_crop(None, image, 8, 8, 20, 20)["image"], image[:, 9:, 11:])  # corner kept inside
    other = torch.rand(1, 10, 12, 3)
    assert torch.equal(geometry.run_image_batch(None, image, other)["image"], torch.cat([image, other]))
    wide = torch.rand(1, 10, 24, 3)   # resized to 10 x 12 after a centre crop to its aspect
    batch = geometry.run_image_batch(None, image, wide)["image"]
    assert batch.shape == (3, 10, 12, 3)
    torch.testing.assert_close(batch[2:], geometry.scale_image(wide[:, :, 6:18], 12, 10, "bilinear", "disabled"))
    a, b = {"samples": torch.rand(1, 4, 8, 8), "noise_mask": torch.ones(1, 1, 8, 8)}, {"samples": torch.rand(1, 4, 8, 8)}
    out = geometry.run_latent_blend(None, a, b, 0.3)["latent"]
    torch.testing.assert_close(out["samples"], a["samples"] * 0.3 + b["samples"] * 0.7, atol=0, rtol=0)
    assert out["noise_mask"] is a["noise_mask"]
    # an EmptyLatent is ComfyUI's zeros (file 005 of the issue-30 corpus blends an encoded colour into one)
    empty = {"samples": None, "width": 64, "height": 64, "batch_size": 1}
    scaled = geometry.run_latent_blend(None, a, empty, 0.25)["latent"]
    torch.testing.assert_close(scaled["samples"], a["samples"] * 0.25, atol=0, rtol=0)
    assert scaled["noise_mask"] is a["noise_mask"]
    first = geometry.run_latent_blend(None, empty, b, 0.25)["latent"]
    torch.testing.assert_close(first["samples"], b["samples"] * 0.75, atol=0, rtol=0)
    assert first["factor"] == 8 and "width" not in first and "batch_size" not in first
    wide = {"samples": None, "width": 128, "height": 64, "batch_size": 2}   # zeros of latent_1's 2 x 4 x 8 x 16
    resized = geometry.run_latent_blend(None, wide, b, 0.5)["latent"]["samples"]
    assert resized.shape == (2, 4, 8, 16) and torch.equal(resized[0], resized[1])
    assert geometry.run_latent_blend(None, empty, wide, 0.5)["latent"] == empty
    red = images.run_empty_image(None, 5, 3, 2, 0xFF8000)["image"]
    assert red.shape == (2, 3, 5, 3) and torch.equal(red[1, 2, 4], torch.tensor([255, 128, 0]) / 255.0)


def test_composite_masked_pastes_through_the_mask_and_cuts_at_the_edges(engine):
    geometry = builtin_module("geometry")
    destination, source = torch.zeros(1, 6, 8, 3), torch.ones(1, 4, 4, 3)
    out = geometry.run_image_composite_masked(None, destination, source, 6, 3, False)["image"]
    expected = destination.clone()
    expected[:, 3:6, 6:8] = 1.0          # the 4x4 source cut to the 3x2 that fits
    assert torch.equal(out, expected) and destination.abs().sum() == 0
    mask = torch.tensor([[[0.0, 1.0], [0.5, 0.0]]])   # resized bilinear to the source's 4x4
    half = geometry.run_image_composite_masked(None, destination, source, 0, 0, False, mask)["image"]
    weight = torch.nn.functional.interpolate(mask[None], size=(4, 4), mode="bilinear")[0, 0]
    assert torch.equal(half[0, :4, :4, 0], weight) and half[0, 4:].abs().sum() == 0
    stretched = geometry.run_image_composite_masked(None, destination, source, 0, 0, True)["image"]
    assert torch.equal(stretched, torch.ones(1, 6, 8, 3))
    latent_to = {"samples": torch.zeros(2, 4, 8, 8), "factor": 8}
    pasted = geometry.run_latent_composite_masked(None, latent_to, {"samples": torch.ones(1, 4, 2, 2)}, 16, 40,
                                                  False)["latent"]
    assert pasted["samples"][:, :, 5:7, 2:4].eq(1).all() and pasted["samples"].sum() == 2 * 4 * 4   # (16, 40) px = (2, 5)
    with pytest.raises(NodeError) as info:
        geometry.run_latent_composite_masked(None, {"samples": None, "width": 64, "height": 64, "batch_size": 1},
                                             latent_to, 0, 0, False)
    assert info.value.field == "destination"
    wf = Workflow()   # the mask input is optional in a graph too
    wf.add("EmptyImage", {"width": 8, "height": 6, "batch_size": 1, "color": 0}, node_id="d")
    wf.add("EmptyImage", {"width": 4, "height": 4, "batch_size": 1, "color": 0xFFFFFF}, node_id="s")
    wf.add("ImageCompositeMasked", {"x": 6, "y": 3, "resize_source": False},
           {"destination": ("d", "image"), "source": ("s", "image")}, node_id="c")
    wf.add("Preview", {}, {"image": ("c", "image")}, node_id="p")
    assert engine.validate(wf) == []
    assert torch.equal(engine.run(wf, outputs=["c"]).outputs["c"]["image"], expected)
