"""InstructPixToPixConditioning and DualCFGGuider: editing an image by an instruction (InstructPix2Pix,
CosXL Edit), as ComfyUI's nodes of those names.

InstructPixToPixConditioning encodes the image with the VAE (its sides cut to the VAE's factor, centred, as
VAE Encode does) and puts the latent on every entry of both prompts ("concat_latent", with the VAE's scaling
factor and shift); its latent output is an empty latent of the image's size, to denoise from. An
InstructPix2Pix UNet (twice the latent's channels in: 8) gets each entry's image latent after the noisy
latent at every call, after the scheduler's input scaling: as diffusers' StableDiffusionInstructPix2Pix-
Pipeline, the VAE's own values (its latent distribution's mode), or on a model sampled as EDM
(ModelSamplingContinuousEDM: CosXL Edit) the scaled latent, as ComfyUI gives CosXL Edit. An entry without
an image (a plain prompt) gets zeros; a latent of another size is resized bilinearly to the frame. An IC-Light UNet
(nodes/iclight.py: 8 or 12 channels in) takes its foreground and background latents the same way, ICLightConditioning
having put them on the prompts already in the VAE's values (no "concat_scale"). Other UNets have no input for the
image and ignore it, as in ComfyUI.

DualCFGGuider guides by two prompts and a negative: with predictions n (negative), m (cond2) and p (cond1),
n + cfg_cond2_negative (m - n) + cfg_conds (p - m). With cond1 = the instruction and the image, cond2 = the
negative prompt and the image, negative = the negative prompt alone (no image: zeros), that is
InstructPix2Pix's guidance (diffusers' guidance_scale = cfg_conds, image_guidance_scale = cfg_cond2_negative).
The model's CFG extras (RescaleCFG, SelfAttentionGuidance, PerturbedAttentionGuidance) act on the inner CFG
of cond2 over the negative, as ComfyUI applies its CFG function there.
"""
from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F

from nodeforge.core.errors import NodeError

from .conditioning import entries

def run_instruct_pix_to_pix_conditioning(ctx: Any, positive: Any, negative: Any, vae: Any,
                                         pixels: torch.Tensor) -> dict[str, Any]:
    from .vae import encode

    samples = encode(vae, pixels)
    image = {"concat_latent": samples, "concat_scale": (float(vae.scaling_factor), float(vae.shift_factor or 0.0))}
    batch, _, height, width = samples.shape
    return {"positive": [dict(entry, **image) for entry in entries(positive)],
            "negative": [dict(entry, **image) for entry in entries(negative)],
            "latent": {"samples": None, "width": width * vae.factor, "height": height * vae.factor,
                       "batch_size": batch}}


def run_dual_cfg_guider(ctx: Any, unet: Any, cond1: Any, cond2: Any, negative: Any, cfg_conds: float,
                        cfg_cond2_negative: float) -> dict[str, Any]:
    from .custom_sampling import Guider

    if not hasattr(unet, "cfg_rescale"):
        raise NodeError(f"DualCFGGuider works on UNet models (SD 1.x, 2.x, XL) for now; this {unet.family} model is "
                        "guided another way: use CFG Guider", field="unet")
    return {"guider": Guider(unet, cond1, negative, float(cfg_conds), middle=cond2, middle_cfg=float(cfg_cond2_negative))}


def image_channels(model: Any) -> int:
    """How many channels of image latents the UNet takes after the noisy latent: InstructPix2Pix one latent's (twice
    the channels in), IC-Light one or two (nodes/iclight.py: fc 8 in, fbc 12); 0 for other UNets."""
    channels = getattr(model, "latent_channels", None)
    if channels is None or not hasattr(getattr(model, "unet", None), "config"):
        return 0
    extra = getattr(model, "in_channels", model.unet.config.in_channels) - channels
    return extra if extra > 0 and extra % channels == 0 else 0


def takes_image(model: Any) -> bool:
    """Whether the UNet takes image latents after the noisy one (InstructPix2Pix, IC-Light)."""
    return image_channels(model) > 0


def image_inputs(model: Any, units: list[Any], batch: int, frame: tuple[int, int]) -> dict[int, torch.Tensor] | None:
    """id(unit) -> the image latent [batch, C, h, w] an InstructPix2Pix or IC-Light UNet gets after the noisy latent
    for that unit (zeros for a prompt without one); None when the UNet takes no image."""
    extra = image_channels(model)
    if not extra:
        return None
    from .edm_sampling import EDMSampling

    edm = isinstance(getattr(model, "sampling_behaviour", None), EDMSampling)
    zeros = torch.zeros(batch, extra, *frame)
    out = {}
    for unit in units:
        image = unit.entry.get("concat_latent")
        if image is not None and image.shape[1] != extra:
            raise NodeError(f"the prompt carries {image.shape[1]} channels of image latents but this UNet takes {extra} "
                            "after the latent: an IC-Light fbc model needs ICLightConditioning's opt_background and an "
                            "fc model none; give the model the conditioning made for it",
                            field="positive" if unit.side else "negative")
        out[id(unit)] = zeros if image is None else _fitted(image, unit.entry.get("concat_scale"), edm, batch, frame)
    return out


def _fitted(samples: torch.Tensor, scale: Any, edm: bool, batch: int, frame: tuple[int, int]) -> torch.Tensor:
    """NodeForge's scaled latent as the UNet takes it (the VAE's values unless EDM), at the frame's size and batch."""
    image = samples.float().cpu()
    if not edm and scale is not None:
        factor, shift = scale
        image = image / factor + shift
    if tuple(image.shape[-2:]) != tuple(frame):
        image = F.interpolate(image, size=frame, mode="bilinear", align_corners=False)
    if image.shape[0] != batch:
        image = image.repeat(math.ceil(batch / image.shape[0]), 1, 1, 1)[:batch]
    return image
