"""ComfyUI core's Resize Image/Mask ('scale dimensions'), Resize And Pad Image, Save Animated WEBP and Load Image
(from Outputs), ComfyUI_essentials' Image Crop, KJNodes' Simple Calculator, kijai's IC-Light Simple Light Source and ComfyUI's
Switch (issue 30; widget values from the corpus files 041, 042, 046 and 052) come in as NodeForge nodes, from a UI 0.4 file and an API prompt alike, and go
back as the same classes with the same values (comfy-fit-nodes-*.json, one graph in both forms). What each node
computes: tests/nodes/test_nodes_fit.py."""
from __future__ import annotations

import json

import pytest

from nodeforge.interop import comfy_packs, comfy_table

DATA = __import__("pathlib").Path(__file__).resolve().parent / "data"
FORMATS = ["comfy-fit-nodes-0.4.json", "comfy-fit-nodes-api.json"]
CLASSES = ("LoadImageOutput", "ResizeImageMaskNode", "ImageCrop+", "ResizeAndPadImage", "SimpleCalculatorKJ",
           "SaveAnimatedWEBP", "LightSource", "ComfySwitchNode")


@pytest.mark.parametrize("name", FORMATS)
def test_the_classes_come_in_as_nodeforge_nodes_with_their_values(read, validate, name):
    imported = read(name)
    nodes = imported.workflow.nodes
    assert {nid: (n.type, n.params, dict(n.inputs)) for nid, n in nodes.items()} == {
        "1": ("LoadImage", {"path": "render_00001_.png"}, {}),
        "2": ("ResizeImageMask", {"resize_type": "scale dimensions", "width": 512, "height": 512, "crop": "center",
                                  "scale_method": "bicubic"}, {"input": ("1", "mask")}),
        "3": ("ImageCropAtPosition", {"width": 2848, "height": 1600, "position": "left-center", "x_offset": 500,
                                      "y_offset": 0}, {"image": ("1", "image")}),
        "4": ("ResizeAndPadImage", {"target_width": 512, "target_height": 512, "padding_color": "black",
                                    "interpolation": "lanczos"}, {"image": ("3", "image")}),
        "5": ("MathExpression", {"expression": "a * b", "style": "KJNodes"}, {"a": ("3", "x"), "b": ("3", "y")}),
        "6": ("SaveAnimatedWEBP", {"prefix": "ComfyUI", "fps": 16, "lossless": False, "quality": 100,
                                   "method": "default"}, {"images": ("4", "image")}),
        "7": ("LightSource", {"light_position": "Top Left Light", "multiplier": 2.5, "start_color": "#FF8000",
                              "end_color": "0,0,64", "width": 64, "height": 48, "batch_size": 2}, {}),
        "8": ("Switch", {"switch": True}, {"on_false": ("4", "image"), "on_true": ("3", "image")})}
    assert validate(imported.workflow) == []
    assert any("from its output folder" in w for w in imported.warnings)


@pytest.mark.parametrize("name", FORMATS)
def test_they_export_back_as_the_same_classes_with_the_same_values(exported_back, name):
    exported_back(name, "comfy-fit-nodes-api.json").assert_kept(["1", "2", "3", "4", "5", "6", "7", "8"])


def test_the_ui_file_goes_back_with_the_same_widgets_and_links(read, registry):
    from nodeforge.interop import export_comfyui_ui

    original = json.loads((DATA / "comfy-fit-nodes-0.4.json").read_text())
    ui = export_comfyui_ui(read("comfy-fit-nodes-0.4.json").workflow, registry=registry)
    ours = {n["id"]: n for n in ui["nodes"]}
    for node in original["nodes"]:
        assert (ours[node["id"]]["type"], ours[node["id"]]["widgets_values"]) == (node["type"], node["widgets_values"])
    wires = {tuple(link[1:5]) for link in ui["links"]}
    assert wires == {tuple(link[1:5]) for link in original["links"]}
    again = read(json.loads(json.dumps(ui))).workflow
    first = read("comfy-fit-nodes-0.4.json").workflow
    assert {k: (n.type, n.params, n.inputs) for k, n in again.nodes.items()} == \
        {k: (n.type, n.params, n.inputs) for k, n in first.nodes.items()}


def test_another_resize_type_is_refused_by_name_not_run_on_misread_widgets(read, validate, tmp_path):
    ui = json.loads((DATA / "comfy-fit-nodes-0.4.json").read_text())
    node = next(n for n in ui["nodes"] if n["id"] == 2)
    node["widgets_values"] = ["scale by multiplier", 1.5, "area"]
    (tmp_path / "other.json").write_text(json.dumps(ui))
    imported = read(tmp_path / "other.json")
    params = imported.workflow.nodes["2"].params
    assert params == {"resize_type": "scale by multiplier"}
    assert any("resize_type 'scale by multiplier' is not in NodeForge" in w for w in imported.warnings)
    problems = validate(imported.workflow)
    assert [(p.node_id, p.field) for p in problems] == [("2", "resize_type")]


def test_an_older_light_source_files_colour_in_width_is_left_at_the_default(read, tmp_path):
    # corpus 013 (roblaughter's ICLightBasic) lists '#FFFFFF' where width is now
    ui = json.loads((DATA / "comfy-fit-nodes-0.4.json").read_text())
    next(n for n in ui["nodes"] if n["id"] == 7)["widgets_values"] = ["Right Light", 1, "#FFFFFF", "#000000", "#FFFFFF",
                                                                      512, 1]
    (tmp_path / "old.json").write_text(json.dumps(ui))
    imported = read(tmp_path / "old.json")
    assert imported.workflow.nodes["7"].params == {"light_position": "Right Light", "multiplier": 1,
                                                   "start_color": "#FFFFFF", "end_color": "#000000", "height": 512,
                                                   "batch_size": 1}
    assert any("its width '#FFFFFF' is no number" in w for w in imported.warnings)


def test_the_classes_are_mapped_and_no_longer_listed_as_unsupported():
    for name in CLASSES:
        assert name in comfy_table.BY_COMFY and name not in comfy_packs.CORE and name not in comfy_packs.EQUIVALENTS
        assert comfy_packs.describe(name).get("pack") in (None, "ComfyUI_essentials", "ComfyUI-KJNodes")
