"""LG_SamplingUtils' ZImageTimestepNoise comes in as NodeForge's Timestep Noise with its mode, strength,
seed and window, from a UI 0.4 file and an API prompt alike (its values are a shared Z-Image
workflow's), validates on a Z-Image graph, and goes back under its class name with the same values
(comfy-timestep-noise-*.json; issue 30)."""
from __future__ import annotations

import pytest

from nodeforge.interop import comfy_table

FORMATS = ["comfy-timestep-noise-0.4.json", "comfy-timestep-noise-api.json"]


@pytest.mark.parametrize("name", FORMATS)
def test_timestep_noise_comes_in_with_its_values_and_one_line_on_its_noise(read, validate, name):
    imported = read(name)
    node = imported.workflow.nodes["9"]
    assert (node.type, node.params, node.inputs) == (
        "TimestepNoise", {"mode": "flow", "noise_strength": 0.25, "seed": 283122831275968, "start_percent": 0,
                          "end_percent": 0.4}, {"unet": ("4", "unet"), "sigmas": ("8", "sigmas")})
    assert imported.workflow.nodes["11"].inputs["unet"] == ("9", "unet")
    assert sum(line.startswith("node 9 (ZImageTimestepNoise): each step's noise is drawn from a CPU generator")
               for line in imported.warnings) == 1
    assert all(n.type != "comfyui.Placeholder" for n in imported.workflow.nodes.values())
    assert validate(imported.workflow) == []


@pytest.mark.parametrize("name", FORMATS)
def test_timestep_noise_exports_back_with_the_same_values(exported_back, name):
    exported_back(name, "comfy-timestep-noise-api.json").assert_kept(["9"], "ZImageTimestepNoise")


def test_timestep_noise_is_mapped():
    assert comfy_table.BY_COMFY["ZImageTimestepNoise"].nodeforge == "TimestepNoise"
