"""ComfyUI's StringConcatenate (issue 30): a join of constants (its own widgets, linked constants, or another
such join) folds into the value it feeds, string_a + delimiter + string_b, from a UI 0.4 file and an API prompt
alike (comfy-string-join-*.json: "portraits" / "night", then _ "v2", into Save Image's filename prefix); a join
fed by a node that runs is NodeForge's Join Text, whose STRING output stays wired (tests/interop/test_comfy_values.py);
one fed by a node NodeForge cannot run keeps the text it saved there, and Save Image's prefix (converted on import:
ComfyUI's %date% tokens) keeps the value it saved."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from nodeforge.interop import comfy_export, comfy_table

DATA = Path(__file__).resolve().parent / "data"
FORMATS = ["comfy-string-join-0.4.json", "comfy-string-join-api.json"]


@pytest.mark.parametrize("name", FORMATS)
def test_a_join_of_constants_folds_into_the_prefix_it_feeds_and_the_graph_runs(read, registry, name, tmp_path):
    from nodeforge import Engine
    from nodeforge.core.models import ModelPaths

    imported = read(name)
    nodes = imported.workflow.nodes
    assert sorted(nodes) == ["23", "24"] and imported.warnings == []
    assert (nodes["24"].type, nodes["24"].params) == ("SaveImage", {"prefix": "portraits/night_v2"})
    engine = Engine(device="cpu", output_dir=tmp_path, registry=registry,
                    model_paths=ModelPaths(roots=[], include_builtin=False))
    [saved] = engine.run(imported.workflow).outputs["24"]
    assert Path(saved).relative_to(tmp_path).as_posix().startswith("portraits/night_v2")
    prompt = comfy_export.export_comfyui_api(imported.workflow, registry=registry)
    assert prompt["24"]["class_type"] == "SaveImage" and prompt["24"]["inputs"]["filename_prefix"] == "portraits/night_v2"


def test_a_join_fed_by_a_node_nodeforge_cannot_run_keeps_its_saved_text(read, tmp_path):
    prompt = json.loads((DATA / "comfy-string-join-api.json").read_text())
    prompt["20"] = {"inputs": {"text": "x", "truncate_by": "characters", "truncate_from": "end",
                               "truncate_to": 3}, "class_type": "Text String Truncate"}
    path = tmp_path / "joined.json"
    path.write_text(json.dumps(prompt))
    imported = read(path)
    nodes = imported.workflow.nodes
    assert nodes["20"].type == "comfyui.Placeholder"
    assert (nodes["21"].type, nodes["21"].inputs) == ("JoinText", {})
    assert (nodes["22"].type, nodes["22"].inputs) == ("JoinText", {"string_a": ("21", "string")})
    assert any(line.startswith("node 21 (StringConcatenate), string_a: its value comes from node 20, which NodeForge "
                               "cannot run") for line in imported.warnings)
    assert any(line.startswith("node 24 (SaveImage), filename_prefix: its value comes from node 22, whose value "
                               "NodeForge cannot wire into this setting") for line in imported.warnings)


def test_string_concatenate_folds_first_and_is_a_mapped_class_otherwise():
    assert comfy_table.STRING_JOIN == "StringConcatenate" and comfy_table.BY_COMFY["StringConcatenate"].nodeforge == \
        "JoinText"
