"""Sampler and schedule names are written once (nodeforge/core/samplers.py); every other list
either reads it or is held to it here, so a sampler added in one place and not the other fails."""
from __future__ import annotations

import pytest

from nodeforge.core import samplers as names
from nodeforge.core.registry import builtin_module
from nodeforge.core.types import ParamRole
from nodeforge.core.workflow import V1_SCHEDULERS
from nodeforge.interop import samplers as interop

schedulers = builtin_module("schedulers")


def test_the_packs_tables_cover_exactly_the_core_names_in_order():
    assert tuple(row.name for row in schedulers.SAMPLER_TABLE) == names.SAMPLER_NAMES
    assert tuple(row.name for row in schedulers.SCHEDULE_TABLE) == names.SCHEDULE_NAMES


def test_unet_denoise_offers_the_core_names_by_role(registry):
    spec = registry.get("UNetDenoise")
    by_role = {p.role: p for p in spec.params}
    assert by_role[ParamRole.SAMPLER].choice_list() == names.SAMPLER_NAMES
    assert by_role[ParamRole.SCHEDULE].choice_list() == names.SCHEDULE_NAMES


def test_interop_reads_the_core_names():
    assert interop.SAMPLERS is names.SAMPLER_NAMES and interop.SCHEDULES is names.SCHEDULE_NAMES
    for name in names.SAMPLER_NAMES:
        assert interop.sampler_from_comfy(name) == interop.Mapped(name)


def test_every_approximation_lands_on_a_name_nodeforge_has():
    targets = {**interop.SAME_SAMPLER, **interop.NEAREST_SAMPLER}
    assert set(targets.values()) <= set(names.SAMPLER_NAMES)
    assert set(interop.NEAREST_SCHEDULE.values()) <= set(names.SCHEDULE_NAMES)
    assert not set(targets) & set(names.SAMPLER_NAMES), "a name NodeForge has needs no approximation"


def test_each_format_1_scheduler_migrates_to_a_pair_the_pack_runs():
    for old, (sampler, schedule) in V1_SCHEDULERS.items():
        assert schedulers.check_pair(sampler, schedule) == [], old


def test_each_sampler_png_parameters_name_reads_back_as_a_sampler_with_that_name():
    """What SaveImage writes as A1111's `Sampler:` imports to a sampler A1111 calls the same."""
    a1111_of = {row.name: row.a1111 for row in schedulers.SAMPLER_TABLE}
    for row in schedulers.SAMPLER_TABLE:
        mapped, _ = interop.from_a1111(row.a1111)
        assert a1111_of[mapped.name] == row.a1111, row.name
    for row in schedulers.SCHEDULE_TABLE:
        if row.a1111:
            _, schedule = interop.from_a1111("Euler", row.a1111)
            assert schedule.note is None and schedule.name in names.SCHEDULE_NAMES, row.name


@pytest.mark.parametrize("name, nearest, via", [
    ("dpmpp_2m_sde_heun", "dpmpp_2m_sde", None), ("eulerr", "euler", None), ("Karras ", None, None),
    ("heunpp", "heun", "heunpp2"), ("dpmpp_3m_sde_gpu2", "dpmpp_2m_sde", "dpmpp_3m_sde_gpu")])
def test_an_unknown_comfyui_sampler_is_a_warning_naming_it_and_the_nearest(name, nearest, via):
    mapped = interop.sampler_from_comfy(name)
    if nearest is None:   # nothing spelled like it: the fallback, said out loud
        assert mapped.name == "euler" and "no sampler NodeForge has is spelled like it" in mapped.note
        return
    assert mapped.name == nearest
    assert repr(name.strip()) in mapped.note and f"the nearest NodeForge has, {nearest!r}" in mapped.note
    assert (f"(as {via!r})" in mapped.note) == (via is not None)


def test_an_unknown_comfyui_schedule_is_a_warning_naming_it_and_the_nearest():
    mapped = interop.schedule_from_comfy("karas")
    assert mapped == interop.Mapped("karras", "unknown schedule 'karas'; using the nearest NodeForge has, 'karras'")
    far = interop.schedule_from_comfy("zzz")
    assert far.name == "normal" and "'zzz'" in far.note and "no schedule" in far.note


def test_an_unknown_a1111_sampler_is_a_warning_naming_it_and_the_nearest():
    mapped, schedule = interop.from_a1111("Euler A2")
    assert mapped.name == "euler_ancestral" and "'Euler A2'" in mapped.note and "'euler_ancestral'" in mapped.note
    assert schedule == interop.Mapped("normal")
