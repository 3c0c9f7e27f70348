"""QualityOfLifeSuit (omar92)'s Image Scale Factor and Latent Upscale Factor nodes (each in its Simple
form too) and deadinside's LatentWeightedBlendResize come in as NodeForge's Scale Image by Factors,
Upscale Latent by Factors and Latent Weighted Blend (Resize) with their values, from a UI 0.4 file and an
API prompt alike, and go back under their own class names (issue 30). WAS's Load Text File and EZ's
Load Img From URL that feed nothing are left out: ComfyUI never runs them. (comfy-factor-*.json, one graph in both forms; nodes 3, 7, 9
and 12 carry the values of two shared files.)"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from nodeforge.interop import comfy_export, comfy_table

DATA = Path(__file__).resolve().parent / "data"
FORMATS = ["comfy-factor-0.4.json", "comfy-factor-api.json"]
EXPECTED = {
    "3": ("ImageScaleByFactors", {"upscale_method": "nearest-exact", "width_factor": 0.5, "height_factor": 0.5,
                                  "multiple_of_8": True, "crop": "disabled"}, {"image": ("2", "image")}),
    "4": ("ImageScaleByFactors", {"upscale_method": "area", "width_factor": 1.5, "height_factor": 0.75,
                                  "multiple_of_8": False, "crop": "center"}, {"image": ("2", "image")}),
    "7": ("LatentScaleByFactors", {"upscale_method": "nearest-exact", "width_factor": 1.25, "height_factor": 1.25,
                                   "crop": "disabled"}, {"latent": ("5", "latent")}),
    "8": ("LatentScaleByFactors", {"upscale_method": "bilinear", "width_factor": 2.0, "height_factor": 2.0,
                                   "crop": "center"}, {"latent": ("6", "latent")}),
    "9": ("LatentWeightedBlend", {"weight_1": 1, "weight_2": 0.8, "width": 1920, "height": 1088},
          {"latent_1": ("7", "latent"), "latent_2": ("8", "latent")}),
}
CLASSES = {"3": "ImageScaleFactorSimple _O", "4": "ImageScaleFactor _O", "7": "LatentUpscaleFactor _O",
           "8": "LatentUpscaleFactorSimple _O", "9": "LatentWeightedBlendResize"}


@pytest.mark.parametrize("name", FORMATS)
def test_factor_and_blend_nodes_come_in_with_their_values(read, validate, name):
    imported = read(name)
    nodes = imported.workflow.nodes
    assert {nid: (nodes[nid].type, nodes[nid].params, nodes[nid].inputs) for nid in EXPECTED} == EXPECTED
    assert nodes["4"].title == "Wide crop"
    assert all(n.type != "comfyui.Placeholder" for n in nodes.values())
    assert validate(imported.workflow) == []


@pytest.mark.parametrize("name", FORMATS)
def test_a_load_text_file_or_url_image_that_feeds_nothing_is_left_out_with_one_line(read, name):
    imported = read(name)
    assert "12" not in imported.workflow.nodes and "13" not in imported.workflow.nodes
    for nid, comfy in (("12", "Load Text File"), ("13", "EZLoadImgFromUrlNode")):
        assert imported.warnings.count(f"node {nid} ({comfy}): its outputs feed nothing and it is no output node, "
                                       "so ComfyUI never runs it: left out") == 1


def test_a_load_text_file_that_feeds_something_stays_a_placeholder(read, tmp_path):
    prompt = json.loads((DATA / "comfy-factor-api.json").read_text())
    prompt["13"] = {"class_type": "CLIPTextEncode", "inputs": {"text": ["12", 0], "clip": ["1", 1]}}
    prompt["14"] = {"class_type": "ConditioningZeroOut", "inputs": {"conditioning": ["13", 0]}}
    source = tmp_path / "linked.json"
    source.write_text(json.dumps(prompt))
    nodes = read(source).workflow.nodes
    assert nodes["12"].type == "comfyui.Placeholder"


@pytest.mark.parametrize("name", FORMATS)
def test_factor_and_blend_nodes_export_back_as_their_classes_with_the_same_values(exported_back, name):
    back = exported_back(name, "comfy-factor-api.json")
    for nid, comfy in CLASSES.items():
        back.assert_kept([nid], comfy)


def test_a_simple_factor_node_with_two_factors_goes_back_as_the_two_factor_class(read, registry):
    workflow = read("comfy-factor-api.json").workflow
    workflow.nodes["3"].params["height_factor"] = 0.75
    workflow.nodes["8"].params["width_factor"] = 1.5
    prompt = comfy_export.export_comfyui_api(workflow, registry=registry)
    assert prompt["3"]["class_type"] == "ImageScaleFactor _O"
    assert (prompt["3"]["inputs"]["WidthFactor"], prompt["3"]["inputs"]["HeightFactor"]) == (0.5, 0.75)
    assert prompt["8"]["class_type"] == "LatentUpscaleFactor _O"
    assert (prompt["8"]["inputs"]["WidthFactor"], prompt["8"]["inputs"]["HeightFactor"]) == (1.5, 2.0)


def test_the_classes_are_mapped():
    assert set(CLASSES.values()) <= set(comfy_table.BY_COMFY)
