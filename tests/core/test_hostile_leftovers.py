"""Round-1 leftovers of the hostile-input hunt (issue 27): a flood of problems, a param named like an input."""
from __future__ import annotations

import json

import pytest

from nodeforge import Workflow, save_workflow
from nodeforge.cli import MAX_LINES_SHOWN, main

pytestmark = pytest.mark.usefixtures("packs_on_node_path")


def test_a_hundred_thousand_problems_print_the_first_twenty_and_a_count(tmp_path, capsys):
    path = tmp_path / "flood.json"                # each Scale misses its required input
    path.write_text(json.dumps({"nodeforge": 1, "nodes": {str(n): {"type": "Scale", "params": {"factor": 2}}
                                                          for n in range(1, 100_001)}}))
    assert main(["validate", str(path)]) == 1
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == MAX_LINES_SHOWN + 1 == 21
    assert all(line.startswith("error: node ") and "required input" in line for line in lines[:20])
    assert lines[-1].startswith("error: ... and 99980 more errors (100000 in all; fix the ones above first")


def test_as_many_problems_as_shown_print_no_count(tmp_path, capsys):
    wf = Workflow()
    for _ in range(MAX_LINES_SHOWN):
        wf.add("Scale", {"factor": 2})
    assert main(["validate", str(save_workflow(wf, tmp_path / "few.json"))]) == 1
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == MAX_LINES_SHOWN and "more" not in lines[-1]


def test_a_param_named_like_one_of_the_nodes_inputs_is_refused(engine):
    wf = Workflow()
    wf.add("Number", {"value": 3})
    wf.add("Scale", {"factor": 2, "value": 5}, {"value": ("1", "value")})
    problems = engine.validate(wf)
    assert [(p.node_id, p.field) for p in problems] == [("2", "value")]
    assert problems[0].message == ("'value' is an input of Scale, not a param: link a NUMBER output to it and "
                                   "remove 'value' from the node's params")
