"""ComfyUI's MaskPreview and essentials' MaskPreview+ (comfy-mask-preview-*.json) show a mask as the grey image
Convert Mask to Image gives: they come in as that node (added as <id>.mask) and a Preview, and go back to ComfyUI
as MaskToImage and PreviewImage."""
from __future__ import annotations

import pytest
import torch

from nodeforge.interop import export_comfyui_api, export_comfyui_ui

FORMATS = ["comfy-mask-preview-0.4.json", "comfy-mask-preview-api.json"]


@pytest.mark.parametrize("name", FORMATS)
def test_a_mask_preview_is_the_mask_as_an_image_previewed(read, name):
    imported = read(name)
    nodes = imported.workflow.nodes
    for nid, title in (("2", "alpha"), ("3", None)):
        assert (nodes[f"{nid}.mask"].type, nodes[f"{nid}.mask"].inputs) == ("MaskToImage", {"mask": ("1", "mask")})
        assert (nodes[nid].type, nodes[nid].inputs, nodes[nid].title) == ("Preview", {"image": (f"{nid}.mask", "image")},
                                                                          title)
    assert not [w for w in imported.warnings if "placeholder" in w]


def test_the_image_is_the_grey_picture_comfyui_previews():
    from nodes.images import run_mask_to_image

    # ComfyUI's MaskPreview: mask.reshape(-1, 1, H, W).movedim(1, -1).expand(-1, -1, -1, 3)
    mask = torch.tensor([[[0.0, 0.25], [0.5, 1.0]]])
    image = run_mask_to_image(None, mask)["image"]
    assert image.shape == (1, 2, 2, 3)
    assert torch.equal(image, mask.reshape(-1, 1, 2, 2).movedim(1, -1).expand(-1, -1, -1, 3))


@pytest.mark.parametrize("name", FORMATS)
def test_it_goes_back_to_comfyui_as_mask_to_image_and_preview_image(read, registry, name):
    workflow = read(name).workflow
    prompt = export_comfyui_api(workflow, registry=registry)
    assert prompt["2.mask"] == {"class_type": "MaskToImage", "_meta": {"title": "Convert Mask to Image"},
                                "inputs": {"mask": ["1", 1]}}
    assert prompt["2"] == {"class_type": "PreviewImage", "_meta": {"title": "alpha"}, "inputs": {"images": ["2.mask", 0]}}
    types = sorted(n["type"] for n in export_comfyui_ui(workflow, registry=registry)["nodes"])
    assert types == ["LoadImage", "MaskToImage", "MaskToImage", "PreviewImage", "PreviewImage"]
