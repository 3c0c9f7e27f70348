"""Z-Image's way to sample: the flow-matching phases with Flux's sigmas (nodes/families/flux_sampling.py)
and Z-Image's own model call, as ZImagePipeline does it.

- Sigmas: linspace(1, 1/steps, steps) through the model's FlowMatchEulerDiscreteScheduler, which
  shifts them by its fixed `shift` (Z-Image-Turbo: 3.0, no dynamic shifting; ModelSamplingSD3 /
  ComfyUI's ModelSamplingAuraFlow change it). Other flow samplers take the same shift.
- The LATENT stays [B, 16, h, w] on the wires; the transformer patchifies it itself (2x2 patches, so
  h and w must be even) and takes a list of [16, 1, h, w] frames and a list of prompts of their own
  lengths (no padding tokens: nodes/families/zimage_text.py).
- The model's timestep is 1 - sigma ((1000 - t) / 1000) and it predicts x0 - noise: the velocity the
  scheduler steps on is its negation.
- CFG: with cfg above 1 the negative prompt is run in the same call (positives first, as the
  pipeline batches them) and mixed as pos + (cfg - 1) (pos - neg), which is ZImagePipeline's
  `guidance_scale` = cfg - 1 (the pipeline's 0 is NodeForge's and ComfyUI's cfg 1: no negative).
- NAG (nodes/families/nag.py, NormalizedAttentionGuidance on the MODEL) runs the negative prompt in the
  call at any cfg and guides the image tokens' attention in the main layers by it.
- Fun ControlNets (nodes/families/zimage_control.py) applied to the MODEL run in each model call on the
  same inputs, as ZImageControlNetPipeline runs them; their outputs go into the transformer's layers.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from nodeforge.core.errors import NodeError

from ..sampling import DenoiseRequest, StartState
from .flow import one_prompt
from .flux_sampling import FluxSampling
from .nag import guided_attention


class ZImageSampling(FluxSampling):
    """FluxSampling's sigmas with Z-Image's model call."""

    def for_latent(self, model: Any, shape: tuple[int, int, int, int]) -> Any:
        if shape[2] % 2 or shape[3] % 2:
            raise NodeError(f"Z-Image cuts the latent in 2x2 patches: its size ({shape[3]}x{shape[2]}) must be even; "
                            f"use a width and height divisible by {2 * model.vae_factor}", field="latent")
        return super().for_latent(model, shape)

    def predictor(self, model: Any, positive: Any, negative: Any, start: StartState,
                  request: DenoiseRequest) -> "ZImagePredictor":
        pos = _prompt(positive, "positive", model)
        # NAG (nodes/families/nag.py) guides by the negative prompt at any cfg, when there is one
        guides = (getattr(model, "normalized_attention", None) is not None and negative is not None
                  and negative is not positive)
        neg = _prompt(negative, "negative", model) if request.cfg > 1.0 or guides else None
        return ZImagePredictor(model, pos, neg, float(request.cfg))


ZIMAGE_SAMPLING = ZImageSampling()


@dataclass
class ZImagePredictor:
    """The velocity for the positive prompt, guided by the negative's when cfg > 1 (one batched call)."""

    model: Any
    positive: torch.Tensor            # [tokens, width]
    negative: torch.Tensor | None
    cfg: float
    calls: int = 0                    # model calls so far this run (TimestepNoise counts them)

    def predict(self, latents: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        settings = getattr(self.model, "timestep_noise", None)
        self.calls += 1
        model_t = (1000 - t.reshape(-1)[:1].to(latents.device)) / 1000     # the model's timestep: 1 - sigma
        if settings is not None:
            from .timestep_noise import noisy_velocity

            told = lambda s: self.velocity(latents, torch.tensor([1.0 - s], device=latents.device))  # noqa: E731
            noisy = noisy_velocity(settings, told, latents, float(t.reshape(-1)[0]) / 1000, self.calls)
            if noisy is not None:
                return noisy
        return self.velocity(latents, model_t)

    def velocity(self, latents: torch.Tensor, model_t: torch.Tensor) -> torch.Tensor:
        """The velocity at the model's timestep `model_t` ([1]; 1 - the flow sigma)."""
        module, dtype = self.model.unet, self.model.dtype
        batch = latents.shape[0]
        prompts = [self.positive] * batch + ([self.negative] * batch if self.negative is not None else [])
        frames = latents.to(dtype).repeat(len(prompts) // batch, 1, 1, 1).unsqueeze(2)
        timestep = model_t.expand(len(prompts))
        frames = list(frames.unbind(0))
        controls = None
        if self.model.zimage_controls:
            from .zimage_control import block_samples

            controls = block_samples(self.model.zimage_controls, module, frames, timestep, prompts, batch)
        nag = getattr(self.model, "normalized_attention", None) if self.negative is not None else None
        image_tokens = (latents.shape[2] // 2) * (latents.shape[3] // 2)
        with guided_attention(module, nag, batch, image_tokens):
            out = module(frames, timestep, prompts, controlnet_block_samples=controls, return_dict=False)[0]
        pos = torch.stack([o.float() for o in out[:batch]])
        if self.negative is not None and self.cfg > 1.0:
            neg = torch.stack([o.float() for o in out[batch:]])
            pos = pos + (self.cfg - 1.0) * (pos - neg)
        return -pos.squeeze(2)


def _prompt(conditioning: Any, field: str, model: Any) -> torch.Tensor:
    entry = one_prompt(conditioning, field, "zimage", "Z-Image",
                       ("area", "area_fraction", "control", "timestep_range", "mask"),
                       encoder="CLIP (its Qwen3 text encoder)", pooled=False)
    return entry["embeds"][0].to(model.device, model.dtype)
