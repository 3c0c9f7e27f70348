"""Stable Cascade's way to sample: the UNet families' phases (epsilon prediction stepped by the sampler
table's diffusers scheduler) on Würstchen's cosine schedule, with each stage's model call.

- Schedule: a 1000-step discrete schedule whose alphas' product is the cosine table at t = (i + 1) /
  1000 (cascade.alphas_cumprod), set exactly on the scheduler before it spaces its steps; "default" and
  "simple" space them 1000 / steps apart from the top, the pipelines' linspace(1, 0, steps + 1).
- Stage C's noise levels are shifted by 2 (ComfyUI's StableCascadeSampling: the log-SNR moved by
  -2 ln 2) on the samplers that step through sigmas; the model is told the unshifted timestep of each
  shifted sigma (log-sigma interpolation over the table). Stage B is unshifted.
- The model reads the timestep as the ratio t = (i + 1) / 1000 of the scheduler's (fractional) step i.
- A full-denoise start is the latent plus unit noise x sqrt(1 + sigma_max^2) (ComfyUI's max-denoise
  scaling; for an empty latent the pipelines' unit noise).
- Stage C reads the prompt's tokens, its pooled vector and the CLIP image embeddings unCLIPConditioning
  added (strength-weighted, one token each; zeros without: StableCascadePriorPipeline's); stage B reads
  the pooled vector and stage C's latent from StableCascade_StageB_Conditioning (zeros without, as the
  decoder pipeline's unconditional side). CFG as the pipelines': uncond + cfg (cond - uncond).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from nodeforge.core.errors import NodeError

from ..sampling import DenoiseRequest, SamplingBehaviour, StartState, StepPlan
from ..schedulers import make_scheduler
from .cascade import NUM_TRAIN_TIMESTEPS, alphas_cumprod, stage_of
from .flow import one_prompt

REFUSED = ("area", "area_fraction", "control", "timestep_range", "mask")


class CascadeSampling(SamplingBehaviour):
    """The UNet phases on the cosine schedule, with the stage's shift, start and model call."""

    def make_scheduler(self, model: Any, request: DenoiseRequest) -> Any:
        sched = make_scheduler(request.sampler, request.schedule, model.scheduler_config, request.seed)
        if hasattr(sched, "alphas_cumprod"):   # exact, not the float32 product of the betas
            sched.alphas_cumprod = alphas_cumprod().float()
        try:
            sched.set_timesteps(request.steps, device=model.device)
        except ValueError as exc:
            raise NodeError(f"{request.sampler} cannot run {request.steps} steps: {exc}", field="steps") from None
        shift = float(model.scheduler_config.get("_shift", 1.0))
        if shift != 1.0 and getattr(sched, "sigmas", None) is not None and request.sigmas is None:
            self._shift(sched, shift)
        return sched

    def _shift(self, sched: Any, shift: float) -> None:
        """The scheduler's sigmas moved to the shifted schedule at the same training steps, and its timesteps to
        the unshifted steps of those sigmas."""
        steps = sched.timesteps.double().cpu().numpy()
        table = alphas_cumprod(shift).numpy()
        cumprod = np.interp(steps, np.arange(NUM_TRAIN_TIMESTEPS), table)
        shifted = torch.from_numpy(((1 - cumprod) / cumprod) ** 0.5).float()
        sched.sigmas = torch.cat([shifted, shifted.new_zeros(1)]).to(sched.sigmas.device, sched.sigmas.dtype)
        sched.timesteps = self.sigma_timesteps(sched, shifted).to(sched.timesteps.device)

    def start_latents(self, model: Any, plan: StepPlan, latent: dict, request: DenoiseRequest) -> StartState:
        start = super().start_latents(model, plan, latent, request)
        if request.add_noise and plan.start == 0 and request.sigmas is None and start.original is not None \
                and start.mask is None:
            return dataclasses.replace(start, latents=start.original + start.noise * plan.scheduler.init_noise_sigma)
        return start

    def predictor(self, model: Any, positive: Any, negative: Any, start: StartState,
                  request: DenoiseRequest) -> "CascadePredictor":
        batch = start.shape[0]
        pos = stage_inputs(positive, "positive", model, batch)
        neg = stage_inputs(negative, "negative", model, batch) if request.cfg != 1.0 else None
        if "effnet" in pos:   # a side without stage C's latent reads zeros of the other's shape
            sides = [side for side in (pos, neg) if side is not None]
            shape = next((side["effnet"].shape for side in sides if side["effnet"] is not None),
                         (batch, int(model.unet.config.effnet_in_channels), 8, 8))
            for side in sides:
                if side["effnet"] is None:
                    side["effnet"] = torch.zeros(shape, device=model.device, dtype=model.dtype)
        return CascadePredictor(model, pos, neg, float(request.cfg))


CASCADE_SAMPLING = CascadeSampling()


@dataclass
class CascadePredictor:
    """The guided noise prediction of a stage C or stage B network (both sides in one batched call)."""

    model: Any
    positive: dict[str, torch.Tensor]
    negative: dict[str, torch.Tensor] | None
    cfg: float

    def predict(self, x: torch.Tensor, t: Any) -> torch.Tensor:
        model = self.model
        sides = [self.positive] + ([self.negative] if self.negative is not None else [])
        inputs = {k: torch.cat([side[k] for side in sides]) for k in self.positive}
        sample = x.to(model.dtype).repeat(len(sides), 1, 1, 1)
        step = torch.as_tensor(t, dtype=torch.float32).reshape(-1)[:1]
        ratio = ((step + 1) / NUM_TRAIN_TIMESTEPS).to(sample.device, model.dtype).expand(sample.shape[0])
        out = model.unet(sample=sample, timestep_ratio=ratio, return_dict=False, **inputs)[0].float()
        if self.negative is None:
            return out
        cond, uncond = out.chunk(2)
        return uncond + self.cfg * (cond - uncond)


def stage_inputs(conditioning: Any, field: str, model: Any, batch: int) -> dict[str, Any]:
    """One side's conditioning as the stage's network reads it, repeated to the latent's batch (stage B's
    "effnet" None where the side has no stage C latent)."""
    entry = one_prompt(conditioning, field, "cascade", "Stable Cascade", REFUSED, encoder="CLIP (its CLIP-G)")
    device, dtype = model.device, model.dtype
    config = model.unet.config
    inputs = {"clip_text_pooled": entry["pooled"][:, None]}
    if stage_of(model.unet) == "c":
        inputs["clip_text"] = entry["embeds"]
        inputs["clip_img"] = image_tokens(entry.get("unclip") or (), int(config.clip_image_in_channels), field)
    else:
        inputs["effnet"] = entry.get("stable_cascade_prior")
    return {k: None if v is None else _to_batch(v, batch, k, field).to(device, dtype) for k, v in inputs.items()}


def image_tokens(items: Any, width: int, field: str) -> torch.Tensor:
    """unCLIPConditioning's images as stage C's image tokens [1, n, width]: each embedding times its strength
    (noise augmentation is not used by Stable Cascade, as in ComfyUI); one zero token without images."""
    if not items:
        return torch.zeros(1, 1, width)
    rows = [embeds.float().reshape(-1, embeds.shape[-1])[None] * float(strength) for embeds, strength, *_ in items]
    tokens = torch.cat(rows, 1)
    if tokens.shape[-1] != width:
        raise NodeError(f"the CLIP vision embedding is {tokens.shape[-1]} wide but this stage C model reads "
                        f"{width}; encode the image with the stage C checkpoint's clip_vision (Stable Cascade "
                        "Checkpoint Loader's c_clip_vision)", field=field)
    return tokens


def _to_batch(value: torch.Tensor, batch: int, name: str, field: str) -> torch.Tensor:
    if value.shape[0] == batch:
        return value
    if batch % value.shape[0] == 0:
        return value.repeat(batch // value.shape[0], *([1] * (value.ndim - 1)))
    what = "stage C latent" if name == "effnet" else "prompt"
    raise NodeError(f"the {what} has a batch of {value.shape[0]} but the latent a batch of {batch}; give stage B a "
                    "latent of the same batch as stage C's (or a multiple of it)", field=field)
