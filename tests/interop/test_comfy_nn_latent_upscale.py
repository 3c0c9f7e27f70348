"""Ttl's NNLatentUpscale comes in as NodeForge's LatentUpscaleNN with the weight file its version loads (said once:
the pack keeps them inside itself), and goes back as the same class and version (comfy-nn-latent-upscale-*.json)."""
from __future__ import annotations

import pytest

from nodeforge.interop import comfy_export

FORMATS = ["comfy-nn-latent-upscale-0.4.json", "comfy-nn-latent-upscale-api.json"]


@pytest.mark.parametrize("name", FORMATS)
def test_nn_latent_upscale_comes_in_with_its_versions_weight_file(read, name):
    imported = read(name)
    nodes = imported.workflow.nodes
    assert (nodes["2"].type, nodes["2"].params, nodes["2"].inputs) == (
        "LatentUpscaleNN", {"model": "sdxl_resizer.pt", "scale_by": 1.5}, {"latent": ("1", "latent")})
    assert nodes["3"].params == {"model": "sd15_resizer.pt", "scale_by": 2.0}
    notes = [line for line in imported.warnings if not line.startswith("missing ")]
    assert len(notes) == 1 and notes[0].startswith("nodes 2, 3 (NNLatentUpscale): the pack ships its networks")
    missing = [line for line in imported.warnings if line.startswith("missing ")]
    assert [line.split(" (node")[0] for line in missing] == ["missing latent upscale model 'sdxl_resizer.pt'",
                                                             "missing latent upscale model 'sd15_resizer.pt'"]


@pytest.mark.parametrize("name", FORMATS)
def test_nn_latent_upscale_exports_as_the_same_class_and_version(read, registry, name):
    prompt = comfy_export.export_comfyui_api(read(name).workflow, registry=registry)
    assert (prompt["2"]["class_type"], prompt["2"]["inputs"]) == (
        "NNLatentUpscale", {"version": "SDXL", "upscale": 1.5, "latent": ["1", 0]})
    assert prompt["3"]["inputs"] == {"version": "SD 1.x", "upscale": 2.0, "latent": ["1", 0]}
