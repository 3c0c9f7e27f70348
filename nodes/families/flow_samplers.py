"""The samplers a flow model can run and the schedules each can follow, torch-free so that
validation reads them (UNetDenoise's `check_inputs`) without importing torch; the flow sampling
itself is nodes/families/flow.py."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

FLOW_SIGMAS = {"use_flow_sigmas": True, "prediction_type": "flow_prediction"}


@dataclass(frozen=True)
class FlowSampler:
    diffusers_class: str
    overrides: dict[str, Any] = field(default_factory=dict)
    schedules: tuple[str, ...] = ("default", "simple", "normal", "sgm_uniform")
    shift_key: str = "shift"          # the config key the model's shift goes to


_EULER_SCHEDULES = ("default", "simple", "normal", "sgm_uniform", "karras", "exponential", "beta")
FLOW_SAMPLERS: dict[str, FlowSampler] = {
    "euler": FlowSampler("FlowMatchEulerDiscreteScheduler", schedules=_EULER_SCHEDULES),
    "euler_ancestral": FlowSampler("FlowMatchEulerDiscreteScheduler", {"stochastic_sampling": True},
                                   schedules=_EULER_SCHEDULES),
    "heun": FlowSampler("FlowMatchHeunDiscreteScheduler"),
    "dpmpp_2m": FlowSampler("DPMSolverMultistepScheduler",
                            dict(FLOW_SIGMAS, algorithm_type="dpmsolver++", solver_order=2), shift_key="flow_shift"),
    "dpmpp_2m_sde": FlowSampler("DPMSolverMultistepScheduler",
                                dict(FLOW_SIGMAS, algorithm_type="sde-dpmsolver++", solver_order=2),
                                shift_key="flow_shift"),
    # bh1 computes 0 x inf = NaN at the final flow sigma 0 (and ending at sigma_min would leave noise
    # at flow's coarse last sigma): UniPC runs its bh2 variant on flow models.
    "uni_pc": FlowSampler("UniPCMultistepScheduler", dict(FLOW_SIGMAS, solver_type="bh2"), shift_key="flow_shift"),
}
SIGMA_OVERRIDES = {"karras": {"use_karras_sigmas": True}, "exponential": {"use_exponential_sigmas": True},
                    "beta": {"use_beta_sigmas": True}}


def check_flow_pair(sampler: str, schedule: str) -> str | None:
    """Why a flow model cannot run this sampler/schedule pair (None when it can)."""
    kind = FLOW_SAMPLERS.get(sampler)
    if kind is None:
        return (f"sampler: {sampler} works on a DDPM noise schedule and cannot follow a flow model's sigmas; "
                f"choose one of {', '.join(FLOW_SAMPLERS)}")
    if schedule not in kind.schedules:
        return (f"schedule: {sampler} on a flow model follows the shifted flow sigmas only ({', '.join(kind.schedules)}); "
                f"{schedule} needs euler or euler_ancestral")
    return None
