"""ComfyUI's TextEncodeQwenImageEditPlus (issue 30, corpus 045/047) and TextEncodeQwenImageEdit come in as NodeForge's node of that name from a
UI 0.4 file and an API prompt alike (comfy-qwen-edit-*.json: a Qwen-Image-Edit-2509 edit with two pictures in the
layout of ComfyUI's template, our own graph; the UI file is NodeForge's own UI export of it), with the loaders
(CLIPLoader type qwen_image), the fixed shift and CFGNorm; it validates and goes back under its ComfyUI name with
the same values and links."""
from __future__ import annotations

import pytest

from nodeforge.interop import comfy_packs, comfy_table

FORMATS = ["comfy-qwen-edit-0.4.json", "comfy-qwen-edit-api.json"]


@pytest.mark.parametrize("name", FORMATS)
def test_the_qwen_edit_comes_in_with_its_pictures_vae_and_loaders(read, name):
    imported = read(name)
    nodes = imported.workflow.nodes
    assert all(n.type != "comfyui.Placeholder" for n in nodes.values())
    assert (nodes["2"].type, nodes["2"].params["type"]) == ("TextEncoderLoader", "qwen_image")
    for node, text in (("7", "put the lamp from Picture 2 on the table in Picture 1"), ("8", "")):
        assert (nodes[node].type, nodes[node].params) == ("TextEncodeQwenImageEditPlus", {"prompt": text})
        assert nodes[node].inputs == {"clip": ("2", "clip"), "vae": ("3", "vae"), "image1": ("6", "image"),
                                      "image2": ("5", "image")}
    assert nodes["12"].inputs["positive"] == ("7", "conditioning") and nodes["12"].inputs["unet"] == ("10", "unet")
    assert (nodes["9"].type, nodes["9"].params) == ("ModelSamplingSD3", {"shift": 3.1})
    assert (nodes["15"].type, nodes["15"].params, nodes["15"].inputs) == (   # the first edit model's node
        "TextEncodeQwenImageEdit", {"prompt": "make the room brighter"},
        {"clip": ("2", "clip"), "vae": ("3", "vae"), "image": ("4", "image")})
    assert not [line for line in imported.warnings if not line.startswith("missing ")]


@pytest.mark.parametrize("name", FORMATS)
def test_the_qwen_edit_validates_and_exports_back_with_the_same_values(exported_back, name):
    back = exported_back(name, "comfy-qwen-edit-api.json", valid=True)
    back.assert_kept(["2", "7", "8", "9", "10", "12", "15", "16"])


def test_the_edit_classes_are_mapped_and_no_longer_listed_as_unsupported():
    for name in ("TextEncodeQwenImageEditPlus", "TextEncodeQwenImageEdit"):
        assert name in comfy_table.BY_COMFY and name not in comfy_packs.CORE
