"""UNetDenoise: the denoising loop (txt2img, img2img with denoise < 1, inpainting with a mask).

Stages (ComfyUI's KSamplerAdvanced): `start_at_step`/`end_at_step` run a slice of a `steps`-step
schedule, `add_noise` off takes the latent as it is (the leftover noise of an earlier stage) and
`return_with_leftover_noise` off denoises fully at the slice's last step. Two stages of one model
(0..20 of 25 with leftover noise, then 20..25 without adding noise) give the single 25-step run:
the second stage starts the scheduler at step 20 and, for schedulers that draw step noise, moves
each item's generator past the draws of the skipped steps.

Noise comes from CPU generators seeded per batch item (seed + i), so a seed gives the same image
on any device and item i of a batch equals a batch of one with seed + i (ancestral schedulers
included: their step noise continues each item's generator).

The loop runs in named phases, as diffusers' pipelines do: plan the steps (scheduler, sigmas,
the slice of timesteps), prepare the start latents, build the guided predictor, then per step
the model call, the scheduler step, the mask blend and the progress report. Each phase is a
method of a `SamplingBehaviour`; the base class is the UNet families' (SD 1.x, 2.x, SDXL). A
model family that samples differently (flow matching: velocity prediction, shifted sigmas,
noising by interpolation) subclasses it, replaces the phases that differ, and its MODEL wrapper
names an instance as `sampling_behaviour` (docs/architecture.md, "A model family").
"""
from __future__ import annotations

import dataclasses
import inspect
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import torch

from nodeforge.core.errors import NodeError

from .conditioning import Guidance, inpainting_inputs
from .edit_model import check_reference_latents
from .latents import latent_shape, preview_image, resize_mask, warn_if_stretched
from .memory import check_denoise_fits, memory_advice
from .schedulers import SAMPLERS, make_scheduler
from .wrappers import UNetModel

SEED_SPACE = 2 ** 64


def seeded_generators(seed: int, batch: int, indices: Any = None) -> list[torch.Generator]:
    """One CPU generator per batch item (seed + i): the initial noise, then the ancestral noise. A
    latent cut from a batch (LatentFromBatch, RepeatLatentBatch) carries its items' `batch_index`,
    so item i gets seed + its index in the batch it came from, as ComfyUI keeps their noise."""
    if indices is None or len(indices) != batch:
        indices = range(batch)
    return [torch.Generator().manual_seed((seed + int(i)) % SEED_SPACE) for i in indices]


def initial_noise(shape: tuple[int, ...], generators: list[torch.Generator]) -> torch.Tensor:
    return torch.stack([torch.randn(shape[1:], generator=g) for g in generators])


@dataclass(frozen=True)
class DenoiseRequest:
    """What a denoise is asked for: the UNetDenoise node's params."""

    seed: int
    steps: int
    cfg: float
    sampler: str
    schedule: str
    denoise: float = 1.0
    start_at_step: int = 0
    end_at_step: int = 10000
    add_noise: bool = True
    return_with_leftover_noise: bool = False
    # Explicit noise levels (ComfyUI's SIGMAS, highest first) instead of steps/schedule/denoise and the
    # start/end steps: one step from each to the next; a last sigma above 0 leaves that much noise.
    sigmas: tuple[float, ...] | None = None
    # DualCFGGuider's second prompt (nodes/ip2p.py), guided over the negative by middle_cfg; cfg then
    # guides the positive over it.
    middle: Any = None
    middle_cfg: float = 1.0

    def has_work(self) -> bool:
        """False when no step runs (denoise 0, or a start at or past the end): the latent passes through."""
        if self.sigmas is not None:
            return len(self.sigmas) > 1
        return self.denoise > 0 and self.start_at_step < min(self.end_at_step, self.steps)


@dataclass(frozen=True)
class StepPlan:
    """The steps of one run: the scheduler set to `steps` and the slice of its timesteps this run takes."""

    scheduler: Any
    timesteps: Any          # the timesteps this run steps through, in order
    next_timestep: Any      # the one after the slice when the run keeps its leftover noise, else None
    steps: int
    start: int              # the first step of `steps` this run takes (denoise and start_at_step)
    end: int                # the step it stops before
    leftover: bool          # it stops early and returns the leftover noise (a next stage goes on)

    @property
    def total(self) -> int:
        return len(self.timesteps)

    def ends_cut_clean(self, i: int) -> bool:
        """Step i is the last of a schedule cut short that must still end clean (no leftover noise)."""
        return i + 1 == self.total and self.end < self.steps and not self.leftover


def differential_mask(mask: torch.Tensor, plan: StepPlan, i: int, strength: float) -> torch.Tensor:
    """Differential diffusion's mask for step i (ComfyUI's DifferentialDiffusion): 1 where the mask is at
    least the step's place between the run's first timestep (1) and its end (0: timestep 0, or the one
    after a slice that keeps leftover noise), else 0; a strength between 0 and 1 mixes that with the mask
    as it is (0 and 1 alike give the thresholded mask, as ComfyUI's)."""
    first = float(plan.timesteps[0])
    cut = plan.leftover and plan.next_timestep is not None and plan.next_timestep.numel() > 0
    end = float(plan.next_timestep.reshape(-1)[0]) if cut else 0.0
    place = (float(plan.timesteps[i]) - end) / (first - end) if first != end else 0.0
    binary = (mask >= place).to(mask.dtype)
    return strength * binary + (1 - strength) * mask if 0 < strength < 1 else binary


@dataclass(frozen=True)
class StartState:
    """Where the steps start from, and what the mask blend and the stepping need of the start."""

    shape: tuple[int, int, int, int]     # [B, C, h, w]
    generators: list[torch.Generator]    # one per item; the step noise continues them
    noise: torch.Tensor                  # the initial noise, on the model's device
    original: torch.Tensor | None        # the input latent (zeros for an empty one that is needed)
    mask: torch.Tensor | None            # [B, 1, h, w] on the model's device, 1 = denoise
    latents: torch.Tensor                # the noised start
    differential: float | None = None    # DifferentialDiffusion's strength on the mask (None: off)


class Predictor(Protocol):
    def predict(self, x: torch.Tensor, t: Any) -> torch.Tensor:
        """The guided model output for the model inputs `x` at timestep `t`, in what the scheduler steps on."""


class SamplingBehaviour:
    """How a model family samples, phase by phase. This base is the UNet families': epsilon or
    v prediction stepped by the diffusers scheduler of the sampler table, noising by the
    scheduler's `add_noise`, classifier-free guidance by `Guidance`. A family replaces the
    phases that differ by overriding them; `denoise_latent` calls them in order."""

    # -- phase 1: sigmas / timesteps -------------------------------------------------------
    def make_scheduler(self, model: Any, request: DenoiseRequest) -> Any:
        """The scheduler for the request's sampler and schedule, its timesteps set for `steps`."""
        sched = make_scheduler(request.sampler, request.schedule, model.scheduler_config, request.seed)
        try:
            sched.set_timesteps(request.steps, device=model.device)
        except ValueError as exc:   # e.g. LCM refuses more steps than it was distilled for
            raise NodeError(f"{request.sampler} cannot run {request.steps} steps: {exc}", field="steps") from None
        return sched

    def plan_steps(self, model: Any, request: DenoiseRequest) -> StepPlan:
        """The slice of the schedule this run takes: (1 - denoise) of it skipped, then start/end_at_step."""
        if request.sigmas is not None:
            return self.plan_sigmas(model, request)
        sched = self.make_scheduler(model, request)
        steps = request.steps
        start = steps - min(max(int(steps * request.denoise), 1), steps)       # skip the first (1 - denoise)
        start = max(start, request.start_at_step)
        end = min(request.end_at_step, steps)
        leftover = end < steps and request.return_with_leftover_noise
        # PNDM's schedule has one timestep more than steps x order (it repeats an early one): a run to
        # the end takes it too, as diffusers' pipelines do (without it PLMS stops one step short).
        stop = len(sched.timesteps) if end == steps else end * sched.order
        timesteps = sched.timesteps[start * sched.order:stop]
        next_timestep = sched.timesteps[stop:stop + 1] if leftover else None
        if hasattr(sched, "set_begin_index"):
            sched.set_begin_index(start * sched.order)
        return StepPlan(sched, timesteps, next_timestep, steps, start, end, leftover)

    def for_latent(self, model: Any, shape: tuple[int, int, int, int]) -> Any:
        """The model as it samples a latent of `shape`: a family whose sigmas depend on the image
        size (Flux's resolution-dependent shift) returns a copy that says so; the base: unchanged."""
        return model

    # Samplers whose scheduler steps from one sigma to the next with nothing else fixed by its own
    # spacing, so it can take any sigmas (the others interleave or follow timesteps).
    custom_sigma_samplers: tuple[str, ...] = ("euler", "euler_ancestral", "lms", "dpmpp_2m", "dpmpp_2m_sde",
                                              "deis", "uni_pc_bh2")

    def plan_sigmas(self, model: Any, request: DenoiseRequest) -> StepPlan:
        """The steps through explicit sigmas: the sampler's scheduler set for as many steps, then its
        sigmas and timesteps replaced by these (a 0 appended when the last is above 0: the run stops
        one step before it and keeps the leftover noise)."""
        if request.sampler not in self.custom_sigma_samplers:
            raise NodeError(f"{request.sampler} cannot step through given sigmas on this model; use one of "
                            f"{', '.join(self.custom_sigma_samplers)}, or BasicScheduler's sigmas", field="sampler")
        values = torch.tensor(request.sigmas, dtype=torch.float32)
        taken = len(values) - 1
        full = values if float(values[-1]) == 0.0 else torch.cat([values, values.new_zeros(1)])
        sched = self.make_scheduler(model, dataclasses.replace(request, steps=len(full) - 1, sigmas=None))
        sched.sigmas = full.to(sched.sigmas.device, sched.sigmas.dtype)
        sched.timesteps = self.sigma_timesteps(sched, full[:-1]).to(sched.timesteps.device)
        if hasattr(sched, "set_begin_index"):
            sched.set_begin_index(0)
        leftover = taken < len(full) - 1
        next_timestep = sched.timesteps[taken:taken + 1] if leftover else None
        return StepPlan(sched, sched.timesteps[:taken], next_timestep, len(full) - 1, 0, taken, leftover)

    def sigma_timesteps(self, scheduler: Any, sigmas: torch.Tensor) -> torch.Tensor:
        """The model's timestep for each sigma: log-sigma interpolated over the training sigmas."""
        cumprod = scheduler.alphas_cumprod.double()
        log_sigmas = (((1 - cumprod) / cumprod) ** 0.5).log().numpy()
        found = np.interp(np.log(sigmas.double().clamp(min=1e-10).numpy()), log_sigmas, np.arange(len(log_sigmas)))
        return torch.from_numpy(found).float()

    def timestep_sigmas(self, model: Any, timesteps: torch.Tensor) -> torch.Tensor:
        """The model's sigma at each whole training timestep (SDTurboScheduler's levels)."""
        request = DenoiseRequest(seed=0, steps=1, cfg=1.0, sampler="euler", schedule="default")
        cumprod = self.make_scheduler(model, request).alphas_cumprod.double()[timesteps.long()]
        return ((1 - cumprod) / cumprod) ** 0.5

    # -- phase 2: start latents ------------------------------------------------------------
    def latent_shape(self, model: Any, latent: dict) -> tuple[int, int, int, int]:
        """[B, C, h, w] of the latent to denoise, checked against the model's channels."""
        shape = latent_shape(latent, model.latent_channels, model.vae_factor)
        if shape[1] != model.latent_channels:
            raise NodeError(f"the latent has {shape[1]} channels but this model expects {model.latent_channels}; "
                            "encode it with this model's VAE", field="latent")
        return shape

    def noised(self, scheduler: Any, original: torch.Tensor, noise: torch.Tensor, timestep: Any) -> torch.Tensor:
        """The clean latent `original` noised to `timestep` (a 1-element slice of the timesteps)."""
        return scheduler.add_noise(original, noise, timestep)

    def pure_noise(self, scheduler: Any, noise: torch.Tensor) -> torch.Tensor:
        """The start of a txt2img run: unit noise scaled to the schedule's first noise level."""
        return noise * scheduler.init_noise_sigma

    def start_latents(self, model: Any, plan: StepPlan, latent: dict, request: DenoiseRequest) -> StartState:
        """The noise (per-item generators, moved past a skipped stage's draws), the original and the mask."""
        shape = self.latent_shape(model, latent)
        batch, device = shape[0], model.device
        generators = seeded_generators(request.seed, batch, latent.get("batch_index"))
        noise = initial_noise(shape, generators).to(device)
        for _ in range(request.start_at_step * SAMPLERS[request.sampler].step_noise_draws):   # skipped draws
            initial_noise(shape, generators)
        original = latent["samples"].to(device, torch.float32) if latent.get("samples") is not None else None
        mask = latent.get("noise_mask")
        if original is None and (request.denoise < 1 or plan.start > 0 or mask is not None or not request.add_noise):
            original = torch.zeros(shape, device=device)   # what an empty latent stands for
        if not request.add_noise:
            latents = original.clone()
        elif original is None:
            latents = self.pure_noise(plan.scheduler, noise)
        else:
            latents = self.noised(plan.scheduler, original, noise, plan.timesteps[:1])
        if mask is not None:
            factor = latent.get("factor", 8)
            warn_if_stretched(mask, shape[2] * factor, shape[3] * factor, "the latent's image")
            mask = resize_mask(mask, batch, shape[2], shape[3]).to(device)
        differential = getattr(model, "differential_diffusion", None) if mask is not None else None
        return StartState(shape, generators, noise, original, mask, latents, differential)

    # -- phase 3: guidance / model call ----------------------------------------------------
    def predictor(self, model: Any, positive: dict, negative: dict, start: StartState,
                  request: DenoiseRequest) -> Predictor:
        """The classifier-free-guided model (an inpainting UNet also gets the mask and masked latent)."""
        shape = start.shape
        concat = inpainting_inputs(start.original, start.mask, shape) if model.is_inpainting else None
        return Guidance(model, positive, negative, shape[0], (shape[2], shape[3]), request.cfg, concat,
                        middle=request.middle, middle_cfg=request.middle_cfg)

    def model_input(self, scheduler: Any, latents: torch.Tensor, t: Any) -> torch.Tensor:
        """What the model is called on at timestep `t` (the scheduler's input scaling)."""
        return scheduler.scale_model_input(latents, t)

    # -- phase 4: step ---------------------------------------------------------------------
    def step_kwargs(self, scheduler: Any, start: StartState, request: DenoiseRequest) -> dict[str, Any]:
        """Keyword arguments of every `scheduler.step` call: the item generators continue into the
        steps (as diffusers' pipelines do), and the sampler row's own."""
        takes_generator = "generator" in inspect.signature(scheduler.step).parameters
        kwargs: dict[str, Any] = {"generator": start.generators} if takes_generator else {}
        kwargs.update(SAMPLERS[request.sampler].step_kwargs)
        return kwargs

    def step(self, plan: StepPlan, prediction: torch.Tensor, t: Any, latents: torch.Tensor,
             kwargs: dict[str, Any], clean: bool) -> torch.Tensor:
        """The latents after step `t`; `clean`: the step's prediction of the clean latent instead
        (the last step of a cut schedule; ComfyUI sets its last sigma to 0)."""
        result = plan.scheduler.step(prediction, t, latents, **kwargs)
        return self.denoised(plan, result, prediction, latents) if clean else result.prev_sample

    def denoised(self, plan: StepPlan, result: Any, prediction: torch.Tensor, latents: torch.Tensor) -> torch.Tensor:
        """The clean latent a step predicts from `prediction` at `latents` (before the step): the
        scheduler's own `pred_original_sample` (or `denoised`); the step's result where it has none."""
        return _denoised(result, result.prev_sample)

    # -- phase 5: mask blend ---------------------------------------------------------------
    def blend_mask(self, plan: StepPlan, start: StartState, latents: torch.Tensor, i: int) -> torch.Tensor:
        """After step i, keep the unmasked area on the original's noise trajectory."""
        if start.mask is None:
            return latents
        if i + 1 < plan.total:
            known = self.noised(plan.scheduler, start.original, start.noise, plan.timesteps[i + 1:i + 2])
        elif plan.leftover:
            known = self.noised(plan.scheduler, start.original, start.noise, plan.next_timestep)
        else:
            known = start.original
        mask = start.mask if start.differential is None else differential_mask(start.mask, plan, i, start.differential)
        return (1 - mask) * known + mask * latents

    # -- phase 6: callbacks / progress -----------------------------------------------------
    def report(self, ctx: Any, model: Any, i: int, total: int, latents: torch.Tensor) -> None:
        """Progress after step i with a preview (where a run is cancelled)."""
        ctx.progress(i + 1, total, preview_image(latents, model.family, model.preview_rgb))

    def run_steps(self, ctx: Any, model: Any, plan: StepPlan, start: StartState, predictor: Predictor,
                  request: DenoiseRequest) -> torch.Tensor:
        """The loop: model call, step, mask blend and progress for each timestep of the plan."""
        kwargs = self.step_kwargs(plan.scheduler, start, request)
        latents = start.latents
        ctx.progress(0, plan.total)
        with torch.inference_mode(), model.patched(), memory_advice():
            for i, t in enumerate(plan.timesteps):
                prediction = predictor.predict(self.model_input(plan.scheduler, latents, t), t)
                latents = self.step(plan, prediction, t, latents, kwargs, plan.ends_cut_clean(i))
                latents = self.blend_mask(plan, start, latents, i)
                self.report(ctx, model, i, plan.total, latents)
        return latents

    def output(self, model: Any, latent: dict, latents: torch.Tensor, start: StartState) -> dict[str, Any]:
        """The LATENT out: the input's other keys, the samples on the CPU, the VAE factor, the mask."""
        out = {k: v for k, v in latent.items() if k not in ("width", "height", "batch_size")}
        out["samples"] = latents.float().cpu()
        out["factor"] = model.vae_factor   # pixels per latent pixel, for LatentUpscale
        if start.mask is not None:
            out["noise_mask"] = start.mask.cpu()
        return out


UNET_SAMPLING = SamplingBehaviour()


def sampling_behaviour(model: Any) -> SamplingBehaviour:
    """The model's family's phases: its wrapper's `sampling_behaviour`, else the UNet families'."""
    return getattr(model, "sampling_behaviour", None) or UNET_SAMPLING


def denoise_latent(ctx: Any, *, model: Any, positive: dict, negative: dict, latent: dict,
                   request: DenoiseRequest, behaviour: SamplingBehaviour | None = None) -> dict[str, Any]:
    """Denoise `latent` with `model` guided by the prompts: the phases of the model's family in order
    (`behaviour`: those phases with some replaced, e.g. SamplerCustom's that keep the last clean latent)."""
    if not request.has_work():
        return latent
    family = behaviour or sampling_behaviour(model)
    check_reference_latents(model, positive, negative)   # a family that cannot read them would ignore them
    shape = family.latent_shape(model, latent)
    check_denoise_fits(model, shape, request.cfg, 3 if request.middle is not None else 2)   # before hours of swapping
    model = family.for_latent(model, shape)
    plan = family.plan_steps(model, request)
    start = family.start_latents(model, plan, latent, request)
    predictor = family.predictor(model, positive, negative, start, request)
    latents = family.run_steps(ctx, model, plan, start, predictor, request)
    return family.output(model, latent, latents, start)


def _denoised(result: Any, latents: torch.Tensor) -> torch.Tensor:
    """The step's prediction of the clean latent (ComfyUI sets the cut schedule's last sigma to 0)."""
    x0 = getattr(result, "pred_original_sample", None)
    if x0 is None:
        x0 = getattr(result, "denoised", None)
    return latents if x0 is None else x0.to(latents.dtype)


def run_unet_denoise(ctx: Any, unet: UNetModel, positive: dict, negative: dict, latent: dict, seed: int,
                     steps: int, cfg: float, sampler: str, schedule: str, denoise: float, start_at_step: int = 0,
                     end_at_step: int = 10000, add_noise: bool = True,
                     return_with_leftover_noise: bool = False) -> dict[str, Any]:
    request = DenoiseRequest(seed=seed, steps=steps, cfg=cfg, sampler=sampler, schedule=schedule, denoise=denoise,
                             start_at_step=start_at_step, end_at_step=end_at_step, add_noise=add_noise,
                             return_with_leftover_noise=return_with_leftover_noise)
    if not request.has_work():
        why = ("denoise is 0" if denoise <= 0 else
               f"start_at_step {start_at_step} is at or past the last step ({min(end_at_step, steps)})")
        ctx.warn(f"{why}: no step runs and the latent passes through unchanged; raise denoise (or lower "
                 "start_at_step) to draw")
    return {"latent": denoise_latent(ctx, model=unet, positive=positive, negative=negative, latent=latent,
                                     request=request)}
