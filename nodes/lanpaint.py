"""LanPaint (scraed/LanPaint's LanPaint_KSampler; Zheng et al. 2025, "LanPaint: Training-Free Diffusion
Inpainting with Asymptotically Exact and Fast Conditional Sampling"): inpainting by Langevin dynamics.

Before each sampling step's model call, the latent "thinks" for a few iterations: in variance-preserving
form x_t = sqrt(abt) x0 + sqrt(1 - abt) noise it follows overdamped Langevin dynamics
dx = -A x dt + C dt + sqrt(2) dW, with the known area pulled towards the original (y) and the model's
clean image, the unknown area towards the model's clean image:

    x0_hat = x0(x_t)                                        where the mask repaints
    x0_hat = (1 + lambda) y - lambda x0_big(x_t)            where it is known
    C = (sqrt(abt) x0_hat - x_t) / (1 - abt) + A x_t,  A = 1 / (1 - abt)  (x (1 + lambda) where known)

x0_big is the clean image at the "big" guidance: the step's cfg for prompt mode "Image First", -0.5 for
"Prompt First" (1 for Flux models: their prompt alone). Each iteration is an exact step of the
linear part over dt = step size (0.2 unless set) with C held, C refreshed at the half step as LanPaint does (the
first iteration one full step). The number of iterations is LanPaint_NumSteps x (1 - abt), rounded (the
node's fixed MinStepFrac 1), and none at the last step. The known area starts each step at the
original noised to the step's level (as NodeForge's mask blend keeps it), and the step's clean image is
the model's where the mask repaints and the original where it is known. Noise levels follow the
model: a flow model's sigma s gives abt = (1 - s)^2 / ((1 - s)^2 + s^2); a UNet model's Euler-type
schedule (state x0 + sigma noise) gives abt = 1 / (1 + sigma^2). The mask is made binary (> 0.5), as
LanPaint does. Written from the paper's method and the package's documented behaviour (GPL-3 code read,
not copied).
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import torch

from nodeforge.core.errors import NodeError

from .sampling import DenoiseRequest, SamplingBehaviour, denoise_latent, sampling_behaviour
from .memory import memory_advice

LAMBDA, STEP_SIZE, BETA = 5.0, 0.2, 1.0      # LanPaint_KSampler's fixed Lambda, StepSize (the Advanced node's defaults) and Beta
# UNet schedulers whose state is x0 + sigma x noise (k-diffusion's), the form LanPaint's conversions take.
VE_SCHEDULERS = ("EulerDiscreteScheduler", "EulerAncestralDiscreteScheduler", "HeunDiscreteScheduler",
                 "LMSDiscreteScheduler", "KDPM2DiscreteScheduler", "KDPM2AncestralDiscreteScheduler")


@dataclass(frozen=True)
class LanPaintSettings:
    iterations: int          # LanPaint_NumSteps: Langevin iterations per step (at full noise)
    cfg_big: float | None    # the big guidance's cfg; None: the positive prompt alone (Flux)
    seed: int
    lam: float = LAMBDA      # LanPaint_Lambda: how strongly the known area is pulled to the original
    step_size: float = STEP_SIZE   # LanPaint_StepSize: each iteration's time step


def iterations_at(settings: LanPaintSettings, abt: float, i: int, total: int) -> int:
    """How many iterations step i of `total` runs: none at the last, else NumSteps x (1 - abt), rounded."""
    if total - i <= 1 or settings.iterations <= 0:
        return 0
    return max(0, round(settings.iterations * (1.0 - abt)))


def overdamped_step(x: torch.Tensor, dt: float, a: torch.Tensor, c: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """x after dt of dx = -A x dt + C dt + sqrt(2) dW with C held: exp(-A dt) x + (1 - exp(-A dt)) / A C plus
    Gaussian noise of variance 2 (1 - exp(-2 A dt)) / (2 A); `noise` is a standard normal draw."""
    k = -torch.expm1(-a * dt) / a
    k2 = -torch.expm1(-2 * a * dt) / (2 * a)
    return torch.exp(-a * dt) * x + k * c + noise * torch.sqrt((2.0 * k2).clamp(min=0.0))


@dataclass
class NoiseLevel:
    """One step's noise level in the forms LanPaint needs, and the conversions of the family's state."""

    abt: float               # alpha-bar: x_t = sqrt(abt) x0 + sqrt(1 - abt) noise
    vp_scale: float          # x_t = vp_scale x (the sampler's state)
    sigma: float             # the family's own: flow s, or the UNet schedule's sigma
    kind: str                # "flow", "epsilon" or "v_prediction"

    @staticmethod
    def of(model: Any, scheduler: Any, t: Any) -> "NoiseLevel":
        from .families.flow import sigma_at

        s = float(sigma_at(scheduler, t))
        if model.prediction_type == "flow":
            s = min(max(s, 0.0), 1.0)
            norm = math.sqrt((1 - s) ** 2 + s ** 2)
            return NoiseLevel((1 - s) ** 2 / norm ** 2, 1.0 / norm, s, "flow")
        return NoiseLevel(1.0 / (1.0 + s * s), 1.0 / math.sqrt(1.0 + s * s), s, model.prediction_type)

    def clean(self, x: torch.Tensor, prediction: torch.Tensor) -> torch.Tensor:
        """The clean latent a prediction at state x gives."""
        s = self.sigma
        if self.kind == "flow":
            return x - s * prediction
        if self.kind == "v_prediction":
            return x / (s * s + 1) - prediction * s / math.sqrt(s * s + 1)
        return x - s * prediction

    def prediction(self, x: torch.Tensor, clean: torch.Tensor) -> torch.Tensor:
        """The prediction at state x that gives this clean latent (the inverse of `clean`)."""
        s = self.sigma
        if self.kind == "v_prediction":
            return (x / (s * s + 1) - clean) * math.sqrt(s * s + 1) / s
        return (x - clean) / s


class LanPaintLoop:
    """The Langevin iterations of one sampling run: the family's predictors and the known area."""

    def __init__(self, family: SamplingBehaviour, model: Any, settings: LanPaintSettings, predictor: Any,
                 big: Any, known: torch.Tensor, original: torch.Tensor, device: Any) -> None:
        self.family, self.model, self.settings = family, model, settings
        self.predictor, self.big = predictor, big     # big: None when the big guidance is the step's own
        self.known, self.original = known, original
        self.generator = torch.Generator().manual_seed(int(settings.seed) % 2 ** 63)
        self.device = device

    def _clean(self, scheduler: Any, level: NoiseLevel, x: torch.Tensor, t: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """The clean latent at state x for the step's guidance and for the big guidance."""
        x_in = self.family.model_input(scheduler, x, t)
        x0 = level.clean(x, self.predictor.predict(x_in, t).to(x.dtype))
        if self.big is None:
            return x0, x0
        return x0, level.clean(x, self.big(x_in, t).to(x.dtype))

    def think(self, scheduler: Any, level: NoiseLevel, x: torch.Tensor, t: Any, n: int) -> torch.Tensor:
        """x after n Langevin iterations at this step's level (x in the sampler's form)."""
        m, y, lam, step = self.known, self.original, self.settings.lam, self.settings.step_size
        one_minus = max(1.0 - level.abt, 1e-8)
        a = (1.0 / one_minus) * (1 - m) + ((1.0 + lam) / one_minus) * m
        dt = step * (1 - m) + step * BETA * m
        root_abt = math.sqrt(level.abt)

        def drift(x_t: torch.Tensor) -> torch.Tensor:
            x0, x0_big = self._clean(scheduler, level, x_t / level.vp_scale, t)
            target = x0 * (1 - m) + ((1 + lam) * y - lam * x0_big) * m
            return (root_abt * target - x_t) / one_minus + a * x_t

        x_t, c = x * level.vp_scale, None
        for _ in range(n):
            if c is None:
                c = drift(x_t)
                x_t = overdamped_step(x_t, dt, a, c, self._noise(x_t))
                continue
            x_t = overdamped_step(x_t, dt / 2, a, c, self._noise(x_t))
            fresh = drift(x_t)
            x_t = x_t + (fresh - c) * dt
            x_t = overdamped_step(x_t, dt / 2, a, c, self._noise(x_t))
            c = fresh
        return x_t / level.vp_scale

    def _noise(self, like: torch.Tensor) -> torch.Tensor:
        return torch.randn(like.shape, generator=self.generator, dtype=torch.float32).to(like.device, like.dtype)


def lanpaint_behaviour(family: SamplingBehaviour, settings: LanPaintSettings) -> SamplingBehaviour:
    """The family's phases with LanPaint's iterations before each step's model call (where the latent
    has a mask; without one, the family's own loop)."""
    import copy

    class LanPaint(type(family)):  # type: ignore[misc, valid-type]
        big: Any = None

        def start_latents(self, model: Any, plan: Any, latent: dict, request: DenoiseRequest) -> Any:
            start = super().start_latents(model, plan, latent, request)
            if start.mask is None:
                return start
            return dataclasses.replace(start, mask=(start.mask > 0.5).to(start.mask.dtype), differential=None)

        def predictor(self, model: Any, positive: Any, negative: Any, start: Any, request: DenoiseRequest) -> Any:
            object.__setattr__(self, "big", _big_guidance(super().predictor, model, positive, negative, start,
                                                          request, settings))
            return super().predictor(model, positive, negative, start, request)

        def run_steps(self, ctx: Any, model: Any, plan: Any, start: Any, predictor: Any,
                      request: DenoiseRequest) -> torch.Tensor:
            if start.mask is None:
                return super().run_steps(ctx, model, plan, start, predictor, request)
            check_lanpaint_scheduler(model, plan.scheduler)
            known = 1 - start.mask
            loop = LanPaintLoop(self, model, settings, predictor, self.big, known, start.original,
                                start.latents.device)
            kwargs = self.step_kwargs(plan.scheduler, start, request)
            latents = start.latents
            ctx.progress(0, plan.total)
            with torch.inference_mode(), model.patched(), memory_advice():
                for i, t in enumerate(plan.timesteps):
                    level = NoiseLevel.of(model, plan.scheduler, t)
                    # the known area at this step's level (LanPaint's replace step; the blend keeps it so)
                    at_level = self.noised(plan.scheduler, start.original, start.noise, plan.timesteps[i:i + 1])
                    latents = latents * start.mask + at_level.to(latents.dtype) * known
                    n = iterations_at(settings, level.abt, i, plan.total)
                    if n:
                        latents = loop.think(plan.scheduler, level, latents, t, n)
                    prediction = predictor.predict(self.model_input(plan.scheduler, latents, t), t)
                    clean = level.clean(latents, prediction.to(latents.dtype)) * start.mask + start.original * known
                    latents = self.step(plan, level.prediction(latents, clean), t, latents, kwargs,
                                        plan.ends_cut_clean(i))
                    latents = self.blend_mask(plan, start, latents, i)
                    self.report(ctx, model, i, plan.total, latents)
            return latents

    painted = copy.copy(family)
    object.__setattr__(painted, "__class__", LanPaint)
    return painted


def check_lanpaint_scheduler(model: Any, scheduler: Any) -> None:
    """LanPaint's conversions take a flow model's state or a UNet schedule's x0 + sigma x noise."""
    if model.prediction_type == "flow":
        return
    if model.prediction_type not in ("epsilon", "v_prediction") or type(scheduler).__name__ not in VE_SCHEDULERS:
        raise NodeError(f"LanPaint on a UNet model steps in sigmas (x0 + sigma x noise): pick the sampler euler, "
                        f"euler_ancestral, heun, lms or dpm_2 (this one runs {type(scheduler).__name__})",
                        field="sampler")


def _big_guidance(build: Any, model: Any, positive: Any, negative: Any, start: Any, request: DenoiseRequest,
                  settings: LanPaintSettings) -> Any:
    """The big guidance's prediction function (x_in, t), or None where it is the step's own prediction:
    the positive prompt alone (cfg_big None), else negative + cfg_big x (positive - negative)."""
    if settings.cfg_big is not None and math.isclose(settings.cfg_big, request.cfg):
        return None
    alone = dataclasses.replace(request, cfg=1.0)
    pos = build(model, positive, negative, start, alone)
    if settings.cfg_big is None:
        return pos.predict
    neg = build(model, negative, negative, start, alone)
    scale = settings.cfg_big

    def predict(x: torch.Tensor, t: Any) -> torch.Tensor:
        uncond = neg.predict(x, t)
        return uncond + scale * (pos.predict(x, t) - uncond)
    return predict


def run_lanpaint_ksampler(ctx: Any, unet: Any, positive: Any, negative: Any, latent: dict, seed: int, steps: int,
                          cfg: float, sampler: str, schedule: str, denoise: float, lanpaint_steps: int,
                          prompt_mode: str, lanpaint_lambda: float = LAMBDA, lanpaint_step_size: float = STEP_SIZE,
                          start_at_step: int = 0, end_at_step: int = 10000, add_noise: bool = True,
                          return_with_leftover_noise: bool = False) -> dict[str, Any]:
    """LanPaint_KSampler (and its Advanced form's stages): UNetDenoise's run with LanPaint's iterations where the
    latent's mask repaints."""
    cfg_big = None if unet.family == "flux" else (float(cfg) if prompt_mode == "Image First" else -0.5)
    settings = LanPaintSettings(int(lanpaint_steps), cfg_big, int(seed), float(lanpaint_lambda),
                                float(lanpaint_step_size))
    if latent.get("noise_mask") is None:
        ctx.warn("the latent has no mask, so LanPaint has nothing to inpaint and samples as UNetDenoise does; "
                 "set one with Set Latent Noise Mask or VAE Encode (for Inpainting)")
    request = DenoiseRequest(seed=seed, steps=steps, cfg=cfg, sampler=sampler, schedule=schedule, denoise=denoise,
                             start_at_step=start_at_step, end_at_step=end_at_step, add_noise=add_noise,
                             return_with_leftover_noise=return_with_leftover_noise)
    behaviour = lanpaint_behaviour(sampling_behaviour(unet), settings)
    return {"latent": denoise_latent(ctx, model=unet, positive=positive, negative=negative, latent=latent,
                                     request=request, behaviour=behaviour)}


def run_lanpaint_sampler_custom_advanced(ctx: Any, noise: Any, guider: Any, sampler: Any, sigmas: Any, latent: dict,
                                         lanpaint_steps: int, prompt_mode: str, lanpaint_lambda: float = LAMBDA,
                                         lanpaint_step_size: float = STEP_SIZE) -> dict[str, Any]:
    """LanPaint_SamplerCustomAdvanced: SamplerCustomAdvanced with LanPaint's iterations (the guider's cfg as
    the step's guidance)."""
    from .custom_sampling import sample

    cfg_big = None if guider.model.family == "flux" else (float(guider.cfg) if prompt_mode == "Image First" else -0.5)
    settings = LanPaintSettings(int(lanpaint_steps), cfg_big, int(noise.seed), float(lanpaint_lambda),
                                float(lanpaint_step_size))
    if latent.get("noise_mask") is None:
        ctx.warn("the latent has no mask, so LanPaint has nothing to inpaint and samples as SamplerCustomAdvanced "
                 "does; set one with Set Latent Noise Mask or LanPaint Image Encode")
    return sample(ctx, noise, guider, sampler, sigmas, latent, wrap=lambda family: lanpaint_behaviour(family, settings))
