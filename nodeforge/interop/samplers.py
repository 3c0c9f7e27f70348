"""ComfyUI and A1111 sampler names onto NodeForge's `sampler` and `schedule` params.

NodeForge spells samplers and sigma schedules as ComfyUI does, so most names map to
themselves. A name NodeForge lacks maps to the nearest one it has, and the caller is told so
(a warning naming the node). Tables are data: adding a sampler is one entry.
"""
from __future__ import annotations

from dataclasses import dataclass

# What UNetDenoise offers (ComfyUI's spellings).
SAMPLERS = ("euler", "euler_ancestral", "heun", "dpm_2", "dpm_2_ancestral", "lms", "dpmpp_2m",
            "dpmpp_2m_sde", "dpmpp_sde", "ddim", "ddpm", "pndm", "uni_pc", "uni_pc_bh2", "lcm", "deis")
SCHEDULES = ("default", "normal", "karras", "exponential", "sgm_uniform", "simple", "ddim_uniform", "beta")

# ComfyUI samplers NodeForge lacks -> the nearest it has. `*_gpu` variants differ only in where
# the SDE noise is drawn, so they map without a warning.
SAME_SAMPLER = {"dpmpp_sde_gpu": "dpmpp_sde", "dpmpp_2m_sde_gpu": "dpmpp_2m_sde"}
NEAREST_SAMPLER = {
    "euler_cfg_pp": "euler", "euler_ancestral_cfg_pp": "euler_ancestral", "heunpp2": "heun",
    "dpm_fast": "dpmpp_2m", "dpm_adaptive": "dpmpp_2m",
    "dpmpp_2s_ancestral": "euler_ancestral", "dpmpp_2s_ancestral_cfg_pp": "euler_ancestral",
    "dpmpp_2m_cfg_pp": "dpmpp_2m", "dpmpp_3m_sde": "dpmpp_2m_sde", "dpmpp_3m_sde_gpu": "dpmpp_2m_sde",
    "ipndm": "pndm", "ipndm_v": "pndm", "res_multistep": "dpmpp_2m", "res_multistep_cfg_pp": "dpmpp_2m",
    "res_multistep_ancestral": "euler_ancestral", "res_multistep_ancestral_cfg_pp": "euler_ancestral",
    "gradient_estimation": "euler", "gradient_estimation_cfg_pp": "euler", "er_sde": "dpmpp_2m_sde",
    "seeds_2": "dpmpp_sde", "seeds_3": "dpmpp_sde", "sa_solver": "dpmpp_2m_sde", "sa_solver_pece": "dpmpp_2m_sde",
    "uni_pc_bh1": "uni_pc", "plms": "pndm",
}
NEAREST_SCHEDULE = {"linear_quadratic": "normal", "kl_optimal": "normal", "align_your_steps": "normal",
                    "polyexponential": "exponential", "uniform": "normal", "turbo": "normal"}
# NodeForge names ComfyUI lacks, for export.
TO_COMFY_SAMPLER = {"pndm": "ipndm"}
TO_COMFY_SCHEDULE = {"default": "normal"}


@dataclass(frozen=True)
class Mapped:
    """A name as NodeForge spells it, with a note when it is only the nearest."""

    name: str
    note: str | None = None


def sampler_from_comfy(name: object) -> Mapped:
    text = str(name).strip()
    key = text.lower()
    if key in SAMPLERS:
        return Mapped(key)
    if key in SAME_SAMPLER:
        return Mapped(SAME_SAMPLER[key])
    if key in NEAREST_SAMPLER:
        near = NEAREST_SAMPLER[key]
        return Mapped(near, f"sampler {text!r} is not in NodeForge; using the nearest, {near!r}")
    return Mapped("euler", f"unknown sampler {text[:60]!r}; using 'euler'")


def schedule_from_comfy(name: object) -> Mapped:
    text = str(name).strip()
    key = text.lower().replace(" ", "_")
    if key in SCHEDULES:
        return Mapped(key)
    if key in NEAREST_SCHEDULE:
        near = NEAREST_SCHEDULE[key]
        return Mapped(near, f"schedule {text!r} is not in NodeForge; using the nearest, {near!r}")
    return Mapped("normal", f"unknown schedule {text[:60]!r}; using 'normal'")


def sampler_to_comfy(name: str) -> Mapped:
    if name in TO_COMFY_SAMPLER:
        near = TO_COMFY_SAMPLER[name]
        return Mapped(near, f"ComfyUI has no sampler {name!r}; exported as the nearest, {near!r}")
    return Mapped(name)


def schedule_to_comfy(name: str) -> Mapped:
    return Mapped(TO_COMFY_SCHEDULE.get(name, name))


# -- A1111 / Forge ----------------------------------------------------------------------------------
# "Sampler:" names (older files fold the schedule in: "DPM++ 2M Karras").
A1111_SAMPLERS = {
    "euler": "euler", "euler a": "euler_ancestral", "heun": "heun", "lms": "lms", "dpm2": "dpm_2",
    "dpm2 a": "dpm_2_ancestral", "dpm++ 2s a": "dpmpp_2s_ancestral", "dpm++ 2m": "dpmpp_2m",
    "dpm++ sde": "dpmpp_sde", "dpm++ 2m sde": "dpmpp_2m_sde", "dpm++ 2m sde heun": "dpmpp_2m_sde",
    "dpm++ 3m sde": "dpmpp_3m_sde", "dpm fast": "dpm_fast", "dpm adaptive": "dpm_adaptive",
    "ddim": "ddim", "ddpm": "ddpm", "plms": "plms", "unipc": "uni_pc", "lcm": "lcm", "restart": "euler",
    "deis": "deis", "ipndm": "ipndm", "ipndm_v": "ipndm_v", "dpm++ 2m sde gpu": "dpmpp_2m_sde_gpu",
    "dpm++ sde gpu": "dpmpp_sde_gpu", "euler cfg++": "euler_cfg_pp", "dpm++ 2m cfg++": "dpmpp_2m_cfg_pp",
}
A1111_SCHEDULES = {
    "automatic": "normal", "uniform": "normal", "karras": "karras", "exponential": "exponential",
    "polyexponential": "polyexponential", "sgm uniform": "sgm_uniform", "kl optimal": "kl_optimal",
    "align your steps": "align_your_steps", "simple": "simple", "normal": "normal", "ddim": "ddim_uniform",
    "beta": "beta", "turbo": "turbo",
}


def from_a1111(sampler: str, schedule_type: str | None = None) -> tuple[Mapped, Mapped]:
    """("DPM++ 2M Karras") or ("DPM++ 2M", "Karras") -> (sampler, schedule) as NodeForge spells them."""
    text = " ".join(sampler.split()).lower()
    schedule = None
    for suffix in ("karras", "exponential", "sgm uniform", "polyexponential"):
        if text.endswith(" " + suffix) and text[: -len(suffix) - 1] in A1111_SAMPLERS:
            text, schedule = text[: -len(suffix) - 1], suffix
            break
    if schedule_type:
        schedule = " ".join(schedule_type.split()).lower()
    comfy = A1111_SAMPLERS.get(text)
    mapped = sampler_from_comfy(comfy) if comfy else Mapped("euler", f"unknown A1111 sampler {sampler[:60]!r}; using 'euler'")
    if mapped.note and comfy:
        mapped = Mapped(mapped.name, f"sampler {sampler!r} is not in NodeForge; using the nearest, {mapped.name!r}")
    if schedule is None:
        schedule = "ddim" if text == "ddim" else "automatic"
    sched_comfy = A1111_SCHEDULES.get(schedule)
    sched = (schedule_from_comfy(sched_comfy) if sched_comfy
             else Mapped("normal", f"unknown schedule type {schedule[:60]!r}; using 'normal'"))
    return mapped, sched

