"""ComfyUI's SelfAttentionGuidance (issue 30) comes in as NodeForge's node of that name with its scale and
blur sigma and its link between the loader and the sampler, from a UI 0.4 file and an API prompt alike,
and goes back under its ComfyUI name with the same values (comfy-sag-*.json: one graph in both forms,
the values of a shared CosXL workflow)."""
from __future__ import annotations

import pytest

from nodeforge.interop import comfy_packs, comfy_table

FORMATS = ["comfy-sag-0.4.json", "comfy-sag-api.json"]


@pytest.mark.parametrize("name", FORMATS)
def test_self_attention_guidance_comes_in_between_the_loader_and_the_sampler(read, validate, name):
    imported = read(name)
    nodes = imported.workflow.nodes
    assert (nodes["10"].type, nodes["10"].params, nodes["10"].inputs) == (
        "SelfAttentionGuidance", {"scale": 0.8, "blur_sigma": 4}, {"unet": ("4", "unet")})
    assert nodes["3"].inputs["unet"] == ("10", "unet")
    assert all(n.type != "comfyui.Placeholder" for n in nodes.values())
    assert validate(imported.workflow) == []


@pytest.mark.parametrize("name", FORMATS)
def test_self_attention_guidance_exports_back_with_the_same_values(exported_back, name):
    back = exported_back(name, "comfy-sag-api.json")
    back.assert_kept(["10"], "SelfAttentionGuidance")
    assert back.prompt["3"]["inputs"]["model"] == ["10", 0]


def test_self_attention_guidance_is_mapped_and_no_longer_listed_as_unsupported():
    assert "SelfAttentionGuidance" in comfy_table.BY_COMFY and "SelfAttentionGuidance" not in comfy_packs.CORE
