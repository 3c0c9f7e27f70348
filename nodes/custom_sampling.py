"""ComfyUI's custom sampling: a sampler node split into its parts, wired as values.

NOISE (RandomNoise's seed, or DisableNoise), GUIDER (the model and prompts with a CFG scale),
SAMPLER (the stepping method) and SIGMAS (the noise levels, highest first, the last 0 for a
clean result) meet in SamplerCustom / SamplerCustomAdvanced, which run the one denoise loop
(nodes/sampling.py). Sigmas from BasicScheduler remember the schedule they are (`Recipe`: the
schedule, steps and denoise of UNetDenoise, and the stage a SplitSigmas cut), so a custom graph
with BasicScheduler runs exactly the UNetDenoise request its widgets say and gives the KSampler
graph's pixels for every sampler. Other sigmas (AlignYourSteps, SDTurbo, a split of those) run
through the sampler's scheduler with its sigmas replaced (`SamplingBehaviour.plan_sigmas`);
ManualSigmas gives the numbers written in its text.
"""
from __future__ import annotations

import copy
import re
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch

from nodeforge.core.errors import NodeError

from .sampling import DenoiseRequest, SamplingBehaviour, denoise_latent, sampling_behaviour

# Align Your Steps (Sabour et al., NVIDIA 2024): the published 10-step noise levels for SD 1.x and SDXL
# (research.nvidia.com/labs/toronto-ai/AlignYourSteps/howto.html); other step counts interpolate them
# log-linearly.
AYS_NOISE_LEVELS: dict[str, tuple[float, ...]] = {
    "SD1": (14.6146412293, 6.4745760956, 3.8636745985, 2.6946151520, 1.8841921177, 1.3943805092,
            0.9642583904, 0.6523686016, 0.3977456272, 0.1515232662, 0.0291671582),
    "SDXL": (14.6146412293, 6.3184485287, 3.7681790315, 2.1811480769, 1.3405244945, 0.8620721141,
             0.5550693289, 0.3798540708, 0.2332364134, 0.1114188177, 0.0291671582),
}
# SD Turbo / SDXL Turbo were distilled on the timesteps 999, 899, ..., 99.
TURBO_TIMESTEPS = tuple(999 - 100 * i for i in range(10))


@dataclass(frozen=True)
class SamplerChoice:
    """SAMPLER: the stepping method, by UNetDenoise's sampler name."""

    name: str


@dataclass(frozen=True)
class Noise:
    """NOISE: the seed of the per-item generators; `add` False takes the latent as it is."""

    seed: int
    add: bool = True


@dataclass(frozen=True)
class Guider:
    """GUIDER: the model and its prompts; negative None is BasicGuider (the positive alone, cfg 1); a
    middle prompt is DualCFGGuider's cond2 (nodes/ip2p.py), guided over the negative by middle_cfg."""

    model: Any
    positive: Any
    negative: Any
    cfg: float
    middle: Any = None
    middle_cfg: float = 1.0


@dataclass(frozen=True)
class Recipe:
    """Sigmas that are one of UNetDenoise's schedules: its request's schedule, steps and denoise, the
    stage (`start_at_step`, `end_at_step`) and the first step the denoise leaves (`first`)."""

    schedule: str
    steps: int
    denoise: float
    first: int
    start_at_step: int = 0
    end_at_step: int = 10000

    @property
    def last(self) -> int:
        return min(self.end_at_step, self.steps)


@dataclass(frozen=True)
class Sigmas:
    """SIGMAS: the noise levels, highest first, and the schedule they came from when it is known."""

    values: torch.Tensor
    recipe: Recipe | None = None

    def split(self, step: int) -> tuple["Sigmas", "Sigmas"]:
        """SplitSigmas: the levels up to `step` and those from it on (both hold the one at `step`)."""
        high, low = self.values[:step + 1], self.values[step:]
        if self.recipe is None:
            return Sigmas(high), Sigmas(low)
        cut = min(self.recipe.first + step, self.recipe.last)
        return (Sigmas(high, replace(self.recipe, end_at_step=cut)),
                Sigmas(low, replace(self.recipe, start_at_step=cut, first=cut)))


# -- schedulers ------------------------------------------------------------------------------------
def basic_sigmas(model: Any, schedule: str, steps: int, denoise: float) -> Sigmas:
    """BasicScheduler: the sigmas UNetDenoise steps through for this schedule (its euler scheduler
    on the model, the slice that denoise leaves), remembered as that schedule."""
    if denoise <= 0:
        return Sigmas(torch.zeros(0), Recipe(schedule, steps, 0.0, steps))
    family = sampling_behaviour(model)
    request = DenoiseRequest(seed=0, steps=steps, cfg=1.0, sampler="euler", schedule=schedule, denoise=denoise)
    plan = family.plan_steps(model, request)
    values = plan.scheduler.sigmas[plan.start:plan.end + 1].detach().float().cpu()
    return Sigmas(values, Recipe(schedule, steps, denoise, plan.start))


def loglinear(levels: tuple[float, ...], count: int) -> np.ndarray:
    """`count` levels spread over `levels` (decreasing), linearly in log sigma (NVIDIA's AYS recipe)."""
    rising = np.log(np.asarray(levels[::-1], dtype=np.float64))
    spread = np.interp(np.linspace(0, 1, count), np.linspace(0, 1, len(levels)), rising)
    return np.exp(spread)[::-1].copy()


def align_your_steps_sigmas(model_type: str, steps: int, denoise: float) -> Sigmas:
    """AlignYourStepsScheduler: the published levels at steps + 1 points, the last `round(steps x
    denoise)` steps of them for denoise < 1, ending at 0."""
    if model_type not in AYS_NOISE_LEVELS:
        raise NodeError(f"no Align Your Steps schedule for {model_type!r}; choose one of "
                        f"{', '.join(AYS_NOISE_LEVELS)}", field="model_type")
    if denoise <= 0:
        return Sigmas(torch.zeros(0))
    taken = round(steps * denoise) if denoise < 1 else steps
    levels = AYS_NOISE_LEVELS[model_type]
    values = np.asarray(levels) if steps + 1 == len(levels) else loglinear(levels, steps + 1)
    values = values[len(values) - (taken + 1):].copy()
    values[-1] = 0.0
    return Sigmas(torch.tensor(values, dtype=torch.float32))


def karras_sigmas(steps: int, sigma_max: float, sigma_min: float, rho: float) -> Sigmas:
    """KarrasScheduler: Karras et al. (2022), eq. 5: `steps` levels from sigma_max to sigma_min evenly
    spaced in sigma^(1/rho), then 0."""
    if sigma_min <= 0 or sigma_max <= sigma_min:
        raise NodeError(f"sigma_max ({sigma_max}) must be above sigma_min ({sigma_min}), and both above 0",
                        field="sigma_min" if sigma_min <= 0 else "sigma_max")
    ramp = torch.linspace(0, 1, steps, dtype=torch.float64)
    top, bottom = sigma_max ** (1 / rho), sigma_min ** (1 / rho)
    levels = (top + ramp * (bottom - top)) ** rho
    return Sigmas(torch.cat([levels, torch.zeros(1, dtype=torch.float64)]).float())


def turbo_sigmas(model: Any, steps: int, denoise: float) -> Sigmas:
    """SDTurboScheduler: the sigmas of the turbo timesteps 999, 899, ... (the first 10 - 10 x denoise
    skipped), `steps` of them, then 0."""
    start = 10 - int(10 * denoise)
    timesteps = TURBO_TIMESTEPS[start:start + steps]
    if not timesteps:
        return Sigmas(torch.zeros(0))
    levels = sampling_behaviour(model).timestep_sigmas(model, torch.tensor(timesteps, dtype=torch.float64))
    return Sigmas(torch.cat([levels.float(), torch.zeros(1)]))


# -- sampling --------------------------------------------------------------------------------------
def sample(ctx: Any, noise: Noise, guider: Guider, sampler: SamplerChoice, sigmas: Sigmas,
           latent: dict, wrap: Any = None) -> dict[str, Any]:
    """SamplerCustomAdvanced: `output` (the latent at the last sigma) and `denoised_output` (the clean
    latent the model predicted at the last step; the output itself when no step runs). `wrap`: a function
    giving the family's phases with some replaced (LanPaint's, nodes/lanpaint.py)."""
    model = guider.model
    request = _request(model, noise, guider, sampler, sigmas)
    family = sampling_behaviour(model)
    behaviour = _recording(family if wrap is None else wrap(family))
    negative = guider.negative if guider.negative is not None else guider.positive
    out = denoise_latent(ctx, model=model, positive=guider.positive, negative=negative, latent=latent,
                         request=request, behaviour=behaviour)
    clean = behaviour.last_denoised
    denoised = out if clean is None else dict(out, samples=clean.float().cpu())
    return {"output": out, "denoised_output": denoised}


def _request(model: Any, noise: Noise, guider: Guider, sampler: SamplerChoice, sigmas: Sigmas) -> DenoiseRequest:
    """UNetDenoise's request for BasicScheduler's sigmas where the sampler can follow that schedule
    on this model; else the sigmas themselves."""
    base = DenoiseRequest(seed=noise.seed, steps=max(len(sigmas.values) - 1, 1), cfg=guider.cfg,
                          sampler=sampler.name, schedule="default", add_noise=noise.add, middle=guider.middle,
                          middle_cfg=guider.middle_cfg)
    recipe = sigmas.recipe
    if recipe is not None:
        staged = replace(base, steps=recipe.steps, schedule=recipe.schedule, denoise=recipe.denoise,
                         start_at_step=recipe.start_at_step, end_at_step=recipe.end_at_step,
                         return_with_leftover_noise=True)
        try:
            sampling_behaviour(model).make_scheduler(model, staged)
            return staged
        except NodeError:
            pass    # e.g. euler_ancestral on karras: the sigmas as they are
    if guider.model.prediction_type == "flow" and len(sigmas.values) and float(sigmas.values.max()) > 1.0:
        raise NodeError(f"these sigmas reach {float(sigmas.values.max()):.3g}, but a flow model's lie in 0..1 "
                        "(Align Your Steps' schedules are for SD 1.x and SDXL); use BasicScheduler", field="sigmas")
    return replace(base, sigmas=tuple(float(v) for v in sigmas.values))


def _recording(family: SamplingBehaviour) -> SamplingBehaviour:
    """The family's phases, also keeping the clean latent the last step predicted (`last_denoised`)."""

    class Recording(type(family)):  # type: ignore[misc, valid-type]
        last_denoised: torch.Tensor | None = None

        def step(self, plan: Any, prediction: torch.Tensor, t: Any, latents: torch.Tensor,
                 kwargs: dict[str, Any], clean: bool) -> torch.Tensor:
            scheduler, results = plan.scheduler, []
            own_step = scheduler.step

            def keep(*args: Any, **kw: Any) -> Any:
                results.append(own_step(*args, **kw))
                return results[-1]

            scheduler.step = keep
            try:
                out = super().step(plan, prediction, t, latents, kwargs, clean)
            finally:
                del scheduler.step
            # object.__setattr__: a family may be a frozen dataclass (EDMSampling)
            object.__setattr__(self, "last_denoised",
                               out if clean else self.denoised(plan, results[-1], prediction, latents))
            return out

    recording = copy.copy(family)
    object.__setattr__(recording, "__class__", Recording)
    return recording


# -- run functions (declared in nodes/custom_specs.py) ----------------------------------------------
def run_sampler_select(ctx: Any, sampler: str) -> dict[str, Any]:
    return {"sampler": SamplerChoice(sampler)}


def run_basic_scheduler(ctx: Any, unet: Any, schedule: str, steps: int, denoise: float) -> dict[str, Any]:
    return {"sigmas": basic_sigmas(unet, schedule, steps, denoise)}


def run_sd_turbo_scheduler(ctx: Any, unet: Any, steps: int, denoise: float) -> dict[str, Any]:
    return {"sigmas": turbo_sigmas(unet, steps, denoise)}


def run_karras_scheduler(ctx: Any, steps: int, sigma_max: float, sigma_min: float, rho: float) -> dict[str, Any]:
    return {"sigmas": karras_sigmas(steps, sigma_max, sigma_min, rho)}


_NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")


def manual_sigmas(text: str) -> Sigmas:
    """ManualSigmas: the numbers written in `text`, in order (any separators: "1.0, 0.5, 0.0"), as sigmas."""
    values = [float(found) for found in _NUMBER.findall(text)]
    if not values:
        raise NodeError(f"no numbers in {text[:40]!r}; write the sigmas highest first, e.g. '1.0, 0.72, 0.42, 0.0'",
                        field="sigmas")
    if any(a < b for a, b in zip(values, values[1:])) or min(values) < 0:
        shown = ", ".join(f"{v:g}" for v in values)
        raise NodeError(f"sigmas must fall (highest first) and stay at or above 0; got {shown}", field="sigmas")
    return Sigmas(torch.tensor(values, dtype=torch.float32))


def run_manual_sigmas(ctx: Any, sigmas: str) -> dict[str, Any]:
    return {"sigmas": manual_sigmas(sigmas)}


def run_align_your_steps_scheduler(ctx: Any, model_type: str, steps: int, denoise: float) -> dict[str, Any]:
    return {"sigmas": align_your_steps_sigmas(model_type, steps, denoise)}


def run_split_sigmas(ctx: Any, sigmas: Sigmas, step: int) -> dict[str, Any]:
    high, low = sigmas.split(step)
    return {"high_sigmas": high, "low_sigmas": low}


def run_basic_guider(ctx: Any, unet: Any, conditioning: Any) -> dict[str, Any]:
    return {"guider": Guider(unet, conditioning, None, 1.0)}


def run_cfg_guider(ctx: Any, unet: Any, positive: Any, negative: Any, cfg: float) -> dict[str, Any]:
    return {"guider": Guider(unet, positive, negative, cfg)}


def run_random_noise(ctx: Any, seed: int) -> dict[str, Any]:
    return {"noise": Noise(seed)}


def run_disable_noise(ctx: Any) -> dict[str, Any]:
    return {"noise": Noise(0, add=False)}


def run_sampler_custom(ctx: Any, unet: Any, positive: Any, negative: Any, sampler: SamplerChoice, sigmas: Sigmas,
                       latent: dict, add_noise: bool, seed: int, cfg: float) -> dict[str, Any]:
    return sample(ctx, Noise(seed, add_noise), Guider(unet, positive, negative, cfg), sampler, sigmas, latent)


def run_sampler_custom_advanced(ctx: Any, noise: Noise, guider: Guider, sampler: SamplerChoice, sigmas: Sigmas,
                                latent: dict) -> dict[str, Any]:
    return sample(ctx, noise, guider, sampler, sigmas, latent)
