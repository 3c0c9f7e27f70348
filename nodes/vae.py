"""VAEEncode and VAEDecode, tiled for large images so they fit in memory.

IMAGE is a float tensor [B, H, W, 3] in 0..1 on the CPU (as ComfyUI); latents are scaled by the
VAE's scaling factor (and shift) so UNetDenoise sees what the UNet was trained on.
"""
from __future__ import annotations

from typing import Any

import torch

from nodeforge.core.errors import NodeError

from .latents import latent_shape
from .memory import memory_advice
from .wrappers import VAEModel

TILE_ABOVE = 96 * 96      # latent pixels; larger latents decode in tiles (SD: above 768x768)
TILE = 64                 # latent pixels per tile side
OVERLAP = 16              # latent pixels shared by neighbouring tiles, blended linearly


def _decode(vae: VAEModel, z: torch.Tensor) -> torch.Tensor:
    z = z.to(vae.device, vae.dtype) / vae.scaling_factor + vae.shift_factor
    return vae.vae.decode(z).sample.float()


def _ramp(length: int, overlap: int, at_start: bool, at_end: bool) -> torch.Tensor:
    w = torch.ones(length)
    if overlap:
        ramp = torch.linspace(0, 1, overlap + 2)[1:-1]
        if not at_start:
            w[:overlap] = ramp
        if not at_end:
            w[-overlap:] = ramp.flip(0)
    return w


def _starts(size: int, tile: int, overlap: int) -> list[int]:
    if size <= tile:
        return [0]
    stride = tile - overlap
    starts = list(range(0, size - tile, stride)) + [size - tile]
    return sorted(set(starts))


def tiled(fn: Any, x: torch.Tensor, tile: int, overlap: int, scale: float, channels: int) -> torch.Tensor:
    """Apply `fn` (decode: scale = factor, encode: 1 / factor) to overlapping tiles of `x` and blend
    the results with linear ramps, so seams do not show and memory stays that of one tile."""
    b, _, h, w = x.shape
    oh, ow = round(h * scale), round(w * scale)
    out = torch.zeros(b, channels, oh, ow)
    weight = torch.zeros(1, 1, oh, ow)
    for y in _starts(h, tile, overlap):
        for x0 in _starts(w, tile, overlap):
            th, tw = min(tile, h - y), min(tile, w - x0)
            result = fn(x[:, :, y:y + th, x0:x0 + tw]).float().cpu()
            ys, xs, rh, rw = round(y * scale), round(x0 * scale), result.shape[-2], result.shape[-1]
            ramp = round(overlap * scale)
            wy = _ramp(rh, ramp, y == 0, y + th >= h)
            wx = _ramp(rw, ramp, x0 == 0, x0 + tw >= w)
            mask = (wy[:, None] * wx[None, :])[None, None]
            out[:, :, ys:ys + rh, xs:xs + rw] += result * mask
            weight[:, :, ys:ys + rh, xs:xs + rw] += mask
    return out / weight


def decode_tiled(vae: VAEModel, latents: torch.Tensor, tile: int = TILE, overlap: int = OVERLAP) -> torch.Tensor:
    return tiled(lambda z: _decode(vae, z), latents, tile, overlap, vae.factor, 3)


def _encode(vae: VAEModel, pixels: torch.Tensor) -> torch.Tensor:
    return vae.vae.encode(pixels.to(vae.device, vae.dtype)).latent_dist.mode().float()


def decode(vae: VAEModel, latents: torch.Tensor, tiled: bool | None = None) -> torch.Tensor:
    """IMAGE [B, H, W, 3] in 0..1 from scaled latents."""
    if tiled is None:
        tiled = latents.shape[-2] * latents.shape[-1] > TILE_ABOVE
    with torch.inference_mode(), memory_advice("image size or batch size, or decode fewer images at once"):
        pixels = decode_tiled(vae, latents, TILE, OVERLAP) if tiled else _decode(vae, latents).cpu()
    return (pixels / 2 + 0.5).clamp(0, 1).permute(0, 2, 3, 1).contiguous()


def warn_if_cropped(width: int, height: int, factor: int) -> None:
    """Tell the user (the running node's warning) when an image is cut to a multiple of the VAE
    factor before encoding, which ComfyUI does without a word."""
    from nodeforge.core.context import current_context

    ctx = current_context()
    if ctx is not None and (width % factor or height % factor):
        ctx.warn(f"the image is {width}x{height}, not a multiple of {factor} as the VAE needs: its centre "
                 f"{width // factor * factor}x{height // factor * factor} is encoded and the edges are cut; "
                 f"scale or crop it to a multiple of {factor} to choose what is kept")


def encode(vae: VAEModel, image: torch.Tensor, tiles: bool | None = None) -> torch.Tensor:
    """Scaled latents of an IMAGE, centre-cropped to a multiple of the VAE factor (in tiles when large, unless
    `tiles` says)."""
    f = vae.factor
    _, h, w, _ = image.shape
    nh, nw = h // f * f, w // f * f
    if nh == 0 or nw == 0:
        raise NodeError(f"the image ({w}x{h}) is smaller than the VAE factor {f}", field="image")
    top, left = (h - nh) // 2, (w - nw) // 2
    warn_if_cropped(w, h, f)
    pixels = image[:, top:top + nh, left:left + nw, :3].permute(0, 3, 1, 2) * 2 - 1
    large = nh * nw > TILE_ABOVE * f * f if tiles is None else tiles
    with torch.inference_mode(), memory_advice():
        if large:
            z = tiled(lambda p: _encode(vae, p), pixels, TILE * f, OVERLAP * f, 1 / f, vae.latent_channels)
        else:
            z = _encode(vae, pixels).cpu()
    return (z - vae.shift_factor) * vae.scaling_factor


def run_vae_encode(ctx: Any, vae: VAEModel, image: torch.Tensor) -> dict[str, Any]:
    return {"latent": {"samples": encode(vae, image), "factor": vae.factor}}


def run_vae_decode(ctx: Any, vae: VAEModel, latent: dict[str, Any]) -> dict[str, Any]:
    samples = latent.get("samples")
    if samples is None:   # an EmptyLatent straight into the decoder: decode zeros
        samples = torch.zeros(latent_shape(latent, vae.latent_channels, vae.factor))
    if samples.shape[1] != vae.latent_channels:
        raise NodeError(f"the latent has {samples.shape[1]} channels but this VAE takes {vae.latent_channels}; "
                        "use the VAE that belongs to the model that made the latent", field="latent")
    return {"image": decode(vae, samples)}
