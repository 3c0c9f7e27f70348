"""comfyui_controlnet_aux's Inpaint Preprocessor, Standard and Realistic Lineart, LeReS and Zoe Depth Anything, and
WAS Node Suite's Image Canny Filter and MiDaS Depth Approximation (issue 30; corpus 078, pwillia7's ControlNet
toolkit) come in as NodeForge nodes from a UI 0.4 file and an API prompt alike (comfy-preprocessors-*.json, one graph
in both forms) with their widgets converted, and go back as the same classes (Image Canny Filter as ComfyUI's Canny).
What the nodes compute: tests/nodes/test_nodes_lineart.py, test_nodes_leres.py and test_nodes_inpaint_control.py."""
from __future__ import annotations

import json

import pytest

from nodeforge.interop import comfy_export

DATA = __import__("pathlib").Path(__file__).resolve().parent / "data"
FORMATS = ["comfy-preprocessors-0.4.json", "comfy-preprocessors-api.json"]

MAPPED = {
    "2": ("ImageToEdges", {"low_threshold": 0.25, "high_threshold": 0.25}),
    "3": ("DepthMap", {"model": "dpt-large", "resolution": 0}),        # WAS: the image's own size
    "4": ("DepthMap", {"model": "Depth-Anything-V2-Metric-Outdoor-Large-hf", "resolution": 768}),
    "5": ("InpaintControlImage", {"xinsir_black": True}),
    "6": ("LineartStandard", {"guassian_sigma": 2.5, "intensity_threshold": 4, "resolution": 1024}),
    "7": ("LineArt", {"model": "sk_model2.pth", "resolution": 640}),    # coarse: enable
    "14": ("LeReSDepthMap", {"model": "res101.pth", "rm_nearest": 10.0, "rm_background": 0.0, "resolution": 512}),
}


@pytest.mark.parametrize("name", FORMATS)
def test_the_classes_come_in_as_nodeforge_nodes_with_their_widgets_converted(read, validate, name):
    imported = read(name)
    nodes = imported.workflow.nodes
    for nid, (kind, params) in MAPPED.items():
        assert (nodes[nid].type, nodes[nid].params) == (kind, params), nid
        assert nodes[nid].inputs["image"] == ("1", "image")
    assert nodes["5"].inputs["mask"] == ("1", "mask")
    notes = {line.split(":")[0]: line for line in imported.warnings if not line.startswith("missing ")}
    assert set(notes) == {"node 2 (Image Canny Filter)", "node 3 (MiDaS Depth Approximation)",
                          "node 4 (Zoe_DepthAnythingPreprocessor)", "node 7 (LineArtPreprocessor)",
                          "node 14 (LeReS-DepthMapPreprocessor)"}
    assert "channels swapped (blue for red)" in notes["node 3 (MiDaS Depth Approximation)"]
    assert "Depth-Anything-V2-Metric-Indoor-Large-hf" in notes["node 4 (Zoe_DepthAnythingPreprocessor)"]
    assert "sk_model.pth" in notes["node 7 (LineArtPreprocessor)"]
    assert any(line.startswith("missing lineart model 'sk_model2.pth'") for line in imported.warnings)
    assert validate(imported.workflow) == []


@pytest.mark.parametrize("name", FORMATS)
def test_they_export_back_as_the_same_classes_with_the_same_values(exported_back, name):
    back = exported_back(name, "comfy-preprocessors-api.json")
    back.assert_kept(["3", "4", "5", "6", "7", "14"])
    assert (back.prompt["2"]["class_type"], back.prompt["2"]["inputs"]) == (
        "Canny", {"low_threshold": 0.25, "high_threshold": 0.25, "image": ["1", 0]})


def test_the_ui_file_goes_back_with_the_same_widgets(read, registry):
    from nodeforge.interop import export_comfyui_ui

    original = {n["id"]: n for n in json.loads((DATA / FORMATS[0]).read_text())["nodes"]}
    ui = export_comfyui_ui(read(FORMATS[0]).workflow, registry=registry)
    for node in ui["nodes"]:
        if node["id"] in (3, 4, 5, 6, 7, 14):
            assert (node["type"], node["widgets_values"]) == (original[node["id"]]["type"],
                                                              original[node["id"]]["widgets_values"])


def test_indoor_and_fine_lineart_and_black_pixels_off_convert_both_ways(read, registry, tmp_path):
    data = json.loads((DATA / FORMATS[1]).read_text())
    data["4"]["inputs"]["environment"] = "indoor"
    data["5"]["inputs"]["black_pixel_for_xinsir_cn"] = False
    data["7"]["inputs"]["coarse"] = "disable"
    data["3"]["inputs"]["midas_type"] = "DPT_Hybrid"
    source = tmp_path / "other.json"
    source.write_text(json.dumps(data))
    workflow = read(source).workflow
    assert workflow.nodes["4"].params["model"] == "Depth-Anything-V2-Metric-Indoor-Large-hf"
    assert workflow.nodes["5"].params == {"xinsir_black": False}
    assert workflow.nodes["7"].params["model"] == "sk_model.pth"
    assert workflow.nodes["3"].params == {"model": "dpt-hybrid-midas", "resolution": 0}
    workflow.nodes["7"].params["model"] = "sk_model2.safetensors"      # a converted coarse file is still coarse
    prompt = comfy_export.export_comfyui_api(workflow, registry=registry)
    assert prompt["4"]["inputs"]["environment"] == "indoor"
    assert prompt["7"]["inputs"]["coarse"] == "enable"
    assert (prompt["3"]["class_type"], prompt["3"]["inputs"]["midas_type"]) == ("MiDaS Depth Approximation",
                                                                                 "DPT_Hybrid")


def test_invert_depth_is_said_and_an_old_inpaint_node_without_widgets_comes_in(read, tmp_path):
    data = json.loads((DATA / FORMATS[0]).read_text())
    for node in data["nodes"]:
        if node["type"] == "MiDaS Depth Approximation":
            node["widgets_values"] = ["false", "DPT_Large", "true"]
        if node["type"] == "InpaintPreprocessor":
            del node["widgets_values"]                  # comfyui_controlnet_aux before black_pixel_for_xinsir_cn
    source = tmp_path / "old.json"
    source.write_text(json.dumps(data))
    imported = read(source)
    assert imported.workflow.nodes["5"].params == {}    # xinsir_black: its default, off
    assert any("invert_depth is on" in line and "Invert Image" in line for line in imported.warnings)


def test_leres_comes_in_as_leres_depth_map_and_goes_back_with_boost_off(read, registry, tmp_path):
    data = json.loads((DATA / FORMATS[1]).read_text())
    data["20"] = {"class_type": "LeReS-DepthMapPreprocessor",
                  "inputs": {"rm_nearest": 12.5, "rm_background": 40.0, "boost": "enable", "resolution": 768,
                             "image": ["1", 0]}}
    source = tmp_path / "leres.json"
    source.write_text(json.dumps(data))
    imported = read(source)
    node = imported.workflow.nodes["20"]
    assert (node.type, node.params) == ("LeReSDepthMap", {"model": "res101.pth", "rm_nearest": 12.5,
                                                          "rm_background": 40.0, "resolution": 768})
    assert any("boost is on" in line for line in imported.warnings)
    assert any(line.startswith("missing LeReS depth model 'res101.pth'") for line in imported.warnings)
    prompt = comfy_export.export_comfyui_api(imported.workflow, registry=registry)
    assert (prompt["20"]["class_type"], prompt["20"]["inputs"]) == ("LeReS-DepthMapPreprocessor", {
        "rm_nearest": 12.5, "rm_background": 40.0, "boost": "disable", "resolution": 768, "image": ["1", 0]})
