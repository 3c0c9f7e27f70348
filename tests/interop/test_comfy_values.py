"""ComfyUI's value classes (Get Image Size, KJNodes' Get Image Size & Count, Math Expression, pysssss' Math Expression,
essentials' Simple Math, Concatenate, Regex Replace, and the nodes that show a value: Preview Any, pysssss' Show Text,
rgthree's Display Any / Display Int) come in as NodeForge's value nodes with their INT / FLOAT / STRING outputs still
wired into the widgets they feed (Empty Latent's width and height, CLIP Text Encode's text), from a UI 0.4 file and
an API prompt alike (comfy-values-*.json), validate, and go back under their ComfyUI names with the same links."""
from __future__ import annotations

import json

import pytest

from nodeforge.interop import comfy_packs, comfy_table, export_comfyui_ui

CLASSES = ("GetImageSize", "GetImageSizeAndCount", "ComfyMathExpression", "MathExpression|pysssss", "SimpleMath+",
           "StringConcatenate", "RegexReplace", "PreviewAny", "ShowText|pysssss", "Display Any (rgthree)",
           "Display Int (rgthree)", "ResizeImagesByLongerEdge", "ImageConcatMulti")

NODES = {
    "2": ("GetImageSize", {}, {"image": ("1", "image")}),
    "3": ("GetImageSize", {}, {"image": ("1", "image")}),
    "4": ("MathExpression", {"expression": "a * b + 1", "style": "ComfyUI"}, {"a": ("2", "width"), "b": ("3", "batch_size")}),
    "5": ("MathExpression", {"expression": "a.width / 2", "style": "ComfyUI"}, {"a": ("1", "image")}),
    "6": ("MathExpression", {"expression": "a / 2", "style": "essentials"}, {"a": ("2", "height")}),
    "9": ("RegexReplace", {"string": "  on a blue background  ", "regex_pattern": "^\\s+|\\s+$", "replace": "",
                           "case_insensitive": True, "multiline": False, "dotall": False, "count": 0}, {}),
    "12": ("ShowValue", {}, {"value": ("8", "string")}),
    "13": ("ShowValue", {}, {"value": ("8", "string")}),      # Show Text's output is its input passed on
    "14": ("ShowValue", {}, {"value": ("5", "float")}),
    "15": ("ShowValue", {}, {"value": ("2", "batch_size")}),
    "16": ("Preview", {}, {"image": ("1", "image")}),         # Get Image Size & Count's image: its input
    "17": ("ResizeImagesByLongerEdge", {"longer_edge": 32}, {"image": ("1", "image")}),
    "20": ("ImageConcat", {"inputcount": 3, "direction": "right", "match_image_size": True},
           {"image_1": ("1", "image"), "image_2": ("17", "image"), "image_3": ("1", "image")}),
}


def test_the_classes_are_mapped_and_no_longer_told_core():
    for name in CLASSES:
        assert name in comfy_table.BY_COMFY and name not in comfy_packs.CORE, name


@pytest.mark.parametrize("name", ["comfy-values-0.4.json", "comfy-values-api.json"])
def test_values_stay_wired_into_the_params_they_feed(read, validate, name):
    imported = read(name)
    nodes = imported.workflow.nodes
    for nid, (node_type, params, inputs) in NODES.items():
        assert (nodes[nid].type, nodes[nid].params, nodes[nid].inputs) == (node_type, params, inputs), nid
    assert nodes["7"].type == "EmptyLatent" and nodes["7"].inputs == {"width": ("4", "int"), "height": ("6", "int")}
    assert nodes["7"].params["batch_size"] == 2                # Custom Combo's INDEX, a constant: the value itself
    assert nodes["8"].type == "JoinText" and nodes["8"].inputs == {"string_b": ("9", "string")}
    assert nodes["8"].params["string_a"] == "a red circle" and nodes["8"].params["delimiter"] == ", "   # its STRING
    assert "19" not in nodes
    assert nodes["11"].type == "TextEncoder" and nodes["11"].inputs == {"clip": ("10", "clip"), "text": ("8", "string")}
    assert not any("cannot run" in line or "placeholder" in line for line in imported.warnings)
    assert validate(imported.workflow) == []


@pytest.mark.parametrize("name", ["comfy-values-0.4.json", "comfy-values-api.json"])
def test_they_export_back_with_their_links(exported_back, name):
    back = exported_back(name, "comfy-values-api.json", valid=True)
    back.assert_kept(["2", "5", "6", "9", "11", "14", "15", "17", "18", "21"])
    assert back.prompt["20"]["inputs"] == {"inputcount": 3, "direction": "right", "match_image_size": True,
                                           "image_1": ["1", 0], "image_2": ["17", 0], "image_3": ["1", 0]}
    # Custom Combo is a constant: its values are written where it fed them
    assert back.prompt["7"]["inputs"] == {"width": ["4", 1], "height": ["6", 0], "batch_size": 2}
    assert back.prompt["8"]["inputs"] == {"string_a": "a red circle", "string_b": ["9", 0], "delimiter": ", "}
    assert (back.prompt["12"]["class_type"], back.prompt["12"]["inputs"]) == ("PreviewAny", {"source": ["8", 0]})
    assert back.prompt["13"]["inputs"] == {"source": ["8", 0]}   # through Show Text's output: its input
    # Get Image Size & Count goes back as Get Image Size (its image output was a wire): count is slot 2 there
    assert back.prompt["3"] == {"inputs": {"image": ["1", 0]}, "class_type": "GetImageSize",
                                "_meta": {"title": "Get Image Size"}}
    assert back.prompt["4"]["inputs"] == {"expression": "a * b + 1", "values.a": ["2", 0], "values.b": ["3", 2]}
    assert back.prompt["16"]["inputs"] == {"images": ["1", 0]}


def test_the_ui_export_writes_the_wired_widgets_as_widget_inputs(read, registry):
    workflow = read("comfy-values-0.4.json").workflow
    ui = export_comfyui_ui(workflow, registry=registry)
    nodes = {n["id"]: n for n in ui["nodes"]}
    links = {link[0]: link for link in ui["links"]}
    latent = nodes[7]
    wired = {p["name"]: (p["type"], p.get("widget"), links[p["link"]][1:3]) for p in latent["inputs"]}
    assert wired == {"width": ("INT", {"name": "width"}, [4, 1]), "height": ("INT", {"name": "height"}, [6, 0])}
    assert latent["widgets_values"] == [512, 512, 2]
    encoder = {p["name"]: p for p in nodes[11]["inputs"]}
    assert encoder["text"]["widget"] == {"name": "text"} and links[encoder["text"]["link"]][1:3] == [8, 0]
    assert json.loads(json.dumps(ui)) == ui


def test_a_widget_fed_by_a_node_nodeforge_runs_keeps_its_wire(read, registry, validate):
    from nodeforge.interop import export_comfyui_api, read_workflow

    prompt = {"1": {"class_type": "SimpleMath+", "inputs": {"value": "a + b", "a": 2, "b": 3}},
              "2": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}},
              "3": {"class_type": "LatentUpscaleBy", "inputs": {"upscale_method": "area", "scale_by": ["1", 0],
                                                                "samples": ["2", 0]}},
              "4": {"class_type": "PreviewAny", "inputs": {"source": ["3", 0]}}}
    imported = read_workflow(prompt, registry=registry)
    assert imported.workflow.nodes["3"].inputs == {"latent": ("2", "latent"), "scale_by": ("1", "int")}
    assert not any("scale_by" in line for line in imported.warnings)
    assert validate(imported.workflow) == []       # an INT output may feed a FLOAT param
    assert export_comfyui_api(imported.workflow, registry=registry)["3"]["inputs"]["scale_by"] == ["1", 0]
