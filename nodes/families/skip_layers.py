"""Skip-layer guidance for SD3/SD3.5 (ComfyUI's SkipLayerGuidanceSD3; diffusers'
StableDiffusion3Pipeline `skip_guidance_layers`).

While sigma is in the window, the positive prompt's velocity is computed a second time with the
listed MMDiT blocks skipped (the transformer's `skip_layers`), and the guided velocity moves away
from that weakened prediction: v = v_cfg + scale (v_positive - v_skipped). The window is given as
ComfyUI gives it, in percent of the model's sampling (0 = the start, sigma 1), turned into sigmas
with the model's shift at this node (ComfyUI's `percent_to_sigma`): it applies while
sigma_start >= sigma > sigma_end. The wrapper records the settings; the flow guidance step
(nodes/families/flow.py FlowGuidance.predict) applies them, so the input model never changes.
"""
from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from typing import Any

import torch

from nodeforge.core.errors import NodeError


@dataclass(frozen=True)
class SkipLayerGuidance:
    layers: tuple[int, ...]
    scale: float
    sigma_start: float
    sigma_end: float

    def applies(self, sigma: float) -> bool:
        return self.sigma_start >= sigma > self.sigma_end


def layer_numbers(text: str) -> tuple[int, ...]:
    """The block numbers in ComfyUI's layers text ("7, 8, 9"; any separators), each once, in order."""
    return tuple(dict.fromkeys(int(found) for found in re.findall(r"\d+", text)))


def percent_to_sigma(percent: float, shift: float) -> float:
    """The flow sigma `percent` of the way through sampling, with the model's shift (ComfyUI's rule)."""
    if percent <= 0.0:
        return 1.0
    if percent >= 1.0:
        return 0.0
    s = 1.0 - percent
    return shift * s / (1 + (shift - 1) * s)


def run_skip_layer_guidance_sd3(ctx: Any, unet: Any, layers: str, scale: float, start_percent: float,
                                end_percent: float) -> dict[str, Any]:
    if unet.family != "sd3":
        raise NodeError(f"{unet.name} is a {unet.family} model; SkipLayerGuidanceSD3 skips blocks of an SD3/SD3.5 "
                        "transformer: remove the node, or load an SD3 model", field="unet")
    numbers = layer_numbers(layers)
    blocks = int(unet.unet.config.num_layers)
    outside = [n for n in numbers if n >= blocks]
    if outside:
        raise NodeError(f"block {outside[0]} is not in {unet.name}, whose transformer has blocks 0-{blocks - 1}; "
                        "list block numbers below that (SD3.5 medium: 7, 8, 9)", field="layers")
    if scale == 0 or not numbers:      # nothing to do, as in ComfyUI: the same model
        return {"unet": unet}
    shift = float(unet.scheduler_config.get("shift", 1.0))
    settings = SkipLayerGuidance(numbers, float(scale), percent_to_sigma(start_percent, shift),
                                 percent_to_sigma(end_percent, shift))
    return {"unet": dataclasses.replace(unet, skip_layer_guidance=settings)}


def skip_layer_velocity(guidance: Any, latents: torch.Tensor, timestep: torch.Tensor,
                        blocks: Any) -> torch.Tensor | None:
    """The positive prompt's velocity with the model's skip-layer blocks left out, or None outside
    its window (`guidance`: the FlowGuidance; `blocks`: the positive's ControlNet residuals)."""
    settings = getattr(guidance.model, "skip_layer_guidance", None)
    if settings is None:
        return None
    sigma = float(timestep.reshape(-1)[0]) / float(guidance.model.scheduler_config.get("num_train_timesteps", 1000))
    if not settings.applies(sigma):
        return None
    # the positive as encoded, not padded to a longer negative's length (diffusers' original_prompt_embeds)
    pos, dtype = guidance.positive_alone or guidance.positive, guidance.model.dtype
    return guidance.model.unet(hidden_states=latents.to(dtype), timestep=timestep[:latents.shape[0]],
                               encoder_hidden_states=pos["embeds"], pooled_projections=pos["pooled"],
                               block_controlnet_hidden_states=blocks, skip_layers=list(settings.layers),
                               return_dict=False)[0].float()
