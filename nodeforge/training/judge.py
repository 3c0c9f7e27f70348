"""Judge an image of one shape purely from its pixels: shape, its colour, and the background colour.

Pure numpy + PIL so tests can check images made by workflows without loading any model.
Background: the median of the border pixels, snapped to the nearest palette colour. Shape mask:
pixels far from the background colour; its largest connected blob is the shape. Shape colour: the
median of the blob's inner pixels, snapped to the palette. Shape class: solidity (area / convex hull
area) separates stars (non-convex, ~0.5) from convex shapes; among those, the fill ratio of the
minimum-area bounding rectangle is ~1.0 for squares, pi/4 for circles and 0.5 for triangles.
A non-convex blob is a star only when its outline has five points, give or take one for a
model's wobbly outlines (points: maxima of the distance from the centroid); any other non-convex
blob is a "blob", which no prompt asks for. Drawn stars have exactly five.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from nodeforge.training.data import PALETTE

_NAMES = list(PALETTE)
_COLOURS = np.array([PALETTE[n] for n in _NAMES], dtype=np.float32)


@dataclass(frozen=True)
class Verdict:
    shape: str  # "circle", "square", "triangle", "star", "crescent", "blob" (non-convex, neither) or "none"
    colour: str | None  # palette name of the shape, None when no shape was found
    background: str  # palette name of the background
    solidity: float = 0.0
    rect_fill: float = 0.0
    area: int = 0
    points: int = 0  # counted only for non-convex blobs


def nearest_colour(rgb) -> str:
    d = ((_COLOURS - np.asarray(rgb, dtype=np.float32)) ** 2).sum(axis=1)
    return _NAMES[int(d.argmin())]


def _as_array(image) -> np.ndarray:
    if isinstance(image, (str, Path)):
        image = Image.open(image)
    if isinstance(image, Image.Image):
        image = np.asarray(image.convert("RGB"))
    a = np.asarray(image)
    if a.dtype != np.uint8:  # float images in [0, 1]
        a = np.clip(np.rint(a.astype(np.float32) * 255), 0, 255).astype(np.uint8)
    if a.ndim == 3 and a.shape[0] in (3, 4) and a.shape[-1] not in (3, 4):  # CHW
        a = a.transpose(1, 2, 0)
    return a[..., :3]


def _largest_blob(mask: np.ndarray) -> np.ndarray:
    """The largest 4-connected component of a boolean mask (flood fill; the images are small)."""
    h, w = mask.shape
    labels = np.zeros((h, w), dtype=np.int32)
    best, best_size, current = 0, 0, 0
    for y0, x0 in zip(*np.nonzero(mask)):
        if labels[y0, x0]:
            continue
        current += 1
        labels[y0, x0] = current
        stack, size = [(y0, x0)], 0
        while stack:
            y, x = stack.pop()
            size += 1
            for ny, nx in ((y - 1, x), (y + 1, x), (y, x - 1), (y, x + 1)):
                if 0 <= ny < h and 0 <= nx < w and mask[ny, nx] and not labels[ny, nx]:
                    labels[ny, nx] = current
                    stack.append((ny, nx))
        if size > best_size:
            best, best_size = current, size
    return labels == best if best else np.zeros_like(mask)


def _convex_hull(points: np.ndarray) -> np.ndarray:
    """Monotone-chain convex hull of (n, 2) points, counter-clockwise."""
    pts = np.unique(points, axis=0)
    if len(pts) < 3:
        return pts

    def cross(o, a, b):
        return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])

    lower, upper = [], []
    for p in pts:
        while len(lower) >= 2 and cross(lower[-2], lower[-1], p) <= 0:
            lower.pop()
        lower.append(tuple(p))
    for p in pts[::-1]:
        while len(upper) >= 2 and cross(upper[-2], upper[-1], p) <= 0:
            upper.pop()
        upper.append(tuple(p))
    return np.array(lower[:-1] + upper[:-1], dtype=np.float64)


def _polygon_area(poly: np.ndarray) -> float:
    x, y = poly[:, 0], poly[:, 1]
    return 0.5 * abs(float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))))


def _min_rect_area(hull: np.ndarray, grow: float = 0.0) -> float:
    """Area of the minimum-area enclosing rectangle (one side lies on a hull edge), each side
    lengthened by `grow`."""
    best = float("inf")
    for i in range(len(hull)):
        edge = hull[(i + 1) % len(hull)] - hull[i]
        norm = np.hypot(*edge)
        if norm == 0:
            continue
        u = edge / norm
        v = np.array([-u[1], u[0]])
        pu, pv = hull @ u, hull @ v
        best = min(best, (pu.max() - pu.min() + grow) * (pv.max() - pv.min() + grow))
    return best


def count_points(blob: np.ndarray, bins: int = 72) -> int:
    """How many points the blob's outline has: prominent maxima of the outline's distance from
    the centroid, taken over `bins` angles. 5 for a five-pointed star, 3 or 4 for convex
    polygons at this size, 0 or noise-level wobbles for a round blob."""
    ys, xs = np.nonzero(blob)
    cy, cx = ys.mean(), xs.mean()
    inner = blob.copy()
    inner[1:, :] &= blob[:-1, :]
    inner[:-1, :] &= blob[1:, :]
    inner[:, 1:] &= blob[:, :-1]
    inner[:, :-1] &= blob[:, 1:]
    by, bx = np.nonzero(blob & ~inner)
    angle = np.arctan2(by - cy, bx - cx)
    radius = np.hypot(by - cy, bx - cx) + 0.5
    index = ((angle + np.pi) / (2 * np.pi) * bins).astype(int) % bins
    profile = np.full(bins, np.nan)
    np.fmax.at(profile, index, radius)
    known = np.flatnonzero(~np.isnan(profile))
    if len(known) < 3:
        return 0
    profile = np.interp(np.arange(bins), known, profile[known], period=bins)
    profile = (np.roll(profile, 1) + 2 * profile + np.roll(profile, -1)) / 4
    half = bins // 14  # about 25 degrees each side: points of a star are 72 degrees apart
    wide = bins // 10  # about 36 degrees: down to the star's inner corners
    points = 0
    for i in range(bins):
        left = [profile[(i - k) % bins] for k in range(1, half + 1)]
        right = [profile[(i + k) % bins] for k in range(1, half + 1)]
        valley = min(profile[(i + k) % bins] for k in range(-wide, wide + 1))
        if profile[i] > max(left) and profile[i] >= max(right) and profile[i] - valley > 0.2 * profile.max():
            points += 1
    return points


def _largest_share(mask: np.ndarray) -> float:
    """The share of `mask`'s pixels in its largest 4-connected component (0 when empty)."""
    total = mask.sum()
    return float(_largest_blob(mask).sum() / total) if total else 0.0


def is_crescent(blob: np.ndarray, hull: np.ndarray, solidity: float) -> bool:
    """A disc with one round bite out of its side: solidity from 0.3 to 0.75, the area its convex
    hull adds (the bite) mostly in one piece (a star's five notches are five pieces, an irregular
    blob's dents several), and the hull round: 4 pi area / perimeter^2 at least 0.84 (a disc 1, a
    drawn crescent's hull 0.86 to 0.9, a square 0.79, an L-shape's hull 0.69 to 0.81)."""
    from PIL import Image, ImageDraw

    if not 0.3 <= solidity <= 0.75 or len(hull) < 3:
        return False
    perimeter = float(np.hypot(*(np.roll(hull, -1, axis=0) - hull).T).sum())
    if 4 * np.pi * _polygon_area(hull) / max(perimeter, 1e-6) ** 2 < 0.84:
        return False
    canvas = Image.new("1", (blob.shape[1], blob.shape[0]), 0)
    ImageDraw.Draw(canvas).polygon([(float(x), float(y)) for x, y in hull], fill=1)
    return _largest_share(np.asarray(canvas, dtype=bool) & ~blob) >= 0.7


def shape_mask(image) -> np.ndarray:
    """Where the shape is: the largest blob of pixels far from the background (as `judge` finds it)."""
    a = _as_array(image).astype(np.float32)
    border = np.concatenate([a[0], a[-1], a[1:-1, 0], a[1:-1, -1]])
    distance = np.sqrt(((a - np.median(border, axis=0)) ** 2).sum(axis=-1))
    far = np.percentile(distance, 99.5)
    if far < 40:
        return np.zeros(distance.shape, bool)
    return _largest_blob(distance > far / 2)


def mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two boolean masks (0 when both are empty)."""
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 0.0


def judge(image) -> Verdict:
    """Classify a rendered image (PIL image, path, HWC uint8 or float array in [0, 1])."""
    a = _as_array(image).astype(np.float32)
    border = np.concatenate([a[0], a[-1], a[1:-1, 0], a[1:-1, -1]])
    bg_rgb = np.median(border, axis=0)
    background = nearest_colour(bg_rgb)
    distance = np.sqrt(((a - bg_rgb) ** 2).sum(axis=-1))
    # Threshold halfway between the background and the farthest colour present, so anti-aliased
    # edges count as shape when they are mostly shape.
    far = np.percentile(distance, 99.5)
    if far < 40:
        return Verdict("none", None, background)
    blob = _largest_blob(distance > far / 2)
    area = int(blob.sum())
    if area < 12:
        return Verdict("none", None, background, area=area)
    inner = blob & (distance > 0.75 * far)
    colour = nearest_colour(np.median(a[inner if inner.sum() >= 4 else blob], axis=0))

    ys, xs = np.nonzero(blob)
    # Hull of the pixel squares' corners shrunk by half a pixel = hull of centres grown to the
    # pixel edges; it matches the continuous shape's area well even for small shapes.
    corners = np.concatenate([np.stack([xs + dx, ys + dy], axis=1) for dx in (-0.5, 0.5) for dy in (-0.5, 0.5)])
    hull = _convex_hull(corners)
    hull_area = _polygon_area(hull) if len(hull) >= 3 else float(area)
    solidity = area / max(hull_area, 1e-6)
    # The rectangle around the pixel centres, grown by one pixel (half a pixel each side), fits
    # rotated squares better than the corner hull, which overshoots on diagonal edges.
    centres = _convex_hull(np.stack([xs, ys], axis=1).astype(np.float64))
    rect_fill = area / max(_min_rect_area(centres, grow=1.0), 1e-6) if len(centres) >= 3 else 1.0
    points = 0
    if solidity < 0.8:
        points = count_points(blob)
        shape = "star" if 4 <= points <= 6 else "crescent" if is_crescent(blob, hull, solidity) else "blob"
    elif rect_fill > 0.855:
        shape = "square"
    elif rect_fill > 0.655:
        shape = "circle"
    else:
        shape = "triangle"
    return Verdict(shape, colour, background, round(solidity, 3), round(rect_fill, 3), area, points)
