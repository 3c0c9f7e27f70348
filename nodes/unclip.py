"""CLIPVisionEncode and unCLIPConditioning: an image's CLIP embedding as a prompt (ComfyUI's unCLIP
and SDXL "Revision").

CLIPVisionEncode runs a CLIP vision encoder (CLIPVisionLoader's, nodes/ipadapter.py) on an image and
gives its outputs as a CLIP_VISION_OUTPUT: {"image_embeds" [B, P] (the projected pooled output),
"last_hidden_state", "penultimate_hidden_states" [B, T, W]}, on the CPU. The image is prepared by
the encoder's CLIPImageProcessor (the 8-bit image, shortest side to the encoder's size, bicubic,
centre crop, CLIP's mean and std: as diffusers' pipelines); crop "none" first stretches the whole
image to the encoder's square, as ComfyUI does. ComfyUI resizes with torch's antialiased bicubic
instead of PIL's, so the embeddings agree closely, not bit for bit.

unCLIPConditioning adds (image_embeds, strength, noise_augmentation) to every entry's "unclip" list
(chained nodes add more). The model reads them where it has a slot for an image embedding: an SDXL
UNet's pooled vector (`added_cond_kwargs["text_embeds"]`) becomes the sum over the list of strength x
the noise-augmented embeddings, as ComfyUI's SDXL does; the text's pooled vector is then not used.
Noise augmentation q-samples the embedding at level round(999 x noise_augmentation) of a 1000-step
squaredcos_cap_v2 schedule (Nichol and Dhariwal's cosine schedule) with Gaussian noise from a
generator seeded with 0; level 0 leaves the embedding as it is (ComfyUI's noise comes from the
sampler's seed and its level 0 still adds sqrt(beta_0) ~ 0.6% noise, so augmented values differ).
An SD 2.1 unCLIP model (-h, -l: loaded by unCLIP Checkpoint Loader or Load Checkpoint) reads them as its
UNet's class label: its own noise augmentor (nodes/unclip_model.py) makes it from the list as ComfyUI does
(each image augmented at its level and weighted, several summed and augmented again; zeros for a prompt
without images), and one image at strength 1 is diffusers' StableUnCLIPImg2ImgPipeline at that noise level.
Other UNets without such a slot (SD 1.x, SD 2.x) do not read them, as in ComfyUI.
"""
from __future__ import annotations

import math
from typing import Any

import torch

from nodeforge.core.errors import NodeError

CROPS = ("center", "none")
MAX_NOISE_LEVEL = 1000


def run_clip_vision_encode(ctx: Any, clip_vision: Any, image: torch.Tensor, crop: str = "center") -> dict[str, Any]:
    if crop not in CROPS:
        raise NodeError(f"unknown crop {crop!r}; choose one of {', '.join(CROPS)}", field="crop")
    encoder = clip_vision.model
    pixels = _pixels(clip_vision, image, crop).to(encoder.device, encoder.dtype)
    with torch.inference_mode():
        out = encoder(pixels, output_hidden_states=True)
    return {"clip_vision_output": {"image_embeds": out.image_embeds.float().cpu(),
                                   "last_hidden_state": out.last_hidden_state.float().cpu(),
                                   "penultimate_hidden_states": out.hidden_states[-2].float().cpu()}}


def _pixels(clip_vision: Any, image: torch.Tensor, crop: str) -> torch.Tensor:
    """The encoder's pixel values; crop 'none' stretches each image to the processor's square first."""
    if crop == "center":
        return clip_vision.pixels(image)
    from PIL import Image

    size = clip_vision.processor.crop_size
    frames = (image.detach().cpu().float().clamp(0, 1) * 255).round().to(torch.uint8).numpy()
    squares = [Image.fromarray(f).resize((size["width"], size["height"]), Image.BICUBIC) for f in frames]
    return clip_vision.processor(images=squares, return_tensors="pt").pixel_values


def run_unclip_conditioning(ctx: Any, conditioning: Any, clip_vision_output: dict[str, Any], strength: float,
                            noise_augmentation: float) -> dict[str, Any]:
    from .conditioning import entries

    item = (clip_vision_output["image_embeds"], float(strength), float(noise_augmentation))
    if strength == 0:
        return {"conditioning": entries(conditioning)}
    return {"conditioning": [dict(e, unclip=tuple(e.get("unclip", ())) + (item,)) for e in entries(conditioning)]}


def _alphas_cumprod() -> torch.Tensor:
    """The squaredcos_cap_v2 schedule's cumulative alphas (betas capped at 0.999), float64."""
    def alpha_bar(t: float) -> float:
        return math.cos((t + 0.008) / 1.008 * math.pi / 2) ** 2

    betas = [min(1 - alpha_bar((i + 1) / MAX_NOISE_LEVEL) / alpha_bar(i / MAX_NOISE_LEVEL), 0.999)
             for i in range(MAX_NOISE_LEVEL)]
    return torch.cumprod(1 - torch.tensor(betas, dtype=torch.float64), dim=0)


def augmented(embeds: torch.Tensor, noise_augmentation: float) -> torch.Tensor:
    """The embeddings q-sampled at the noise level the fraction names (level 0: unchanged)."""
    level = round((MAX_NOISE_LEVEL - 1) * float(noise_augmentation))
    if level <= 0:
        return embeds
    alpha = float(_alphas_cumprod()[level])
    noise = torch.randn(embeds.shape, generator=torch.Generator().manual_seed(0), dtype=torch.float32)
    return math.sqrt(alpha) * embeds.float() + math.sqrt(1 - alpha) * noise


def unclip_pooled(entry: dict[str, Any], width: int, field: str) -> torch.Tensor | None:
    """An SDXL entry's pooled vector from its unCLIP images: the sum of strength x the augmented
    embeddings (one row per image: several images add up), or None when the entry has none."""
    items = entry.get("unclip") or ()
    if not items:
        return None
    total = torch.zeros(1, width)
    for embeds, strength, noise in items:
        if embeds.shape[-1] != width:
            raise NodeError(f"the image embedding is {embeds.shape[-1]} wide but this SDXL model's pooled vector is "
                            f"{width}: encode the image with CLIP ViT-bigG (clip_vision_g.safetensors), which SDXL's "
                            "unCLIP (Revision) reads", field=field)
        total = total + strength * augmented(embeds, noise).float().sum(0, keepdim=True)
    return total


def class_labels(model: Any, group: list[Any]) -> torch.Tensor | None:
    """The class labels [units, 2D] of an SD 2.1 unCLIP UNet's call for a group of prompt units (each entry's
    unCLIP images through the model's noise augmentor; zeros without any); None for a UNet without a
    projection class embedding."""
    config = model.unet.config
    if getattr(config, "class_embed_type", None) != "projection" or getattr(config, "addition_embed_type", None):
        return None
    augmentor = getattr(model, "unclip", None)
    rows = []
    for unit in group:
        items = unit.entry.get("unclip") or ()
        field = "positive" if unit.side else "negative"
        if augmentor is not None:
            rows.append(augmentor.class_label(tuple(items), field))
        elif items:
            raise NodeError(f"{model.name}'s UNet reads an image embedding but it was loaded without its noise "
                            "augmentor (a diffusers folder needs image_normalizer/ and image_noising_scheduler/): "
                            "load the whole StableUnCLIPImg2ImgPipeline folder", field=field)
        else:
            rows.append(torch.zeros(1, int(config.projection_class_embeddings_input_dim)))
    return torch.cat(rows)
