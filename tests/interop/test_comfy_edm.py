"""ComfyUI's ModelSamplingContinuousEDM (CosXL's) comes in as NodeForge's node of the same name (sampling,
sigma_max, sigma_min) and goes back as itself (comfy-edm-*.json)."""
from __future__ import annotations

import pytest

from nodeforge.interop import comfy_export


@pytest.mark.parametrize("name", ["comfy-edm-0.4.json", "comfy-edm-api.json"])
def test_model_sampling_continuous_edm_imports_and_exports_field_by_field(read, registry, name):
    imported = read(name)
    node = imported.workflow.nodes["2"]
    assert (node.type, node.params, node.inputs) == (
        "ModelSamplingContinuousEDM", {"sampling": "v_prediction", "sigma_max": 240, "sigma_min": 0.002},
        {"unet": ("1", "unet")})
    assert [line for line in imported.warnings if not line.startswith("missing ")] == []
    prompt = comfy_export.export_comfyui_api(imported.workflow, registry=registry)
    assert (prompt["2"]["class_type"], prompt["2"]["inputs"]) == (
        "ModelSamplingContinuousEDM", {"sampling": "v_prediction", "sigma_max": 240, "sigma_min": 0.002,
                                       "model": ["1", 0]})
