"""ImageToEdges: Canny edges of an image, in torch alone, to make ControlNet control images.

The steps and thresholds are those of kornia's `canny`, which ComfyUI's Canny node calls: a 5x5
Gaussian blur (sigma 1), Sobel gradients (unnormalised, so a sharp black-to-white step is about
2.6), non-maximum suppression along the gradient direction, then hysteresis: pixels above
`high_threshold` are edges, and pixels above `low_threshold` join them where they touch one.
One difference: the gradient is taken per colour channel and the strongest channel counts
(colour Canny), so edges between colours of equal brightness, such as red on blue, are found.
The result is white one-pixel lines on black, as an IMAGE.
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from nodeforge.core.errors import NodeError


def _gaussian(x: torch.Tensor) -> torch.Tensor:
    taps = torch.exp(-(torch.arange(5, dtype=torch.float32) - 2) ** 2 / 2)
    taps = taps / taps.sum()
    c = x.shape[1]
    x = F.pad(x, (2, 2, 2, 2), mode="reflect")
    x = F.conv2d(x, taps.view(1, 1, 1, 5).repeat(c, 1, 1, 1), groups=c)
    return F.conv2d(x, taps.view(1, 1, 5, 1).repeat(c, 1, 1, 1), groups=c)


def _sobel(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    kx = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]])
    c = x.shape[1]
    padded = F.pad(x, (1, 1, 1, 1), mode="replicate")
    gx = F.conv2d(padded, kx.view(1, 1, 3, 3).repeat(c, 1, 1, 1), groups=c)
    gy = F.conv2d(padded, kx.t().reshape(1, 1, 3, 3).repeat(c, 1, 1, 1), groups=c)
    return gx, gy


def canny(image: torch.Tensor, low_threshold: float, high_threshold: float) -> torch.Tensor:
    """Edges [B, H, W] in {0, 1} of an IMAGE [B, H, W, C] in 0..1."""
    x = image[..., :3].permute(0, 3, 1, 2).float()
    gx, gy = _sobel(_gaussian(x))
    magnitude = torch.sqrt(gx * gx + gy * gy + 1e-6)
    strongest = magnitude.argmax(dim=1, keepdim=True)          # colour Canny: the strongest channel
    magnitude = magnitude.gather(1, strongest)[:, 0]
    gx, gy = gx.gather(1, strongest)[:, 0], gy.gather(1, strongest)[:, 0]

    # Non-maximum suppression: keep a pixel only if it beats both neighbours across the edge.
    angle = torch.rad2deg(torch.atan2(gy, gx)) % 180
    sector = (((angle + 22.5) // 45) % 4).long()               # 0: horizontal gradient, 1: 45, 2: 90, 3: 135
    offsets = ((0, 1), (1, 1), (1, 0), (1, -1))                 # (dy, dx) along the gradient
    padded = F.pad(magnitude[:, None], (1, 1, 1, 1))[:, 0]
    h, w = magnitude.shape[-2:]
    keep = torch.zeros_like(magnitude, dtype=torch.bool)
    for index, (dy, dx) in enumerate(offsets):
        ahead = padded[:, 1 + dy:1 + dy + h, 1 + dx:1 + dx + w]
        behind = padded[:, 1 - dy:1 - dy + h, 1 - dx:1 - dx + w]
        keep |= (sector == index) & (magnitude >= ahead) & (magnitude > behind)
    thin = magnitude * keep

    # Hysteresis: grow the strong edges through touching weak ones until nothing changes.
    strong = thin > high_threshold
    weak = thin > low_threshold
    edges = strong.float()
    while True:
        grown = (F.max_pool2d(edges[:, None], 3, stride=1, padding=1)[:, 0] > 0) & weak
        if torch.equal(grown.float(), edges):
            return edges
        edges = grown.float()


def run_image_to_edges(ctx: Any, image: torch.Tensor, low_threshold: float, high_threshold: float) -> dict[str, Any]:
    if low_threshold > high_threshold:
        raise NodeError("low_threshold is above high_threshold; the low one must be the smaller", field="low_threshold")
    edges = canny(image, low_threshold, high_threshold)
    return {"image": edges[..., None].repeat(1, 1, 1, 3).contiguous()}
