"""ComfyUI's SD3 graph (its sd3 example's classes: ModelSamplingSD3, CLIPTextEncodeSD3,
EmptySD3LatentImage) imports into the nodes a NodeForge SD3 graph uses, and exports back."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

DATA = Path(__file__).resolve().parent / "data"
SD3 = {
    "13": ("ModelSamplingSD3", {"shift": 3.0}, {"unet": ("4", "unet")}),
    "71": ("TextEncoderSD3", {"clip_l": "blurry", "clip_g": "blurry, low quality", "t5xxl": "a blurry picture"},
           {"clip": ("4", "clip")}),
    "135": ("EmptyLatent", {"width": 1024, "height": 1024, "batch_size": 1}, {}),
    "3": ("UNetDenoise", {"seed": 42, "steps": 28, "cfg": 4.5, "sampler": "dpmpp_2m", "schedule": "sgm_uniform",
                          "denoise": 1}, {"unet": ("13", "unet"), "positive": ("6", "conditioning"),
                                          "negative": ("71", "conditioning"), "latent": ("135", "latent")}),
}


@pytest.mark.parametrize("name", ["comfy-sd3-0.4.json", "comfy-sd3-api.json"])
def test_comfyuis_sd3_classes_import_field_by_field(read, validate, name):
    imported = read(name)
    nodes = imported.workflow.nodes
    for nid, (node_type, params, inputs) in SD3.items():
        node = nodes[nid]
        assert (node.type, {k: node.params[k] for k in params}, node.inputs) == (node_type, params, inputs), nid
    assert nodes["135"].extra == {"comfyui": {"class_type": "EmptySD3LatentImage"}}
    assert all(n.type != "comfyui.Placeholder" for n in nodes.values())
    assert validate(imported.workflow) == []


def test_sd3_classes_export_back_to_comfyuis(read, registry):
    from nodeforge.interop import export_comfyui_api

    api = export_comfyui_api(read("comfy-sd3-api.json").workflow, registry=registry)
    by_class = {n["class_type"]: n["inputs"] for n in api.values()}
    assert by_class["ModelSamplingSD3"]["shift"] == 3.0
    assert by_class["EmptySD3LatentImage"]["width"] == 1024
    assert {k: by_class["CLIPTextEncodeSD3"][k] for k in ("clip_l", "clip_g", "t5xxl", "empty_padding")} == \
        {"clip_l": "blurry", "clip_g": "blurry, low quality", "t5xxl": "a blurry picture", "empty_padding": "empty_prompt"}
    assert json.loads(json.dumps(api)) == api
