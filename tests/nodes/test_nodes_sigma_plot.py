"""Visualize Sigmas (KJNodes' Visualize Sigmas KJ): the plot's dots found in the image sit at evenly spaced
steps and at heights that follow the sigmas (a 0 appended when the last is not 0); the sigmas go on as
sigmas[start_step : end_step + 1], a BasicScheduler schedule cut as SplitSigmas cuts it."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import ndimage

from nodes.custom_sampling import Recipe, Sigmas
from nodes.sigma_plot import draw_sigmas, plot_box, run_visualize_sigmas


def _dots(image: np.ndarray) -> list[tuple[float, float]]:
    """Centres (x, y) of the white blobs inside the axes' box, left to right."""
    x0, y0, x1, y1 = plot_box((image.shape[1], image.shape[0]))
    white = (image == 255).all(axis=-1)
    inside = np.zeros_like(white)
    inside[y0 + 1:y1, x0 + 1:x1] = white[y0 + 1:y1, x0 + 1:x1]
    labels, count = ndimage.label(inside)
    centres = ndimage.center_of_mass(inside, labels, range(1, count + 1))
    return sorted((float(x), float(y)) for y, x in centres)


@pytest.mark.parametrize("sigmas", [[1.0, 0.9, 0.75, 0.5, 0.0], [14.6, 6.5, 3.9, 2.7, 1.9, 1.4, 0.96, 0.65, 0.4, 0.15]])
def test_the_dots_follow_the_sigmas(sigmas):
    image = draw_sigmas(sigmas)
    assert image.shape == (480, 640, 3) and image.dtype == np.uint8
    shown = sigmas if sigmas[-1] == 0 else sigmas + [0.0]      # KJNodes appends the final 0
    dots = _dots(image)
    assert len(dots) == len(shown)
    xs, ys = np.array([d[0] for d in dots]), np.array([d[1] for d in dots])
    assert np.abs(np.diff(xs) - np.diff(xs).mean()).max() < 1.0          # one step apart each
    # heights: an affine map of the sigma, larger sigmas higher up
    slope, offset = np.polyfit(shown, ys, 1)
    assert slope < 0 and np.abs(ys - (slope * np.array(shown) + offset)).max() < 1.0


def test_the_sigmas_go_on_cut_to_the_steps_asked():
    values = torch.tensor([1.0, 0.9, 0.75, 0.5, 0.25, 0.0])
    assert torch.equal(run_visualize_sigmas(None, Sigmas(values))["sigmas"].values, values)
    assert torch.equal(run_visualize_sigmas(None, Sigmas(values), -1, -1)["sigmas"].values, values)
    assert torch.equal(run_visualize_sigmas(None, Sigmas(values), 2)["sigmas"].values, values[2:])
    assert torch.equal(run_visualize_sigmas(None, Sigmas(values), 0, 3)["sigmas"].values, values[:4])
    assert torch.equal(run_visualize_sigmas(None, Sigmas(values), 1, 3)["sigmas"].values, values[1:4])
    image = run_visualize_sigmas(None, Sigmas(values), 1, 3)["image"]
    assert image.shape == (1, 480, 640, 3) and 0 <= float(image.min()) and float(image.max()) <= 1


def test_a_schedule_is_cut_as_split_sigmas_cuts_it():
    schedule = Sigmas(torch.linspace(1, 0, 9), Recipe("simple", 8, 1.0, 0))
    high, _ = schedule.split(5)
    _, middle = high.split(2)
    cut = run_visualize_sigmas(None, schedule, 2, 5)["sigmas"]
    assert torch.equal(cut.values, middle.values) and cut.recipe == middle.recipe
    assert middle.recipe.start_at_step == 2 and middle.recipe.end_at_step == 5


def test_the_range_is_shaded_and_the_cuts_drawn_in_their_colours():
    image = draw_sigmas([1.0, 0.8, 0.5, 0.2, 0.05, 0.0], start_step=1, end_step=3)
    reds = ((image[..., 0] > 200) & (image[..., 1] < 30) & (image[..., 2] < 30)).sum()
    greens = ((image[..., 1] > 140) & (image[..., 0] < 30) & (image[..., 2] < 30)).sum()
    assert reds > 50 and greens > 50
    plain = draw_sigmas([1.0, 0.8, 0.5, 0.2, 0.05, 0.0])
    assert ((plain[..., 0] > 200) & (plain[..., 1] < 30) & (plain[..., 2] < 30)).sum() == 0
