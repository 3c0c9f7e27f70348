"""Run functions of the Qwen-Image edit nodes (declared in nodes/families/specs.py): ComfyUI's
TextEncodeQwenImageEditPlus, the prompt of Qwen-Image-Edit 2509 / 2511 with up to three pictures, and
TextEncodeQwenImageEdit, the first Qwen-Image-Edit's with one (scaled to about 1024 x 1024 for both the vision
tower and the VAE, in the template without "Picture 1", as ComfyUI's node and QwenImageEditPipeline).

Each picture goes two ways, as ComfyUI's node sends it (and QwenImageEditPlusPipeline, which rounds the
sizes to 32 instead):
- to Qwen2.5-VL's vision tower, scaled ("area") to about 384 x 384 pixels with its aspect ratio kept, as
  "Picture N: <|vision_start|><|image_pad|><|vision_end|>" before the prompt (nodes/families/qwenimage_text.py);
- with a VAE linked, to the VAE, scaled to about 1024 x 1024 pixels with each side a multiple of 8; its
  latent is appended to the prompt's reference latents (as ReferenceLatent does), which the sampler puts
  beside the latent it draws (nodes/families/qwenimage_sampling.py). Encoded whole, not in tiles.
"""
from __future__ import annotations

import math
from typing import Any

import torch

from nodeforge.core.errors import NodeError

from ..wrappers import ClipModel

VISION_PIXELS = 384 * 384
VAE_PIXELS = 1024 * 1024


def area_scale(image: torch.Tensor, pixels: int, multiple: int = 1) -> torch.Tensor:
    """IMAGE [B, H, W, C] scaled ("area", adaptive averaging) to about `pixels`, its aspect ratio kept, each
    side rounded to `multiple` (ComfyUI's common_upscale with "area")."""
    h, w = image.shape[1:3]
    scale = math.sqrt(pixels / (w * h))
    width = max(multiple, round(w * scale / multiple) * multiple)
    height = max(multiple, round(h * scale / multiple) * multiple)
    if (width, height) == (w, h):
        return image
    x = torch.nn.functional.interpolate(image.permute(0, 3, 1, 2), size=(height, width), mode="area")
    return x.permute(0, 2, 3, 1).contiguous()


def _check_parts(clip: ClipModel, vae: Any, node: str) -> None:
    if clip.family != "qwenimage":
        raise NodeError(f"{node} needs Qwen-Image's CLIP (Qwen2.5-VL: TextEncoderLoader type qwen_image, or a "
                        f"Qwen-Image checkpoint), not a {clip.family} one; use TextEncoder", field="clip")
    if vae is not None and vae.latent_channels != 16:
        raise NodeError(f"this VAE makes {vae.latent_channels}-channel latents; Qwen-Image-Edit reads its own VAE's "
                        "(qwen_image_vae.safetensors)", field="vae")


def run_text_encode_qwen_image_edit(ctx: Any, clip: ClipModel, prompt: str, vae: Any = None,
                                    image: torch.Tensor | None = None) -> dict[str, Any]:
    from ..vae import encode
    from .qwenimage_text import encode_qwenimage

    _check_parts(clip, vae, "TextEncodeQwenImageEdit")
    pictures = [] if image is None else [area_scale(image[:1, :, :, :3], VAE_PIXELS)]
    entry = encode_qwenimage(clip, prompt, pictures, numbered=False)
    if vae is not None and pictures:
        entry["reference_latents"] = (encode(vae, pictures[0], tiles=False),)
    return {"conditioning": [entry]}


def run_text_encode_qwen_image_edit_plus(ctx: Any, clip: ClipModel, prompt: str, vae: Any = None,
                                         image1: torch.Tensor | None = None, image2: torch.Tensor | None = None,
                                         image3: torch.Tensor | None = None) -> dict[str, Any]:
    from ..vae import encode
    from .qwenimage_text import encode_qwenimage

    _check_parts(clip, vae, "TextEncodeQwenImageEditPlus")
    pictures = [image[:1, :, :, :3] for image in (image1, image2, image3) if image is not None]
    entry = encode_qwenimage(clip, prompt, [area_scale(p, VISION_PIXELS) for p in pictures])
    if vae is not None and pictures:
        entry["reference_latents"] = tuple(encode(vae, area_scale(p, VAE_PIXELS, 8), tiles=False) for p in pictures)
    return {"conditioning": [entry]}
