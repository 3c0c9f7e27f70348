"""ComfyUI and A1111 sampler names onto NodeForge's `sampler` and `schedule` params.

NodeForge spells samplers and sigma schedules as ComfyUI does, so most names map to
themselves; which names exist is `nodeforge.core.samplers` (the list the pack's table is tested
against). A ComfyUI name NodeForge lacks maps to the nearest one it has (the curated table below,
else the closest spelling by difflib) and the caller is told so: a warning naming the node, the
name and what it became. Nothing becomes euler without a warning saying so.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from nodeforge.core.samplers import SAMPLER_NAMES, SCHEDULE_NAMES, nearest_name

SAMPLERS = SAMPLER_NAMES
SCHEDULES = SCHEDULE_NAMES

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
# ComfyUI has no "default" (the model's own spacing, read from its scheduler config). "simple" is
# trailing spacing: the same timesteps for the bundled models and for every trailing config.
TO_COMFY_SCHEDULE = {"default": "simple"}


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
    return _nearest("sampler", text, key, SAMPLERS, {**SAME_SAMPLER, **NEAREST_SAMPLER}, "euler")


def schedule_from_comfy(name: object) -> Mapped:
    text = str(name).strip()
    key = text.lower().replace(" ", "_")
    if key in SCHEDULES:
        return Mapped(key)
    if key in NEAREST_SCHEDULE:
        near = NEAREST_SCHEDULE[key]
        return Mapped(near, f"schedule {text!r} is not in NodeForge; using the nearest, {near!r}")
    return _nearest("schedule", text, key, SCHEDULES, NEAREST_SCHEDULE, "normal")


def _nearest(what: str, text: str, key: str, names: tuple[str, ...], approximations: dict[str, str],
             fallback: str) -> Mapped:
    """An unknown name as the closest-spelled one NodeForge has or approximates (difflib), said in a
    note; `fallback` only when nothing is close, and the note says that too."""
    shown = text[:60]
    close = nearest_name(key, (*names, *approximations))
    if close is None:
        return Mapped(fallback, f"unknown {what} {shown!r} (no {what} NodeForge has is spelled like it); "
                                f"using {fallback!r}")
    near = approximations.get(close, close)
    via = f" (as {close!r})" if near != close else ""
    return Mapped(near, f"unknown {what} {shown!r}; using the nearest NodeForge has, {near!r}{via}")


def sampler_to_comfy(name: str) -> Mapped:
    if name in TO_COMFY_SAMPLER:
        near = TO_COMFY_SAMPLER[name]
        return Mapped(near, f"ComfyUI has no sampler {name!r}; exported as the nearest, {near!r}")
    return Mapped(name)


def schedule_to_comfy(name: str) -> Mapped:
    if name in TO_COMFY_SCHEDULE:
        near = TO_COMFY_SCHEDULE[name]
        return Mapped(near, f"ComfyUI has no schedule {name!r} (the model's own spacing); exported as {near!r}, "
                            f"the same steps for the bundled models and any 'trailing' scheduler config "
                            f"('linspace' matches 'normal', 'leading' matches 'ddim_uniform'): pick one to be exact")
    return Mapped(name)


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
# A1111 samplers mapped onto a different one (the table's entry is only the nearest).
A1111_APPROXIMATE = {"restart", "dpm++ 2m sde heun"}
A1111_SCHEDULES = {
    "automatic": "normal", "uniform": "normal", "karras": "karras", "exponential": "exponential",
    "polyexponential": "polyexponential", "sgm uniform": "sgm_uniform", "kl optimal": "kl_optimal",
    "align your steps": "align_your_steps", "simple": "simple", "normal": "normal", "ddim": "ddim_uniform",
    "beta": "beta", "turbo": "turbo",
}


def from_a1111(sampler: str, schedule_type: str | None = None) -> tuple[Mapped, Mapped]:
    """("DPM++ 2M Karras") or ("DPM++ 2M", "Karras") -> (sampler, schedule) as NodeForge spells them.
    ComfyUI's names, which tools saving A1111-style text from ComfyUI write ("dpmpp_2m", "euler_karras"),
    are taken as they are."""
    text = " ".join(sampler.split()).lower()
    schedule = None
    for suffix in ("karras", "exponential", "sgm uniform", "polyexponential"):
        for sep in (" ", "_"):
            head = text[: -len(suffix) - 1]
            if text.endswith(sep + suffix) and (head in A1111_SAMPLERS or _comfy_sampler(head)):
                text, schedule = head, suffix
                break
        if schedule:
            break
    if schedule_type:
        schedule = " ".join(schedule_type.split()).lower()
    if text not in A1111_SAMPLERS and _comfy_sampler(text):
        mapped = sampler_from_comfy(text)
    elif text in A1111_APPROXIMATE:
        near = sampler_from_comfy(A1111_SAMPLERS[text]).name
        mapped = Mapped(near, f"sampler {sampler[:60]!r} is not in NodeForge; using the nearest, {near!r}")
    else:
        mapped = _a1111_name("sampler", sampler, text, A1111_SAMPLERS, sampler_from_comfy, "euler")
    if schedule is None:
        schedule = "ddim" if text == "ddim" else "automatic"
    sched = _a1111_name("schedule type", schedule, schedule, A1111_SCHEDULES, schedule_from_comfy, "normal")
    return mapped, sched


def _comfy_sampler(name: str) -> bool:
    return name in SAMPLERS or name in SAME_SAMPLER or name in NEAREST_SAMPLER


def _a1111_name(what: str, shown: str, key: str, table: dict[str, str],
                from_comfy: Callable[[object], Mapped], fallback: str) -> Mapped:
    """An A1111 name through its ComfyUI name; an unknown one as the closest-spelled A1111 name."""
    comfy = table.get(key)
    if comfy is not None:
        mapped = from_comfy(comfy)
        if mapped.note and what == "sampler":   # name the A1111 spelling the user wrote
            return Mapped(mapped.name, f"sampler {shown!r} is not in NodeForge; using the nearest, {mapped.name!r}")
        return mapped
    close = nearest_name(key, table)
    if close is None:
        return Mapped(fallback, f"unknown A1111 {what} {shown[:60]!r} (no {what} NodeForge knows is spelled "
                                f"like it); using {fallback!r}")
    near = from_comfy(table[close]).name
    via = f" (as {close!r})" if close != near else ""
    return Mapped(near, f"unknown A1111 {what} {shown[:60]!r}; using the nearest NodeForge has, {near!r}{via}")
