"""asagi4's CADS comes in as NodeForge's CADS field by field and goes back as itself (comfy-cads-*.json); an older
file's seed -1 and a step-count schedule are said."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from nodeforge.interop import comfy_export

FORMATS = ["comfy-cads-0.4.json", "comfy-cads-api.json"]
PARAMS = {"noise_scale": 0.25, "t1": 0.6, "t2": 0.9, "rescale": 0.2, "apply_to": "uncond", "key": "both",
          "noise_type": "uniform", "seed": 42}


@pytest.mark.parametrize("name", FORMATS)
def test_cads_imports_and_exports_field_by_field(read, registry, name):
    imported = read(name)
    node = imported.workflow.nodes["2"]
    assert (node.type, node.params, node.inputs) == ("CADS", PARAMS, {"unet": ("1", "unet")})
    assert [line for line in imported.warnings if not line.startswith("missing ")] == []
    prompt = comfy_export.export_comfyui_api(imported.workflow, registry=registry)
    assert (prompt["2"]["class_type"], prompt["2"]["inputs"]) == (
        "CADS", {**PARAMS, "start_step": 0, "total_steps": 0, "model": ["1", 0]})


def test_a_global_seed_and_a_step_count_schedule_are_said(read, tmp_path):
    data = json.loads((Path(__file__).parent / "data" / FORMATS[1]).read_text())
    data["2"]["inputs"].update(seed=-1, start_step=2, total_steps=20)
    source = tmp_path / "cads.json"
    source.write_text(json.dumps(data))
    imported = read(source)
    assert imported.workflow.nodes["2"].params["seed"] == 0
    notes = [line for line in imported.warnings if line.startswith("node 2 ")]
    assert len(notes) == 2
    assert "seed -1 draws CADS's noise from ComfyUI's global random state; NodeForge seeds it with 0" in notes[0]
    assert "start_step 2 / total_steps 20 ask for a step-count schedule" in notes[1]
