"""comfyui_controlnet_aux's OpenPose preprocessor comes in as NodeForge's PoseMap with a ViTPose model folder
(body only: hands and face said once), and goes back as the same class (comfy-pose-*.json)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from nodeforge.interop import comfy_export

FORMATS = ["comfy-pose-0.4.json", "comfy-pose-api.json"]


@pytest.mark.parametrize("name", FORMATS)
def test_openpose_comes_in_as_pose_map_with_a_vitpose_folder(read, name):
    imported = read(name)
    node = imported.workflow.nodes["2"]
    assert (node.type, node.params, node.inputs) == (
        "PoseMap", {"model": "vitpose-base-simple", "resolution": 768, "xinsir_sticks": True}, {"image": ("1", "image")})
    notes = [line for line in imported.warnings if line.startswith("node 2 ")]
    assert len(notes) == 2
    assert "detect_hand are on: NodeForge draws the body only (no hand keypoints)" in notes[0]
    assert "models/pose/vitpose-base-simple" in notes[1] and "not OpenPose's own network" in notes[1]
    assert any(line.startswith("missing pose model 'vitpose-base-simple' (node 2)") for line in imported.warnings)


@pytest.mark.parametrize("name", FORMATS)
def test_pose_map_exports_as_openpose_drawing_the_body(read, registry, name):
    prompt = comfy_export.export_comfyui_api(read(name).workflow, registry=registry)
    assert (prompt["2"]["class_type"], prompt["2"]["inputs"]) == ("OpenposePreprocessor", {
        "detect_hand": "disable", "detect_body": "enable", "detect_face": "disable", "resolution": 768,
        "scale_stick_for_xinsr_cn": "enable", "image": ["1", 0]})


def test_an_old_openpose_node_with_a_version_in_the_resolutions_place_takes_the_default(read, registry, tmp_path):
    data = json.loads((Path(__file__).parent / "data" / FORMATS[0]).read_text())
    data["nodes"][1]["widgets_values"] = ["enable", "enable", "enable", "v1.1"]   # an early comfyui_controlnet_aux
    source = tmp_path / "old.json"
    source.write_text(json.dumps(data))
    imported = read(source)
    assert imported.workflow.nodes["2"].params == {"model": "vitpose-base-simple"}
    assert registry.get("PoseMap").param("resolution").default == 512
    assert any("detect_hand and detect_face are on" in line for line in imported.warnings)
