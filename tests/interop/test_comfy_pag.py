"""ComfyUI's PerturbedAttentionGuidance and sd-perturbed-attention's PerturbedAttention come in as NodeForge's
PerturbedAttentionGuidance and go back as the class each was (comfy-pag-*.json); the pack's choices NodeForge
does not make are said."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from nodeforge.interop import comfy_export

FORMATS = ["comfy-pag-0.4.json", "comfy-pag-api.json"]


@pytest.mark.parametrize("name", FORMATS)
def test_both_pag_classes_come_in_and_go_back_as_themselves(read, registry, name):
    imported = read(name)
    nodes = imported.workflow.nodes
    assert (nodes["2"].type, nodes["2"].params, nodes["2"].inputs) == (
        "PerturbedAttentionGuidance", {"scale": 3.0}, {"unet": ("1", "unet")})
    assert (nodes["3"].type, nodes["3"].params) == ("PerturbedAttentionGuidance", {"scale": 1.5, "adaptive_scale": 0.1})
    assert [line for line in imported.warnings if not line.startswith("missing ")] == []   # middle 0, no window
    prompt = comfy_export.export_comfyui_api(imported.workflow, registry=registry)
    assert (prompt["2"]["class_type"], prompt["2"]["inputs"]) == (
        "PerturbedAttentionGuidance", {"scale": 3.0, "model": ["1", 0]})
    assert (prompt["3"]["class_type"], prompt["3"]["inputs"]) == ("PerturbedAttention", {
        "scale": 1.5, "adaptive_scale": 0.1, "unet_block": "middle", "unet_block_id": 0, "sigma_start": -1.0,
        "sigma_end": -1.0, "rescale": 0.0, "rescale_mode": "full", "unet_block_list": "", "model": ["1", 0]})


def test_the_packs_other_blocks_window_and_rescale_are_said(read, tmp_path):
    data = json.loads((Path(__file__).parent / "data" / FORMATS[1]).read_text())
    data["3"]["inputs"].update(unet_block="output", unet_block_id=1, sigma_start=14.0, sigma_end=0.5, rescale=0.7)
    source = tmp_path / "pag.json"
    source.write_text(json.dumps(data))
    notes = [line for line in read(source).warnings if line.startswith("node 3 ")]
    assert len(notes) == 3
    assert "perturbs the middle block's self-attention; unet_block 'output' 1" in notes[0]
    assert "the sigma window 14.0 to 0.5 is not applied" in notes[1] and "rescale 0.7 is not applied" in notes[2]
