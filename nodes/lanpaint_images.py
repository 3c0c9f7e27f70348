"""LanPaint's image nodes (scraed/LanPaint's LanPaint_ImageEncode, LanPaint_ImageDecode, LanPaint_MaskBlend), which its
example workflows wire around LanPaint_KSampler:

- Image Encode: VAEEncode with the inpainting mask (1: repaint) attached to the latent, its first
  frame resized to the latent's size by nearest-exact (LanPaint's mask convention; SetLatentMask is
  bilinear), so the mask always matches whatever size the VAE gave.
- Mask Blend (LanPaint_MaskBlend): image1 outside the mask, image2 inside it, over the same soft edge
  (the images and the mask of one size).
- Image Decode: VAEDecode; given the original image, the decoded one is resized to its exact size
  (bilinear); given the mask too, the decoded pixels replace the original's inside the mask, its
  edge widened by blend_overlap pixels (a max filter) and smoothed by a Gaussian of that size
  (sigma (size - 1) / 4, zero padding) into a soft blend: original (1 - m) + decoded m.
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from nodeforge.core.errors import NodeError

from .vae import encode


def _first_frame(mask: torch.Tensor) -> torch.Tensor:
    """A MASK ([B, H, W], [H, W] or [B, 1, H, W]) as one [H, W] frame."""
    m = mask.float()
    while m.ndim > 2:
        m = m[0]
    return m


def run_lanpaint_image_encode(ctx: Any, vae: Any, image: torch.Tensor, mask: torch.Tensor | None = None) -> dict[str, Any]:
    samples = encode(vae, image)
    latent: dict[str, Any] = {"samples": samples, "factor": vae.factor}
    if mask is not None:
        m = _first_frame(mask)[None, None]
        if tuple(m.shape[-2:]) != tuple(samples.shape[-2:]):
            m = F.interpolate(m, size=tuple(samples.shape[-2:]), mode="nearest-exact")
        latent["noise_mask"] = m
    return {"latent": latent}


def gaussian_kernel(size: int) -> torch.Tensor:
    """A normalised size x size Gaussian with sigma (size - 1) / 4 (1 x 1: no blur)."""
    if size <= 1:
        return torch.ones(1, 1)
    offsets = torch.arange(size, dtype=torch.float32) - size // 2
    one = torch.exp(-offsets ** 2 / (2 * ((size - 1) / 4) ** 2))
    kernel = one[:, None] * one[None, :]
    return kernel / kernel.sum()


def soft_edges(masks: torch.Tensor, overlap: int) -> torch.Tensor:
    """Masks [B, 1, H, W] widened by `overlap` pixels (a max filter) and smoothed over them (the Gaussian)."""
    m = F.max_pool2d(masks.float(), kernel_size=overlap, stride=1, padding=overlap // 2)
    return F.conv2d(m, gaussian_kernel(overlap)[None, None], padding=overlap // 2)


def blend_weights(mask: torch.Tensor, height: int, width: int, overlap: int) -> torch.Tensor:
    """The decoded picture's weight per pixel, [1, H, W]: the mask at the image's size (nearest-exact),
    widened by `overlap` pixels and smoothed over them."""
    m = _first_frame(mask)[None, None]
    if tuple(m.shape[-2:]) != (height, width):
        m = F.interpolate(m, size=(height, width), mode="nearest-exact")
    return soft_edges(m, overlap)[:, 0]


def _odd(overlap: int) -> None:
    if overlap % 2 == 0:
        raise NodeError(f"blend_overlap {overlap} must be odd (the blend is centred on each pixel): use "
                        f"{overlap + 1}", field="blend_overlap")


def run_lanpaint_mask_blend(ctx: Any, image1: torch.Tensor, image2: torch.Tensor, mask: torch.Tensor,
                            blend_overlap: int) -> dict[str, Any]:
    """LanPaint_MaskBlend: image1 outside the mask, image2 inside, over a soft edge of blend_overlap pixels."""
    _odd(int(blend_overlap))
    if tuple(image1.shape[1:3]) != tuple(image2.shape[1:3]):
        raise NodeError(f"image1 is {image1.shape[2]}x{image1.shape[1]} and image2 {image2.shape[2]}x{image2.shape[1]}: "
                        "they must be the same size (scale one, or give sizes that are multiples of 8 so the VAE's "
                        "round trip keeps them)", field="image2")
    m = mask.float()
    if m.ndim == 2:
        m = m[None]
    if m.ndim == 3:
        m = m[:, None]
    if tuple(m.shape[-2:]) != tuple(image1.shape[1:3]):
        raise NodeError(f"the mask is {m.shape[-1]}x{m.shape[-2]} and the images {image1.shape[2]}x{image1.shape[1]}: "
                        "scale the mask to the images' size", field="mask")
    weight = soft_edges(m, int(blend_overlap))[:, 0, ..., None]
    return {"image": (image1[..., :3] * (1 - weight) + image2[..., :3].to(image1.dtype) * weight).contiguous()}


def run_lanpaint_image_decode(ctx: Any, vae: Any, latent: dict[str, Any], image: torch.Tensor | None = None,
                              mask: torch.Tensor | None = None, blend_overlap: int = 9) -> dict[str, Any]:
    from .vae import run_vae_decode

    _odd(int(blend_overlap))
    decoded = run_vae_decode(ctx, vae, latent)["image"]
    if image is None:
        return {"image": decoded}
    height, width = int(image.shape[1]), int(image.shape[2])
    if tuple(decoded.shape[1:3]) != (height, width):
        decoded = F.interpolate(decoded.permute(0, 3, 1, 2), size=(height, width), mode="bilinear",
                                align_corners=False).permute(0, 2, 3, 1)
    if mask is None:
        return {"image": decoded}
    count = min(int(image.shape[0]), int(decoded.shape[0]))
    weight = blend_weights(mask, height, width, int(blend_overlap))[..., None]
    original = image[:count, ..., :3].to(decoded.dtype)
    return {"image": (original * (1 - weight) + decoded[:count] * weight).contiguous()}
