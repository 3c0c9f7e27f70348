"""Film Grain (RES4LYF's Film Grain, WAS's noise model): the sprinkled share of the enlarged luma follows
density (drawn with replacement: 1 - e^-density of the pixels), intensity mixes the grain in linearly,
highlights multiplies the brightness, grain on a flat grey keeps its mean, the seed fixes the grain and
repeats gives each copy its own; images it cannot take are refused in one line."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from nodes.film_grain import film_grain, grain_layer, run_film_grain, sprinkle


def _flat(value: float, size: int = 64, batch: int = 1) -> torch.Tensor:
    return torch.full((batch, size, size, 3), value)


@pytest.mark.parametrize("density", [0.1, 0.5, 1.0])
def test_the_sprinkled_share_follows_density_drawn_with_replacement(density):
    gray = np.full((200, 300), 7, dtype=np.uint8)
    speckled = sprinkle(gray, density, torch.Generator().manual_seed(0))
    changed = (speckled != 7).mean()
    # each position is drawn with probability 1 - e^-density; 1 in 256 of the draws gives 7 back
    expected = (1 - math.exp(-density)) * 255 / 256
    assert abs(changed - expected) < 0.01
    values = speckled[speckled != 7]
    assert values.min() <= 5 and values.max() >= 250        # uniform over 0..255


def test_intensity_mixes_the_grain_in_linearly_and_highlights_scales_the_brightness():
    rgb = (np.random.default_rng(0).random((48, 40, 3)) * 200).astype(np.uint8)
    grain = grain_layer(rgb, 0.4, 2, torch.Generator().manual_seed(5))
    assert grain.shape == rgb.shape and (grain[..., 0] == grain[..., 1]).all()     # grey grain
    for intensity in (0.2, 0.7):
        out = film_grain(rgb, 0.4, intensity, 1.0, 2, torch.Generator().manual_seed(5)).astype(float)
        expected = rgb * (1 - intensity) + grain * intensity
        assert np.abs(out - expected).max() <= 1.0           # Pillow's blend rounds to 8 bits
    dim = film_grain(rgb, 0.4, 0.2, 1.0, 2, torch.Generator().manual_seed(5)).astype(float)
    bright = film_grain(rgb, 0.4, 0.2, 1.6, 2, torch.Generator().manual_seed(5)).astype(float)
    assert np.abs(bright - np.minimum(dim * 1.6, 255)).max() <= 1.0


def test_grain_on_flat_grey_keeps_its_mean_and_adds_spread_by_intensity():
    weak = run_film_grain(None, _flat(0.5), density=1.0, intensity=0.2, supersample_factor=1)["image"]
    strong = run_film_grain(None, _flat(0.5), density=1.0, intensity=0.8, supersample_factor=1)["image"]
    assert abs(float(weak.mean()) - 0.5) < 0.02 and abs(float(strong.mean()) - 0.5) < 0.03
    assert 3.0 < float(strong.std()) / float(weak.std()) < 5.0       # the grain's spread scales with intensity
    assert weak.shape == (1, 64, 64, 3)


def test_the_seed_fixes_the_grain_and_repeats_gives_each_copy_its_own():
    image = _flat(0.3)
    first = run_film_grain(None, image, density=0.3, intensity=0.5, seed=4)["image"]
    assert torch.equal(run_film_grain(None, image, density=0.3, intensity=0.5, seed=4)["image"], first)
    assert not torch.equal(run_film_grain(None, image, density=0.3, intensity=0.5, seed=5)["image"], first)
    copies = run_film_grain(None, image, density=0.3, intensity=0.5, seed=4, repeats=3)["image"]
    assert copies.shape[0] == 3 and torch.equal(copies[:1], first)
    assert not torch.equal(copies[1], copies[2])


def test_an_alpha_channel_is_kept_and_a_one_channel_image_is_refused():
    from nodeforge.core.errors import NodeError

    rgba = torch.cat([_flat(0.4), torch.full((1, 64, 64, 1), 0.25)], dim=-1)
    out = run_film_grain(None, rgba, density=0.5, intensity=0.5)["image"]
    assert out.shape == (1, 64, 64, 4) and torch.allclose(out[..., 3], torch.tensor(63 / 255))
    with pytest.raises(NodeError) as refused:
        run_film_grain(None, torch.zeros(1, 8, 8, 1))
    assert refused.value.field == "image" and "RGB or RGBA" in str(refused.value)
    with pytest.raises(NodeError) as refused:
        run_film_grain(None, torch.zeros(1, 4200, 4200, 3), supersample_factor=4)
    assert refused.value.field == "supersample_factor" and "lower supersample_factor" in str(refused.value)
