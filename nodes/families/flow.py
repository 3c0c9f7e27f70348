"""Flow-matching sampling (rectified flow: SD3/SD3.5; Flux next), the flow families' denoise.

The model predicts the velocity v = noise - x0 at sigma (timestep = 1000 x sigma); a noised
latent is the interpolation x = sigma x noise + (1 - sigma) x x0 (img2img and the inpainting
blend noise this way, not with a DDPM add_noise). Sigmas are shifted by the model's shift
(`shift` in its scheduler config; ModelSamplingSD3 changes it): sigma' = shift x s / (1 + (shift - 1) x s).

The samplers that can follow flow sigmas, as diffusers' flow schedulers (FLOW_SAMPLERS): euler
(FlowMatchEulerDiscreteScheduler), euler_ancestral (the same with stochastic sampling: predict
x0, re-noise to the next sigma with fresh noise), heun (FlowMatchHeunDiscreteScheduler),
dpmpp_2m / dpmpp_2m_sde (DPMSolverMultistepScheduler on flow sigmas, flow prediction) and uni_pc
(UniPCMultistepScheduler, the same). The others (DDIM, PNDM, LMS, ...) are built on a DDPM beta
schedule and cannot; `check_flow_pair` (nodes/families/flow_samplers.py, torch-free) gives the
reason, and UNetDenoise refuses such a pair at validate when its MODEL comes from a flow
checkpoint (nodeforge/core/facts.py; the run refuses it too, for models validation cannot see).

This mirrors StableDiffusion3Pipeline's loop (noise from one CPU generator per batch item,
seed + i, as the UNet family: item 0 equals diffusers' `Generator().manual_seed(seed)`); CFG
batches the negative and positive prompts as diffusers does (cfg <= 1 runs the positive only).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import torch

from nodeforge.core.errors import NodeError

from ..conditioning import entries
from ..loading import _from_pretrained, check_vocabulary
from ..sampling import DenoiseRequest, SamplingBehaviour, StartState, StepPlan
from .flow_samplers import FLOW_SAMPLERS, SIGMA_OVERRIDES, FlowSampler, check_flow_pair  # noqa: F401 (re-exported)

def make_flow_scheduler(sampler: str, schedule: str, model_config: dict[str, Any]) -> Any:
    import diffusers

    problem = check_flow_pair(sampler, schedule)
    if problem:
        name, _, message = problem.partition(": ")
        raise NodeError(message, field=name)
    kind = FLOW_SAMPLERS[sampler]
    shift = float(model_config.get("shift", 1.0))
    config = {"num_train_timesteps": int(model_config.get("num_train_timesteps", 1000)), kind.shift_key: shift}
    if kind.diffusers_class == "FlowMatchEulerDiscreteScheduler":
        config = {k: v for k, v in model_config.items() if not k.startswith("_")}
        config.update(SIGMA_OVERRIDES.get(schedule, {}))
    config.update(kind.overrides)
    return getattr(diffusers, kind.diffusers_class).from_config(config)


class FlowSampling(SamplingBehaviour):
    """The denoise loop's phases (nodes/sampling.py) for a flow model: the flow scheduler of the
    sampler with the model's shift, unit noise as the start, interpolation noising (start latent
    and mask blend), no input scaling, the transformer's guided velocity, and x - sigma v as the
    clean latent at the last step of a cut schedule."""

    def make_scheduler(self, model: Any, request: DenoiseRequest) -> Any:
        sched = make_flow_scheduler(request.sampler, request.schedule, model.scheduler_config)
        sched.set_timesteps(request.steps, device=model.device)
        return sched

    def plan_steps(self, model: Any, request: DenoiseRequest) -> StepPlan:
        # StableDiffusion3Img2ImgPipeline starts at int(steps - steps x strength) where the UNet
        # pipelines take int(steps x strength) steps: pass the base plan the step count that gives.
        start = int(max(request.steps - request.steps * request.denoise, 0))
        taken = (request.steps - start + 0.5) / request.steps
        return super().plan_steps(model, dataclasses.replace(request, denoise=taken))

    custom_sigma_samplers = ("euler", "euler_ancestral", "dpmpp_2m", "dpmpp_2m_sde", "uni_pc")

    def sigma_timesteps(self, scheduler: Any, sigmas: torch.Tensor) -> torch.Tensor:
        # A flow model's timestep is its sigma on the training scale (given sigmas are already shifted).
        return sigmas.float() * scheduler.config.num_train_timesteps

    def timestep_sigmas(self, model: Any, timesteps: torch.Tensor) -> torch.Tensor:
        shift = float(model.scheduler_config.get("shift", 1.0))
        s = timesteps.double() / float(model.scheduler_config.get("num_train_timesteps", 1000))
        return shift * s / (1 + (shift - 1) * s)

    def pure_noise(self, scheduler: Any, noise: torch.Tensor) -> torch.Tensor:
        return noise

    def noised(self, scheduler: Any, original: torch.Tensor, noise: torch.Tensor, timestep: Any) -> torch.Tensor:
        sigma = sigma_at(scheduler, timestep).to(original.device, original.dtype)
        return sigma * noise + (1.0 - sigma) * original

    def model_input(self, scheduler: Any, latents: torch.Tensor, t: Any) -> torch.Tensor:
        return latents

    def predictor(self, model: Any, positive: Any, negative: Any, start: StartState,
                  request: DenoiseRequest) -> "FlowGuidance":
        return FlowGuidance.build(model, positive, negative, start.shape[0], request.cfg)

    def denoised(self, plan: StepPlan, result: Any, prediction: torch.Tensor, latents: torch.Tensor) -> torch.Tensor:
        sched = plan.scheduler
        sigma = sched.sigmas[sched.step_index - 1].to(latents.device, latents.dtype)   # the step moved the index on
        return latents - sigma * prediction


FLOW_SAMPLING = FlowSampling()


def sigma_at(scheduler: Any, timestep: Any) -> torch.Tensor:
    """The sigma of a timestep of the schedule (its first occurrence; timestep = 1000 x sigma)."""
    t = timestep.reshape(-1)[0] if isinstance(timestep, torch.Tensor) else torch.tensor(float(timestep))
    found = (scheduler.timesteps.to(t.device) == t).nonzero()
    if len(found):
        return scheduler.sigmas[int(found[0, 0])]
    return t.float() / scheduler.config.num_train_timesteps


@dataclass
class FlowGuidance:
    """The transformer's guided velocity: one batched call over [negative, positive] (diffusers')."""

    model: Any
    positive: dict[str, Any]
    negative: dict[str, Any] | None
    cfg: float
    controls: Any = None      # sd3_control.FlowControls when a side carries ControlNets
    positive_alone: Any = None   # the positive before padding to the negative's length (skip-layer guidance)

    @staticmethod
    def build(model: Any, positive: Any, negative: Any, batch: int, cfg: float) -> "FlowGuidance":
        pos = _one_entry(positive, "positive", batch, model)
        neg = _one_entry(negative, "negative", batch, model) if cfg > 1.0 else None
        alone = pos
        if neg is not None and neg["embeds"].shape != pos["embeds"].shape:
            neg = dict(neg, embeds=_pad_tokens(neg["embeds"], pos["embeds"].shape[1]))
            pos = dict(pos, embeds=_pad_tokens(pos["embeds"], neg["embeds"].shape[1]))
        sides = [s["control"] for s in ([pos] if neg is None else [neg, pos])]
        controls = None
        if any(sides):
            from .sd3_control import FlowControls

            controls = FlowControls(sides, model)
        return FlowGuidance(model, pos, neg, cfg, controls, alone)

    def predict(self, latents: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        module, dtype = self.model.unet, self.model.dtype
        sides = [self.positive] if self.negative is None else [self.negative, self.positive]
        x = torch.cat([latents] * len(sides))
        embeds = torch.cat([s["embeds"] for s in sides])
        pooled = torch.cat([s["pooled"] for s in sides])
        timestep = t.expand(x.shape[0]).to(x.device)
        blocks = self.controls.residuals(x, timestep, embeds, pooled) if self.controls is not None else None
        out = module(hidden_states=x.to(dtype), timestep=timestep, encoder_hidden_states=embeds,
                     pooled_projections=pooled, block_controlnet_hidden_states=blocks, return_dict=False)[0].float()
        cond = guided = out.chunk(len(sides))[-1]
        if self.negative is not None:
            uncond = out.chunk(2)[0]
            guided = uncond + self.cfg * (cond - uncond)
        if getattr(self.model, "cfg_norm", None) is not None:   # CFGNorm (nodes/cfg_norm.py); timestep = 1000 sigma
            from ..cfg_norm import normalized_velocity

            sigma = t.reshape(-1)[0].float() / 1000
            guided = normalized_velocity(guided, cond, latents.float(), sigma, self.model.cfg_norm)
        if getattr(self.model, "skip_layer_guidance", None) is None:
            return guided
        from .skip_layers import skip_layer_velocity

        positive_blocks = None if blocks is None else [b.chunk(len(sides))[-1] for b in blocks]
        skipped = skip_layer_velocity(self, latents, timestep, positive_blocks)
        return guided if skipped is None else guided + self.model.skip_layer_guidance.scale * (cond - skipped)


def check_pipeline_folder(path: Any, transformer_class: str, pipeline_class: str, label: str,
                          parts: Any, fix: str) -> None:
    """A family's transformer in another pipeline's folder, or its folder without a part, in one line
    (`parts`: (folder, what it is) pairs; `fix`: what to do about a missing part)."""
    import json

    try:
        pipeline = json.loads((path / "model_index.json").read_text()).get("_class_name", "")
    except (OSError, ValueError):
        pipeline = ""
    if pipeline and not pipeline.startswith(pipeline_class.removesuffix("Pipeline")):
        raise NodeError(f"{path.name}/transformer is a {transformer_class} but model_index.json says {pipeline}: "
                        f"the folder mixes two models; copy the whole {pipeline_class} folder (or the whole "
                        f"{pipeline} folder) again", field="checkpoint")
    for part, what in parts:
        if not (path / part).is_dir():
            raise NodeError(f"{path.name} is not a complete {label} model: it has no '{part}' folder ({what}); "
                            f"{fix}", field="checkpoint")


def folder_text_encoders(path: Any, dtype: torch.dtype, parts: tuple[tuple[str, Any, Any], ...],
                         checked: tuple[str, ...]) -> dict[str, Any]:
    """A flow family's text encoders and tokenizers from its diffusers folder, keyed as the folders are:
    `parts` pairs each suffix ("", "_2", ...) with its encoder and tokenizer classes; each tokenizer in
    `checked` must hold a vocabulary (transformers 5 builds an empty one when its files are missing)."""
    found = {f"text_encoder{s}": _from_pretrained(encoder, path, f"text_encoder{s}", torch_dtype=dtype)
             for s, encoder, _ in parts}
    for s, _, tokenizer in parts:
        found[f"tokenizer{s}"] = tokenizer.from_pretrained(str(path), subfolder=f"tokenizer{s}", local_files_only=True)
    for part in checked:
        check_vocabulary(path, part, found[part])
    return found


T5_TOKENIZER_HUB = "google/t5-v1_1-xxl"   # T5-XXL's tokenizer, which Flux and SD3 share


def t5_tokenizer(path: Any, part: str, cfg: Any, whose: str, field: str) -> Any:
    """T5-XXL's tokenizer for the single file `path`: its `part` folder (Flux's tokenizer_2, SD3's
    tokenizer_3) in the config folder `cfg` or beside the file, where it is not empty, else the one in
    the Hugging Face cache; offline without one, a refusal saying where to put `whose` folder."""
    from transformers import AutoTokenizer

    for folder in (cfg / part, path.parent / part):
        if folder.is_dir() and any(folder.iterdir()):
            return AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    try:
        return AutoTokenizer.from_pretrained(T5_TOKENIZER_HUB, local_files_only=True)
    except Exception:
        raise NodeError(f"{path.name}: no T5 tokenizer was found offline; put {whose} {part} folder (from its "
                        f"diffusers repository) beside the file or in {path.stem}.config/, or download "
                        f"'{T5_TOKENIZER_HUB}' into the Hugging Face cache once", field=field) from None


def check_clip_family(clip: Any, family: str, node: str, model: str) -> None:
    """A family's own text encoder node (TextEncoderFlux, TextEncoderSD3) refuses another family's CLIP."""
    if clip.family != family:
        raise NodeError(f"{node} needs {model} CLIP, not a {clip.family} one; use TextEncoder", field="clip")


REFUSED_PROMPT_KEYS = {"area": "area", "area_fraction": "area", "timestep_range": "timestep range", "mask": "mask",
                       "control": "ControlNet"}


def one_prompt(conditioning: Any, field: str, family: str, label: str, refused: tuple[str, ...],
               encoder: str = "CLIP", pooled: bool = True) -> dict[str, Any]:
    """The one plain prompt a transformer family takes per side: one entry, none of the `refused`
    keys (area, mask, ...), encoded for `family` (with its pooled projection when `pooled`)."""
    found = entries(conditioning)
    if len(found) != 1 or any(k in found[0] for k in refused):
        what = "/".join(dict.fromkeys(REFUSED_PROMPT_KEYS[k] for k in refused))
        raise NodeError(f"{label} models take one plain prompt per side for now (got {len(found)} entries or an "
                        f"{what}); encode one prompt with TextEncoder", field=field)
    entry = found[0]
    if entry.get("family") != family or (pooled and entry.get("pooled") is None):
        raise NodeError(f"this prompt was encoded for a {entry.get('family')} model; encode it with this {label} "
                        f"model's {encoder}", field=field)
    return entry


def _one_entry(conditioning: Any, field: str, batch: int, model: Any) -> dict[str, Any]:
    entry = one_prompt(conditioning, field, "sd3", "SD3", ("area", "area_fraction", "timestep_range", "mask"))
    device, dtype = model.device, model.dtype
    return {"embeds": entry["embeds"].to(device, dtype).expand(batch, -1, -1),
            "pooled": entry["pooled"].to(device, dtype).expand(batch, -1), "control": tuple(entry.get("control", ()))}


def _pad_tokens(embeds: torch.Tensor, length: int) -> torch.Tensor:
    """A longer prompt's partner padded with zero tokens so the two batch together."""
    if embeds.shape[1] >= length:
        return embeds
    return torch.cat([embeds, embeds.new_zeros(embeds.shape[0], length - embeds.shape[1], embeds.shape[2])], 1)
