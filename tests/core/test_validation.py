"""Validation finds every problem at once and names the node and the field of each."""
from __future__ import annotations

import pytest

from nodeforge import ValidationError, Workflow


def problems_of(engine, wf):
    return [(p.node_id, p.field, p.message) for p in engine.validate(wf)]


def test_every_problem_is_reported_at_once_with_node_and_field(engine):
    wf = Workflow.from_json({"nodeforge": 1, "nodes": {
        "1": {"type": "Number", "params": {"value": "lots"}},
        "2": {"type": "Add", "params": {"offset": 1}},                      # required input a missing
        "3": {"type": "Teleport"},                                            # unknown type
        "4": {"type": "Scale", "params": {"factor": 500}, "inputs": {"value": ["9", "value"]}},
        "5": {"type": "Choose", "params": {"mode": "sideways"}, "inputs": {"value": ["1", "nope"]}},
        "6": {"type": "Show", "inputs": {"value": ["7", "text"]}},           # type mismatch
        "7": {"type": "Label", "params": {"colour": "red"}},                 # unknown param
    }})
    found = problems_of(engine, wf)
    fields = {(nid, field) for nid, field, _ in found}
    assert fields == {("1", "value"), ("2", "a"), ("3", "type"), ("4", "factor"), ("4", "value"),
                      ("5", "mode"), ("5", "value"), ("6", "value"), ("7", "colour")}
    text = {(nid, field): message for nid, field, message in found}
    assert "expected a number" in text[("1", "value")]
    assert "not connected" in text[("2", "a")]
    assert "unknown node type 'Teleport'" in text[("3", "type")]
    assert "above the maximum 100" in text[("4", "factor")]
    assert "node '9'" in text[("4", "value")]
    assert "'sideways' is not one of: keep, negate" in text[("5", "mode")]
    assert "no such output" in text[("5", "value")]
    assert "expects NUMBER" in text[("6", "value")] and "TEXT" in text[("6", "value")]
    assert "no param 'colour'" in text[("7", "colour")]


def test_running_an_invalid_workflow_raises_before_anything_runs(engine, arith):
    wf = Workflow()
    a = wf.add("Number", {"value": 1})
    s = wf.add("Scale", {"factor": 0}, inputs={"value": (a, "value")})
    wf.add("Show", inputs={"value": (s, "value")})
    with pytest.raises(ValidationError) as info:
        engine.run(wf)
    assert info.value.problems[0].field == "factor"
    assert "must not be zero" in str(info.value)
    assert sum(arith.RUNS.values()) == 0


def test_a_cycle_is_named_by_its_nodes(engine):
    wf = Workflow()
    a = wf.add("Add", node_id="a")
    b = wf.add("Add", inputs={"a": (a, "value")}, node_id="b")
    c = wf.add("Scale", inputs={"value": (b, "value")}, node_id="c")
    wf.connect(c, "value", a, "a")
    wf.add("Show", inputs={"value": (c, "value")})
    problems = engine.validate(wf)
    assert len(problems) == 1
    assert "cycle" in problems[0].message and "a -> b -> c -> a" in problems[0].message


def test_a_value_from_the_command_line_is_coerced(engine):
    wf = Workflow()
    a = wf.add("Number", {"value": "2.5"})
    s = wf.add("Scale", {"factor": "3"}, inputs={"value": (a, "value")})
    wf.add("Show", inputs={"value": (s, "value")})
    assert engine.validate(wf) == []
    assert engine.run(wf).outputs["3"]["value"] == 7.5


@pytest.mark.parametrize("bad", [True, 1.5, "x", None, [1]])
def test_params_of_the_wrong_type_are_refused(engine, bad):
    wf = Workflow()
    a = wf.add("Number")
    wf.add("Scale", {"factor": bad}, inputs={"value": (a, "value")})
    problems = engine.validate(wf)
    assert [(p.node_id, p.field) for p in problems] == [("2", "factor")]


def test_a_missing_file_is_reported_before_running(engine):
    wf = Workflow()
    r = wf.add("ReadFile", {"path": "missing.png"})
    wf.add("Show", inputs={"value": (r, "value")})
    [problem] = engine.validate(wf)
    assert (problem.node_id, problem.field) == ("1", "path")
    assert "not found" in problem.message and "NODEFORGE_MODELS" in problem.message


def test_a_workflow_without_output_nodes_says_what_to_add(engine):
    wf = Workflow()
    wf.add("Number")
    [problem] = engine.validate(wf)
    assert "add a SaveImage or Preview node" in problem.message


def test_a_type_from_a_pack_that_failed_to_load_points_at_the_pack(tmp_path):
    from nodeforge import Engine
    from nodeforge.core.registry import load_registry

    broken = tmp_path / "brokenpack"
    broken.mkdir()
    (broken / "__init__.py").write_text("raise RuntimeError('needs a GPU library')\n")
    registry = load_registry(builtin=False, node_path=[tmp_path], entry_points=False)
    wf = Workflow()
    wf.add("FancyNode")
    [problem] = Engine(device="cpu", registry=registry).validate(wf)
    assert "unknown node type 'FancyNode'" in problem.message and "brokenpack" in problem.message


def _facts_registry():
    """A loader that knows its model's kind from a param, a pass-through, and a consumer that checks it."""
    from nodeforge.core.registry import Registry
    from nodeforge.core.spec import Input, NodeSpec, Output, Param

    def refuse_slow(facts, mode="fast", **_):
        return [f"mode: {mode} cannot run a {facts['model']['kind']} model"] if facts["model"].get("kind") == \
            "slow" and mode == "fast" else []

    def bad_facts(files, **_):
        raise RuntimeError("boom")

    return Registry([
        NodeSpec("Load", "t", lambda ctx, kind: {"model": kind}, params=(Param.string("kind", "slow"),),
                 outputs=(Output("model", "THING"),), facts=lambda files, kind: {"model": {"kind": kind}}),
        NodeSpec("Broken", "t", lambda ctx: {"model": 1}, outputs=(Output("model", "THING"),), facts=bad_facts),
        NodeSpec("Patch", "t", lambda ctx, model: {"model": model}, inputs=(Input("model", "THING"),),
                 outputs=(Output("model", "THING"),)),
        NodeSpec("Use", "t", lambda ctx, model, mode: {}, inputs=(Input("model", "THING"),),
                 params=(Param.choice("mode", ("fast", "careful"), default="fast"),), output_node=True,
                 check_inputs=refuse_slow),
    ])


def test_check_inputs_sees_a_loaders_facts_through_pass_through_nodes():
    from nodeforge.core.validate import check_workflow

    wf = Workflow()
    wf.add("Load", {"kind": "slow"}, node_id="load")
    wf.add("Patch", {}, {"model": ("load", "model")}, node_id="patch")
    wf.add("Use", {"mode": "fast"}, {"model": ("patch", "model")}, node_id="use")
    found = [(p.node_id, p.field, p.message) for p in check_workflow(wf, _facts_registry()).problems]
    assert found == [("use", "mode", "fast cannot run a slow model")]
    wf.nodes["use"].params["mode"] = "careful"
    assert check_workflow(wf, _facts_registry()).problems == []
    wf.nodes["load"].params["kind"] = "quick"
    wf.nodes["use"].params["mode"] = "fast"
    assert check_workflow(wf, _facts_registry()).problems == []


def test_a_facts_hook_that_raises_is_named_as_the_packs_bug_and_says_nothing_downstream():
    from nodeforge.core.validate import check_workflow

    wf = Workflow()
    wf.add("Broken", {}, node_id="load")
    wf.add("Use", {"mode": "fast"}, {"model": ("load", "model")}, node_id="use")
    problems = check_workflow(wf, _facts_registry()).problems
    assert [(p.node_id, p.field) for p in problems] == [("load", None)]
    assert "RuntimeError: boom" in problems[0].message and "bug in that pack" in problems[0].message


def test_the_one_line_message_counts_the_problems_after_the_first():
    """ValidationError and WorkflowSaveError (and interop's ExportError) end their one line alike."""
    from nodeforge.core.errors import Problem, WorkflowSaveError

    problems = [Problem("not connected", "2", "Add", "a"), Problem("unknown node type", "3"),
                Problem("expected a number", "1", "Number", "value")]
    assert str(ValidationError(problems[:1])) == "node 2 (Add), a: not connected"
    assert str(ValidationError(problems[:2])) == "node 2 (Add), a: not connected (and 1 more problem)"
    assert str(ValidationError(problems)) == "node 2 (Add), a: not connected (and 2 more problems)"
    assert str(WorkflowSaveError(problems, source="wf.json")) == \
        "wf.json: node 2 (Add), a: not connected (and 2 more problems)"
