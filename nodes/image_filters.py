"""IMAGE filters as ComfyUI's post-processing nodes define them: ImageBlend (blend modes),
ImageBlur, ImageSharpen and ImageQuantize (palette with optional dithering).

Blur and sharpen use ComfyUI's Gaussian: a (2r + 1)-square kernel sampled on [-1, 1] in both
directions, so sigma is in units of the radius, not of pixels; the image edges are mirrored.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from nodeforge.core.errors import NodeError

from .geometry import _center_crop

BLEND_MODES = ("normal", "multiply", "screen", "overlay", "soft_light", "difference")
DITHERS = ("none", "floyd-steinberg", "bayer-2", "bayer-4", "bayer-8", "bayer-16")


def _soft_light_curve(x: torch.Tensor) -> torch.Tensor:
    return torch.where(x <= 0.25, ((16 * x - 12) * x + 4) * x, torch.sqrt(x))


def blend(base: torch.Tensor, top: torch.Tensor, mode: str) -> torch.Tensor:
    """The blend mode's result for base (image1) under top (image2), before mixing by the factor."""
    if mode == "normal":
        return top
    if mode == "multiply":
        return base * top
    if mode == "screen":
        return 1 - (1 - base) * (1 - top)
    if mode == "overlay":
        return torch.where(base <= 0.5, 2 * base * top, 1 - 2 * (1 - base) * (1 - top))
    if mode == "soft_light":
        return torch.where(top <= 0.5, base - (1 - 2 * top) * base * (1 - base),
                           base + (2 * top - 1) * (_soft_light_curve(base) - base))
    if mode == "difference":
        return base - top
    raise NodeError(f"unknown blend mode {mode!r}; choose one of {', '.join(BLEND_MODES)}", field="blend_mode")


def run_image_blend(ctx: Any, image1: torch.Tensor, image2: torch.Tensor, blend_factor: float,
                    blend_mode: str) -> dict[str, Any]:
    """image1 x (1 - factor) + blend(image1, image2) x factor, clamped to 0..1; image2 is brought to
    image1's size first (centre crop to its aspect, bicubic) when they differ."""
    if image2.shape != image1.shape:
        x = _center_crop(image2.permute(0, 3, 1, 2), image1.shape[2], image1.shape[1])
        image2 = F.interpolate(x.float(), size=tuple(image1.shape[1:3]), mode="bicubic").permute(0, 2, 3, 1)
    mixed = blend(image1, image2.to(image1.dtype), blend_mode)
    f = float(blend_factor)
    return {"image": (image1 * (1 - f) + mixed * f).clamp(0, 1)}


def gaussian_kernel(radius: int, sigma: float) -> torch.Tensor:
    """ComfyUI's (2r + 1)-square Gaussian, sampled on [-1, 1] x [-1, 1] and summing to 1."""
    axis = torch.linspace(-1, 1, 2 * radius + 1)
    squared = axis[:, None] ** 2 + axis[None, :] ** 2
    kernel = torch.exp(-squared / (2.0 * sigma * sigma))
    return kernel / kernel.sum()


def _convolve(image: torch.Tensor, kernel: torch.Tensor, radius: int, field: str) -> torch.Tensor:
    """Each channel of [B, H, W, C] convolved with kernel, the edges mirrored (no edge pixel repeated)."""
    height, width = image.shape[1:3]
    if radius >= min(height, width):
        raise NodeError(f"a radius of {radius} needs an image larger than {radius} pixels on each side (this one is "
                        f"{width}x{height}); use a radius below {min(height, width)}", field=field)
    channels = image.shape[-1]
    x = F.pad(image.permute(0, 3, 1, 2).float(), (radius,) * 4, mode="reflect")
    weight = kernel.to(x.dtype)[None, None].repeat(channels, 1, 1, 1)
    return F.conv2d(x, weight, groups=channels).permute(0, 2, 3, 1)


def run_image_blur(ctx: Any, image: torch.Tensor, blur_radius: int, sigma: float) -> dict[str, Any]:
    if blur_radius == 0:
        return {"image": image}
    return {"image": _convolve(image, gaussian_kernel(blur_radius, sigma), blur_radius, "blur_radius")}


def run_image_sharpen(ctx: Any, image: torch.Tensor, sharpen_radius: int, sigma: float,
                      alpha: float) -> dict[str, Any]:
    """Unsharp masking as ComfyUI: the Gaussian x -10 alpha, its centre raised so the kernel sums to 1."""
    if sharpen_radius == 0:
        return {"image": image}
    kernel = gaussian_kernel(sharpen_radius, sigma) * -(alpha * 10)
    kernel[sharpen_radius, sharpen_radius] += 1.0 - kernel.sum()
    return {"image": _convolve(image, kernel, sharpen_radius, "sharpen_radius").clamp(0, 1)}


def bayer_matrix(order: int) -> np.ndarray:
    """The order x order ordered-dithering matrix, centred on 0 (values in -0.5..0.5 of one step)."""
    matrix = np.zeros((1, 1), np.float32)
    for level in range(1, int(math.log2(order)) + 1):
        q = 4 ** level
        m = q * matrix
        matrix = np.block([[m - 1.5, m + 0.5], [m + 1.5, m - 0.5]]).astype(np.float32) / q
    return matrix


def _ordered_dither(rgb: np.ndarray, palette: Any, order: int) -> Any:
    """Add the tiled Bayer threshold (one palette step wide) before mapping to the palette."""
    from PIL import Image

    spread = 2 * 256 / (len(palette.getpalette()) // 3)
    threshold = spread * bayer_matrix(order) + 0.5
    reps = (math.ceil(rgb.shape[0] / order), math.ceil(rgb.shape[1] / order))
    tiled = np.tile(threshold, reps)[:rgb.shape[0], :rgb.shape[1], None]
    shifted = np.clip(rgb.astype(np.float32) + tiled, 0, 255).astype(np.uint8)
    return Image.fromarray(shifted).quantize(palette=palette, dither=Image.Dither.NONE)


def run_image_quantize(ctx: Any, image: torch.Tensor, colors: int, dither: str) -> dict[str, Any]:
    """Each image reduced to a palette of `colors` (Pillow's median cut over that image), mapped to
    the nearest colour, with Floyd-Steinberg or ordered (Bayer) dithering."""
    from PIL import Image

    if dither not in DITHERS:
        raise NodeError(f"unknown dither {dither!r}; choose one of {', '.join(DITHERS)}", field="dither")
    out = torch.zeros_like(image)
    for index, item in enumerate(image):
        rgb = (item[..., :3].clamp(0, 1) * 255).to(torch.uint8).numpy()   # truncated, as ComfyUI
        pil = Image.fromarray(rgb)
        palette = pil.quantize(colors=int(colors))
        if dither.startswith("bayer"):
            mapped = _ordered_dither(rgb, palette, int(dither.split("-")[1]))
        else:
            method = Image.Dither.NONE if dither == "none" else Image.Dither.FLOYDSTEINBERG
            mapped = pil.quantize(palette=palette, dither=method)
        out[index, ..., :3] = torch.from_numpy(np.asarray(mapped.convert("RGB"), dtype=np.float32) / 255)
    return {"image": out}


_PIL_FILTERS = {"nearest": 0, "lanczos": 1, "bilinear": 2, "bicubic": 3}   # Pillow's resampling numbers


def resize_size(width: int, height: int, mode: str, factor: float, new_width: int, new_height: int) -> tuple[int, int]:
    """WAS's Image Resize size: the image x factor (truncated), or the size asked rounded up to a multiple of 8."""
    if mode == "rescale":
        return max(1, int(width * factor)), max(1, int(height * factor))
    return new_width + (-new_width % 8), new_height + (-new_height % 8)


def run_image_resize(ctx: Any, image: torch.Tensor, mode: str, supersample: bool, resampling: str,
                     rescale_factor: float, resize_width: int, resize_height: int) -> dict[str, Any]:
    """WAS Node Suite's Image Resize: each image through Pillow at 8 bits (truncated), optionally
    first to 8x the target size (supersampling), then to the target size."""
    from PIL import Image

    if resampling not in _PIL_FILTERS:
        raise NodeError(f"unknown resampling {resampling!r}; choose one of {', '.join(_PIL_FILTERS)}", field="resampling")
    if mode not in ("rescale", "resize"):
        raise NodeError(f"unknown mode {mode!r}; choose rescale (by the factor) or resize (to the size)", field="mode")
    out = []
    for item in image:
        pil = Image.fromarray(np.clip(255.0 * item[..., :3].cpu().numpy(), 0, 255).astype(np.uint8))
        size = resize_size(pil.width, pil.height, mode, float(rescale_factor), int(resize_width), int(resize_height))
        if supersample:
            pil = pil.resize((size[0] * 8, size[1] * 8), resample=Image.Resampling(_PIL_FILTERS[resampling]))
        pil = pil.resize(size, resample=Image.Resampling(_PIL_FILTERS[resampling]))
        out.append(torch.from_numpy(np.asarray(pil, dtype=np.float32) / 255.0))
    return {"image": torch.stack(out)}
