"""ComfyUI's SkipLayerGuidanceSD3 (issue 30) comes in as NodeForge's node of that name with its four
widgets and its link between ModelSamplingSD3 and the sampler, from a UI 0.4 file and an API prompt
alike, and goes back under its ComfyUI name with the same values (comfy-slg-*.json: ComfyUI's SD3
example graph with the node added, its values those of a shared SD3.5 workflow)."""
from __future__ import annotations

import pytest

from nodeforge.interop import comfy_packs, comfy_table

FORMATS = ["comfy-slg-0.4.json", "comfy-slg-api.json"]


@pytest.mark.parametrize("name", FORMATS)
def test_skip_layer_guidance_comes_in_with_its_widgets_between_the_shift_and_the_sampler(read, validate, name):
    imported = read(name)
    nodes = imported.workflow.nodes
    assert (nodes["91"].type, nodes["91"].params, nodes["91"].inputs) == (
        "SkipLayerGuidanceSD3", {"layers": "6,7,8", "scale": 1.1, "start_percent": 0.01, "end_percent": 0.15},
        {"unet": ("13", "unet")})
    assert nodes["3"].inputs["unet"] == ("91", "unet")
    assert all(n.type != "comfyui.Placeholder" for n in nodes.values())
    assert validate(imported.workflow) == []


@pytest.mark.parametrize("name", FORMATS)
def test_skip_layer_guidance_exports_back_with_the_same_values(exported_back, name):
    back = exported_back(name, "comfy-slg-api.json")
    back.assert_kept(["91"], "SkipLayerGuidanceSD3")
    assert back.prompt["3"]["inputs"]["model"] == ["91", 0]


def test_skip_layer_guidance_is_mapped_and_no_longer_listed_as_unsupported():
    assert "SkipLayerGuidanceSD3" in comfy_table.BY_COMFY and "SkipLayerGuidanceSD3" not in comfy_packs.CORE
