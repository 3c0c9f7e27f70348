"""A node that passes something over (a LoRA's modules that match no layer) says so through
`NodeContext.warn`: listeners get a NodeWarning and the run goes on; `nodeforge run` prints one
`warning: node ID (Type): ...` line, also when quiet; with nobody listening it is a Python warning."""
from __future__ import annotations

import pytest

from nodeforge import Engine, Workflow
from nodeforge.core import events as ev
from nodeforge.core.models import ModelPaths
from nodeforge.core.registry import Registry
from nodeforge.core.spec import NodeSpec, Output, Param


def _half_done(ctx, value):
    ctx.warn(f"{value} of 3 parts matched nothing; they are ignored")
    return {"value": 3.0 - value}


SPECS = [NodeSpec("HalfDone", "t", _half_done, params=(Param.float("value", 1.0),),
                  outputs=(Output("value", "FLOAT"),), output_node=True)]


def graph() -> Workflow:
    wf = Workflow()
    wf.add("HalfDone", {"value": 1.0})
    return wf


@pytest.fixture
def engine(tmp_path):
    return Engine(device="cpu", output_dir=tmp_path, registry=Registry(SPECS),
                  model_paths=ModelPaths(roots=[tmp_path], include_builtin=False))


def test_a_listener_hears_the_warning_and_the_run_goes_on(engine):
    heard = []
    result = engine.run(graph(), outputs=["1"], on_event=heard.append)
    warned = [e for e in heard if isinstance(e, ev.NodeWarning)]
    assert [(e.node_id, e.node_type, e.message) for e in warned] == [
        ("1", "HalfDone", "1.0 of 3 parts matched nothing; they are ignored")]
    assert result.outputs["1"] == {"value": 2.0}
    started = next(i for i, e in enumerate(heard) if isinstance(e, ev.NodeStarted))
    finished = next(i for i, e in enumerate(heard) if isinstance(e, ev.NodeFinished))
    assert started < heard.index(warned[0]) < finished


def test_with_nobody_listening_it_is_a_python_warning(engine):
    with pytest.warns(UserWarning, match=r"node 1 \(HalfDone\): 1.0 of 3 parts matched nothing"):
        engine.run(graph(), outputs=["1"])


@pytest.mark.parametrize("flags", [[], ["-q"], ["-v"]])
def test_nodeforge_run_prints_it_once_as_a_warning_line(tmp_path, capsys, monkeypatch, flags):
    from nodeforge.cli import main
    from nodeforge.core import registry
    from nodeforge.core.workflow import save_workflow

    monkeypatch.setattr(registry, "_default", Registry(SPECS))
    wf = graph()
    wf.add("HalfDone", {"value": 2.0})
    path = save_workflow(wf, tmp_path / "wf.json")
    rc = main(["run", str(path), "--out", str(tmp_path / "o"), "--device", "cpu", *flags])
    err = capsys.readouterr().err.splitlines()
    warned = [line for line in err if line.startswith("warning: node ")]
    assert rc == 0 and warned == ["warning: node 1 (HalfDone): 1.0 of 3 parts matched nothing; they are ignored",
                                  "warning: node 2 (HalfDone): 2.0 of 3 parts matched nothing; they are ignored"]
    assert not any("UserWarning" in line for line in err)


def _saying_twice(ctx, value):
    for _ in range(3):          # a loop meeting the same thing each step
        ctx.warn("the same note")
    return {"value": value}


def test_the_same_note_in_one_run_is_said_once(tmp_path):
    registry = Registry([NodeSpec("Loop", "t", _saying_twice, params=(Param.float("value", 1.0),),
                                  outputs=(Output("value", "FLOAT"),), output_node=True)])
    engine = Engine(device="cpu", output_dir=tmp_path, registry=registry,
                    model_paths=ModelPaths(roots=[tmp_path], include_builtin=False))
    wf = Workflow()
    wf.add("Loop", {"value": 1.0})
    heard = []
    engine.run(wf, on_event=heard.append)
    assert [e.message for e in heard if isinstance(e, ev.NodeWarning)] == ["the same note"]


@pytest.mark.parametrize("flags", [[], ["-q"]])
def test_nodeforge_batch_prints_each_nodes_warning_once_and_keeps_it_in_the_manifest(tmp_path, capsys, monkeypatch,
                                                                                      flags):
    import json

    from nodeforge.cli import main
    from nodeforge.core import registry
    from nodeforge.core.workflow import save_workflow

    monkeypatch.setattr(registry, "_default", Registry(SPECS))
    path = save_workflow(graph(), tmp_path / "wf.json")
    out = tmp_path / "o"
    rc = main(["batch", str(path), "--grid", "1.value=1,2,1", "--out", str(out), "--device", "cpu", *flags])
    err = capsys.readouterr().err.splitlines()
    assert rc == 0 and [line for line in err if line.startswith("warning:")] == [
        "warning: job 1, node 1 (HalfDone): 1.0 of 3 parts matched nothing; they are ignored",
        "warning: job 2, node 1 (HalfDone): 2.0 of 3 parts matched nothing; they are ignored"]
    records = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    assert [r.get("warnings") for r in records if "job" in r] == [
        ["node 1 (HalfDone): 1.0 of 3 parts matched nothing; they are ignored"],
        ["node 1 (HalfDone): 2.0 of 3 parts matched nothing; they are ignored"],
        None]     # job 3 repeats job 1: its node came from the cache and did not run again


def test_a_negative_seed_says_how_to_get_a_random_one():
    from nodeforge.core.types import ParamRole

    seed = Param.int("seed", 0, min=0, max=2 ** 32 - 1, role=ParamRole.SEED)
    with pytest.raises(ValueError) as info:
        seed.coerce(-1)
    assert str(info.value) == ("-1 is below the minimum 0; NodeForge has no 'random' seed value: set a seed, or let "
                               "the editor's seed control randomize it (or run nodeforge batch --count N --seed-policy "
                               "random)")
    with pytest.raises(ValueError, match=r"^-1 is below the minimum 0$"):
        Param.int("steps", 1, min=0).coerce(-1)
