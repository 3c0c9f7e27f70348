"""The sampler and schedule names a workflow may use: the one list that core and interop read.

A *sampler* is the stepping method (ComfyUI's `sampler_name`), a *schedule* is where the steps
fall on the noise levels (ComfyUI's `scheduler`); NodeForge spells both as ComfyUI does.

Why the names live here and not only in the pack: `core` (format migration) and `interop`
(ComfyUI and A1111 import) must not import `nodes/`, yet they must know which names exist. So
this module holds the names, torch-free, and the pack's `SAMPLER_TABLE` / `SCHEDULE_TABLE`
(`nodes/schedulers.py`: the diffusers class and config for each name) must cover exactly these,
in this order: `tests/nodes/test_sampler_names.py` fails when the two drift. Adding a sampler is
its name here and its row there; the node declaration, interop and the tests read one or the other.
"""
from __future__ import annotations

import difflib
from typing import Iterable

SAMPLER_NAMES: tuple[str, ...] = (
    "euler", "euler_ancestral", "heun", "dpm_2", "dpm_2_ancestral", "lms", "dpmpp_2m", "dpmpp_2m_sde",
    "dpmpp_sde", "deis", "uni_pc", "uni_pc_bh2", "ddim", "ddpm", "pndm", "lcm",
)
SCHEDULE_NAMES: tuple[str, ...] = (
    "default", "normal", "karras", "exponential", "sgm_uniform", "simple", "ddim_uniform", "beta",
)


def nearest_name(name: str, known: Iterable[str], cutoff: float = 0.6) -> str | None:
    """The name in `known` closest to `name` by spelling (difflib), or None if none is close."""
    matches = difflib.get_close_matches(name, list(known), n=1, cutoff=cutoff)
    return matches[0] if matches else None
