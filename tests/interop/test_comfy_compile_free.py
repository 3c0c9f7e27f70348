"""KJNodes' TorchCompileModelQwenImage, ComfyUI's TorchCompileModel and Easy-Use's easy cleanGpuUsed (issue 30, corpus
047) come in as NodeForge's TorchCompileModel and FreeMemory from a UI 0.4 file and an API prompt alike
(comfy-compile-free-*.json: a Qwen-Image graph with both compile nodes and the memory node after the decoder, our
own graph; the UI file is NodeForge's own UI export of it), validate, and go back under the class each came
from with the same values and links."""
from __future__ import annotations

import pytest

from nodeforge.interop import comfy_table

FORMATS = ["comfy-compile-free-0.4.json", "comfy-compile-free-api.json"]


@pytest.mark.parametrize("name", FORMATS)
def test_the_compile_and_memory_nodes_come_in_with_their_settings(read, name):
    imported = read(name)
    nodes = imported.workflow.nodes
    assert all(n.type != "comfyui.Placeholder" for n in nodes.values())
    assert (nodes["4"].type, nodes["4"].params, nodes["4"].inputs) == (
        "TorchCompileModel", {"backend": "inductor", "fullgraph": False, "mode": "max-autotune", "dynamic": False,
                              "blocks_only": True, "cache_size_limit": 64}, {"unet": ("1", "unet")})
    assert (nodes["5"].type, nodes["5"].params["backend"], nodes["5"].params["blocks_only"]) == (
        "TorchCompileModel", "inductor", False)   # ComfyUI's own node compiles the whole model
    assert (nodes["11"].type, nodes["11"].inputs) == ("FreeMemory", {"value": ("10", "image")})
    assert not [line for line in imported.warnings if not line.startswith("missing ")]


@pytest.mark.parametrize("name", FORMATS)
def test_they_validate_and_export_back_under_their_own_classes(exported_back, name):
    back = exported_back(name, "comfy-compile-free-api.json", valid=True)
    back.assert_kept(["4", "5", "9", "11"])


def test_the_classes_are_mapped():
    for name in ("TorchCompileModelQwenImage", "TorchCompileModel", "easy cleanGpuUsed"):
        assert name in comfy_table.BY_COMFY
