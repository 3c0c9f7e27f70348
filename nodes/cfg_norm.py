"""CFGNorm (ComfyUI's advanced/guidance node): after classifier-free guidance, the guided prediction of
the clean image is scaled down, pixel by pixel, so that its norm over the latent channels does not
exceed the positive prompt's prediction's, then multiplied by the strength:

    x0' = x0_cfg * clamp(|x0_pos| / (|x0_cfg| + 1e-8), 0, 1) * strength      (norms over dim 1)

It acts on the clean-image predictions as ComfyUI's post-CFG functions do. Flow models predict a
velocity v at sigma (x0 = x - sigma v), so the family's guidance step converts, applies this and
converts back (`normalized_velocity`). With cfg 1 (one prompt) the guided prediction is the
positive one and only the strength scales it. The wrapper records the strength; the guidance step
applies it, so the input model never changes.
"""
from __future__ import annotations

import dataclasses
from typing import Any

import torch

from nodeforge.core.errors import NodeError

from .edit_specs import cfg_norm_refusal

def normalized_x0(denoised: torch.Tensor, cond_denoised: torch.Tensor, strength: float) -> torch.Tensor:
    """The guided clean-image prediction with its per-pixel channel norm capped at the positive's, times strength."""
    cond_norm = torch.linalg.vector_norm(cond_denoised, dim=1, keepdim=True)
    guided_norm = torch.linalg.vector_norm(denoised, dim=1, keepdim=True)
    scale = (cond_norm / (guided_norm + 1e-8)).clamp(min=0.0, max=1.0)
    return denoised * scale * strength


def normalized_velocity(guided: torch.Tensor, cond: torch.Tensor, latents: torch.Tensor, sigma: Any,
                        strength: float) -> torch.Tensor:
    """CFGNorm on a flow model's velocities at `latents` and noise level `sigma` (> 0)."""
    sigma = torch.as_tensor(sigma, dtype=guided.dtype, device=guided.device)
    x = latents.to(guided.dtype)
    x0 = normalized_x0(x - sigma * guided, x - sigma * cond, strength)
    return (x - x0) / sigma


def run_cfg_norm(ctx: Any, unet: Any, strength: float) -> dict[str, Any]:
    refusal = cfg_norm_refusal(getattr(unet, "family", None), unet.name)
    if refusal is not None:
        raise NodeError(refusal, field="unet")
    return {"unet": dataclasses.replace(unet, cfg_norm=float(strength))}
