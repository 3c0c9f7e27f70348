"""kijai's ComfyUI-IC-Light LoadAndApplyICLightUnet and ICLightConditioning, and ComfyUI-Video-Matting's BRIAAI
Matting (issue 30; corpus 009 and 013, roblaughter's IC-Light graphs) come in as NodeForge's Load And Apply IC-Light,
IC-Light Conditioning and Remove Background (BRIA RMBG) from a UI 0.4 file and an API prompt alike
(comfy-iclight-*.json, one graph in both forms), validate, and go back as the same classes with the same values.
What the nodes compute: tests/nodes/test_nodes_iclight.py and test_nodes_background_removal.py."""
from __future__ import annotations

import json

import pytest

DATA = __import__("pathlib").Path(__file__).resolve().parent / "data"
FORMATS = ["comfy-iclight-0.4.json", "comfy-iclight-api.json"]


@pytest.mark.parametrize("name", FORMATS)
def test_the_classes_come_in_as_nodeforge_nodes_with_their_values(read, validate, name):
    imported = read(name)
    nodes = imported.workflow.nodes
    assert (nodes["5"].type, nodes["5"].params, dict(nodes["5"].inputs)) == (
        "RemoveBackground", {"model": "RMBG-1.4", "bg_color": "#7F7F7F"}, {"image": ("4", "image")})
    assert (nodes["9"].type, nodes["9"].params, dict(nodes["9"].inputs)) == (
        "LoadAndApplyICLightUnet", {"iclight": "iclight_sd15_fbc.safetensors"}, {"unet": ("1", "unet")})
    assert (nodes["10"].type, nodes["10"].params, dict(nodes["10"].inputs)) == (
        "ICLightConditioning", {"multiplier": 0.2},
        {"positive": ("2", "conditioning"), "negative": ("3", "conditioning"), "vae": ("1", "vae"),
         "foreground": ("6", "latent"), "opt_background": ("8", "latent")})
    assert dict(nodes["11"].inputs)["latent"] == ("10", "empty_latent")
    missing = [line.split(" (node")[0] for line in imported.warnings]
    assert "missing background removal model 'RMBG-1.4'" in missing
    assert "missing diffusion model 'iclight_sd15_fbc.safetensors'" in missing
    assert validate(imported.workflow) == []


@pytest.mark.parametrize("name", FORMATS)
def test_they_export_back_as_the_same_classes_with_the_same_values(exported_back, name):
    exported_back(name, "comfy-iclight-api.json").assert_kept([str(i) for i in range(1, 15)])


def test_the_ui_file_goes_back_with_the_same_widgets_and_links(read, registry):
    from nodeforge.interop import export_comfyui_ui

    original = json.loads((DATA / "comfy-iclight-0.4.json").read_text())
    ui = export_comfyui_ui(read("comfy-iclight-0.4.json").workflow, registry=registry)
    ours = {n["id"]: n for n in ui["nodes"]}
    for node in original["nodes"]:
        if node["type"] in ("BRIAAI Matting", "LoadAndApplyICLightUnet", "ICLightConditioning"):
            assert (ours[node["id"]]["type"], ours[node["id"]]["widgets_values"]) == (node["type"],
                                                                                      node["widgets_values"])
    assert {tuple(link[1:5]) for link in ui["links"]} == {tuple(link[1:5]) for link in original["links"]}
    again = read(json.loads(json.dumps(ui))).workflow
    first = read("comfy-iclight-0.4.json").workflow
    assert {k: (n.type, n.params, n.inputs) for k, n in again.nodes.items()} == \
        {k: (n.type, n.params, n.inputs) for k, n in first.nodes.items()}

