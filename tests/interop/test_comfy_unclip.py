"""ComfyUI's CLIPVisionEncode and unCLIPConditioning (issue 30; SDXL Revision graphs) come in as
NodeForge's nodes of the same names with their widgets and links, from a UI 0.4 file and an API prompt
alike, say how they differ from ComfyUI, and go back under their ComfyUI names with the same values
(comfy-unclip-*.json, one graph in both forms); ComfyUI's unCLIPCheckpointLoader (SD 2.1 unCLIP) comes in
as unCLIP Checkpoint Loader with its four outputs and goes back (comfy-unclip-checkpoint-*.json)."""
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
    assert notes[1].startswith("nodes 13, 14 (unCLIPConditioning): an SD 2.1 unCLIP model reads") and "SDXL" in notes[1]


@pytest.mark.parametrize("name", FORMATS)
def test_unclip_graph_validates_and_exports_back_with_the_same_values(exported_back, registry, name):
    back = exported_back(name, "comfy-unclip-api.json", valid=True)
    back.assert_kept(["12", "13", "14"])
    ui = export_comfyui_ui(back.workflow, registry=registry)
    by_id = {str(n["id"]): n for n in ui["nodes"]}
    assert (by_id["12"]["type"], by_id["12"]["widgets_values"]) == ("CLIPVisionEncode", ["none"])
    assert (by_id["14"]["type"], by_id["14"]["widgets_values"]) == ("unCLIPConditioning", [0.6, 0.3])
    assert [o["type"] for o in by_id["12"]["outputs"]] == ["CLIP_VISION_OUTPUT"]


def test_clip_vision_encode_unclip_and_the_unclip_loader_are_mapped_and_not_listed_as_unsupported():
    for name in ("CLIPVisionEncode", "unCLIPConditioning", "unCLIPCheckpointLoader"):
        assert name in comfy_table.BY_COMFY and name not in comfy_packs.CORE


CHECKPOINT_FORMATS = ["comfy-unclip-checkpoint-0.4.json", "comfy-unclip-checkpoint-api.json"]


@pytest.mark.parametrize("name", CHECKPOINT_FORMATS)
def test_an_sd21_unclip_graph_comes_in_with_its_loaders_four_outputs(read, name):
    """An SD 2.1 unCLIP graph (unCLIPCheckpointLoader's MODEL, CLIP, VAE and CLIP_VISION all used) comes in as
    unCLIP Checkpoint Loader with its checkpoint name and every link on its NodeForge output."""
    imported = read(name)
    nodes = imported.workflow.nodes
    assert (nodes["4"].type, nodes["4"].params) == ("UnCLIPCheckpointLoader", {"checkpoint": "sd21-unclip-h.ckpt"})
    assert nodes["3"].inputs["unet"] == ("4", "unet") and nodes["8"].inputs["vae"] == ("4", "vae")
    assert nodes["6"].inputs["clip"] == nodes["7"].inputs["clip"] == ("4", "clip")
    assert nodes["12"].inputs == {"clip_vision": ("4", "clip_vision"), "image": ("11", "image")}
    assert (nodes["13"].params, nodes["3"].inputs["positive"]) == ({"strength": 1, "noise_augmentation": 0.1},
                                                                   ("13", "conditioning"))
    assert all(n.type != "comfyui.Placeholder" for n in nodes.values())


@pytest.mark.parametrize("name", CHECKPOINT_FORMATS)
def test_an_sd21_unclip_graph_validates_and_exports_back_as_comfyuis_classes(exported_back, registry, name):
    back = exported_back(name, "comfy-unclip-checkpoint-api.json", valid=True)
    back.assert_kept(["4", "6", "7", "8", "12", "13"])
    ui = export_comfyui_ui(back.workflow, registry=registry)
    by_id = {str(n["id"]): n for n in ui["nodes"]}
    assert (by_id["4"]["type"], by_id["4"]["widgets_values"]) == ("unCLIPCheckpointLoader", ["sd21-unclip-h.ckpt"])
    assert [o["type"] for o in by_id["4"]["outputs"]] == ["MODEL", "CLIP", "VAE", "CLIP_VISION"]
