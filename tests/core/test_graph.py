"""Graph queries (nodeforge.core.graph), bypass and mute, and per-output validation."""
from __future__ import annotations

from pathlib import Path

import pytest

from nodeforge import ValidationError, Workflow, save_workflow
from nodeforge.core import graph


def sample() -> Workflow:
    """1 Number -> 2 Scale -> 4 Add(a) -> 5 Show;  3 Number -> 4 Add(b);  6 Scale (from 3), feeds nothing."""
    wf = Workflow()
    wf.add("Number", {"value": 2})
    wf.add("Scale", {"factor": 3}, {"value": ("1", "value")})
    wf.add("Number", {"value": 10})
    wf.add("Add", {}, {"a": ("2", "value"), "b": ("3", "value")})
    wf.add("Show", {}, {"value": ("4", "value")})
    wf.add("Scale", {}, {"value": ("3", "value")})
    return wf


def test_upstream_lists_direct_sources_once_in_input_order():
    wf = sample()
    wf.nodes["4"].inputs["b"] = ("2", "value")           # both inputs from one node
    assert graph.upstream(wf, "4") == ["2"]
    assert graph.upstream(sample(), "4") == ["2", "3"] and graph.upstream(sample(), "1") == []


def test_downstream_lists_direct_consumers():
    assert graph.downstream(sample(), "3") == ["4", "6"]
    assert graph.downstream(sample(), "5") == []


def test_ancestors_include_the_targets_and_stop_where_told():
    wf = sample()
    assert graph.ancestors(wf, ["5"]) == {"1", "2", "3", "4", "5"}
    assert graph.ancestors(wf, ["2", "6"]) == {"1", "2", "3", "6"}
    asked: list[str] = []
    kept = graph.ancestors(wf, ["5"], stop=lambda nid: asked.append(nid) or nid == "4")
    assert kept == {"4", "5"} and sorted(asked) == ["4", "5"]


def test_reaches_follows_data_flow_only():
    wf = sample()
    assert graph.reaches(wf, "1", "5") and graph.reaches(wf, "3", "6")
    assert not graph.reaches(wf, "5", "1") and not graph.reaches(wf, "1", "6")
    assert not graph.reaches(wf, "1", "1")


def test_descendants_is_the_downstream_closure():
    assert graph.descendants(sample(), ["3"]) == {"4", "5", "6"}
    assert graph.descendants(sample(), ["1"]) == {"2", "4", "5"}


def test_needed_for_outputs_keeps_the_given_order():
    wf = sample()
    order = ["3", "1", "6", "2", "4", "5"]
    assert graph.needed_for(wf, ["5"], order) == ["3", "1", "2", "4", "5"]


def test_nearest_upstream_of_a_type_breadth_first_and_through_one_input():
    wf = sample()
    assert graph.nearest_upstream(wf, "5", "Number") == "3"      # 4's inputs a (2) and b (3), then 1
    assert graph.nearest_upstream(wf, "5", "Scale") == "2"
    assert graph.nearest_upstream(wf, "4", "Number", via_input="b") == "3"
    assert graph.nearest_upstream(wf, "4", "Number", via_input="a") == "1"
    assert graph.nearest_upstream(wf, "2", "Scale") == "2"           # the start counts
    assert graph.nearest_upstream(wf, "2", "Scale", via_input="value") is None
    assert graph.nearest_upstream(wf, "1", "Show") is None


def test_walks_end_on_cycles_and_links_to_missing_nodes():
    wf = Workflow()
    wf.add("Add", {}, {"a": ("3", "value")})
    wf.add("Add", {}, {"a": ("1", "value"), "b": ("99", "value")})
    wf.add("Add", {}, {"a": ("2", "value")})
    assert graph.ancestors(wf, ["3"]) == {"1", "2", "3"}
    assert graph.reaches(wf, "1", "1") and graph.descendants(wf, ["1"]) == {"1", "2", "3"}
    assert graph.nearest_upstream(wf, "3", "Show") is None
    assert graph.upstream(wf, "2") == ["1"]


def test_bypass_passes_the_matching_input_through_and_mute_removes_what_needs_it(arith_registry):
    wf = sample()
    wf.ui = {"bypassed": ["2"]}
    run = graph.apply_switches(wf, arith_registry)
    assert "2" not in run.nodes and run.nodes["4"].inputs["a"] == ("1", "value")
    assert "2" in wf.nodes, "the original is not changed"
    wf.ui = {"muted": ["3"]}
    run = graph.apply_switches(wf, arith_registry)
    assert set(run.nodes) == {"1", "2", "4", "5"}, "Add's b is optional: it runs without it"
    assert "b" not in run.nodes["4"].inputs
    wf.ui = {"muted": ["1"]}
    assert set(graph.apply_switches(wf, arith_registry).nodes) == {"3", "6"}
    assert graph.apply_switches(graph.apply_switches(wf, arith_registry), arith_registry).nodes.keys() == {"3", "6"}


def test_a_headless_run_of_a_file_with_bypassed_and_muted_nodes_matches_the_editor(engine, tmp_path):
    from nodeforge import load_workflow

    wf = sample()
    wf.ui = {"bypassed": ["2"], "muted": ["3"]}           # 2 + nothing: Show gets 2.0
    path = save_workflow(wf, tmp_path / "switched.json")
    result = engine.run(load_workflow(path))
    assert result.outputs["5"]["value"] == 2.0
    assert "2" not in result.executed and "3" not in result.executed


def _two_outputs() -> Workflow:
    """A valid branch 1 -> 2 Show, and 3 (a type no pack provides) -> 4 Show."""
    wf = Workflow()
    wf.add("Number", {"value": 5})
    wf.add("Show", {"label": "good"}, {"value": ("1", "value")})
    wf.add("FancyNumber", {})
    wf.add("Show", {"label": "bad"}, {"value": ("3", "value")})
    return wf


def test_outputs_with_a_valid_ancestry_run_and_the_others_are_listed(engine, arith):
    result = engine.run(_two_outputs())
    assert result.outputs == {"2": {"label": "good", "value": 5.0}}
    [problem] = result.skipped["4"]
    assert problem.node_id == "3" and "unknown node type 'FancyNumber'" in problem.message
    assert list(result.skipped) == ["4"]


def test_a_broken_node_no_output_needs_blocks_nothing(engine):
    wf = _two_outputs()
    del wf.nodes["4"]
    result = engine.run(wf)
    assert result.outputs and result.skipped == {}


def test_when_no_output_can_run_every_reason_is_raised(engine):
    wf = _two_outputs()
    wf.nodes["1"].params["value"] = "five"
    with pytest.raises(ValidationError) as info:
        engine.run(wf)
    assert {p.node_id for p in info.value.problems} == {"1", "3"}


def test_named_outputs_must_all_be_valid(engine):
    with pytest.raises(ValidationError) as info:
        engine.run(_two_outputs(), outputs=["2", "4"])
    assert info.value.problems[0].node_id == "3"
    assert engine.run(_two_outputs(), outputs=["2"]).outputs["2"]["value"] == 5.0


def _cli_run_writing_node_1(wf: Workflow, tmp_path, monkeypatch, capsys) -> tuple[int, str, str]:
    """`nodeforge run` on `wf` with a WriteText of node 1's value added, on the test packs: the exit
    code, stdout and stderr."""
    from nodeforge.cli import main
    from nodeforge.core import registry

    monkeypatch.setenv("NODEFORGE_NODE_PATH", str(Path(__file__).parents[1] / "packs"))
    registry.reset_default_registry()
    try:
        wf.add("WriteText", {"prefix": "made"}, {"value": ("1", "value")})
        path = save_workflow(wf, tmp_path / "wf.json")
        code = main(["run", str(path), "--out", str(tmp_path / "out"), "--device", "cpu", "--quiet"])
    finally:
        registry.reset_default_registry()
    return (code, *capsys.readouterr())


def test_cli_run_exits_1_after_running_the_valid_outputs_and_names_the_failed_one(tmp_path, monkeypatch, capsys):
    code, out, err = _cli_run_writing_node_1(_two_outputs(), tmp_path, monkeypatch, capsys)
    assert code == 1
    assert out.strip().endswith("made_5.txt") and (tmp_path / "out" / "made_5.txt").read_text() == "5.0\n"
    assert "output node 4 (Show) was not run" in err and "FancyNumber" in err


def _with_a_half_wired_scale() -> Workflow:
    """1 Number -> 2 Show, and 3 Scale with its value not linked, feeding nothing (left beside the graph)."""
    wf = Workflow()
    wf.add("Number", {"value": 5})
    wf.add("Show", {"label": "good"}, {"value": ("1", "value")})
    wf.add("Scale", {"factor": 2})
    return wf


def test_a_half_wired_node_that_feeds_no_output_is_a_warning_by_comfyuis_rule_and_does_not_run(engine):
    wf = _with_a_half_wired_scale()
    # The whole graph's report (the editor) still shows the problem on the node.
    [problem] = engine.validate(wf)
    assert (problem.node_id, problem.node_type, problem.field) == ("3", "Scale", "value")
    assert engine.validate_outputs(wf) == ([], [problem])
    result = engine.run(wf)
    assert result.outputs == {"2": {"label": "good", "value": 5.0}} and "3" not in result.executed


def test_what_stops_an_output_stays_an_error_and_an_unknown_node_may_be_an_output(engine):
    wf = _with_a_half_wired_scale()
    wf.nodes["2"].inputs.clear()                               # the Show now lacks its value
    wf.add("FancyNumber", {}, {"value": ("3", "value")})       # unknown: might be an output
    blocking, unreached = engine.validate_outputs(wf)
    assert {(p.node_id, p.field) for p in blocking} == {("2", "value"), ("3", "value"), ("4", "type")}
    assert unreached == []


def test_with_no_output_node_every_problem_stops_the_run(engine):
    wf = _with_a_half_wired_scale()
    del wf.nodes["2"]
    blocking, unreached = engine.validate_outputs(wf)
    assert [(p.node_id, p.field) for p in blocking] == [("3", "value")] and unreached == []


def test_cli_run_warns_of_a_half_wired_node_and_runs_the_rest(tmp_path, monkeypatch, capsys):
    code, out, err = _cli_run_writing_node_1(_with_a_half_wired_scale(), tmp_path, monkeypatch, capsys)
    assert code == 0 and (tmp_path / "out" / "made_4.txt").read_text() == "5.0\n"
    assert err.splitlines() == ["warning: node 3 (Scale), value: required input is not connected; link a NUMBER "
                                "output to it (this node leads to no output, so it does not run; connect it or "
                                "delete it)"]


def test_the_run_order_is_the_same_in_every_process():
    """Independent nodes are ordered from the file's order, not a set's (which changes with
    PYTHONHASHSEED): eviction, progress and the order of side effects are the same run after run."""
    import os
    import subprocess
    import sys

    script = (
        "from nodeforge import Workflow\n"
        "from nodeforge.core.validate import topological_order\n"
        "wf = Workflow()\n"
        "wf.add('Load', {}, node_id='src')\n"
        "for i in range(24):\n"
        "    wf.add('Use', {}, {'x': ('src', 'out')}, node_id=f'use{i}')\n"
        "    wf.add('Save', {}, {'x': (f'use{i}', 'out')}, node_id=f'save{i}')\n"
        "print(' '.join(topological_order(wf)[0]))\n")
    orders = set()
    for seed in ("0", "1", "2", "3"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True)
        orders.add(out.stdout.strip())
    assert len(orders) == 1
    order = orders.pop().split()
    assert order[0] == "src" and sorted(order) == sorted(["src"] + [f"{k}{i}" for i in range(24) for k in ("use", "save")])
    assert all(order.index(f"use{i}") < order.index(f"save{i}") for i in range(24))
