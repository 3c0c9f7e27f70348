"""RescaleCFG: the CFG rescale of Lin et al. 2023 ("Common Diffusion Noise Schedules and Sample Steps
are Flawed", section 3.4), as diffusers' StableDiffusionPipeline applies it (`guidance_rescale`).

After guidance, x_cfg = uncond + cfg (cond - uncond) is scaled to the standard deviation of the
positive prediction, x_rescaled = x_cfg std(cond) / std(x_cfg) (over all dims but the batch), and
mixed back: multiplier x_rescaled + (1 - multiplier) x_cfg. Like diffusers it acts on the UNet's own
output (the noise for eps models, v for v-prediction models). ComfyUI's RescaleCFG rescales the
predictions converted to v-prediction form instead, so on eps models the two differ numerically
(on v-prediction models they are the same formula). The wrapper records the multiplier; the
guidance step (nodes/conditioning.py Guidance.predict) applies it, so the input model never changes.
"""
from __future__ import annotations

import dataclasses
from typing import Any

import torch

from nodeforge.core.errors import NodeError


def rescaled(guided: torch.Tensor, cond: torch.Tensor, multiplier: float) -> torch.Tensor:
    """The guided prediction with its per-item standard deviation pulled towards the positive's."""
    dims = list(range(1, guided.ndim))
    scaled = guided * (cond.std(dim=dims, keepdim=True) / guided.std(dim=dims, keepdim=True))
    return multiplier * scaled + (1 - multiplier) * guided


def run_rescale_cfg(ctx: Any, unet: Any, multiplier: float) -> dict[str, Any]:
    if not hasattr(unet, "cfg_rescale"):
        raise NodeError(f"RescaleCFG works on UNet models (SD 1.x, 2.x, XL); this {unet.family} model is guided "
                        "another way: remove the node", field="unet")
    return {"unet": dataclasses.replace(unet, cfg_rescale=float(multiplier))}
