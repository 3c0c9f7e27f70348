"""The scheduler table: every scheduler UNetDenoise offers, in one place.

Each row names the diffusers class, the config overrides on top of the model's own scheduler
config, and the sigma schedule. The node declaration (nodes/__init__.py), `make_scheduler` and
the tests all read this table, so adding a scheduler is one row. Importing this module does not
import torch or diffusers (the declaration reads it when the pack is listed).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from nodeforge.core.errors import NodeError


@dataclass(frozen=True)
class SchedulerKind:
    name: str
    diffusers_class: str
    overrides: dict[str, Any] = field(default_factory=dict)
    sigmas: str = "default"          # "default" (the class's own spacing) or "karras"
    seeded: bool = False             # the scheduler draws its own noise: seed it from the node's seed


SCHEDULER_TABLE: tuple[SchedulerKind, ...] = (
    SchedulerKind("euler", "EulerDiscreteScheduler"),
    SchedulerKind("euler_ancestral", "EulerAncestralDiscreteScheduler"),
    SchedulerKind("heun", "HeunDiscreteScheduler"),
    SchedulerKind("lms", "LMSDiscreteScheduler"),
    SchedulerKind("ddim", "DDIMScheduler"),
    SchedulerKind("ddpm", "DDPMScheduler"),
    SchedulerKind("pndm", "PNDMScheduler", {"skip_prk_steps": True}),
    SchedulerKind("dpmpp_2m", "DPMSolverMultistepScheduler", {"algorithm_type": "dpmsolver++", "solver_order": 2}),
    SchedulerKind("dpmpp_2m_karras", "DPMSolverMultistepScheduler",
                  {"algorithm_type": "dpmsolver++", "solver_order": 2}, sigmas="karras"),
    SchedulerKind("dpmpp_sde", "DPMSolverSDEScheduler", sigmas="karras", seeded=True),
    SchedulerKind("unipc", "UniPCMultistepScheduler"),
    SchedulerKind("lcm", "LCMScheduler"),
)
SCHEDULERS: dict[str, SchedulerKind] = {kind.name: kind for kind in SCHEDULER_TABLE}


def scheduler_config(name: str, model_config: dict[str, Any], seed: int) -> tuple[str, dict[str, Any]]:
    """The diffusers class name and the full config for the named scheduler on a model's config."""
    kind = SCHEDULERS.get(name)
    if kind is None:
        raise NodeError(f"unknown scheduler {name!r}; choose one of {', '.join(SCHEDULERS)}", field="scheduler")
    config = {k: v for k, v in model_config.items() if not k.startswith("_")}
    config.pop("use_karras_sigmas", None)
    config.update(kind.overrides)
    if kind.sigmas == "karras":
        config["use_karras_sigmas"] = True
    if kind.seeded:
        config["noise_sampler_seed"] = seed % 2 ** 63
    return kind.diffusers_class, config


def make_scheduler(name: str, config: dict[str, Any], seed: int) -> Any:
    """A diffusers scheduler of the named kind built from the model's scheduler config."""
    import diffusers

    class_name, full = scheduler_config(name, config, seed)
    return getattr(diffusers, class_name).from_config(full)
