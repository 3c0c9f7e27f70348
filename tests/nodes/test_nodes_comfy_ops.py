"""ComfyUI's core latent and mask operations, numerically as ComfyUI defines them (issue 30, item 2):
LatentComposite, LatentCrop, LatentAdd, LatentSubtract, LatentMultiply, LatentFlip, LatentRotate,
FeatherMask, ThresholdMask, MaskComposite, CropMask. Expected values are written out by hand from
the definitions, not computed by the code under test."""
from __future__ import annotations

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
    with pytest.raises(NodeError) as info:
        ops.run_latent_crop(None, _lazy(64, 64), 64, 64, 0, 0)
    assert info.value.field == "latent" and "Empty Latent" in str(info.value)


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
