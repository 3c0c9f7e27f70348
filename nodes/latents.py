"""LATENT values: materialising EmptyLatent's lazy latents, masks, and cheap previews.

LATENT is a dict: {"samples": [B, C, h, w] float tensor already multiplied by the VAE scaling
factor, optional "noise_mask": [B, 1, h, w] (1 = repaint)}. EmptyLatent gives
{"samples": None, "width", "height", "batch_size"}: it has no model, so UNetDenoise fills in
the model's latent channels and VAE factor.
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from nodeforge.core.errors import NodeError

# Linear latent -> RGB approximations (ComfyUI's published factors) for step previews.
_SD_RGB = [[0.3512, 0.2297, 0.3227], [0.3250, 0.4974, 0.2350], [-0.2829, 0.1762, 0.2721], [-0.2120, -0.2616, -0.7177]]
_XL_RGB = [[0.3651, 0.4232, 0.4341], [-0.2533, -0.0042, 0.1068], [0.1076, 0.1111, -0.0362], [-0.3165, -0.2492, -0.2188]]


def latent_shape(latent: dict[str, Any], channels: int, factor: int) -> tuple[int, int, int, int]:
    """[B, C, h, w] of a latent; a lazy one is checked against the model's VAE factor."""
    if latent.get("samples") is not None:
        return tuple(latent["samples"].shape)  # type: ignore[return-value]
    for field in ("width", "height"):
        if latent[field] % factor:
            raise NodeError(f"{field} {latent[field]} is not a multiple of this model's VAE factor {factor}; "
                            f"use a multiple of {factor} such as {latent[field] // factor * factor or factor}",
                            field=field)
    return (latent["batch_size"], channels, latent["height"] // factor, latent["width"] // factor)


def other_shape(width: int, height: int, target_width: int, target_height: int) -> bool:
    """Whether width x height has another aspect ratio than the target's (more than 2% off): what the
    pack warns of when it stretches a mask or crops a control image to fit. A side of 0 is never."""
    if not (width and height and target_width and target_height):
        return False
    return abs(width * target_height - height * target_width) > 0.02 * width * target_height


def warn_if_stretched(mask: torch.Tensor, height: int, width: int, what: str) -> None:
    """Tell the user (the running node's warning) when a MASK is not the shape of what it masks
    (`what`, width x height pixels): it is stretched to fit, which ComfyUI does without a word."""
    from nodeforge.core.context import current_context

    mh, mw = mask.shape[-2:]
    if not other_shape(mw, mh, width, height):
        return
    ctx = current_context()
    if ctx is not None:
        ctx.warn(f"the mask is {mw}x{mh} but {what} is {width}x{height}: the mask is stretched to that shape and "
                 "may miss what it was painted over; give a mask of the same shape")


def warn_if_latent_cropped(ctx: Any, latent_2: torch.Tensor, latent_1: torch.Tensor, factor: int) -> None:
    """Tell the user (the running node's warning) when LatentAdd, LatentSubtract or LatentBlend brings
    latent_2 of another aspect to latent_1's shape: its centre is cropped, which ComfyUI does without
    a word. Sizes in image pixels (latent pixels x the VAE factor)."""
    (h2, w2), (h1, w1) = (tuple(int(n) * factor for n in t.shape[-2:]) for t in (latent_2, latent_1))
    if ctx is not None and other_shape(w2, h2, w1, h1):
        ctx.warn(f"latent_2 is {w2}x{h2} but latent_1 is {w1}x{h1}: latent_2's centre is cropped to that shape and "
                 f"resized, so its edges are lost; give latents of one shape (crop or upscale latent_2 to "
                 f"{w1}x{h1} first)")



def warn_if_batches_differ(ctx: Any, latent_2: torch.Tensor, latent_1: torch.Tensor, result: int) -> None:
    """Tell the user (the running node's warning) when LatentAdd, LatentSubtract or LatentBlend pairs
    batches of two sizes: the shorter is repeated, or latent_2's items past latent_1's batch are
    dropped, which ComfyUI does without a word. `result` is the batch the node gives."""
    b2, b1 = int(latent_2.shape[0]), int(latent_1.shape[0])
    if ctx is None or b1 == b2:
        return
    if result < b2:
        done, fix = f"only latent_2's first {result} used", f"LatentFromBatch (length {result}) on latent_2"
    else:
        short = "latent_1" if b1 < result else "latent_2"
        done, fix = f"{short} repeated to {result}", f"RepeatLatentBatch on {short}"
    ctx.warn(f"latent_2 has a batch of {b2} but latent_1 has {b1}: the result has {result}, {done}; give latents "
             f"of one batch size ({fix} first)")


def resize_mask(mask: torch.Tensor, batch: int, height: int, width: int) -> torch.Tensor:
    """A MASK [B, H, W] (or [H, W]) as [batch, 1, height, width] in 0..1."""
    mask = mask.float()
    if mask.ndim == 4:
        mask = mask[:, 0]
    if mask.ndim == 2:
        mask = mask[None]
    mask = mask[:, None]
    if tuple(mask.shape[-2:]) != (height, width):
        mask = F.interpolate(mask, size=(height, width), mode="bilinear", align_corners=False)
    if mask.shape[0] != batch:
        mask = mask.repeat((batch + mask.shape[0] - 1) // mask.shape[0], 1, 1, 1)[:batch]
    return mask.clamp(0, 1)


def run_set_latent_mask(ctx: Any, latent: dict[str, Any], mask: torch.Tensor) -> dict[str, Any]:
    out = dict(latent)
    if latent.get("samples") is not None:
        b, _, h, w = latent["samples"].shape
        factor = latent.get("factor", 8)
        warn_if_stretched(mask, h * factor, w * factor, "the latent's image")
        out["noise_mask"] = resize_mask(mask, b, h, w)
    else:   # lazy latent: UNetDenoise resizes it once the latent size is known
        out["noise_mask"] = mask.float()
    return {"latent": out}


def preview_image(latents: torch.Tensor, family: str, own_rgb: Any = None) -> Any:
    """A small PIL image of the first latent without a VAE call: the model's own map
    (UNetModel.preview_rgb: its tiny decoder when it has one, else its linear map), else the
    family's linear table."""
    from PIL import Image

    x = latents[0].float()
    if own_rgb is not None and len(own_rgb) > 2 and own_rgb[2]:
        rgb = (_run_layers(x[None], own_rgb[2])[0].permute(1, 2, 0) + 1) / 2
    elif own_rgb is not None and x.shape[0] == len(own_rgb[0]):
        factors, bias = (torch.tensor(v, device=x.device) for v in own_rgb)
        rgb = (torch.einsum("chw,cr->hwr", x, factors) + bias + 1) / 2
    elif x.shape[0] == 4:
        factors = torch.tensor(_XL_RGB if family == "sdxl" else _SD_RGB, device=x.device)
        rgb = torch.einsum("chw,cr->hwr", x, factors)
        rgb = (rgb + 1) / 2
    else:   # other channel counts: show the first three, normalised
        rgb = x[:3].permute(1, 2, 0)
        if rgb.shape[-1] < 3:
            rgb = rgb[..., :1].repeat(1, 1, 3)
        rgb = (rgb - rgb.min()) / (rgb.max() - rgb.min() + 1e-6)
    array = (rgb.clamp(0, 1) * 255).to(torch.uint8).cpu().numpy()
    return Image.fromarray(array)


def _run_layers(x: torch.Tensor, layers: tuple) -> torch.Tensor:
    """A latent_preview.json decoder (loading.preview_layers): convolutions, each with its
    padding and activation."""
    for weight, bias, padding, activation in layers:
        weight, bias = weight.to(x.device), bias.to(x.device)
        pad = weight.shape[-1] // 2
        if pad:
            x = F.pad(x, (pad, pad, pad, pad), mode="replicate" if padding == "replicate" else "constant")
        x = F.conv2d(x, weight, bias)
        if activation == "silu":
            x = F.silu(x)
        elif activation == "relu":
            x = F.relu(x)
    return x


def _batch_size(latent: dict[str, Any]) -> int:
    return latent["samples"].shape[0] if latent.get("samples") is not None else int(latent["batch_size"])


def _mask_items(mask: torch.Tensor, count: int) -> torch.Tensor:
    """A noise mask with one item per latent item (a shorter one repeats, as ComfyUI)."""
    if mask.shape[0] < count:
        mask = mask.repeat((count + mask.shape[0] - 1) // mask.shape[0], *([1] * (mask.ndim - 1)))
    return mask[:count]


def run_repeat_latent_batch(ctx: Any, latent: dict[str, Any], amount: int) -> dict[str, Any]:
    """ComfyUI's RepeatLatentBatch: the batch `amount` times over; copies of an item denoise with
    their own noise (batch_index continues past the last one)."""
    count = _batch_size(latent)
    out = dict(latent)
    if latent.get("samples") is not None:
        out["samples"] = latent["samples"].repeat(amount, 1, 1, 1)
    else:
        out["batch_size"] = count * amount
    mask = latent.get("noise_mask")
    if mask is not None and mask.shape[0] > 1:
        out["noise_mask"] = _mask_items(mask, count).repeat(amount, *([1] * (mask.ndim - 1)))
    indices = list(latent.get("batch_index") or range(count))
    step = max(indices) + 1
    out["batch_index"] = [i + step * k for k in range(amount) for i in indices]
    return {"latent": out}


def run_latent_from_batch(ctx: Any, latent: dict[str, Any], batch_index: int, length: int) -> dict[str, Any]:
    """ComfyUI's LatentFromBatch: `length` items from `batch_index` on (clipped to the batch); they
    keep their place in the batch for their noise, so item 2 of a 4-image batch re-run alone is
    the same image."""
    count = _batch_size(latent)
    start = min(count - 1, int(batch_index))
    length = min(count - start, int(length))
    out = dict(latent)
    if latent.get("samples") is not None:
        out["samples"] = latent["samples"][start:start + length].clone()
    else:
        out["batch_size"] = length
    mask = latent.get("noise_mask")
    if mask is not None and mask.shape[0] > 1:
        out["noise_mask"] = _mask_items(mask, count)[start:start + length].clone()
    out["batch_index"] = list(latent.get("batch_index") or range(count))[start:start + length]
    return {"latent": out}
