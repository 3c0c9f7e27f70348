"""VisualizeSigmas: KJNodes' Visualize Sigmas KJ, drawn with Pillow (no matplotlib).

The sigmas go on as a slice, `sigmas[start_step : end_step + 1]` (start_step 0 or -1: from the first;
end_step -1: to the last), so the node can cut a stage out of a schedule as SplitSigmas does (a
BasicScheduler schedule stays that schedule, cut at those steps). The image is a 640x480 plot as KJNodes
draws it: the sigmas (a 0 appended when the last is not 0) against their step, a line through white dots
on #353535, each value written beside its dot when there are at most 10, the start (green) and end (red)
cuts as dashed lines at those steps and the sampled range between them shaded.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch

SIZE = (640, 480)
MARGINS = (72, 40, 24, 52)      # left, top, right, bottom: the axes' box inside the image
BACKGROUND, AXES, DOT = (0x35, 0x35, 0x35), (190, 190, 190), (255, 255, 255)
LINE, NOTE, CUT_NOTE = (0x1F, 0x77, 0xB4), (255, 165, 0), (255, 255, 0)
START, END, RANGE = (0, 160, 0), (220, 0, 0), (173, 216, 230)


def steps_kept(count: int, start_step: int, end_step: int) -> tuple[int, int]:
    """(first, last + 1) of the sigmas the node passes on, out of `count`: KJNodes' slice."""
    first = start_step if start_step > 0 else 0
    stop = end_step + 1 if end_step != -1 else count
    return min(first, count), max(min(stop, count), 0)


def plotted_values(sigmas: Sequence[float]) -> list[float]:
    """The values the plot shows: the sigmas, with a 0 appended when the last is not (about) 0."""
    values = [float(s) for s in sigmas]
    if not values or abs(values[-1]) > 1e-6:
        values.append(0.0)
    return values


def plot_box(size: tuple[int, int] = SIZE) -> tuple[int, int, int, int]:
    left, top, right, bottom = MARGINS
    return left, top, size[0] - right, size[1] - bottom


def plot_points(values: Sequence[float], size: tuple[int, int] = SIZE) -> list[tuple[float, float]]:
    """Each value's place in the image: step i evenly across the box, the value up its height (0 of the
    axis at the bottom unless a value is negative, the largest at the top)."""
    x0, y0, x1, y1 = plot_box(size)
    low, high = min(0.0, min(values)), max(values)
    span = high - low if high > low else 1.0
    pad = 0.05 * (y1 - y0)             # the largest and smallest values sit inside the box, not on its edges
    across = (x1 - x0 - 2 * pad) / max(len(values) - 1, 1)
    return [(x0 + pad + i * across, y1 - pad - (v - low) / span * (y1 - y0 - 2 * pad)) for i, v in enumerate(values)]


def _dashed(draw: Any, x: float, top: int, bottom: int, colour: tuple[int, int, int]) -> None:
    for y in range(top, bottom, 10):
        draw.line([(x, y), (x, min(y + 6, bottom))], fill=colour, width=2)


def _ticks(draw: Any, font: Any, values: list[float], points: list[tuple[float, float]], box: tuple) -> None:
    x0, y0, x1, y1 = box
    every = max(1, len(values) // 20)
    for i, (x, _) in enumerate(points):
        if i % every == 0:
            draw.line([(x, y1), (x, y1 + 4)], fill=AXES)
            draw.text((x, y1 + 6), str(i), fill=DOT, font=font, anchor="mt")
    low, high = min(0.0, min(values)), max(values)
    for k in range(5):
        value = low + (high - low) * k / 4
        y = plot_points([low, high, value])[2][1]
        draw.line([(x0 - 4, y), (x0, y)], fill=AXES)
        draw.text((x0 - 6, y), f"{value:.3g}", fill=DOT, font=font, anchor="rm")


def draw_sigmas(sigmas: Sequence[float], start_step: int = 0, end_step: int = -1,
                size: tuple[int, int] = SIZE) -> np.ndarray:
    """The plot as uint8 RGB [height, width, 3]."""
    from PIL import Image, ImageDraw, ImageFont

    values = plotted_values(sigmas)
    points = plot_points(values, size)
    box = plot_box(size)
    first, stop = steps_kept(len(values), start_step, end_step)
    canvas = Image.new("RGB", size, BACKGROUND)
    shade = Image.new("RGB", size, BACKGROUND)
    shade_draw = ImageDraw.Draw(shade)
    if first < stop - 1:           # the sampled range, light blue at 10%
        shade_draw.rectangle([points[first][0], box[1], points[stop - 1][0], box[3]], fill=RANGE)
    canvas = Image.blend(canvas, shade, 0.1)
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default()
    draw.rectangle(box, outline=AXES)
    draw.text((size[0] / 2, box[1] / 2), "Sigmas", fill=DOT, font=font, anchor="mm")
    draw.text((size[0] / 2, size[1] - 12), "Step", fill=DOT, font=font, anchor="mm")
    _ticks(draw, font, values, points, box)
    if start_step > 0 and start_step < len(values):
        _dashed(draw, points[start_step][0], box[1], box[3], START)
    if end_step != -1 and 0 <= end_step < len(values) - 1:
        _dashed(draw, points[end_step][0], box[1], box[3], END)
    draw.line(points, fill=LINE, width=2)
    for i, ((x, y), value) in enumerate(zip(points, values)):
        draw.ellipse([x - 3, y - 3, x + 3, y + 3], fill=DOT)
        cut = (start_step > 0 and i == start_step) or (end_step != -1 and i == end_step)
        if len(values) <= 10 or cut:
            draw.text((x + 8, y - 4), f"{value:.3f}", fill=CUT_NOTE if cut else NOTE, font=font, anchor="lb")
    return np.asarray(canvas)


def run_visualize_sigmas(ctx: Any, sigmas: Any, start_step: int = 0, end_step: int = -1) -> dict[str, Any]:
    values = torch.as_tensor(getattr(sigmas, "values", sigmas)).reshape(-1).float().cpu()
    image = torch.from_numpy(draw_sigmas(values.tolist(), start_step, end_step).astype(np.float32) / 255.0)
    return {"sigmas": kept_sigmas(sigmas, start_step, end_step), "image": image.unsqueeze(0)}


def kept_sigmas(sigmas: Any, start_step: int, end_step: int) -> Any:
    """sigmas[start : end_step + 1], cut as SplitSigmas cuts (a BasicScheduler schedule stays one)."""
    if not hasattr(sigmas, "split"):
        first, stop = steps_kept(len(sigmas), start_step, end_step)
        return sigmas[first:stop]
    if end_step != -1:
        sigmas = sigmas.split(max(end_step, 0))[0]
    if start_step > 0:
        sigmas = sigmas.split(start_step)[1]
    return sigmas
