"""Arithmetic and geometry on LATENT values, as ComfyUI's core latent nodes define them:
LatentComposite (paste with a feathered edge), LatentCrop, LatentAdd, LatentSubtract,
LatentMultiply, LatentFlip and LatentRotate.

Positions and sizes are in image pixels, divided by the latent's VAE factor (8 unless it says).
An EmptyLatent's lazy latent is ComfyUI's zeros: where an operation on zeros needs no values
(flip, rotate, multiply, adding two empties) it stays lazy; beside a real latent it becomes
zeros of that latent's channels.
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from nodeforge.core.errors import NodeError

from .geometry import _center_crop, _factor, _to_batch
from .latents import warn_if_batches_differ, warn_if_latent_cropped

FLIPS = {"x-axis: vertically": 2, "y-axis: horizontally": 3}          # ComfyUI's choice -> tensor dim
ROTATIONS = {"none": 0, "90 degrees": 1, "180 degrees": 2, "270 degrees": 3}   # clockwise quarter turns


def _zeros_like_lazy(lazy: dict[str, Any], other: torch.Tensor, factor: int) -> torch.Tensor:
    """An EmptyLatent's zeros, with the channels of the real latent beside it."""
    return torch.zeros(int(lazy["batch_size"]), other.shape[1], int(lazy["height"]) // factor,
                       int(lazy["width"]) // factor, dtype=other.dtype)


def _pair(first: dict[str, Any], second: dict[str, Any]) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """Both latents' samples; a lazy one beside a real one becomes zeros (both lazy: None, None)."""
    a, b = first.get("samples"), second.get("samples")
    if a is None and b is not None:
        a = _zeros_like_lazy(first, b, _factor(second))
    elif b is None and a is not None:
        b = _zeros_like_lazy(second, a, _factor(first))
    return a, b


def reshape_to(target: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """x brought to target's shape as ComfyUI's latent maths does: a different size is centre-cropped
    to target's aspect and resized (bilinear), then the batch is repeated or cut to target's."""
    if x.shape[1:] != target.shape[1:]:
        x = F.interpolate(_center_crop(x, target.shape[-1], target.shape[-2]).float(), size=tuple(target.shape[-2:]),
                          mode="bilinear").to(target.dtype)
    return _to_batch(x, target.shape[0])


def _arithmetic(ctx: Any, latent_1: dict[str, Any], latent_2: dict[str, Any], sign: float) -> dict[str, Any]:
    a, b = _pair(latent_1, latent_2)
    if a is None:              # zeros and zeros
        return {"latent": dict(latent_1)}
    warn_if_latent_cropped(ctx, b, a, _factor(latent_1 if latent_1.get("samples") is not None else latent_2))
    warn_if_batches_differ(ctx, b, a, a.shape[0])
    return {"latent": {**latent_1, "samples": a + sign * reshape_to(a, b)}}


def run_latent_add(ctx: Any, latent_1: dict[str, Any], latent_2: dict[str, Any]) -> dict[str, Any]:
    """latent_1 + latent_2 (latent_2 resized and batched to latent_1's shape; a crop to its aspect and
    a batch repeated or cut are warned of); latent_1's mask is kept."""
    return _arithmetic(ctx, latent_1, latent_2, 1.0)


def run_latent_subtract(ctx: Any, latent_1: dict[str, Any], latent_2: dict[str, Any]) -> dict[str, Any]:
    """latent_1 - latent_2, as LatentAdd."""
    return _arithmetic(ctx, latent_1, latent_2, -1.0)


def run_latent_multiply(ctx: Any, latent: dict[str, Any], multiplier: float) -> dict[str, Any]:
    if latent.get("samples") is None:
        return {"latent": dict(latent)}
    return {"latent": {**latent, "samples": latent["samples"] * float(multiplier)}}


def run_latent_flip(ctx: Any, latent: dict[str, Any], flip_method: str) -> dict[str, Any]:
    if flip_method not in FLIPS:
        raise NodeError(f"unknown flip {flip_method!r}; choose one of {', '.join(FLIPS)}", field="flip_method")
    if latent.get("samples") is None:
        return {"latent": dict(latent)}
    return {"latent": {**latent, "samples": torch.flip(latent["samples"], dims=[FLIPS[flip_method]])}}


def run_latent_rotate(ctx: Any, latent: dict[str, Any], rotation: str) -> dict[str, Any]:
    """Quarter turns clockwise; an empty latent swaps its width and height."""
    if rotation not in ROTATIONS:
        raise NodeError(f"unknown rotation {rotation!r}; choose one of {', '.join(ROTATIONS)}", field="rotation")
    turns = ROTATIONS[rotation]
    if latent.get("samples") is None:
        if turns % 2 == 0:
            return {"latent": dict(latent)}
        return {"latent": {**latent, "width": latent["height"], "height": latent["width"]}}
    return {"latent": {**latent, "samples": torch.rot90(latent["samples"], k=turns, dims=[3, 2])}}


def run_latent_crop(ctx: Any, latent: dict[str, Any], width: int, height: int, x: int, y: int) -> dict[str, Any]:
    """A width x height window from (x, y) in image pixels, as ComfyUI: the corner is kept at least
    8 latent pixels from the right and bottom edges, and the window is cut at the edges. An empty
    latent (ComfyUI's zeros) stays empty, with the window's size."""
    latents = latent.get("samples")
    f = _factor(latent)
    h, w = latents.shape[-2:] if latents is not None else (int(latent["height"]) // f, int(latent["width"]) // f)
    left, top = min(int(x) // f, w - 8), min(int(y) // f, h - 8)
    left, top = max(left, 0), max(top, 0)
    rows, cols = slice(top, top + int(height) // f), slice(left, left + int(width) // f)
    if latents is None:        # ComfyUI's zeros cropped: an empty latent of the window's size
        kept = (len(range(h)[rows]), len(range(w)[cols]))
        return {"latent": {**latent, "height": kept[0] * f, "width": kept[1] * f}}
    out = {**latent, "samples": latents[:, :, rows, cols].clone()}
    mask = latent.get("noise_mask")
    if mask is not None and tuple(mask.shape[-2:]) == (h, w):   # ComfyUI stretches it over the crop; cut it too
        out["noise_mask"] = mask[..., rows, cols].clone()
    return {"latent": out}


def _feather_mask(shape: tuple[int, ...], feather: int, edges: tuple[bool, bool, bool, bool]) -> torch.Tensor:
    """ComfyUI's paste weight: 1 inside, ramping down over `feather` latent pixels at each edge of the
    pasted latent that lies inside the destination (top, bottom, left, right)."""
    mask = torch.ones(shape)
    ramp = torch.arange(1, feather + 1, dtype=torch.float32) / feather
    top, bottom, left, right = edges
    n_h, n_w = min(feather, shape[2]), min(feather, shape[3])
    if top:
        mask[:, :, :n_h] *= ramp[:n_h, None]
    if bottom:
        mask[:, :, shape[2] - n_h:] *= ramp[:n_h].flip(0)[:, None]
    if left:
        mask[:, :, :, :n_w] *= ramp[:n_w]
    if right:
        mask[:, :, :, shape[3] - n_w:] *= ramp[:n_w].flip(0)
    return mask


def _cut_note(source: tuple[int, int], kept: tuple[int, int], destination: tuple[int, int], at: tuple[int, int],
              factor: int) -> str:
    """What LatentComposite's cut at the destination's edges lost, in image pixels."""
    (sh, sw), (kh, kw), (dh, dw) = ((a * factor, b * factor) for a, b in (source, kept, destination))
    what = "nothing of it is pasted" if kh * kw == 0 else f"only its top-left {kw}x{kh} is pasted, the rest is cut"
    return (f"the source is {sw}x{sh} but the destination is {dw}x{dh} and the source goes at x {at[0]}, y "
            f"{at[1]}: {what}; move x/y, or crop or scale the source to fit")


def run_latent_composite(ctx: Any, destination: dict[str, Any], source: dict[str, Any], x: int, y: int,
                         feather: int) -> dict[str, Any]:
    """ComfyUI's LatentComposite: source pasted into destination at (x, y) image pixels, cut at
    destination's edges (nothing when (x, y) lies outside it); with feather > 0 its edges inside
    destination blend in over feather pixels."""
    dest, pasted = _pair(destination, source)
    if dest is None:           # zeros pasted onto zeros
        return {"latent": dict(destination)}
    f = _factor(destination) if destination.get("samples") is not None else _factor(source)
    left, top, blend = int(x) // f, int(y) // f, int(feather) // f
    height, width = dest.shape[-2:]
    part = _to_batch(pasted, dest.shape[0])[:, :, :max(0, height - top), :max(0, width - left)].to(dest.dtype)
    out = dest.clone()
    ph, pw = part.shape[-2:]
    if ctx is not None and (ph, pw) != tuple(pasted.shape[-2:]):   # ComfyUI cuts without a word
        ctx.warn(_cut_note(tuple(pasted.shape[-2:]), (ph, pw), (height, width), (x, y), f))
    if blend > 0:
        mask = _feather_mask(tuple(part.shape), blend, (top != 0, top + ph < height, left != 0, left + pw < width))
        part = part * mask + out[:, :, top:top + ph, left:left + pw] * (1 - mask)
    out[:, :, top:top + ph, left:left + pw] = part
    lazy_keys = ("width", "height", "batch_size") if destination.get("samples") is None else ()
    result = {k: v for k, v in destination.items() if k not in lazy_keys}
    result["samples"] = out
    result.setdefault("factor", f)
    return {"latent": result}
