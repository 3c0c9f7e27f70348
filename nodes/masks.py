"""MASK operations as ComfyUI's core mask nodes define them: FeatherMask, ThresholdMask,
MaskComposite and CropMask. Each takes a MASK [B, H, W] (or [H, W]) and gives [B, H, W]."""
from __future__ import annotations

from typing import Any

import torch

from nodeforge.core.errors import NodeError

from .geometry import _to_batch

OPERATIONS = ("multiply", "add", "subtract", "and", "or", "xor")


def _batched(mask: torch.Tensor) -> torch.Tensor:
    return mask.float().reshape(-1, mask.shape[-2], mask.shape[-1])


def run_threshold_mask(ctx: Any, mask: torch.Tensor, value: float) -> dict[str, Any]:
    """1 where the mask is above value, else 0."""
    return {"mask": (_batched(mask) > float(value)).float()}


def run_crop_mask(ctx: Any, mask: torch.Tensor, x: int, y: int, width: int, height: int) -> dict[str, Any]:
    """A width x height window from (x, y), cut at the mask's edges."""
    out = _batched(mask)
    h, w = out.shape[-2:]
    if int(x) >= w or int(y) >= h:
        raise NodeError(f"x={x}, y={y} lies outside the {w}x{h} mask; crop inside it", field="x" if int(x) >= w else "y")
    return {"mask": out[:, int(y):int(y) + int(height), int(x):int(x) + int(width)].clone()}


def _combine(a: torch.Tensor, b: torch.Tensor, operation: str) -> torch.Tensor:
    if operation == "multiply":
        return a * b
    if operation == "add":
        return a + b
    if operation == "subtract":
        return a - b
    # The logic operations read each mask rounded to 0 or 1.
    a, b = a.round().bool(), b.round().bool()
    return {"and": a & b, "or": a | b, "xor": a ^ b}[operation].float()


def run_mask_composite(ctx: Any, destination: torch.Tensor, source: torch.Tensor, x: int, y: int,
                       operation: str) -> dict[str, Any]:
    """source combined into destination with its top-left corner at (x, y), where they overlap;
    the result is clamped to 0..1."""
    if operation not in OPERATIONS:
        raise NodeError(f"unknown operation {operation!r}; choose one of {', '.join(OPERATIONS)}", field="operation")
    out = _batched(destination).clone()
    source = _to_batch(_batched(source), out.shape[0])
    left, top = int(x), int(y)
    h = max(0, min(source.shape[-2], out.shape[-2] - top))
    w = max(0, min(source.shape[-1], out.shape[-1] - left))
    region = out[:, top:top + h, left:left + w]
    out[:, top:top + h, left:left + w] = _combine(region, source[:, :h, :w], operation)
    return {"mask": out.clamp(0.0, 1.0)}


def run_feather_mask(ctx: Any, mask: torch.Tensor, left: int, top: int, right: int, bottom: int) -> dict[str, Any]:
    """Fade the mask towards its edges: the k-th pixel from the left (k = 1..left) is multiplied by
    k / left, and so for the top.

    The right and bottom ramps follow ComfyUI's exactly, so imported graphs give the same masks:
    they are one pixel off, counted from the first column (row), which takes 1 / right, then the
    last column 2 / right, the one before 3 / right, and so on inwards.
    """
    out = _batched(mask).clone()
    h, w = out.shape[-2:]
    left, right, top, bottom = min(int(left), w), min(int(right), w), min(int(top), h), min(int(bottom), h)
    for k in range(left):
        out[:, :, k] *= (k + 1) / left
    for k in range(right):
        out[:, :, -k] *= (k + 1) / right
    for k in range(top):
        out[:, k, :] *= (k + 1) / top
    for k in range(bottom):
        out[:, -k, :] *= (k + 1) / bottom
    return {"mask": out}
