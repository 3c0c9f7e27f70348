"""comfyui_controlnet_aux's depth preprocessors (MiDaS, Zoe, Depth Anything v1/v2) come in as NodeForge's
DepthMap with the transformers folder of the model each runs, and go back as the same class
(comfy-depth-*.json)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from nodeforge.interop import comfy_export

FORMATS = ["comfy-depth-0.4.json", "comfy-depth-api.json"]

MAPPED = {
    "2": {"model": "dpt-hybrid-midas", "resolution": 1024},       # a = 1.28 and bg_threshold: the normal map's
    "3": {"model": "zoedepth-nyu-kitti", "resolution": 768},
    "4": {"model": "depth-anything-base-hf", "resolution": 512},  # depth_anything_vitb14.pth
    "5": {"model": "Depth-Anything-V2-Small-hf", "resolution": 640},   # depth_anything_v2_vits.pth
}


@pytest.mark.parametrize("name", FORMATS)
def test_depth_preprocessors_come_in_as_depth_map_with_their_models_folder(read, name):
    imported = read(name)
    nodes = imported.workflow.nodes
    for nid, params in MAPPED.items():
        assert (nodes[nid].type, nodes[nid].params, nodes[nid].inputs) == ("DepthMap", params, {"image": ("1", "image")})
    notes = [line for line in imported.warnings if not line.startswith("missing ")]
    assert [line.split(":")[0] for line in notes] == [
        "node 2 (MiDaS-DepthMapPreprocessor)", "node 3 (Zoe-DepthMapPreprocessor)", "node 4 (DepthAnythingPreprocessor)",
        "node 5 (DepthAnythingV2Preprocessor)"]
    assert "models/depth/dpt-hybrid-midas" in notes[0] and "a and bg_threshold shape MiDaS's normal map" in notes[0]
    missing = [line for line in imported.warnings if line.startswith("missing ")]
    assert any("dpt-hybrid-midas" in line for line in missing)


@pytest.mark.parametrize("name", FORMATS)
def test_depth_preprocessors_export_as_the_same_class(read, registry, name):
    prompt = comfy_export.export_comfyui_api(read(name).workflow, registry=registry)
    assert (prompt["2"]["class_type"], prompt["2"]["inputs"]) == ("MiDaS-DepthMapPreprocessor", {
        "a": 6.283185307179586, "bg_threshold": 0.1, "resolution": 1024, "image": ["1", 0]})
    assert (prompt["3"]["class_type"], prompt["3"]["inputs"]) == (
        "Zoe-DepthMapPreprocessor", {"resolution": 768, "image": ["1", 0]})
    assert (prompt["4"]["class_type"], prompt["4"]["inputs"]) == ("DepthAnythingPreprocessor", {
        "ckpt_name": "depth_anything_vitb14.pth", "resolution": 512, "image": ["1", 0]})
    assert (prompt["5"]["class_type"], prompt["5"]["inputs"]) == ("DepthAnythingV2Preprocessor", {
        "ckpt_name": "depth_anything_v2_vits.pth", "resolution": 640, "image": ["1", 0]})


def test_a_depth_map_on_another_model_exports_as_depth_anything_v2_with_its_folder_name(read, registry):
    wf = read("comfy-depth-api.json").workflow
    wf.nodes["2"].params["model"] = "my-depth"
    del wf.nodes["2"].extra["comfyui"]     # as if made in NodeForge
    prompt = comfy_export.export_comfyui_api(wf, registry=registry)
    assert (prompt["2"]["class_type"], prompt["2"]["inputs"]["ckpt_name"]) == ("DepthAnythingV2Preprocessor", "my-depth")


def test_an_old_midas_node_without_resolution_takes_the_default(read, registry, tmp_path):
    data = json.loads((Path(__file__).parent / "data" / FORMATS[0]).read_text())
    for node in data["nodes"]:
        if node["type"] == "MiDaS-DepthMapPreprocessor":
            node["widgets_values"] = [6.283185307179586, 0.05]      # comfyui_controlnet_aux before resolution
    source = tmp_path / "old.json"
    source.write_text(json.dumps(data))
    assert read(source).workflow.nodes["2"].params == {"model": "dpt-hybrid-midas"}     # resolution: the default
    assert registry.get("DepthMap").param("resolution").default == 512
