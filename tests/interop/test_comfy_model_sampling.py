"""ComfyUI's ModelSamplingDiscrete comes in as NodeForge's node of the same name (sampling, zsnr), says once
how its zsnr differs from ComfyUI's, and goes back as itself (comfy-model-sampling-*.json)."""
from __future__ import annotations

import pytest

from nodeforge.interop import comfy_export


@pytest.mark.parametrize("name", ["comfy-model-sampling-0.4.json", "comfy-model-sampling-api.json"])
def test_model_sampling_discrete_imports_and_exports_field_by_field(read, registry, name):
    imported = read(name)
    node = imported.workflow.nodes["2"]
    assert (node.type, node.params, node.inputs) == ("ModelSamplingDiscrete", {"sampling": "v_prediction", "zsnr": True},
                                                     {"unet": ("1", "unet")})
    notes = [line for line in imported.warnings if not line.startswith("missing ")]
    assert len(notes) == 1 and notes[0].startswith("node 2 (ModelSamplingDiscrete): zsnr follows diffusers'")
    prompt = comfy_export.export_comfyui_api(imported.workflow, registry=registry)
    assert (prompt["2"]["class_type"], prompt["2"]["inputs"]) == (
        "ModelSamplingDiscrete", {"sampling": "v_prediction", "zsnr": True, "model": ["1", 0]})
