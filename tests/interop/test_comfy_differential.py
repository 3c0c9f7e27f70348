"""ComfyUI's DifferentialDiffusion comes in as NodeForge's node of that name with its strength, from a UI
0.4 file and an API prompt alike, feeds the samplers of an inpainting graph, and goes back under its
ComfyUI name with the same values (comfy-differential-*.json; issue 30)."""
from __future__ import annotations

import pytest

from nodeforge.interop import comfy_packs, comfy_table

FORMATS = ["comfy-differential-0.4.json", "comfy-differential-api.json"]


@pytest.mark.parametrize("name", FORMATS)
def test_differential_diffusion_comes_in_with_its_strength(read, validate, name):
    imported = read(name)
    nodes = imported.workflow.nodes
    assert [(nodes[n].type, nodes[n].params, nodes[n].inputs) for n in ("5", "6")] == [
        ("DifferentialDiffusion", {"strength": 1}, {"unet": ("1", "unet")}),
        ("DifferentialDiffusion", {"strength": 0.6}, {"unet": ("1", "unet")})]
    assert nodes["9"].inputs["unet"] == ("5", "unet") and nodes["10"].inputs["unet"] == ("6", "unet")
    assert nodes["6"].title == "Softer"
    assert all(n.type != "comfyui.Placeholder" for n in nodes.values())
    assert validate(imported.workflow) == []


@pytest.mark.parametrize("name", FORMATS)
def test_differential_diffusion_exports_back_with_the_same_values(exported_back, name):
    exported_back(name, "comfy-differential-api.json").assert_kept(["5", "6"], "DifferentialDiffusion")


def test_differential_diffusion_is_mapped_and_no_longer_listed_as_unsupported():
    assert "DifferentialDiffusion" in comfy_table.BY_COMFY and "DifferentialDiffusion" not in comfy_packs.CORE
