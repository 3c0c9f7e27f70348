"""Resizing and padding of latents and images: hires fix, outpainting, inpainting with a grey fill.

Methods and defaults follow ComfyUI's nodes of the same names, so that imported graphs give the
same sizes: width/height 0 keeps the aspect ratio from the other side, "center" crops to the
target aspect before scaling, and sizes are rounded to whole latent or image pixels.
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from nodeforge.core.errors import NodeError

from .latents import other_shape, resize_mask, warn_if_batches_differ, warn_if_latent_cropped, warn_if_stretched
from .vae import encode, warn_if_cropped
from .wrappers import VAEModel

LATENT_FACTOR = 8   # pixels per latent pixel when a latent does not say (SD's VAEs)


def _interpolate(x: torch.Tensor, size: tuple[int, int], method: str) -> torch.Tensor:
    """[B, C, H, W] resized with one of the methods the scale nodes offer."""
    if tuple(x.shape[-2:]) == size:
        return x
    if method == "lanczos":
        return _lanczos(x, size)
    mode = {"nearest-exact": "nearest-exact", "bilinear": "bilinear", "bicubic": "bicubic",
            "area": "area"}[method]
    kwargs = {"align_corners": False} if mode in ("bilinear", "bicubic") else {}
    if mode in ("bilinear", "bicubic") and (size[0] < x.shape[-2] or size[1] < x.shape[-1]):
        kwargs["antialias"] = True
    return F.interpolate(x.float(), size=size, mode=mode, **kwargs)


def _lanczos(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    # PIL's Lanczos works on 8-bit images; the scale nodes take IMAGE values in 0..1.
    import numpy as np
    from PIL import Image

    out = []
    for item in x.clamp(0, 1):
        array = (item.permute(1, 2, 0).cpu().numpy() * 255).round().astype(np.uint8)
        image = Image.fromarray(array).resize((size[1], size[0]), Image.Resampling.LANCZOS)
        out.append(torch.from_numpy(np.asarray(image).astype(np.float32) / 255).permute(2, 0, 1))
    return torch.stack(out)


def _center_crop(x: torch.Tensor, width: int, height: int) -> torch.Tensor:
    """Crop [.., H, W] to the aspect ratio of width x height, keeping the centre."""
    h, w = x.shape[-2:]
    target = width / height
    if w / h > target:
        new_w = max(1, round(h * target))
        left = (w - new_w) // 2
        return x[..., :, left:left + new_w]
    new_h = max(1, round(w / target))
    top = (h - new_h) // 2
    return x[..., top:top + new_h, :]


def target_size(width: int, height: int, current: tuple[int, int]) -> tuple[int, int]:
    """(width, height) with a 0 side following the other side's aspect ratio (0 and 0: unchanged)."""
    cur_h, cur_w = current
    if width == 0 and height == 0:
        return cur_w, cur_h
    if width == 0:
        width = max(1, round(cur_w * height / cur_h))
    if height == 0:
        height = max(1, round(cur_h * width / cur_w))
    return width, height


def _factor(latent: dict[str, Any]) -> int:
    return int(latent.get("factor") or LATENT_FACTOR)


def scale_latent(latent: dict[str, Any], width: int, height: int, method: str, crop: str) -> dict[str, Any]:
    """A latent resized to an image size of width x height pixels."""
    factor = _factor(latent)
    samples = latent.get("samples")
    if samples is None:    # an EmptyLatent: nothing to resample, only its size changes
        width, height = target_size(width, height, (latent["height"], latent["width"]))
        return {**latent, "width": width, "height": height}
    width, height = target_size(width, height, (samples.shape[-2] * factor, samples.shape[-1] * factor))
    size = (max(1, height // factor), max(1, width // factor))
    if (size[1] * factor, size[0] * factor) != (width, height):
        from nodeforge.core.context import current_context

        ctx = current_context()
        if ctx is not None:    # a latent holds whole cells of `factor` pixels; ComfyUI rounds down without a word
            ctx.warn(f"{width}x{height} is not a multiple of {factor}, the size of a latent cell: the latent is "
                     f"scaled to {size[1] * factor}x{size[0] * factor}; choose a multiple of {factor}")
    if crop == "center":
        samples = _center_crop(samples, size[1], size[0])
    out = {**latent, "samples": _interpolate(samples, size, method)}
    if latent.get("noise_mask") is not None:
        out["noise_mask"] = resize_mask(latent["noise_mask"], samples.shape[0], *size)
    return out


def run_latent_upscale(ctx: Any, latent: dict[str, Any], upscale_method: str, width: int, height: int,
                       crop: str) -> dict[str, Any]:
    return {"latent": scale_latent(latent, width, height, upscale_method, crop)}


def run_latent_upscale_by(ctx: Any, latent: dict[str, Any], upscale_method: str,
                          scale_by: float) -> dict[str, Any]:
    factor = _factor(latent)
    samples = latent.get("samples")
    if samples is None:
        h, w = latent["height"], latent["width"]
    else:
        h, w = samples.shape[-2] * factor, samples.shape[-1] * factor
    return {"latent": scale_latent(latent, round(w * scale_by), round(h * scale_by), upscale_method, "disabled")}


def scale_image(image: torch.Tensor, width: int, height: int, method: str, crop: str) -> torch.Tensor:
    """IMAGE [B, H, W, C] resized to width x height (0 keeps the aspect ratio)."""
    width, height = target_size(width, height, tuple(image.shape[1:3]))
    x = image.permute(0, 3, 1, 2)
    if crop == "center":
        x = _center_crop(x, width, height)
    return _interpolate(x, (height, width), method).clamp(0, 1).permute(0, 2, 3, 1).contiguous()


def run_image_scale(ctx: Any, image: torch.Tensor, upscale_method: str, width: int, height: int,
                    crop: str) -> dict[str, Any]:
    return {"image": scale_image(image, width, height, upscale_method, crop)}


def run_image_scale_by(ctx: Any, image: torch.Tensor, upscale_method: str, scale_by: float) -> dict[str, Any]:
    h, w = image.shape[1:3]
    return {"image": scale_image(image, max(1, round(w * scale_by)), max(1, round(h * scale_by)),
                                 upscale_method, "disabled")}


def run_image_scale_to_total_pixels(ctx: Any, image: torch.Tensor, upscale_method: str, megapixels: float,
                                    resolution_steps: int = 1) -> dict[str, Any]:
    """ComfyUI's ImageScaleToTotalPixels: the aspect ratio kept, about megapixels x 1024 x 1024 pixels,
    each side rounded to a multiple of resolution_steps."""
    import math

    h, w = image.shape[1:3]
    scale = math.sqrt(int(megapixels * 1024 * 1024) / (w * h))
    steps = max(1, int(resolution_steps))
    width, height = max(steps, round(w * scale / steps) * steps), max(steps, round(h * scale / steps) * steps)
    return {"image": scale_image(image, width, height, upscale_method, "disabled")}


def max_dimension_size(width: int, height: int, largest: int) -> tuple[int, int]:
    """ComfyUI's ImageScaleToMaxDimension size: the longer side becomes `largest`, the shorter one keeps
    the aspect ratio (Python's round, halves to even; never below 1); a square gets largest x largest."""
    if height > width:
        return max(1, round(width / height * largest)), largest
    if width > height:
        return largest, max(1, round(height / width * largest))
    return largest, largest


def run_image_scale_to_max_dimension(ctx: Any, image: torch.Tensor, upscale_method: str,
                                     largest_size: int) -> dict[str, Any]:
    h, w = image.shape[1:3]
    width, height = max_dimension_size(w, h, largest_size)
    return {"image": scale_image(image, width, height, upscale_method, "disabled")}


def longer_edge_size(width: int, height: int, longer_edge: int) -> tuple[int, int]:
    """ComfyUI's ResizeImagesByLongerEdge size: the longer side becomes `longer_edge` (a square's height decides),
    the other keeps the aspect ratio cut down to a whole pixel (never below 1)."""
    if width > height:
        return longer_edge, max(1, int(height * (longer_edge / width)))
    return max(1, int(width * (longer_edge / height))), longer_edge


def run_resize_images_by_longer_edge(ctx: Any, image: torch.Tensor, longer_edge: int) -> dict[str, Any]:
    h, w = image.shape[1:3]
    width, height = longer_edge_size(w, h, longer_edge)
    return {"image": scale_image(image, width, height, "lanczos", "disabled")}


CONCAT_INPUTS = 8     # Image Concatenate's image inputs (image_1 .. image_8)


def _same_batch(first: torch.Tensor, second: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The shorter batch made as long as the other by repeating its last image (KJNodes' ImageConcanate)."""
    size = max(first.shape[0], second.shape[0])
    grow = lambda x: torch.cat([x, x[-1:].expand(size - x.shape[0], *x.shape[1:])]) if x.shape[0] < size else x
    return grow(first), grow(second)


def _same_channels(first: torch.Tensor, second: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """An image without the other's alpha channel gets an opaque one."""
    need = max(first.shape[-1], second.shape[-1])
    pad = lambda x: torch.cat([x, x.new_ones(*x.shape[:-1], need - x.shape[-1])], -1) if x.shape[-1] < need else x
    return pad(first), pad(second)


def concat_two(first: torch.Tensor, second: torch.Tensor, direction: str, match: bool,
               reference: tuple[int, ...]) -> torch.Tensor:
    """KJNodes' ImageConcanate: `second` beside `first` (right/left) or below/above it; with `match` it is first
    resized with Lanczos to the reference image's height (or width), its aspect ratio kept (cut to whole pixels)."""
    first, second = _same_batch(first, second)
    if match:
        height, width = second.shape[1:3]
        if direction in ("left", "right"):
            size = (int(reference[1] * (width / height)), reference[1])
        else:
            size = (reference[2], int(reference[2] / (width / height)))
        second = scale_image(second, size[0], size[1], "lanczos", "disabled")
    first, second = _same_channels(first, second)
    axis = 2 if direction in ("left", "right") else 1
    if first.shape[3 - axis] != second.shape[3 - axis]:
        side = "heights" if axis == 2 else "widths"
        raise NodeError(f"the images' {side} differ ({first.shape[3 - axis]} and {second.shape[3 - axis]} pixels); "
                        "turn match_image_size on", field="match_image_size")
    pair = (first, second) if direction in ("right", "down") else (second, first)
    return torch.cat(pair, dim=axis)


def run_image_concat(ctx: Any, inputcount: int, direction: str, match_image_size: bool,
                     **images: Any) -> dict[str, Any]:
    """image_1 .. image_<inputcount> joined in order (KJNodes' ImageConcatMulti): each next one against the first's
    size."""
    given = [images.get(f"image_{i}") for i in range(1, inputcount + 1)]
    missing = [f"image_{i}" for i, image in enumerate(given, 1) if image is None]
    if missing:
        raise NodeError(f"{missing[0]} is not connected but inputcount is {inputcount}: link an image to it or lower "
                        "inputcount", field=missing[0])
    result = given[0]
    for image in given[1:]:
        result = concat_two(result, image, direction, match_image_size, tuple(given[0].shape))
    return {"image": result}


MAX_FACTOR_SIDE = 8192   # the longest side QualityOfLifeSuit's factor nodes give (its MAX_RESOLUTION)


def nearest_multiple_of_8(side: float) -> float:
    """QualityOfLifeSuit's enforce_mul_of_64: a remainder below 4 is cut off, 4 or more rounds up."""
    left = side % 8
    return side - left if left < 4 else side + 8 - left


def _factored(side: int, factor: float, what: str, field: str) -> float:
    if factor <= 0 or side * factor < 1:
        raise NodeError(f"{field} {factor} makes the {what} {side * factor:g} pixels wide; use a factor that keeps "
                        f"at least one pixel (1: the same size)", field=field)
    return min(side * factor, MAX_FACTOR_SIDE)


def factor_image_size(width: int, height: int, width_factor: float, height_factor: float,
                      multiple_of_8: bool) -> tuple[int, int]:
    """QualityOfLifeSuit's image factor nodes: each side times its factor (at most 8192), rounded to a
    multiple of 8 (remainder below 4 down, else up) when asked, then cut to a whole pixel (int)."""
    w = _factored(width, width_factor, "image's width", "width_factor")
    h = _factored(height, height_factor, "image's height", "height_factor")
    if multiple_of_8:
        w, h = nearest_multiple_of_8(w), nearest_multiple_of_8(h)
    if int(w) < 1 or int(h) < 1:
        raise NodeError(f"the image of {width}x{height} scaled and rounded to a multiple of 8 is {int(w)}x{int(h)}; "
                        "use larger factors or turn multiple_of_8 off", field="width_factor")
    return int(w), int(h)


def run_image_scale_by_factors(ctx: Any, image: torch.Tensor, upscale_method: str, width_factor: float,
                               height_factor: float, multiple_of_8: bool = True, crop: str = "disabled") -> dict[str, Any]:
    h, w = image.shape[1:3]
    width, height = factor_image_size(w, h, width_factor, height_factor, multiple_of_8)
    return {"image": scale_image(image, width, height, upscale_method, crop)}


def factor_latent_size(width: int, height: int, width_factor: float, height_factor: float) -> tuple[int, int]:
    """QualityOfLifeSuit's latent factor nodes, in latent pixels: int(side x factor) (at most 8192), then to a
    multiple of 8 latent pixels (64 image pixels; remainder below 4 down, else up)."""
    w = nearest_multiple_of_8(int(_factored(width, width_factor, "latent's width", "width_factor")))
    h = nearest_multiple_of_8(int(_factored(height, height_factor, "latent's height", "height_factor")))
    if w < 1 or h < 1:
        raise NodeError(f"the latent of {width}x{height} latent pixels scaled and rounded to a multiple of 8 is "
                        f"{w}x{h}; use larger factors", field="width_factor")
    return w, h


def run_latent_scale_by_factors(ctx: Any, latent: dict[str, Any], upscale_method: str, width_factor: float,
                                height_factor: float, crop: str = "disabled") -> dict[str, Any]:
    factor = _factor(latent)
    samples = latent.get("samples")
    h, w = (latent["height"] // factor, latent["width"] // factor) if samples is None else samples.shape[-2:]
    width, height = factor_latent_size(int(w), int(h), width_factor, height_factor)
    return {"latent": scale_latent(latent, width * factor, height * factor, upscale_method, crop)}


def _zeros_like_empty(empty: dict[str, Any], channels: int, dtype: torch.dtype) -> torch.Tensor:
    """An EmptyLatent's lazy latent as the zeros ComfyUI's would be, with the other latent's channels."""
    factor = _factor(empty)
    return torch.zeros(int(empty["batch_size"]), channels, int(empty["height"]) // factor,
                       int(empty["width"]) // factor, dtype=dtype)


def run_latent_weighted_blend(ctx: Any, latent_1: dict[str, Any], latent_2: dict[str, Any], weight_1: float,
                              weight_2: float, width: int, height: int) -> dict[str, Any]:
    """deadinside's LatentWeightedBlendResize: both latents resized (torch's plain nearest) to
    height // 8 x width // 8 latent pixels, then w1 x latent_1 + w2 x latent_2 with the weights divided
    by their sum when it is above 0; latent_1's other keys are kept, its noise mask is not (as the pack's
    output has none). An empty latent is ComfyUI's zeros; two give an empty latent of the new size."""
    a, b = latent_1.get("samples"), latent_2.get("samples")
    size = (max(1, height // LATENT_FACTOR), max(1, width // LATENT_FACTOR))
    if a is None and b is None:
        return {"latent": {**latent_1, "width": size[1] * _factor(latent_1), "height": size[0] * _factor(latent_1)}}
    a = _zeros_like_empty(latent_1, b.shape[1], b.dtype) if a is None else a
    b = _zeros_like_empty(latent_2, a.shape[1], a.dtype) if b is None else b
    if a.shape[1] != b.shape[1]:
        raise NodeError(f"latent_1 has {a.shape[1]} channels and latent_2 {b.shape[1]}: they come from different "
                        "model families; blend latents of one family", field="latent_2")
    if a.shape[0] != b.shape[0] and 1 not in (a.shape[0], b.shape[0]):
        raise NodeError(f"latent_1 holds {a.shape[0]} latents and latent_2 {b.shape[0]}; give both the same batch "
                        "(or one a single latent)", field="latent_2")
    a = F.interpolate(a.float(), size=size, mode="nearest")
    b = F.interpolate(b.float(), size=size, mode="nearest")
    total = weight_1 + weight_2
    if total > 0:
        weight_1, weight_2 = weight_1 / total, weight_2 / total
    kept = {k: v for k, v in latent_1.items() if k not in ("noise_mask", "width", "height", "batch_size")}
    factor = _factor(latent_1) if latent_1.get("samples") is not None else _factor(latent_2)
    return {"latent": {**kept, "factor": factor, "samples": a * weight_1 + b * weight_2}}


def pad_for_outpaint(image: torch.Tensor, left: int, top: int, right: int, bottom: int,
                     feathering: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The image on a grey canvas grown by the margins, and the mask of what to paint (1 = new).

    Inside the original, the mask fades from 1 at a padded edge to 0 `feathering` pixels in
    (squared falloff), so the painted border blends into what was there.
    """
    b, h, w, c = image.shape
    canvas = torch.full((b, h + top + bottom, w + left + right, c), 0.5)
    canvas[:, top:top + h, left:left + w] = image
    mask = torch.ones(h + top + bottom, w + left + right)
    inner = torch.zeros(h, w)
    if feathering > 0 and (left or top or right or bottom):
        ys = torch.arange(h, dtype=torch.float32)[:, None].expand(h, w)
        xs = torch.arange(w, dtype=torch.float32)[None, :].expand(h, w)
        far = torch.full((h, w), float(feathering))
        distances = [d for d, padded in ((xs, left), (ys, top), (w - 1 - xs, right), (h - 1 - ys, bottom)) if padded]
        nearest = torch.minimum(torch.stack(distances).min(0).values, far)
        inner = ((feathering - nearest) / feathering).clamp(0, 1) ** 2
    mask[top:top + h, left:left + w] = inner
    return canvas, mask[None].repeat(b, 1, 1)


def run_image_pad_for_outpaint(ctx: Any, image: torch.Tensor, left: int, top: int, right: int, bottom: int,
                               feathering: int) -> dict[str, Any]:
    canvas, mask = pad_for_outpaint(image, left, top, right, bottom, feathering)
    return {"image": canvas, "mask": mask}


def grow_mask(mask: torch.Tensor, pixels: int) -> torch.Tensor:
    """A [B, 1, H, W] mask dilated by `pixels` (a square kernel), values kept in 0..1."""
    if pixels <= 0:
        return mask
    return F.max_pool2d(mask, kernel_size=2 * pixels + 1, stride=1, padding=pixels)


def run_vae_encode_for_inpaint(ctx: Any, vae: VAEModel, image: torch.Tensor, mask: torch.Tensor,
                               grow_mask_by: int) -> dict[str, Any]:
    """Encode with the area to repaint set to grey, so the model does not copy what was there."""
    b, h, w, _ = image.shape
    f = vae.factor
    nh, nw = h // f * f, w // f * f
    if nh == 0 or nw == 0:
        raise NodeError(f"the image ({w}x{h}) is smaller than the VAE factor {f}", field="image")
    top, left = (h - nh) // 2, (w - nw) // 2
    image = image[:, top:top + nh, left:left + nw, :3]
    warn_if_cropped(w, h, f)
    warn_if_stretched(mask, h, w, "the image")
    pixel_mask = resize_mask(mask, b, h, w)[:, :, top:top + nh, left:left + nw]
    grown = grow_mask(pixel_mask.round(), grow_mask_by)
    keep = (1 - grown.round()).permute(0, 2, 3, 1)
    grey = (image - 0.5) * keep + 0.5
    latents = encode(vae, grey)
    noise_mask = resize_mask(grown[:, 0], b, latents.shape[-2], latents.shape[-1])
    return {"latent": {"samples": latents, "noise_mask": noise_mask, "factor": f}}


def run_image_crop(ctx: Any, image: torch.Tensor, width: int, height: int, x: int, y: int) -> dict[str, Any]:
    """ComfyUI's ImageCrop: a width x height window from (x, y), the corner kept inside the image
    and the window cut at its edges."""
    h, w = image.shape[1:3]
    x, y = min(int(x), w - 1), min(int(y), h - 1)
    return {"image": image[:, y:y + int(height), x:x + int(width)].clone()}


def run_image_crop_at_position(ctx: Any, image: torch.Tensor, width: int, height: int, position: str,
                               x_offset: int, y_offset: int) -> dict[str, Any]:
    """ComfyUI_essentials' ImageCrop+: a window at most the image's size placed by `position` (a centre rounds
    half to even), moved by the offsets; its right/bottom edge is cut at the image's before a negative left/top
    is raised to 0, so a window moved off the top-left loses that part. x and y are where it starts."""
    oh, ow = image.shape[1:3]
    width, height = min(ow, int(width)), min(oh, int(height))
    x = 0 if "left" in position else ow - width if "right" in position else round((ow - width) / 2)
    y = 0 if "top" in position else oh - height if "bottom" in position else round((oh - height) / 2)
    x, y = x + int(x_offset), y + int(y_offset)
    x2, y2 = min(x + width, ow), min(y + height, oh)
    x, y = max(x, 0), max(y, 0)
    return {"image": image[:, y:y2, x:x2].clone(), "x": x, "y": y}


def run_resize_and_pad_image(ctx: Any, image: torch.Tensor, target_width: int, target_height: int,
                             padding_color: str, interpolation: str) -> dict[str, Any]:
    """ComfyUI's ResizeAndPadImage: scaled by the smaller of the two ratios (sides cut to whole pixels), centred
    (offsets rounded down) on a canvas of 1 (white) or 0 (black)."""
    batch, oh, ow, channels = image.shape
    scale = min(target_width / ow, target_height / oh)
    new_w, new_h = int(ow * scale), int(oh * scale)
    resized = scale_image(image, new_w, new_h, interpolation, "disabled")
    canvas = torch.full((batch, target_height, target_width, channels), 0.0 if padding_color == "black" else 1.0,
                        dtype=resized.dtype, device=resized.device)
    top, left = (target_height - new_h) // 2, (target_width - new_w) // 2
    canvas[:, top:top + new_h, left:left + new_w] = resized
    return {"image": canvas}


def run_resize_image_mask(ctx: Any, input: Any, resize_type: str, width: int, height: int, crop: str,
                          scale_method: str) -> dict[str, Any]:
    """ComfyUI's ResizeImageMaskNode as 'scale dimensions': an IMAGE [B, H, W, C] as Scale Image does it, a MASK
    [B, H, W] the same way channel for channel (0 and 0: unchanged)."""
    if not isinstance(input, torch.Tensor) or input.ndim not in (3, 4):
        raise NodeError("input takes images (IMAGE) or masks (MASK); link one of those", field="input")
    if int(width) == 0 and int(height) == 0:
        return {"resized": input}
    if input.ndim == 4:
        return {"resized": scale_image(input, width, height, scale_method, crop)}
    grey = input.float()[..., None].expand(*input.shape, 3)
    return {"resized": scale_image(grey, width, height, scale_method, crop)[..., 0].contiguous()}


def run_image_batch(ctx: Any, image1: torch.Tensor, image2: torch.Tensor) -> dict[str, Any]:
    """ComfyUI's ImageBatch: image2 after image1, resized to image1's size first (bilinear, centre
    crop to its aspect) when the sizes differ."""
    if image2.shape[1:3] != image1.shape[1:3]:
        h2, w2, h1, w1 = *image2.shape[1:3], *image1.shape[1:3]
        if other_shape(w2, h2, w1, h1):
            from nodeforge.core.context import current_context

            ctx = current_context()
            if ctx is not None:   # ComfyUI crops without a word
                ctx.warn(f"image2 is {w2}x{h2} but image1 is {w1}x{h1}: image2's centre is cropped to that shape "
                         "and resized, so its edges are lost; give images of one shape")
        image2 = scale_image(image2, image1.shape[2], image1.shape[1], "bilinear", "center")
    return {"image": torch.cat([image1, image2.to(image1.dtype)])}


def run_latent_blend(ctx: Any, latent_1: dict[str, Any], latent_2: dict[str, Any], blend_factor: float) -> dict[str, Any]:
    """ComfyUI's LatentBlend: latent_1 x f + latent_2 x (1 - f), latent_2 resized (bicubic, centre
    crop) to latent_1's size when they differ; latent_1's other keys (noise mask) are kept. An
    EmptyLatent's lazy latent is ComfyUI's zeros: beside a real latent it becomes zeros of that latent's
    channels (so blending an encoded image with an empty latent scales the image's latent), and two
    empty latents blend to latent_1's empty latent. A batch of 1 beside a longer one is repeated to it
    (warned of); two other batch sizes are refused."""
    a, b = latent_1.get("samples"), latent_2.get("samples")
    if a is None and b is None:
        return {"latent": dict(latent_1)}
    f = float(blend_factor)
    if b is None:
        return {"latent": {**latent_1, "samples": a * f}}
    if a is None:                       # zeros of latent_1's size: latent_2 resized to it, times 1 - f
        factor = _factor(latent_2)
        a = torch.zeros(int(latent_1["batch_size"]), b.shape[1], int(latent_1["height"]) // factor,
                        int(latent_1["width"]) // factor, dtype=b.dtype)
        latent_1 = {**{k: v for k, v in latent_1.items() if k not in ("width", "height", "batch_size")},
                    "factor": factor}
    _check_blend_batches(ctx, a, b)
    if a.shape != b.shape:
        warn_if_latent_cropped(ctx, b, a, _factor(latent_1))
        b = _interpolate(_center_crop(b, a.shape[-1], a.shape[-2]), tuple(a.shape[-2:]), "bicubic")
    return {"latent": {**latent_1, "samples": a * f + b * (1 - f)}}


def _check_blend_batches(ctx: Any, a: torch.Tensor, b: torch.Tensor) -> None:
    """A blend repeats a batch of 1 to the other's size (broadcasting, as ComfyUI), said as a warning;
    two other sizes cannot be paired, refused here rather than as torch's shape error."""
    if a.shape[0] != b.shape[0] and 1 not in (a.shape[0], b.shape[0]):
        raise NodeError(f"latent_2 has a batch of {b.shape[0]} but latent_1 has {a.shape[0]}: a blend pairs them "
                        f"item by item, or repeats a batch of 1; give latents of one batch size (RepeatLatentBatch "
                        f"or LatentFromBatch first)", field="latent_2")
    warn_if_batches_differ(ctx, b, a, max(a.shape[0], b.shape[0]))


def _to_batch(x: torch.Tensor, batch: int) -> torch.Tensor:
    if x.shape[0] < batch:
        x = x.repeat((batch + x.shape[0] - 1) // x.shape[0], *([1] * (x.ndim - 1)))
    return x[:batch]


def composite(destination: torch.Tensor, source: torch.Tensor, x: int, y: int, mask: torch.Tensor | None,
              multiplier: int, resize_source: bool) -> torch.Tensor:
    """ComfyUI's masked paste on [B, C, H, W]: source (resized to destination's size when asked,
    repeated to its batch) at (x, y) // multiplier, blended by the mask (resized bilinear to the
    source; all ones without one), cut at destination's edges."""
    if resize_source:
        source = F.interpolate(source, size=tuple(destination.shape[-2:]), mode="bilinear")
    source = _to_batch(source.to(destination.dtype), destination.shape[0])
    height, width = destination.shape[-2:]
    left, top = min(int(x), width * multiplier) // multiplier, min(int(y), height * multiplier) // multiplier
    visible_h, visible_w = min(height - top, source.shape[-2]), min(width - left, source.shape[-1])
    if mask is None:
        weight = torch.ones_like(source)
    else:
        weight = F.interpolate(mask.float().reshape(-1, 1, *mask.shape[-2:]), size=tuple(source.shape[-2:]),
                               mode="bilinear")
        weight = _to_batch(weight, source.shape[0])
    weight = weight[..., :visible_h, :visible_w]
    out = destination.clone()
    region = out[..., top:top + visible_h, left:left + visible_w]
    out[..., top:top + visible_h, left:left + visible_w] = weight * source[..., :visible_h, :visible_w] \
        + (1 - weight) * region
    return out


def run_image_composite_masked(ctx: Any, destination: torch.Tensor, source: torch.Tensor, x: int, y: int,
                               resize_source: bool, mask: torch.Tensor | None = None) -> dict[str, Any]:
    """ComfyUI's ImageCompositeMasked: paste source onto destination at (x, y) pixels through the mask."""
    out = composite(destination.permute(0, 3, 1, 2), source.permute(0, 3, 1, 2), x, y, mask, 1, resize_source)
    return {"image": out.permute(0, 2, 3, 1).contiguous()}


def run_latent_composite_masked(ctx: Any, destination: dict[str, Any], source: dict[str, Any], x: int, y: int,
                                resize_source: bool, mask: torch.Tensor | None = None) -> dict[str, Any]:
    """ComfyUI's LatentCompositeMasked: the same in latent space, x and y in image pixels (// the VAE factor)."""
    for field, latent in (("destination", destination), ("source", source)):
        if latent.get("samples") is None:
            raise NodeError("an empty latent has no values to paste yet; denoise or encode it first", field=field)
    out = composite(destination["samples"], source["samples"], x, y, mask, _factor(destination), resize_source)
    return {"latent": {**destination, "samples": out}}
