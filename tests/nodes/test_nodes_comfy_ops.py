"""ComfyUI's core latent, mask, image, conditioning and model operations, numerically as ComfyUI
defines them (issue 30, item 2): LatentComposite, LatentCrop, LatentAdd, LatentSubtract,
LatentMultiply, LatentFlip, LatentRotate, FeatherMask, ThresholdMask, MaskComposite, CropMask,
ImageBlend, ImageBlur, ImageSharpen, ImageQuantize, ConditioningSetMask, SaveLatent, LoadLatent,
FreeU, FreeU_V2, and WAS Node Suite's Image Resize. Expected values are written out by hand from
the definitions, not computed by the code under test."""
from __future__ import annotations

import math
import re
from types import SimpleNamespace

import numpy as np

import pytest
import torch
import torch.nn.functional as F

from nodeforge import Workflow
from nodeforge.core.errors import NodeError
from nodeforge.core.registry import builtin_module

ops = builtin_module("latent_ops")
masks = builtin_module("masks")


def _latent(samples, **extra):
    return dict({"samples": samples, "factor": 8}, **extra)


def _lazy(width, height, batch=1):
    return {"samples": None, "width": width, "height": height, "batch_size": batch}


def test_latent_composite_feathers_only_the_edges_inside_the_destination():
    dest, source = torch.full((1, 1, 4, 6), 2.0), torch.full((1, 1, 3, 5), 10.0)
    out = ops.run_latent_composite(None, _latent(dest, noise_mask=torch.ones(1, 1, 4, 6)), _latent(source),
                                   16, 8, 16)["latent"]
    # (16, 8) px = latent (2, 1); the 3x5 source is cut to the 3x4 that fits. feather 16 px = 2 latent
    # pixels: rows ramp 1/2, 1 from the top edge (y > 0) and nothing at the bottom (it reaches the
    # destination's edge); columns 1/2, 1 from the left and nothing at the right (cut there).
    weight = torch.tensor([[0.5], [1.0], [1.0]]) * torch.tensor([[0.5, 1.0, 1.0, 1.0]])
    expected = dest.clone()
    expected[0, 0, 1:4, 2:6] = 10 * weight + 2 * (1 - weight)
    assert torch.equal(out["samples"], expected)
    assert torch.equal(out["noise_mask"], torch.ones(1, 1, 4, 6))   # the destination's other keys stay
    inner = ops.run_latent_composite(None, _latent(torch.zeros(1, 1, 4, 6)), _latent(torch.ones(1, 1, 2, 3)),
                                     16, 8, 16)["latent"]["samples"]
    # fully inside: every edge ramps (top 1/2, 1 times bottom 1, 1/2; left 1/2, 1 times right 1, 1/2)
    assert torch.equal(inner[0, 0, 1:3, 2:5], torch.tensor([[0.25, 0.5, 0.25], [0.25, 0.5, 0.25]]))
    assert inner.sum() == 2.0
    hard = ops.run_latent_composite(None, _latent(torch.zeros(1, 1, 4, 6)), _latent(torch.ones(1, 1, 2, 3)), 8, 0,
                                    0)["latent"]["samples"]
    assert torch.equal(hard[0, 0], torch.tensor([[0, 1, 1, 1, 0, 0], [0, 1, 1, 1, 0, 0], [0] * 6, [0] * 6]).float())
    outside = ops.run_latent_composite(None, _latent(torch.zeros(1, 1, 4, 6)), _latent(torch.ones(1, 1, 2, 3)), 64,
                                       0, 0)["latent"]["samples"]
    assert outside.abs().sum() == 0   # ComfyUI pastes nothing outside the destination


def test_latent_composite_onto_an_empty_latent_pastes_onto_zeros():
    source = torch.ones(1, 4, 2, 2)
    out = ops.run_latent_composite(None, _lazy(48, 32), _latent(source), 16, 0, 0)["latent"]
    assert out["samples"].shape == (1, 4, 4, 6) and "width" not in out and out["factor"] == 8
    assert out["samples"][:, :, :2, 2:4].eq(1).all() and out["samples"].sum() == 16
    both = ops.run_latent_composite(None, _lazy(48, 32), _lazy(16, 16), 0, 0, 0)["latent"]
    assert both == _lazy(48, 32)


def test_latent_crop_keeps_the_corner_8_latent_pixels_from_the_far_edges_and_cuts_the_mask_too():
    samples = torch.arange(2 * 10 * 12, dtype=torch.float32).reshape(1, 2, 10, 12)
    mask = torch.rand(1, 1, 10, 12)
    out = ops.run_latent_crop(None, _latent(samples, noise_mask=mask), 64, 32, 80, 16)["latent"]
    # x 80 px = 10 latent pixels, kept at 12 - 8 = 4; y 16 px = 2 (<= 10 - 8); 64x32 px = 8x4, cut at 12
    assert torch.equal(out["samples"], samples[:, :, 2:6, 4:12])
    assert torch.equal(out["noise_mask"], mask[:, :, 2:6, 4:12])


def test_latent_crop_of_an_empty_latent_is_an_empty_latent_of_the_window():
    # ComfyUI crops zeros: 96x80 px = 12x10 latent pixels; x 80 px = 10, kept at 12 - 8 = 4; y 16 px = 2;
    # 64x32 px = 8x4 wanted, cut at the right edge to 8 columns: 64x32 px of zeros, still lazy
    assert ops.run_latent_crop(None, _lazy(96, 80, 2), 64, 32, 80, 16)["latent"] == _lazy(64, 32, 2)
    # a window past the bottom edge keeps what is left of it: 96 px (12 rows) from y 40 px (5, <= 16 - 8) of
    # 16 rows = 11 rows, 88 px; a corner past the far edge moves back to 8 latent pixels from it (y 120 px -> 8)
    assert ops.run_latent_crop(None, _lazy(64, 128), 64, 96, 0, 40)["latent"] == _lazy(64, 88)
    assert ops.run_latent_crop(None, _lazy(64, 128), 64, 96, 0, 120)["latent"] == _lazy(64, 64)


def test_latent_add_and_subtract_resize_and_batch_the_second_to_the_first():
    gen = torch.Generator().manual_seed(0)
    a, b = torch.randn(1, 4, 8, 8, generator=gen), torch.randn(2, 4, 4, 4, generator=gen)
    resized = F.interpolate(b, size=(8, 8), mode="bilinear")[:1]   # same aspect: no crop; batch cut to 1
    added = ops.run_latent_add(None, _latent(a, batch_index=[3]), _latent(b))["latent"]
    assert torch.equal(added["samples"], a + resized) and added["batch_index"] == [3]
    assert torch.equal(ops.run_latent_subtract(None, _latent(a), _latent(b))["latent"]["samples"], a - resized)
    wide = torch.arange(4 * 4 * 8, dtype=torch.float32).reshape(1, 4, 4, 8)   # 2:1 against 1:1: centre 4x4 kept
    sub = ops.run_latent_subtract(None, _latent(torch.zeros(3, 4, 4, 4)), _latent(wide))["latent"]["samples"]
    assert torch.equal(sub, -wide[:, :, :, 2:6].repeat(3, 1, 1, 1))
    # an empty latent is zeros: beside a real one it takes its channels; two empties stay lazy
    assert torch.equal(ops.run_latent_add(None, _lazy(64, 64), _latent(a))["latent"]["samples"], a)
    assert ops.run_latent_add(None, _lazy(64, 64), _lazy(32, 32))["latent"] == _lazy(64, 64)


def test_latent_multiply_flip_and_rotate():
    grid = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])[None, None]
    assert torch.equal(ops.run_latent_multiply(None, _latent(grid), -1.5)["latent"]["samples"], grid * -1.5)
    vertical = ops.run_latent_flip(None, _latent(grid), "x-axis: vertically")["latent"]["samples"]
    assert vertical[0, 0].tolist() == [[4, 5, 6], [1, 2, 3]]
    mirror = ops.run_latent_flip(None, _latent(grid), "y-axis: horizontally")["latent"]["samples"]
    assert mirror[0, 0].tolist() == [[3, 2, 1], [6, 5, 4]]
    turned = {r: ops.run_latent_rotate(None, _latent(grid), r)["latent"]["samples"][0, 0].tolist()
              for r in ("none", "90 degrees", "180 degrees", "270 degrees")}
    assert turned == {"none": [[1, 2, 3], [4, 5, 6]], "90 degrees": [[4, 1], [5, 2], [6, 3]],   # clockwise
                      "180 degrees": [[6, 5, 4], [3, 2, 1]], "270 degrees": [[3, 6], [2, 5], [1, 4]]}
    assert ops.run_latent_rotate(None, _lazy(64, 32), "90 degrees")["latent"] == _lazy(32, 64)
    assert ops.run_latent_flip(None, _lazy(64, 32), "x-axis: vertically")["latent"] == _lazy(64, 32)
    with pytest.raises(NodeError) as info:
        ops.run_latent_rotate(None, _latent(grid), "45 degrees")
    assert info.value.field == "rotation"


def test_feather_mask_ramps_as_comfyui_including_its_right_and_bottom_offset():
    out = masks.run_feather_mask(None, torch.ones(4, 5), 2, 1, 3, 2)["mask"]
    # left 2: columns x 1/2, 1. right 3: ComfyUI's ramp counts from column 0 (x 1/3), then the last
    # (x 2/3), then the one before (x 1). top 1: row 0 x 1. bottom 2: row 0 x 1/2, the last row x 1.
    columns = torch.tensor([0.5 / 3, 1.0, 1.0, 1.0, 2 / 3])
    rows = torch.tensor([0.5, 1.0, 1.0, 1.0])
    torch.testing.assert_close(out, (rows[:, None] * columns)[None], atol=1e-7, rtol=0)
    clipped = masks.run_feather_mask(None, torch.ones(1, 3, 3), 10, 0, 0, 0)["mask"][0, 0]   # left cut to the width
    torch.testing.assert_close(clipped, torch.tensor([1 / 3, 2 / 3, 1.0]), atol=1e-7, rtol=0)


def test_threshold_mask_composite_and_crop():
    assert masks.run_threshold_mask(None, torch.tensor([[0.2, 0.5, 0.7]]), 0.5)["mask"].tolist() == [[[0, 0, 1]]]
    dest, source = torch.full((1, 4, 4), 0.6), torch.ones(1, 3, 3)
    added = masks.run_mask_composite(None, dest, source, 2, 1, "add")["mask"]
    expected = dest.clone()
    expected[:, 1:4, 2:4] = 1.0          # 1.6 clamped; only the 3x2 overlap changes
    assert torch.equal(added, expected)
    xor = masks.run_mask_composite(None, dest, source, 2, 1, "xor")["mask"]   # 0.6 rounds to 1: 1 xor 1 = 0
    expected[:, 1:4, 2:4] = 0.0
    assert torch.equal(xor, expected)
    subtract = masks.run_mask_composite(None, dest, source * 0.25, 0, 0, "subtract")["mask"]
    torch.testing.assert_close(subtract[0, :3, :3], torch.full((3, 3), 0.35))
    assert masks.run_mask_composite(None, dest, source, 0, 0, "multiply")["mask"][0, 3, 3] == pytest.approx(0.6)
    grid = torch.arange(20, dtype=torch.float32).reshape(4, 5)
    assert masks.run_crop_mask(None, grid, 3, 1, 4, 2)["mask"].tolist() == [[[8, 9], [13, 14]]]
    with pytest.raises(NodeError) as info:
        masks.run_crop_mask(None, grid, 5, 0, 4, 2)
    assert info.value.field == "x"


def test_the_operations_run_in_a_graph_under_their_declared_names(engine):
    wf = Workflow()
    wf.add("CheckpointLoader", {"checkpoint": "tiny-sd"}, node_id="ckpt")
    wf.add("EmptyImage", {"width": 32, "height": 32, "batch_size": 1, "color": 0x804020}, node_id="img")
    wf.add("VAEEncode", {}, {"vae": ("ckpt", "vae"), "image": ("img", "image")}, node_id="enc")
    wf.add("EmptyLatent", {"width": 64, "height": 32, "batch_size": 1}, node_id="empty")
    wf.add("LatentComposite", {"x": 32, "y": 0, "feather": 0}, {"destination": ("empty", "latent"),
                                                                "source": ("enc", "latent")}, node_id="comp")
    wf.add("LatentCrop", {"width": 32, "height": 32, "x": 32, "y": 0}, {"latent": ("comp", "latent")}, node_id="crop")
    wf.add("LatentSubtract", {}, {"latent_1": ("crop", "latent"), "latent_2": ("enc", "latent")}, node_id="diff")
    wf.add("LatentMultiply", {"multiplier": 2.0}, {"latent": ("enc", "latent")}, node_id="twice")
    wf.add("LatentAdd", {}, {"latent_1": ("twice", "latent"), "latent_2": ("diff", "latent")}, node_id="sum")
    wf.add("LatentFlip", {"flip_method": "x-axis: vertically"}, {"latent": ("sum", "latent")}, node_id="flip")
    wf.add("LatentRotate", {"rotation": "180 degrees"}, {"latent": ("flip", "latent")}, node_id="rot")
    wf.add("SolidMask", {"value": 0.8, "width": 16, "height": 16}, node_id="solid")
    wf.add("FeatherMask", {"left": 4, "top": 0, "right": 0, "bottom": 0}, {"mask": ("solid", "mask")}, node_id="fm")
    wf.add("ThresholdMask", {"value": 0.5}, {"mask": ("fm", "mask")}, node_id="tm")
    wf.add("MaskComposite", {"x": 0, "y": 0, "operation": "multiply"},
           {"destination": ("fm", "mask"), "source": ("tm", "mask")}, node_id="mc")
    wf.add("CropMask", {"x": 0, "y": 0, "width": 4, "height": 1}, {"mask": ("mc", "mask")}, node_id="cm")
    wf.add("VAEDecode", {}, {"vae": ("ckpt", "vae"), "latent": ("rot", "latent")}, node_id="dec")
    wf.add("Preview", {}, {"image": ("dec", "image")}, node_id="p")
    assert engine.validate(wf) == []
    out = engine.run(wf, outputs=["enc", "rot", "cm"]).outputs
    encoded = out["enc"]["latent"]["samples"]
    # crop(comp) is the encoded latent again, so diff is 0, and sum is 2 x encoded, turned 180 and flipped:
    # a vertical flip then a half turn is a horizontal mirror
    torch.testing.assert_close(out["rot"]["latent"]["samples"], (2 * encoded).flip(3), atol=1e-6, rtol=0)
    # 0.8 feathered over 4 columns: 0.2, 0.4, 0.6, 0.8; thresholded at 0.5 and multiplied back in
    torch.testing.assert_close(out["cm"]["mask"], torch.tensor([[[0.0, 0.0, 0.6, 0.8]]]), atol=1e-6, rtol=0)


filters = builtin_module("image_filters")


def test_image_blend_modes_on_one_pixel_pair():
    a, b = torch.full((1, 2, 2, 3), 0.2), torch.full((1, 3, 3, 3), 0.6)   # b is resized to a's 2x2 (a constant)
    soft = 0.2 + (2 * 0.6 - 1) * (((16 * 0.2 - 12) * 0.2 + 4) * 0.2 - 0.2)   # b > 0.5: the curve part
    expected = {"normal": 0.6, "multiply": 0.12, "screen": 1 - 0.8 * 0.4, "overlay": 2 * 0.2 * 0.6,
                "soft_light": soft, "difference": -0.4}
    for mode, result in expected.items():
        out = filters.run_image_blend(None, a, b, 0.5, mode)["image"]
        assert out.shape == (1, 2, 2, 3)
        torch.testing.assert_close(out, torch.full_like(a, max(0.0, 0.1 + result / 2)), atol=1e-6, rtol=0, msg=mode)
    assert torch.equal(filters.run_image_blend(None, a, b, 0.0, "screen")["image"], a)


def test_blur_uses_comfyuis_gaussian_sampled_on_minus_one_to_one():
    image = torch.zeros(1, 5, 5, 3)
    image[0, 2, 2] = 1.0
    out = filters.run_image_blur(None, image, 1, 1.0)["image"][0, ..., 0]
    centre, side, corner = 1.0, math.exp(-0.5), math.exp(-1.0)   # squared distances 0, 1, 2 on the [-1, 1] grid
    total = centre + 4 * side + 4 * corner
    torch.testing.assert_close(out[1:4, 1:4], torch.tensor([[corner, side, corner], [side, centre, side],
                                                             [corner, side, corner]]) / total, atol=1e-6, rtol=0)
    assert out.sum() == pytest.approx(1.0) and out[0].abs().sum() == 0
    flat = torch.full((1, 4, 6, 3), 0.3)   # mirrored edges: a flat image stays flat
    torch.testing.assert_close(filters.run_image_blur(None, flat, 2, 0.7)["image"], flat)
    with pytest.raises(NodeError) as info:
        filters.run_image_blur(None, flat, 4, 1.0)
    assert info.value.field == "blur_radius"


def test_sharpen_raises_the_centre_so_the_kernel_sums_to_one():
    image = torch.full((1, 5, 5, 3), 0.5)
    image[0, 2, 2] = 0.6
    out = filters.run_image_sharpen(None, image, 1, 1.0, 0.5)["image"][0, ..., 0]
    total = 1 + 4 * math.exp(-0.5) + 4 * math.exp(-1.0)
    # kernel = -10 alpha x gaussian, centre + (1 - sum) = 6 - 5 g(0); the 0.1 bump spreads by the kernel
    assert out[2, 2] == pytest.approx(0.5 + 0.1 * (6 - 5 / total), abs=1e-6)
    assert out[2, 1] == pytest.approx(0.5 - 0.1 * 5 * math.exp(-0.5) / total, abs=1e-6)
    assert out[0, 0] == pytest.approx(0.5, abs=1e-6)


def test_quantize_maps_to_the_palette_and_dithers():
    levels = torch.tensor([0, 85, 170, 255], dtype=torch.float32) / 255
    image = levels[torch.arange(16).reshape(4, 4) % 4][None, ..., None].repeat(1, 1, 1, 3)
    assert torch.equal(filters.run_image_quantize(None, image, 4, "none")["image"], image)   # 4 colours: exact
    assert filters.bayer_matrix(2).tolist() == [[-0.375, 0.125], [0.375, -0.125]]
    grey = torch.zeros(1, 4, 4, 3)
    grey[0, :, :2] = 1.0
    grey[0, :, 2:] = 100 / 255
    two = filters.run_image_quantize(None, grey, 2, "none")["image"]
    assert len(torch.unique(two.reshape(-1, 3), dim=0)) == 2
    # bayer-2 with a 2-colour palette (255, 100): one palette step is 2 x 256 / 2 = 256, so the 2x2
    # thresholds are 256 x [[-3/8, 1/8], [3/8, -1/8]] + 0.5 = [[-95.5, 32.5], [96.5, -31.5]]; white
    # at (0, 0) drops to 159 (nearer 100), grey 100 at (1, 2) rises to 196 (nearer 255)
    ordered = filters.run_image_quantize(None, grey, 2, "bayer-2")["image"][0, ..., 0] * 255
    assert ordered.round().tolist() == [[100, 255, 100, 100], [255, 255, 255, 100]] * 2
    for dither in ("floyd-steinberg", "bayer-2", "bayer-16"):
        out = filters.run_image_quantize(None, grey, 2, dither)["image"]
        assert set(map(tuple, out.reshape(-1, 3).tolist())) <= set(map(tuple, two.reshape(-1, 3).tolist())), dither


def test_the_image_filters_run_in_a_graph_under_their_declared_names(engine):
    wf = Workflow()
    wf.add("EmptyImage", {"width": 8, "height": 8, "batch_size": 1, "color": 0x336699}, node_id="a")
    wf.add("EmptyImage", {"width": 4, "height": 4, "batch_size": 1, "color": 0xFFFFFF}, node_id="b")
    wf.add("ImageBlur", {"blur_radius": 2, "sigma": 1.0}, {"image": ("a", "image")}, node_id="blur")
    wf.add("ImageSharpen", {"sharpen_radius": 1, "sigma": 1.0, "alpha": 2.0}, {"image": ("blur", "image")}, node_id="sh")
    wf.add("ImageBlend", {"blend_factor": 1.0, "blend_mode": "multiply"},
           {"image1": ("sh", "image"), "image2": ("b", "image")}, node_id="blend")
    wf.add("ImageQuantize", {"colors": 4, "dither": "floyd-steinberg"}, {"image": ("blend", "image")}, node_id="q")
    wf.add("Preview", {}, {"image": ("q", "image")}, node_id="p")
    assert engine.validate(wf) == []
    out = engine.run(wf, outputs=["a", "q"]).outputs
    # a flat image stays flat through blur and sharpen and is itself multiplied by white; quantizing
    # truncates to 8 bits as ComfyUI does, so float noise below a level can drop it by one step
    torch.testing.assert_close(out["q"]["image"], out["a"]["image"], atol=1 / 255 + 1e-6, rtol=0)
    assert len(torch.unique(out["q"]["image"].reshape(-1, 3), dim=0)) == 1


class _FakeUNet:
    """Predicts, for every latent pixel, the first embedding value of the prompt; records the call sizes."""

    def __init__(self):
        self.config = SimpleNamespace(addition_embed_type=None)
        self.calls = []

    def __call__(self, x, t, encoder_hidden_states, added_cond_kwargs=None):
        self.calls.append((x.shape[0], tuple(x.shape[2:])))
        return SimpleNamespace(sample=encoder_hidden_states[:, 0, 0].reshape(-1, 1, 1, 1).expand(x.shape).clone())


def _prompt(value):
    return [{"embeds": torch.full((1, 77, 8), float(value)), "pooled": None, "family": "sd1"}]


def test_a_masked_prompt_weighs_each_latent_pixel_by_the_mask_as_comfyui():
    conditioning = builtin_module("conditioning")
    model = SimpleNamespace(unet=_FakeUNet(), device=torch.device("cpu"), dtype=torch.float32, vae_factor=4)
    mask = torch.zeros(1, 32, 32)
    mask[:, :, 16:] = 1.0                 # the right half of a 32x32 image: latent columns 4..7 of 8
    masked = conditioning.run_conditioning_set_mask(None, _prompt(5.0), mask, 0.5, "default")["conditioning"]
    plain = _prompt(1.0)
    guidance = conditioning.Guidance(model, plain + masked, _prompt(0.0), 1, (8, 8), cfg=1.0)
    out = guidance.predict(torch.zeros(1, 4, 8, 8), 10)[0, 0]
    # the mask resized bilinear to 8x8 is 0 | 1 at the seam (its pixels average 4 image pixels each),
    # weight mask x 0.5 against the plain prompt's 1: (1 x 1 + 5 x 0.5) / 1.5 on the right, 1 on the left
    assert torch.equal(out[:, :4], torch.ones(8, 4))
    torch.testing.assert_close(out[:, 4:], torch.full((8, 4), 3.5 / 1.5))
    bounded = conditioning.run_conditioning_set_mask(None, _prompt(5.0), mask, 1.0, "mask bounds")["conditioning"]
    [(units, _, _)] = conditioning.Guidance(model, bounded, _prompt(0.0), 1, (16, 16), cfg=1.0).groups
    assert units[0].box == (16, 8, 0, 8)      # (h, w, y, x): the right half only, so the UNet sees 16x8
    model.unet.calls.clear()
    alone = conditioning.Guidance(model, bounded, _prompt(0.0), 1, (16, 16), cfg=1.0).predict(
        torch.zeros(1, 4, 16, 16), 10)[0, 0]
    assert model.unet.calls == [(1, (16, 8))]
    assert torch.equal(alone[:, 8:], torch.full((16, 8), 5.0)) and alone[:, :8].abs().sum() == 0   # nothing else covers it
    small = torch.zeros(1, 64, 64)
    small[:, 4:8, 60:62] = 1.0            # bounds smaller than 8 latent pixels grow to 8, cut at the edge
    [(units, _, _)] = conditioning.Guidance(model, conditioning.run_conditioning_set_mask(
        None, _prompt(5.0), small, 1.0, "mask bounds")["conditioning"], _prompt(0.0), 1, (16, 16), cfg=1.0).groups
    assert units[0].box == (8, 1, 1, 15)


files = builtin_module("latent_files")


def test_save_latent_writes_comfyuis_unscaled_values_and_load_latent_scales_them_back(tmp_path):
    from safetensors import safe_open

    samples = torch.randn(2, 4, 3, 5, generator=torch.Generator().manual_seed(1))
    ctx = SimpleNamespace(output_dir=tmp_path, resolve_file=lambda kind, name: tmp_path / name)
    [first] = files.run_save_latent(ctx, {"samples": samples, "factor": 8}, "latents/run")
    [second] = files.run_save_latent(ctx, {"samples": samples}, "latents/run")
    assert (first, second) == (str(tmp_path / "latents" / "run_00001_.latent"), str(tmp_path / "latents" / "run_00002_.latent"))
    with safe_open(first, framework="pt") as handle:
        assert sorted(handle.keys()) == ["latent_format_version_0", "latent_tensor"]
        torch.testing.assert_close(handle.get_tensor("latent_tensor"), samples / 0.18215)   # SD's VAE values
    back = files.run_load_latent(ctx, "latents/run_00001_.latent")["latent"]
    torch.testing.assert_close(back["samples"], samples)
    # with a VAE its own factors: SD3's scale 1.5305 and shift 0.0609
    vae = SimpleNamespace(scaling_factor=1.5305, shift_factor=0.0609, factor=8)
    [sd3] = files.run_save_latent(ctx, {"samples": samples}, "sd3", vae=vae)
    with safe_open(sd3, framework="pt") as handle:
        torch.testing.assert_close(handle.get_tensor("latent_tensor"), samples / 1.5305 + 0.0609)
    # a NodeForge file says its own factors; a VAE connected on loading takes precedence
    torch.testing.assert_close(files.run_load_latent(ctx, "sd3_00001_.latent")["latent"]["samples"], samples)
    loaded = files.run_load_latent(ctx, "sd3_00001_.latent", vae=vae)["latent"]
    torch.testing.assert_close(loaded["samples"], samples)
    assert loaded["factor"] == 8


def test_load_latent_reads_comfyuis_files_both_versions(tmp_path):
    from safetensors.torch import save_file

    raw = torch.full((1, 4, 2, 2), 2.0)
    save_file({"latent_tensor": raw, "latent_format_version_0": torch.tensor([])}, str(tmp_path / "comfy.latent"))
    save_file({"latent_tensor": raw}, str(tmp_path / "old.latent"))   # before the version marker: already scaled
    save_file({"something": raw}, str(tmp_path / "other.latent"))
    (tmp_path / "broken.latent").write_bytes(b"not safetensors")
    ctx = SimpleNamespace(resolve_file=lambda kind, name: tmp_path / name)
    torch.testing.assert_close(files.run_load_latent(ctx, "comfy.latent")["latent"]["samples"], raw * 0.18215)
    assert torch.equal(files.run_load_latent(ctx, "old.latent")["latent"]["samples"], raw)
    for name, said in (("other.latent", "has no 'latent_tensor' (found: something)"),
                       ("broken.latent", "cannot read broken.latent as a .latent file")):
        with pytest.raises(NodeError, match=re.escape(said)) as info:
            files.run_load_latent(ctx, name)
        assert info.value.field == "path"
    with pytest.raises(NodeError) as info:
        files.run_save_latent(SimpleNamespace(output_dir=tmp_path), _lazy(64, 64), "x")
    assert info.value.field == "latent"


def test_save_and_load_latent_run_in_a_graph(make_engine, tmp_path):
    engine = make_engine(tmp_path / "out")
    wf = Workflow()
    wf.add("CheckpointLoader", {"checkpoint": "tiny-sd"}, node_id="ckpt")
    wf.add("EmptyImage", {"width": 16, "height": 16, "batch_size": 1, "color": 0x804020}, node_id="img")
    wf.add("VAEEncode", {}, {"vae": ("ckpt", "vae"), "image": ("img", "image")}, node_id="enc")
    wf.add("SaveLatent", {"prefix": "../escape"}, {"latent": ("enc", "latent"), "vae": ("ckpt", "vae")}, node_id="save")
    assert [p.field for p in engine.validate(wf)] == ["prefix"]
    wf.nodes["save"].params["prefix"] = "latents/enc"
    result = engine.run(wf)
    [path] = result.outputs["save"]
    assert path == str(tmp_path / "out" / "latents" / "enc_00001_.latent")
    load = Workflow()
    load.add("LoadLatent", {"path": path}, node_id="load")
    back = engine.run(load, outputs=["load"]).outputs["load"]["latent"]["samples"]
    torch.testing.assert_close(back, engine.run(wf, outputs=["enc"]).outputs["enc"]["latent"]["samples"])


freeu = builtin_module("freeu")


def _tiny_unet(block_out_channels=(32, 64, 64)):
    from diffusers import UNet2DConditionModel

    torch.manual_seed(0)
    n = len(block_out_channels)
    return UNet2DConditionModel(block_out_channels=block_out_channels, layers_per_block=1, sample_size=8,
                                in_channels=4, out_channels=4, down_block_types=("DownBlock2D",) * n,
                                up_block_types=("UpBlock2D",) * n, cross_attention_dim=8, norm_num_groups=8).eval()


def test_freeu_scales_the_backbone_half_and_filters_the_skip_features():
    gen = torch.Generator().manual_seed(3)
    h, hsp = torch.randn(2, 4, 6, 8, generator=gen), torch.randn(2, 3, 6, 8, generator=gen)
    out_h, out_hsp = freeu.scale_features(h, hsp, 1.5, 0.25, 1)
    assert torch.equal(out_h[:, :2], h[:, :2] * 1.5) and torch.equal(out_h[:, 2:], h[:, 2:])
    # the 2x2 lowest frequencies (around the centre after the shift) times s, the rest kept
    freq = torch.fft.fftshift(torch.fft.fftn(hsp, dim=(-2, -1)), dim=(-2, -1))
    freq[..., 2:4, 3:5] *= 0.25
    expected = torch.fft.ifftn(torch.fft.ifftshift(freq, dim=(-2, -1)), dim=(-2, -1)).real
    torch.testing.assert_close(out_hsp, expected, atol=1e-5, rtol=0)
    # V2: the scale follows the channel mean, normalised to 0..1 in each image
    v2, _ = freeu.scale_features(h, hsp, 1.5, 1.0, 2)
    mean = h.mean(1, keepdim=True)
    low = mean.amin(dim=(2, 3), keepdim=True)
    norm = (mean - low) / (mean.amax(dim=(2, 3), keepdim=True) - low)
    torch.testing.assert_close(v2[:, :2], h[:, :2] * (0.5 * norm + 1), atol=1e-6, rtol=0)
    assert torch.equal(v2[:, 2:], h[:, 2:])


def test_freeu_hooks_the_layers_comfyui_picks_by_channel_count(monkeypatch):
    import diffusers.models.unets.unet_2d_blocks as blocks

    unet = _tiny_unet()
    # diffusers hands each decoder resnet's hidden features to apply_freeu: record their widths
    seen = []
    monkeypatch.setattr(blocks, "apply_freeu", lambda idx, h, hsp, **kw: (seen.append(h.shape[1]), (h, hsp))[1])
    unet.enable_freeu(s1=1.0, s2=1.0, b1=1.0, b2=1.0)
    x, t, text = torch.randn(1, 4, 16, 16), torch.tensor(10), torch.randn(1, 77, 8)
    with torch.no_grad():
        unet(x, t, encoder_hidden_states=text)
    unet.disable_freeu()
    assert [channels for _resnet, channels in freeu.decoder_splits(unet)] == seen == [64, 64, 64, 64, 64, 32]
    # block widths 32, 64, 64: b1/s1 where h is 4 x 32 = 128 wide (none here), b2/s2 where it is 64 wide
    calls = []
    monkeypatch.setattr(freeu, "scale_features", lambda h, hsp, b, s, v: (calls.append((h.shape[1], b, s)), (h, hsp))[1])
    with freeu.freeu_applied(unet, freeu.FreeU(1.1, 1.2, 0.9, 0.2)), torch.no_grad():
        unet(x, t, encoder_hidden_states=text)
    assert calls == [(64, 1.2, 0.2)] * 5


def test_freeu_changes_the_prediction_only_inside_patched_and_identity_settings_change_nothing():
    from nodeforge.core.registry import builtin_module as pack

    wrappers = pack("wrappers")
    unet = _tiny_unet()
    model = wrappers.UNetModel(unet, {}, "epsilon", 4, 8, "sd1", "tiny")
    x, t, text = torch.randn(1, 4, 16, 16), torch.tensor(10), torch.randn(1, 77, 8)

    def predict(m):
        with torch.no_grad(), m.patched():
            return unet(x, t, encoder_hidden_states=text).sample

    plain = predict(model)
    strong = freeu.run_freeu(None, model, 1.1, 1.6, 0.9, 0.3)["unet"]
    assert model.freeu is None and strong.freeu == freeu.FreeU(1.1, 1.6, 0.9, 0.3, 1)
    assert (predict(strong) - plain).abs().max() > 1e-3
    assert torch.equal(predict(model), plain)          # the hooks are gone after the run
    identity = freeu.run_freeu_v2(None, model, 1.0, 1.0, 1.0, 1.0)["unet"]
    torch.testing.assert_close(predict(identity), plain, atol=1e-5, rtol=0)
    with pytest.raises(NodeError) as info:
        freeu.run_freeu(None, SimpleNamespace(unet=object(), family="sd3", freeu=None), 1.1, 1.2, 0.9, 0.2)
    assert info.value.field == "unet" and "UNet models" in str(info.value)


def test_freeu_runs_in_a_graph(engine, make_txt2img):
    plain = engine.run(make_txt2img(), outputs=["denoise"]).outputs["denoise"]["latent"]["samples"]
    wf = make_txt2img()
    wf.add("FreeUV2", {"b1": 1.3, "b2": 1.4, "s1": 0.9, "s2": 0.2}, {"unet": ("ckpt", "unet")}, node_id="freeu")
    wf.nodes["denoise"].inputs["unet"] = ("freeu", "unet")
    assert engine.validate(wf) == []
    boosted = engine.run(wf, outputs=["denoise"]).outputs["denoise"]["latent"]["samples"]
    assert (boosted - plain).abs().max() > 1e-4


def test_image_resize_sizes_and_filters_as_was_node_suite():
    from PIL import Image

    assert filters.resize_size(30, 20, "rescale", 1.55, 0, 0) == (46, 31)        # int(46.5), int(31.0)
    assert filters.resize_size(30, 20, "resize", 9.0, 100, 64) == (104, 64)      # up to multiples of 8
    image = torch.rand(2, 20, 30, 3, generator=torch.Generator().manual_seed(5))
    out = filters.run_image_resize(None, image, "rescale", False, "bicubic", 0.5, 0, 0)["image"]
    assert out.shape == (2, 10, 15, 3)
    first = Image.fromarray((image[0].numpy() * 255).astype(np.uint8))      # 8 bits, truncated
    expected = np.asarray(first.resize((15, 10), resample=Image.Resampling.BICUBIC), dtype=np.float32) / 255
    assert torch.equal(out[0], torch.from_numpy(expected))
    big = first.resize((120, 80), resample=Image.Resampling.LANCZOS).resize((15, 10), resample=Image.Resampling.LANCZOS)
    supersampled = filters.run_image_resize(None, image[:1], "rescale", True, "lanczos", 0.5, 0, 0)["image"]
    assert torch.equal(supersampled[0], torch.from_numpy(np.asarray(big, dtype=np.float32) / 255))
    with pytest.raises(NodeError) as info:
        filters.run_image_resize(None, image, "stretch", False, "bicubic", 0.5, 0, 0)
    assert info.value.field == "mode"
