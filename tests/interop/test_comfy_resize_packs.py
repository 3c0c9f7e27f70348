"""KJNodes' and essentials' resize nodes (ImageResizeKJv2, ImageResizeKJ, ImageResize+) come in as Scale Image
where their mode is one of its own, with the size they would give; KJNodes' INTConstant and rgthree's Seed
node and other packs' constants (Easy-Use, ComfyUI-Logic, KJNodes) become the values they feed, mtb's Colored Image is Empty Image (comfy-resize-*.json). All go back to
ComfyUI as core classes."""
from __future__ import annotations

import pytest
import torch

from nodeforge.interop import export_comfyui_api, export_comfyui_ui

FORMATS = ["comfy-resize-0.4.json", "comfy-resize-api.json"]

SCALED = {
    # crop at the center; 500 x 300 rounded down to divisible_by 8, as KJNodes does
    "2": {"upscale_method": "lanczos", "width": 496, "height": 296, "crop": "center"},
    # 'pad' is not Scale Image's: stretched, with a warning (and one for the height of 0)
    "3": {"upscale_method": "bicubic", "width": 512, "height": 0, "crop": "disabled"},
    # KJNodes' first version with keep_proportion off: 480 rounded down to divisible_by 64
    "4": {"upscale_method": "bilinear", "width": 640, "height": 448, "crop": "center"},
    # essentials' fill / crop is the center crop; 1000 x 600 to multiple_of 16; its nearest is nearest-exact
    "5": {"upscale_method": "nearest-exact", "width": 992, "height": 592, "crop": "center"},
    # the older essentials' keep_proportion switch (on: fit inside) and a condition: stretched, two warnings
    "6": {"upscale_method": "lanczos", "width": 1024, "height": 1024, "crop": "disabled"},
    # the width from INTConstant 7 (768)
    "8": {"upscale_method": "area", "width": 768, "height": 512, "crop": "disabled"},
}


@pytest.mark.parametrize("name", FORMATS)
def test_resize_nodes_come_in_as_scale_image_with_the_size_they_give(read, name):
    imported = read(name)
    nodes = imported.workflow.nodes
    for nid, params in SCALED.items():
        assert (nodes[nid].type, nodes[nid].params, nodes[nid].inputs) == ("ImageScale", params,
                                                                           {"image": ("1", "image")}), nid
    assert "7" not in nodes and "9" not in nodes and "11" not in nodes      # constants are the values they feed
    assert nodes["3"].title == "padded" and nodes["2"].title is None
    warnings = imported.warnings
    assert "node 3 (ImageResizeKJv2): keep_proportion 'pad' (fit inside, pad or total pixels) is not in NodeForge's " \
           "Scale Image; the image is stretched to width x height" in warnings
    assert "node 3 (ImageResizeKJv2): height 0 keeps the image's own height in this node; NodeForge's Scale Image " \
           "keeps the aspect ratio instead: set the height you want" in warnings
    assert "node 6 (ImageResize+): method 'keep proportion' (fit inside or pad) is not in NodeForge's Scale Image; " \
           "the image is stretched to width x height" in warnings
    assert "node 6 (ImageResize+): condition 'downscale if bigger' is not in NodeForge's Scale Image; the image is " \
           "always resized" in warnings
    assert not [w for w in warnings if w.startswith(("node 2 ", "node 4 ", "node 5 ", "node 8 "))
                and "exported back" not in w and "missing" not in w]
    assert not [w for w in warnings if "placeholder" in w]


@pytest.mark.parametrize("name", FORMATS)
def test_rgthree_seeds_are_the_seed_they_give(read, name):
    imported = read(name)
    nodes = imported.workflow.nodes
    assert (nodes["10"].type, nodes["10"].params) == ("RandomNoise", {"seed": 1234})
    # -1 is rgthree's "a new seed each time it is queued": seed 0, randomized after each run in the editor
    assert nodes["12"].params == {"seed": 0}
    assert imported.workflow.ui["seed_control"] == {"12": "randomize"}
    assert "node 12 (RandomNoise), noise_seed: Seed (rgthree) 11 gives -1 (rgthree picks the seed when the graph is " \
           "queued); NodeForge starts at 0, set to randomize after each run in the editor" in imported.warnings


@pytest.mark.parametrize("name", FORMATS)
def test_they_go_back_to_comfyui_as_core_classes(read, registry, name):
    workflow = read(name).workflow
    prompt = export_comfyui_api(workflow, registry=registry)
    for nid, params in SCALED.items():
        assert prompt[nid] == {"class_type": "ImageScale", "_meta": {"title": workflow.nodes[nid].title or "Upscale Image"},
                               "inputs": {**params, "image": ["1", 0]}}, nid
    assert prompt["10"]["inputs"] == {"noise_seed": 1234} and prompt["12"]["inputs"] == {"noise_seed": 0}
    ui = {n["id"]: n for n in export_comfyui_ui(workflow, registry=registry)["nodes"]}
    assert ui[2]["type"] == "ImageScale" and ui[2]["widgets_values"] == ["lanczos", 496, 296, "center"]
    assert ui[8]["widgets_values"] == ["area", 768, 512, "disabled"]
    assert ui[10]["widgets_values"] == [1234, "fixed"] and ui[12]["widgets_values"] == [0, "randomize"]
    assert 7 not in ui and 9 not in ui


def test_the_crop_and_the_stretch_are_the_pixels_those_nodes_give():
    from nodes.geometry import run_image_scale

    # a 2 x 4 image whose columns are 0, 1, 2, 3 (tenths): KJNodes' 'crop' and essentials' 'fill / crop' to
    # 2 x 2 keep the middle columns at the center; 'stretch' to 8 x 4 repeats each pixel (nearest-exact)
    image = (torch.arange(4, dtype=torch.float32) / 10).view(1, 1, 4, 1).expand(1, 2, 4, 3).contiguous()
    cropped = run_image_scale(None, image, "nearest-exact", 2, 2, "center")["image"]
    assert torch.equal(cropped[0, :, :, 0], torch.tensor([[0.1, 0.2], [0.1, 0.2]]))
    stretched = run_image_scale(None, image, "nearest-exact", 8, 4, "disabled")["image"]
    assert stretched.shape == (1, 4, 8, 3)
    assert torch.equal(stretched[0, 0, :, 0], torch.tensor([0.0, 0.0, 0.1, 0.1, 0.2, 0.2, 0.3, 0.3]))


@pytest.mark.parametrize("name", FORMATS)
def test_mtb_colored_image_is_an_empty_image_of_its_colour(read, registry, name):
    from nodes.images import run_empty_image

    node = read(name).workflow.nodes["14"]
    assert (node.type, node.params) == ("EmptyImage", {"color": 0x654501, "width": 1344, "height": 768,
                                                       "batch_size": 1})
    image = run_empty_image(None, 4, 2, 1, node.params["color"])["image"]
    # what PIL's Image.new("RGB", size, "#654501") gives, as ComfyUI's 0..1 floats
    assert torch.equal(image[0, 0, 0], torch.tensor([0x65, 0x45, 0x01], dtype=torch.float32) / 255)
    prompt = export_comfyui_api(read(name).workflow, registry=registry)
    assert prompt["14"]["class_type"] == "EmptyImage"
    assert prompt["14"]["inputs"] == {"width": 1344, "height": 768, "batch_size": 1, "color": 0x654501}


@pytest.mark.parametrize("name", FORMATS)
def test_pack_constants_are_the_values_they_feed(read, registry, name):
    nodes = read(name).workflow.nodes
    assert nodes["15"].params == {"width": 640, "height": 384, "batch_size": 1}        # easy int, Int-🔬
    assert nodes["16"].params == {"upscale_method": "bilinear", "scale_by": 1.5}      # FloatConstant
    assert nodes["17"].params == {"upscale_method": "bicubic", "scale_by": 0.5}       # easy float
    assert nodes["18"].params == {"prefix": "shapes"}                                 # String-🔬
    assert not {"19", "20", "21", "22", "23"} & set(nodes)
    ui = {n["id"]: n for n in export_comfyui_ui(read(name).workflow, registry=registry)["nodes"]}
    assert ui[15]["widgets_values"] == [640, 384, 1] and ui[18]["widgets_values"] == ["shapes"]
