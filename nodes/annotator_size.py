"""How comfyui_controlnet_aux's preprocessors size a picture before their detector sees it, in torch.

Each picture is taken to 8-bit levels (truncated, as numpy's cast does), resized so its shorter side is
the `resolution` (the other side rounded half to even), by area averaging when it shrinks or stays and
by bicubic interpolation (a = -0.75, as OpenCV's) when it grows, rounded to 8-bit levels again, then
padded at the bottom and right to multiples of 64 by repeating its edge pixels. The detector works on
the padded picture and its map is cut back to the resized size, which is the size the node gives.
OpenCV computes its 8-bit resizes in fixed point: a level may differ by one.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

PAD = 64
SMALLEST = 64      # the packs' resolution widget starts at 64; a smaller value means their default 512
DEFAULT = 512


def detect_resolution(resolution: int) -> int:
    return int(resolution) if int(resolution) >= SMALLEST else DEFAULT


def resized_size(height: int, width: int, resolution: int) -> tuple[int, int]:
    """The shorter side at `resolution`, the other scaled alike and rounded half to even."""
    k = float(resolution) / float(min(height, width))
    return round(float(height) * k), round(float(width) * k)


def _area_weights(size_in: int, size_out: int) -> torch.Tensor:
    """[size_out, size_in]: each output pixel the mean of the input it covers, partial pixels by their share."""
    scale = size_in / size_out
    starts = torch.arange(size_out, dtype=torch.float64) * scale
    ends = starts + scale
    left = torch.arange(size_in, dtype=torch.float64)
    overlap = (torch.minimum(ends[:, None], left[None] + 1) - torch.maximum(starts[:, None], left[None])).clamp(min=0)
    return overlap / scale


def resize_levels(picture: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """[C, H, W] 8-bit levels (as floats) -> [C, height, width] levels: area when shrinking, bicubic when growing."""
    if tuple(picture.shape[-2:]) == (height, width):
        return picture.clone()
    if height <= picture.shape[-2] and width <= picture.shape[-1]:
        rows = _area_weights(picture.shape[-2], height)
        cols = _area_weights(picture.shape[-1], width)
        out = torch.einsum("oh,chw,pw->cop", rows, picture.double(), cols).float()
    else:
        out = F.interpolate(picture[None].float(), size=(height, width), mode="bicubic", align_corners=False)[0]
    return out.round().clamp(0, 255)


def prepared(picture: torch.Tensor, resolution: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """One IMAGE picture [H, W, C] in 0..1 -> the detector's input [3, H', W'] in 8-bit levels (floats 0..255),
    padded to multiples of 64, and the resized size (H, W) to cut its map back to."""
    levels = (picture[..., :3].float().clamp(0, 1) * 255).floor().permute(2, 0, 1)
    height, width = resized_size(levels.shape[1], levels.shape[2], detect_resolution(resolution))
    levels = resize_levels(levels, height, width)
    pad_h, pad_w = -height % PAD, -width % PAD
    if pad_h or pad_w:
        levels = F.pad(levels[None], (0, pad_w, 0, pad_h), mode="replicate")[0]
    return levels, (height, width)
