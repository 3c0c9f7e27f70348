"""ComfyUI's CLIPVisionEncode and unCLIPConditioning (issue 30; SDXL Revision graphs) come in as
NodeForge's nodes of the same names with their widgets and links, from a UI 0.4 file and an API prompt
alike, say how they differ from ComfyUI, and go back under their ComfyUI names with the same values
(comfy-unclip-*.json, one graph in both forms)."""
from __future__ import annotations

import pytest

from nodeforge.interop import comfy_packs, comfy_table, export_comfyui_ui

FORMATS = ["comfy-unclip-0.4.json", "comfy-unclip-api.json"]


@pytest.mark.parametrize("name", FORMATS)
def test_unclip_graph_comes_in_with_its_crop_strengths_and_chain(read, name):
    imported = read(name)
    nodes = imported.workflow.nodes
    assert (nodes["12"].type, nodes["12"].params, nodes["12"].inputs) == (
        "CLIPVisionEncode", {"crop": "none"}, {"clip_vision": ("10", "clip_vision"), "image": ("11", "image")})
    assert (nodes["13"].type, nodes["13"].params) == ("UnCLIPConditioning", {"strength": 1, "noise_augmentation": 0})
    assert nodes["13"].inputs == {"conditioning": ("6", "conditioning"), "clip_vision_output": ("12", "clip_vision_output")}
    assert nodes["14"].params == {"strength": 0.6, "noise_augmentation": 0.3}
    assert nodes["14"].inputs["conditioning"] == ("13", "conditioning")
    assert nodes["3"].inputs["positive"] == ("14", "conditioning")
    assert all(n.type != "comfyui.Placeholder" for n in nodes.values())
    notes = [line for line in imported.warnings if not line.startswith("missing ")]
    assert len(notes) == 2 and notes[0].startswith("node 12 (CLIPVisionEncode): ")
    assert notes[1].startswith("nodes 13, 14 (unCLIPConditioning): an SDXL model reads") and "2.1-unclip" in notes[1]


@pytest.mark.parametrize("name", FORMATS)
def test_unclip_graph_validates_and_exports_back_with_the_same_values(exported_back, registry, name):
    back = exported_back(name, "comfy-unclip-api.json", valid=True)
    back.assert_kept(["12", "13", "14"])
    ui = export_comfyui_ui(back.workflow, registry=registry)
    by_id = {str(n["id"]): n for n in ui["nodes"]}
    assert (by_id["12"]["type"], by_id["12"]["widgets_values"]) == ("CLIPVisionEncode", ["none"])
    assert (by_id["14"]["type"], by_id["14"]["widgets_values"]) == ("unCLIPConditioning", [0.6, 0.3])
    assert [o["type"] for o in by_id["12"]["outputs"]] == ["CLIP_VISION_OUTPUT"]


def test_clip_vision_encode_and_unclip_are_mapped_and_no_longer_listed_as_unsupported():
    for name in ("CLIPVisionEncode", "unCLIPConditioning"):
        assert name in comfy_table.BY_COMFY and name not in comfy_packs.CORE
    assert "unCLIPCheckpointLoader" in comfy_packs.CORE     # SD 2.1-unclip checkpoints: not a family NodeForge loads
