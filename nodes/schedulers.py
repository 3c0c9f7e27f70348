"""The sampler and schedule tables: every sampler and sigma schedule UNetDenoise offers, in one place.

A *sampler* is the stepping method (ComfyUI's `sampler_name`: euler, dpmpp_2m, uni_pc, ...), a
*schedule* is where the steps fall on the noise levels (ComfyUI's `scheduler`: normal, karras,
...). Each sampler row names the diffusers class, the config overrides on top of the model's own
scheduler config, which schedules the class can follow and how many noise draws a step takes;
each schedule row names its config overrides. The node declaration (nodes/__init__.py),
`make_scheduler`, the PNG parameters and the tests read these tables. The names themselves are
`nodeforge/core/samplers.py`, which core (format migration) and interop read without importing
the pack; `tests/nodes/test_sampler_names.py` fails unless the rows here cover exactly those names,
so adding a sampler is its name there and one row here. Importing this module does not import
torch or diffusers.

Latent models never clip the predicted sample: DDIM, DDPM and LCM default to `clip_sample=True`
(meant for pixel-space models), which clips the latent to [-1, 1] and destroys it; SD's own
scheduler configs set it false, and so does every row here.
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Any

from nodeforge.core.errors import NodeError

NO_CLIP = {"clip_sample": False}
# Spacing schedules work on every class; sigma schedules only on the k-diffusion style ones.
SPACINGS = ("default", "normal", "simple", "sgm_uniform", "ddim_uniform")
SIGMA_SCHEDULES = ("karras", "exponential", "beta")


@dataclass(frozen=True)
class Sampler:
    name: str                        # ComfyUI's sampler_name
    a1111: str                       # A1111's "Sampler:" name (in PNG parameters)
    diffusers_class: str
    overrides: dict[str, Any] = field(default_factory=dict)
    sigma_schedules: bool = True     # follows karras / exponential / beta sigmas
    seeded: bool = False             # the scheduler draws its own noise: seed it from the node's seed
    step_noise_draws: int = 0        # noise draws of the latent's size per step (from the generators)
    step_kwargs: dict[str, Any] = field(default_factory=dict)   # passed to each `step` call
    description: str = ""


@dataclass(frozen=True)
class Schedule:
    name: str                        # ComfyUI's scheduler
    a1111: str                       # A1111's "Schedule type:" ("" for the model's own)
    overrides: dict[str, Any]
    description: str


SAMPLER_TABLE: tuple[Sampler, ...] = (
    Sampler("euler", "Euler", "EulerDiscreteScheduler", description="Euler: fast, stable, the reference"),
    Sampler("euler_ancestral", "Euler a", "EulerAncestralDiscreteScheduler", sigma_schedules=False, step_noise_draws=1,
            description="Euler ancestral: adds fresh noise each step (varied, never converges)"),
    Sampler("heun", "Heun", "HeunDiscreteScheduler", NO_CLIP, description="Heun: two UNet calls a step, accurate"),
    Sampler("dpm_2", "DPM2", "KDPM2DiscreteScheduler", description="DPM2: two UNet calls a step"),
    Sampler("dpm_2_ancestral", "DPM2 a", "KDPM2AncestralDiscreteScheduler", step_noise_draws=1,
            description="DPM2 ancestral"),
    # 4th-order LMS overshoots at 20 steps and CFG 5 (demo model: colour right in 87.5% of 48
    # prompts); 3rd order gets 100% (measured with `evaluate --samplers`).
    Sampler("lms", "LMS", "LMSDiscreteScheduler", step_kwargs={"order": 3},
            description="linear multistep (3rd order)"),
    Sampler("dpmpp_2m", "DPM++ 2M", "DPMSolverMultistepScheduler", {"algorithm_type": "dpmsolver++", "solver_order": 2},
            description="DPM++ 2M: sharp in few steps (with karras: A1111's 'DPM++ 2M Karras')"),
    Sampler("dpmpp_2m_sde", "DPM++ 2M SDE", "DPMSolverMultistepScheduler", {"algorithm_type": "sde-dpmsolver++", "solver_order": 2},
            step_noise_draws=1, description="DPM++ 2M SDE: stochastic DPM++ 2M"),
    Sampler("dpmpp_sde", "DPM++ SDE", "DPMSolverSDEScheduler", seeded=True, description="DPM++ SDE (uses torchsde)"),
    Sampler("deis", "DEIS", "DEISMultistepScheduler", description="DEIS multistep"),
    # diffusers' bh1 step to sigma 0 computes inf * 0 = NaN (every image black): end at sigma_min.
    Sampler("uni_pc", "UniPC", "UniPCMultistepScheduler", {"solver_type": "bh1", "final_sigmas_type": "sigma_min"},
            description="UniPC (bh1)"),
    Sampler("uni_pc_bh2", "UniPC", "UniPCMultistepScheduler", {"solver_type": "bh2"}, description="UniPC (bh2)"),
    Sampler("ddim", "DDIM", "DDIMScheduler", NO_CLIP, sigma_schedules=False, description="DDIM: deterministic"),
    Sampler("ddpm", "DDPM", "DDPMScheduler", NO_CLIP, sigma_schedules=False, step_noise_draws=1,
            description="DDPM: the training sampler (needs many steps)"),
    # PLMS extrapolates the guided noise prediction at 4th order: at CFG 5 and 20 steps it
    # overshoots on the demo model (colour right in 52% of 48 prompts); at CFG 3, 96%.
    Sampler("pndm", "PLMS", "PNDMScheduler", {"skip_prk_steps": True}, sigma_schedules=False,
            description="PLMS (pseudo linear multistep): keep CFG at 3 or below at 20 steps"),
    Sampler("lcm", "LCM", "LCMScheduler", NO_CLIP, sigma_schedules=False, step_noise_draws=1,
            description="LCM: for latent-consistency distilled models and LoRAs (4-8 steps, CFG 1-2)"),
)
SAMPLERS: dict[str, Sampler] = {s.name: s for s in SAMPLER_TABLE}

# ComfyUI's schedulers in diffusers' terms. "normal" spaces the timesteps evenly over the whole
# range (ComfyUI's normal), "simple" and "sgm_uniform" step down from the last training timestep,
# "ddim_uniform" steps up from the first (DDIM's original spacing).
SCHEDULE_TABLE: tuple[Schedule, ...] = (
    Schedule("default", "", {}, "the model's own spacing (its scheduler config)"),
    Schedule("normal", "Normal", {"timestep_spacing": "linspace"}, "evenly spaced timesteps over the whole range"),
    Schedule("karras", "Karras", {"use_karras_sigmas": True}, "Karras et al.: more steps at low noise (sharper details)"),
    Schedule("exponential", "Exponential", {"use_exponential_sigmas": True}, "sigmas evenly spaced in log space"),
    Schedule("sgm_uniform", "SGM Uniform", {"timestep_spacing": "trailing"}, "uniform from the last timestep (SDXL turbo, LCM)"),
    Schedule("simple", "Simple", {"timestep_spacing": "trailing"}, "every n-th training sigma from the top"),
    Schedule("ddim_uniform", "DDIM", {"timestep_spacing": "leading", "steps_offset": 1}, "DDIM's uniform spacing"),
    Schedule("beta", "Beta", {"use_beta_sigmas": True}, "beta-distributed sigmas (more steps at both ends)"),
)
SCHEDULES: dict[str, Schedule] = {s.name: s for s in SCHEDULE_TABLE}
_SIGMA_KEYS = ("use_karras_sigmas", "use_exponential_sigmas", "use_beta_sigmas")

def check_pair(sampler: str, schedule: str) -> list[str]:
    """Problems with a sampler/schedule pair, as `field: message` lines (empty when it runs)."""
    if sampler not in SAMPLERS:
        return [f"sampler: unknown sampler {sampler!r}; choose one of {', '.join(SAMPLERS)}"]
    if schedule not in SCHEDULES:
        return [f"schedule: unknown schedule {schedule!r}; choose one of {', '.join(SCHEDULES)}"]
    if schedule in SIGMA_SCHEDULES and not SAMPLERS[sampler].sigma_schedules:
        able = ", ".join(s.name for s in SAMPLER_TABLE if s.sigma_schedules)
        return [f"schedule: {sampler} cannot follow {schedule} sigmas; choose one of {', '.join(SPACINGS)}, "
                f"or a sampler that can ({able})"]
    return []


def scheduler_config(sampler: str, schedule: str, model_config: dict[str, Any],
                     seed: int) -> tuple[str, dict[str, Any]]:
    """The diffusers class name and the full config for a sampler and schedule on a model's config."""
    problems = check_pair(sampler, schedule)
    if problems:
        name, _, message = problems[0].partition(": ")
        raise NodeError(message, field=name)
    kind = SAMPLERS[sampler]
    config = {k: v for k, v in model_config.items() if not k.startswith("_")}
    for key in _SIGMA_KEYS:
        config.pop(key, None)
    config.update(kind.overrides)
    config.update(SCHEDULES[schedule].overrides)
    if kind.seeded:
        config["noise_sampler_seed"] = seed % 2 ** 63
    return kind.diffusers_class, config


def make_scheduler(sampler: str, schedule: str, config: dict[str, Any], seed: int) -> Any:
    """A diffusers scheduler for the sampler and schedule, built from the model's scheduler config."""
    import diffusers

    class_name, full = scheduler_config(sampler, schedule, config, seed)
    cls = getattr(diffusers, class_name)
    if full.get("rescale_betas_zero_snr") and "rescale_betas_zero_snr" not in inspect.signature(cls.__init__).parameters:
        able = ", ".join(s.name for s in SAMPLER_TABLE if "rescale_betas_zero_snr" in
                         inspect.signature(getattr(diffusers, s.diffusers_class).__init__).parameters)
        raise NodeError(f"{sampler} cannot sample a zero-terminal-SNR model (ModelSamplingDiscrete's zsnr); choose "
                        f"one of {able}", field="sampler")
    return cls.from_config(full)
