"""Flux's way to sample: the flow-matching phases (nodes/families/flow.py) with what Flux adds, as
FluxPipeline does it.

- Packed latents: the LATENT stays [B, 16, h, w] on the wires (VAE, masks, img2img as every
  family); the model call packs it into 2x2 patches ([B, h/2 x w/2, 64]) with their (0, row, col)
  position ids, and unpacks the velocity. Euler's step and the mask blend are per element, so
  stepping the unpacked latent is FluxPipeline's step.
- The resolution-dependent shift: mu grows linearly with the packed sequence length from
  base_shift at base_image_seq_len (256) to max_shift at max_image_seq_len (4096), and the
  sigmas linspace(1, 1/steps, steps) are time-shifted by exp(mu) (schedulers with
  use_dynamic_shifting; schnell's has none and keeps its fixed shift). ModelSamplingFlux fixes mu
  for a chosen width and height. Samplers without dynamic shifting get shift = exp(mu), the same
  curve: exp(mu) s / (exp(mu) s + 1 - s).
- The distilled guidance: dev's transformer reads a guidance value (FluxGuidance sets it on the
  prompt, 3.5 by default, FluxPipeline's `guidance_scale`); schnell ignores it.
- True CFG: with cfg above 1 the negative prompt is run too and the velocities are mixed
  (FluxPipeline's `true_cfg_scale` with a negative prompt); cfg 1 runs the positive prompt once.
- ControlNets (ControlNetApply with a Flux ControlNet): nodes/families/flux_control.py runs them
  each step and hands each side's block outputs to the transformer call.
- Reference latents (FLUX.1 Kontext; ReferenceLatent, nodes/edit_model.py): each reference of a side's
  prompt is packed and appended to the image tokens with its own position ids (frame index and
  offsets from the prompt's method; one reference: (1, row, col), FluxKontextPipeline's image ids),
  and only the generated tokens' velocity is kept. The shift follows the generated tokens alone.
- CFGNorm (nodes/cfg_norm.py) caps the guided prediction's clean image at the positive's norm.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from nodeforge.core.errors import NodeError

from ..edit_model import prompt_references, reference_positions
from ..sampling import DenoiseRequest, StartState
from .flow import FlowSampling, make_flow_scheduler, one_prompt

DEFAULT_GUIDANCE = 3.5      # FluxPipeline's guidance_scale and ComfyUI's default for Flux prompts
DYNAMIC = ("euler", "euler_ancestral")   # the samplers that take FluxPipeline's sigmas and mu


def calculate_shift(seq_len: int, config: dict[str, Any]) -> float:
    """mu for a packed sequence of `seq_len` tokens (FluxPipeline's calculate_shift)."""
    base_len, max_len = config.get("base_image_seq_len", 256), config.get("max_image_seq_len", 4096)
    base, top = config.get("base_shift", 0.5), config.get("max_shift", 1.15)
    slope = (top - base) / (max_len - base_len)
    return seq_len * slope + base - slope * base_len


def pack(latents: torch.Tensor) -> torch.Tensor:
    """[B, C, h, w] -> [B, h/2 x w/2, 4C] (FluxPipeline._pack_latents)."""
    b, c, h, w = latents.shape
    x = latents.view(b, c, h // 2, 2, w // 2, 2).permute(0, 2, 4, 1, 3, 5)
    return x.reshape(b, (h // 2) * (w // 2), c * 4)


def unpack(packed: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """The inverse of `pack` for a latent h x w."""
    b, _, width = packed.shape
    x = packed.view(b, h // 2, w // 2, width // 4, 2, 2).permute(0, 3, 1, 4, 2, 5)
    return x.reshape(b, width // 4, h, w)


def image_ids(h: int, w: int, device: Any, dtype: torch.dtype) -> torch.Tensor:
    """(0, row, col) of each packed patch (FluxPipeline._prepare_latent_image_ids)."""
    ids = torch.zeros(h // 2, w // 2, 3)
    ids[..., 1] += torch.arange(h // 2)[:, None]
    ids[..., 2] += torch.arange(w // 2)[None, :]
    return ids.reshape(-1, 3).to(device=device, dtype=dtype)


class FluxSampling(FlowSampling):
    """FlowSampling with Flux's sigmas (mu from the latent's size), packing and guidance."""

    def for_latent(self, model: Any, shape: tuple[int, int, int, int]) -> Any:
        config = model.scheduler_config
        if shape[2] % 2 or shape[3] % 2:
            raise NodeError(f"Flux packs the latent in 2x2 patches: its size ({shape[3]}x{shape[2]}) must be even; "
                            f"use a width and height divisible by {2 * model.vae_factor}", field="latent")
        mu = config.get("fixed_mu")
        if mu is None:
            mu = calculate_shift((shape[2] // 2) * (shape[3] // 2), config)
        return dataclasses.replace(model, scheduler_config=dict(config, mu=float(mu)))

    def make_scheduler(self, model: Any, request: DenoiseRequest) -> Any:
        mu = float(model.scheduler_config.get("mu", 0.0))
        config = {k: v for k, v in model.scheduler_config.items() if k not in ("mu", "fixed_mu")}
        dynamic = bool(config.get("use_dynamic_shifting"))
        if request.sampler in DYNAMIC:
            sched = make_flow_scheduler(request.sampler, request.schedule, config)
            sigmas = np.linspace(1.0, 1 / request.steps, request.steps)
            sched.set_timesteps(sigmas=sigmas, mu=mu if dynamic else None, device=model.device)
            return sched
        static = dict(config, use_dynamic_shifting=False)
        if dynamic:
            static["shift"] = math.exp(mu)
        sched = make_flow_scheduler(request.sampler, request.schedule, static)
        sched.set_timesteps(request.steps, device=model.device)
        return sched

    def predictor(self, model: Any, positive: Any, negative: Any, start: StartState,
                  request: DenoiseRequest) -> "FluxPredictor":
        return FluxPredictor.build(model, positive, negative, start.shape, request.cfg)


FLUX_SAMPLING = FluxSampling()


@dataclass
class FluxPredictor:
    """The transformer's velocity for the positive prompt, mixed with the negative's when cfg > 1
    (two calls, as FluxPipeline's true CFG)."""

    model: Any
    positive: dict[str, Any]
    negative: dict[str, Any] | None
    cfg: float
    img_ids: torch.Tensor
    controls: Any = None     # flux_control.FluxControls when a side carries ControlNets

    @staticmethod
    def build(model: Any, positive: Any, negative: Any, shape: tuple[int, ...], cfg: float) -> "FluxPredictor":
        pos = _side(positive, "positive", shape, model)
        neg = _side(negative, "negative", shape, model) if cfg > 1.0 else None
        controls = None
        if pos["control"] or (neg is not None and neg["control"]):
            if pos["references"] is not None or (neg is not None and neg["references"] is not None):
                raise NodeError("a Flux ControlNet cannot steer a model drawing with reference latents "
                                "(ReferenceLatent) here: remove the ControlNet or the reference", field="positive")
            from .flux_control import FluxControls

            controls = FluxControls(pos["control"], neg["control"] if neg is not None else None, model)
        return FluxPredictor(model, pos, neg, cfg, image_ids(shape[2], shape[3], model.device, model.dtype), controls)

    @staticmethod
    def _guidance(module: Any, side: dict[str, Any], packed: torch.Tensor) -> torch.Tensor | None:
        if not module.config.guidance_embeds:
            return None
        return torch.full([1], side["guidance"], device=packed.device, dtype=torch.float32).expand(packed.shape[0])

    def _call(self, side: dict[str, Any], packed: torch.Tensor, t: torch.Tensor, **control: Any) -> torch.Tensor:
        module, dtype = self.model.unet, self.model.dtype
        timestep = t.reshape(-1)[:1].expand(packed.shape[0]).to(packed.device, dtype)
        tokens, ids = packed.to(dtype), self.img_ids
        if side["references"] is not None:   # Kontext: the references' tokens after the generated ones
            tokens = torch.cat([tokens, side["references"]], dim=1)
            ids = torch.cat([ids, side["reference_ids"]], dim=0)
        out = module(hidden_states=tokens, timestep=timestep / 1000,
                     guidance=self._guidance(module, side, packed), pooled_projections=side["pooled"],
                     encoder_hidden_states=side["embeds"], txt_ids=side["txt_ids"], img_ids=ids,
                     return_dict=False, **control)[0]
        return out[:, :packed.shape[1]].float()

    def _controlnet(self, net: Any, side: dict[str, Any], packed: torch.Tensor, t: torch.Tensor,
                    cond: torch.Tensor, strength: float) -> tuple[Any, Any]:
        """One Flux ControlNet's (double, single) block outputs, on the transformer's device and dtype."""
        device, dtype = net.device, net.dtype
        timestep = t.reshape(-1)[:1].expand(packed.shape[0]).to(device, self.model.dtype)
        double, single = net.model(
            hidden_states=packed.to(device, dtype), controlnet_cond=cond.to(device, dtype), conditioning_scale=strength,
            timestep=timestep / 1000, guidance=self._guidance(net.model, side, packed), return_dict=False,
            pooled_projections=side["pooled"].to(device, dtype), encoder_hidden_states=side["embeds"].to(device, dtype),
            txt_ids=side["txt_ids"].to(device, dtype), img_ids=self.img_ids.to(device, dtype))
        moved = [[b.to(self.model.device, self.model.dtype) for b in part] if part else None for part in (double, single)]
        return moved[0], moved[1]

    def predict(self, latents: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        h, w = latents.shape[-2:]
        packed = pack(latents)
        sides = [self.positive] if self.negative is None else [self.positive, self.negative]
        extra = [{}] * len(sides) if self.controls is None else \
            self.controls.step(packed, t, (h, w), sides, self._controlnet)
        cond = guided = self._call(self.positive, packed, t, **extra[0])
        if self.negative is not None:
            uncond = self._call(self.negative, packed, t, **extra[1])
            guided = uncond + self.cfg * (cond - uncond)
        strength = getattr(self.model, "cfg_norm", None)
        if strength is None:
            return unpack(guided, h, w)
        from ..cfg_norm import normalized_velocity

        sigma = t.reshape(-1)[0].float() / 1000   # Flux's timestep is 1000 x sigma
        return normalized_velocity(unpack(guided, h, w), unpack(cond, h, w), latents.float(), sigma, strength)


def _side(conditioning: Any, field: str, shape: tuple[int, ...], model: Any) -> dict[str, Any]:
    entry = one_prompt(conditioning, field, "flux", "Flux", ("area", "area_fraction", "timestep_range"))
    device, dtype = model.device, model.dtype
    batch = shape[0]
    embeds = entry["embeds"].to(device, dtype).expand(batch, -1, -1)
    side = {"embeds": embeds, "pooled": entry["pooled"].to(device, dtype).expand(batch, -1),
            "txt_ids": torch.zeros(embeds.shape[1], 3, device=device, dtype=dtype),
            "guidance": float(entry.get("guidance", DEFAULT_GUIDANCE)), "control": tuple(entry.get("control", ())),
            "references": None, "reference_ids": None}
    refs, method = prompt_references(entry)
    if refs:
        side["references"], side["reference_ids"] = reference_tokens(refs, method, shape, field, model)
    return side


def reference_tokens(refs: list[torch.Tensor], method: str, shape: tuple[int, ...], field: str,
                     model: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """The packed tokens of a prompt's reference latents, in order, and their (index, row, col) ids."""
    if method == "index_timestep_zero":
        raise NodeError("reference_latents_method index_timestep_zero is for Qwen-Image-Edit 2511 and Flux 2 models; "
                        "a FLUX.1 (Kontext) model takes offset, index or uxo/uno: change the Reference Latent Method "
                        "node", field=field)
    tokens, ids = [], []
    places = reference_positions(method, (shape[2], shape[3]), [tuple(r.shape[-2:]) for r in refs])
    for ref, (index, row, col) in zip(refs, places):
        b, c, h, w = ref.shape
        if c != shape[1] or h % 2 or w % 2:
            raise NodeError(f"a reference latent ({c}x{h}x{w}) must have the model's {shape[1]} channels and an even "
                            f"size for Flux's 2x2 patches: encode the image with this model's VAE at a width and height "
                            f"divisible by {2 * model.vae_factor}", field=field)
        if b not in (1, shape[0]):
            raise NodeError(f"a reference latent has a batch of {b} for a batch of {shape[0]} images: give one "
                            "reference image or one per image", field=field)
        tokens.append(pack(ref.to(model.device, model.dtype)).expand(shape[0], -1, -1))
        place = image_ids(h, w, model.device, model.dtype)
        place[:, 0] = index
        place[:, 1] += row
        place[:, 2] += col
        ids.append(place)
    return torch.cat(tokens, dim=1), torch.cat(ids, dim=0)
