"""Impact Pack's Switch (Any) (ImpactSwitch) with a constant select, a widget or a linked constant, is the
wire from the input it selects (input<select>, counted from 1), from a UI 0.4 file and an API prompt alike
(comfy-impact-switch-*.json); one whose label or index output is used, or whose select comes from a node
that runs, stays a placeholder (issue 30)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

DATA = Path(__file__).resolve().parent / "data"
FORMATS = ["comfy-impact-switch-0.4.json", "comfy-impact-switch-api.json"]


@pytest.mark.parametrize("name", FORMATS)
def test_a_switch_with_a_constant_select_is_the_wire_from_the_input_it_selects(read, validate, name):
    imported = read(name)
    nodes = imported.workflow.nodes
    assert sorted(nodes) == ["1", "10", "11", "2", "3", "6", "8", "9"]      # switches and the primitive fold away
    assert nodes["9"].inputs["positive"] == ("3", "conditioning")           # select 2: input2
    assert nodes["9"].inputs["negative"] == ("6", "conditioning")           # select from a PrimitiveInt of 1
    assert validate(imported.workflow) == []


def _prompt() -> dict:
    return json.loads((DATA / "comfy-impact-switch-api.json").read_text())


def test_a_switch_whose_index_is_used_or_whose_select_runs_stays_a_placeholder(read, tmp_path):
    prompt = _prompt()
    prompt["12"] = {"class_type": "PrimitiveInt", "inputs": {"value": ["4", 2]}}      # its index output used
    prompt["7"]["inputs"]["select"] = ["13", 0]
    prompt["13"] = {"class_type": "ImpactInt", "inputs": {"value": 1}}                  # a node that runs
    source = tmp_path / "used.json"
    source.write_text(json.dumps(prompt))
    nodes = read(source).workflow.nodes
    assert nodes["4"].type == nodes["7"].type == "comfyui.Placeholder"


def test_a_select_past_the_linked_inputs_leaves_the_consumer_unconnected_with_a_line(read, tmp_path):
    prompt = _prompt()
    prompt["4"]["inputs"]["select"] = 3
    source = tmp_path / "past.json"
    source.write_text(json.dumps(prompt))
    imported = read(source)
    assert "positive" not in imported.workflow.nodes["9"].inputs
    assert "node 9 (KSampler), positive: ImpactSwitch 4 selects input3, which has no link; link it, or set select " \
           "to a linked input; the input is left unconnected" in imported.warnings
