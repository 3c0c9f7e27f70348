"""ComfyUI's JoinImageWithAlpha comes in as NodeForge's node of the same name, wired image and mask, and goes
back as itself (comfy-join-alpha-*.json)."""
from __future__ import annotations

import pytest

from nodeforge.interop import comfy_export


@pytest.mark.parametrize("name", ["comfy-join-alpha-0.4.json", "comfy-join-alpha-api.json"])
def test_join_image_with_alpha_imports_and_exports_wired(read, registry, name):
    imported = read(name)
    node = imported.workflow.nodes["2"]
    assert (node.type, node.params, node.inputs) == (
        "JoinImageWithAlpha", {}, {"image": ("1", "image"), "alpha": ("1", "mask")})
    assert imported.workflow.nodes["3"].inputs == {"image": ("2", "image")}
    assert [line for line in imported.warnings if not line.startswith("missing ")] == []
    prompt = comfy_export.export_comfyui_api(imported.workflow, registry=registry)
    assert (prompt["2"]["class_type"], prompt["2"]["inputs"]) == (
        "JoinImageWithAlpha", {"image": ["1", 0], "alpha": ["1", 1]})
