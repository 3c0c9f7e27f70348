"""Packs' resize-as-you-compute latent and image nodes, on values as their packs compute them (issue 30):
QualityOfLifeSuit (omar92)'s Image Scale Factor and Latent Upscale Factor (Scale Image by Factors,
Upscale Latent by Factors) and deadinside's Latent Weighted Blend (Resize)."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from nodeforge.core.errors import NodeError
from nodeforge.core.registry import builtin_module

geometry = builtin_module("geometry")


def test_image_factor_sizes_round_to_eight_as_the_pack_then_cut_to_whole_pixels():
    size = geometry.factor_image_size
    # remainder below 4 goes down, 4 or more goes up (its enforce_mul_of_64, which rounds to 8)
    assert size(512, 300, 0.5, 0.5, True) == (256, 152)            # 150 -> 152
    assert size(100, 360, 0.5, 0.5, True) == (48, 184)             # 50 -> 48; 180 (remainder 4) -> 184
    assert size(333, 333, 0.5, 1.3, False) == (166, 432)           # int(166.5), int(432.9)
    assert size(333, 101, 0.5, 1.0, True) == (168, 104)            # 166.5 -> 168.0 -> 168; 101 -> 104
    assert size(10000, 64, 1.0, 1.0, False) == (8192, 64)          # at most 8192, as the pack
    with pytest.raises(NodeError, match="multiple_of_8 off"):
        size(6, 64, 0.5, 1.0, True)                                # 3 px rounds to 0
    with pytest.raises(NodeError, match="width_factor"):
        size(64, 64, 0.0, 1.0, False)


def test_image_scale_by_factors_is_torch_interpolate_at_that_size():
    image = torch.rand(2, 300, 512, 3)
    out = geometry.run_image_scale_by_factors(None, image, "nearest-exact", 0.5, 0.5, True, "disabled")["image"]
    # ComfyUI's common_upscale for nearest-exact and area is torch's interpolate on [B, C, H, W]
    expected = F.interpolate(image.permute(0, 3, 1, 2), size=(152, 256), mode="nearest-exact")
    torch.testing.assert_close(out, expected.permute(0, 2, 3, 1))
    area = geometry.run_image_scale_by_factors(None, image, "area", 0.25, 0.5, False, "disabled")["image"]
    torch.testing.assert_close(area, F.interpolate(image.permute(0, 3, 1, 2), size=(150, 128), mode="area")
                               .permute(0, 2, 3, 1))


def test_latent_factor_cuts_to_whole_latent_pixels_then_rounds_to_eight_of_them():
    latent = {"samples": torch.randn(1, 4, 40, 64), "factor": 8}
    out = geometry.run_latent_scale_by_factors(None, latent, "nearest-exact", 1.25, 1.25, "disabled")["latent"]
    # 64 x 1.25 = 80 stays; 40 x 1.25 = 50 -> 48 (remainder 2 goes down)
    torch.testing.assert_close(out["samples"], F.interpolate(latent["samples"], size=(48, 80), mode="nearest-exact"))
    assert geometry.factor_latent_size(64, 64, 1.1, 0.9) == (72, 56)   # int(70.4) = 70 -> 72; int(57.6) = 57 -> 56
    empty = {"width": 512, "height": 320, "batch_size": 2}
    lazy = geometry.run_latent_scale_by_factors(None, empty, "bilinear", 1.25, 1.25, "disabled")["latent"]
    assert (lazy["width"], lazy["height"], lazy["batch_size"]) == (640, 384, 2)


def test_weighted_blend_resizes_both_by_plain_nearest_and_divides_the_weights_by_their_sum():
    gen = torch.Generator().manual_seed(0)
    a = {"samples": torch.randn(1, 16, 30, 40, generator=gen), "factor": 8, "noise_mask": torch.ones(1, 1, 30, 40)}
    b = {"samples": torch.randn(1, 16, 64, 64, generator=gen), "factor": 8}
    out = geometry.run_latent_weighted_blend(None, a, b, 1.0, 0.8, 1920, 1088)["latent"]
    size = (136, 240)                                        # 1088 // 8, 1920 // 8
    expected = F.interpolate(a["samples"], size=size, mode="nearest") / 1.8 \
        + F.interpolate(b["samples"], size=size, mode="nearest") * (0.8 / 1.8)
    torch.testing.assert_close(out["samples"], expected)
    assert "noise_mask" not in out and out["factor"] == 8
    zero = geometry.run_latent_weighted_blend(None, a, b, 0.0, 0.0, 64, 64)["latent"]["samples"]
    assert torch.equal(zero, torch.zeros(1, 16, 8, 8))       # weights summing to 0 are not divided
    # an EmptyLatent is ComfyUI's zeros: only the other latent's share is left
    empty = {"width": 320, "height": 240, "batch_size": 1}
    half = geometry.run_latent_weighted_blend(None, empty, b, 0.5, 0.5, 512, 512)["latent"]["samples"]
    torch.testing.assert_close(half, F.interpolate(b["samples"], size=(64, 64), mode="nearest") * 0.5)
    with pytest.raises(NodeError, match="16 channels and latent_2 4"):
        geometry.run_latent_weighted_blend(None, a, {"samples": torch.zeros(1, 4, 8, 8)}, 0.5, 0.5, 64, 64)
