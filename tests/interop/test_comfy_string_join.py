"""ComfyUI's StringConcatenate (issue 30): NodeForge has no STRING wires, so a join of constants (its own
widgets, linked constants, or another such join) folds into the value it feeds, string_a + delimiter +
string_b, from a UI 0.4 file and an API prompt alike (comfy-string-join-*.json: "portraits" / "night",
then _ "v2", into Save Image's filename prefix); a join fed by a node NodeForge cannot run stays a
placeholder, and its consumer keeps the value it saved."""
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


def test_a_join_fed_by_a_node_nodeforge_cannot_run_stays_a_placeholder(read, tmp_path):
    prompt = json.loads((DATA / "comfy-string-join-api.json").read_text())
    prompt["20"] = {"inputs": {"text": "x"}, "class_type": "ShowText|pysssss"}
    path = tmp_path / "joined.json"
    path.write_text(json.dumps(prompt))
    imported = read(path)
    nodes = imported.workflow.nodes
    assert nodes["21"].type == nodes["22"].type == "comfyui.Placeholder"
    assert nodes["22"].inputs == {"string_a": ("21", "output_0")}
    assert any(line.startswith("node 24 (SaveImage), filename_prefix: its value comes from node 22")
               for line in imported.warnings)


def test_string_concatenate_is_folded_not_a_mapped_class():
    assert comfy_table.STRING_JOIN == "StringConcatenate" and "StringConcatenate" not in comfy_table.BY_COMFY
