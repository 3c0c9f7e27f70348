"""ComfyUI's ImageScaleToMaxDimension (issue 30) comes in as NodeForge's node of that name with its
method and size, from a UI 0.4 file and an API prompt alike, and goes back under its ComfyUI name with
the same values (comfy-max-dimension-*.json, one graph in both forms; the second node's values are a
shared Z-Image workflow's)."""
from __future__ import annotations

import pytest

from nodeforge.interop import comfy_packs, comfy_table

FORMATS = ["comfy-max-dimension-0.4.json", "comfy-max-dimension-api.json"]


@pytest.mark.parametrize("name", FORMATS)
def test_scale_to_max_dimension_comes_in_with_its_method_and_size(read, validate, name):
    imported = read(name)
    nodes = imported.workflow.nodes
    assert [(nodes[n].type, nodes[n].params, nodes[n].inputs) for n in ("2", "3")] == [
        ("ImageScaleToMaxDimension", {"upscale_method": "lanczos", "largest_size": 1024}, {"image": ("1", "image")}),
        ("ImageScaleToMaxDimension", {"upscale_method": "area", "largest_size": 512}, {"image": ("1", "image")})]
    assert nodes["3"].title == "Image2 ScaleToMaxDimension"
    assert all(n.type != "comfyui.Placeholder" for n in nodes.values())
    assert validate(imported.workflow) == []


@pytest.mark.parametrize("name", FORMATS)
def test_scale_to_max_dimension_exports_back_with_the_same_values(exported_back, name):
    exported_back(name, "comfy-max-dimension-api.json").assert_kept(["2", "3"], "ImageScaleToMaxDimension")


def test_scale_to_max_dimension_is_mapped_and_no_longer_listed_as_unsupported():
    assert "ImageScaleToMaxDimension" in comfy_table.BY_COMFY and "ImageScaleToMaxDimension" not in comfy_packs.CORE
