"""Engine regressions from issue 13: each test here failed before its fix."""
from __future__ import annotations

import asyncio
import hashlib
import threading
from pathlib import Path

import pytest

from nodeforge import Engine, NodeExecutionError, Workflow, load_workflow, save_workflow
from nodeforge.core import events as ev
from nodeforge.core.models import ModelPaths
from nodeforge.core.registry import Registry
from nodeforge.core.spec import Input, NodeSpec, Output, Param

RAN: list[str] = []


def _blob(ctx, size, tag):
    RAN.append(f"blob:{tag}")
    return {"data": bytes([tag % 256]) * size}


def _join(ctx, a, b):
    RAN.append("join")
    return {"data": a[:1] + b[:1]}


def _read_text(ctx, path):
    RAN.append("read_text")
    return {"data": Path(path).read_bytes()}


def _text_digest(ctx, path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _gate(ctx, data, steps):
    for step in range(1, steps + 1):
        ctx.progress(step, steps)
    return {"data": data}


def _save(ctx, data, name):
    RAN.append(f"save:{name}")
    ctx.output_dir.mkdir(parents=True, exist_ok=True)
    path = ctx.output_dir / f"{name}.bin"
    path.write_bytes(data)
    return [str(path)]


def _wrong(ctx, kind):
    return {"image": "not an image" if kind == "str" else 3}


BLOB = "BLOB"
SPECS = [
    NodeSpec("Blob", "t", _blob, params=(Param.int("size", 100, min=0), Param.int("tag", 0)),
             outputs=(Output("data", BLOB),)),
    NodeSpec("Join", "t", _join, inputs=(Input("a", BLOB), Input("b", BLOB)), outputs=(Output("data", BLOB),)),
    NodeSpec("ReadText", "t", _read_text, params=(Param.string("path", ""),), outputs=(Output("data", BLOB),),
             is_changed=_text_digest),
    NodeSpec("Gate", "t", _gate, inputs=(Input("data", BLOB),), params=(Param.int("steps", 10, min=1),),
             outputs=(Output("data", BLOB),)),
    NodeSpec("Save", "t", _save, inputs=(Input("data", BLOB),), params=(Param.string("name", "x"),),
             output_node=True, cacheable=False),
    NodeSpec("Wrong", "t", _wrong, params=(Param.choice("kind", ["str", "int"]),),
             outputs=(Output("image", "IMAGE"),)),
    NodeSpec("Keep", "t", lambda ctx, data: {"data": data}, inputs=(Input("data", BLOB),), output_node=True),
]


@pytest.fixture
def eng(tmp_path):
    RAN.clear()
    return Engine(device="cpu", output_dir=tmp_path / "out", registry=Registry(SPECS),
                  model_paths=ModelPaths(roots=[tmp_path / "models"], include_builtin=False))


def test_one_engine_two_folders_same_relative_path_reads_each_folders_file(tmp_path):
    """13.3: the plan cache keyed only on the graph served folder A's image for folder B."""
    from nodeforge.core.registry import load_registry

    registry = load_registry(builtin=False, node_path=[Path(__file__).parents[1] / "packs" / "arith"],
                             entry_points=False)
    engine = Engine(device="cpu", output_dir=tmp_path / "out", registry=registry,
                    model_paths=ModelPaths(roots=[], include_builtin=False))
    wf = Workflow()
    wf.add("ReadFile", {"path": "inputs/photo.png"})
    wf.add("Show", {}, {"value": ("1", "value")})
    values = []
    for folder, size in (("a", 3), ("b", 7)):
        (tmp_path / folder / "inputs").mkdir(parents=True)
        (tmp_path / folder / "inputs" / "photo.png").write_bytes(b"x" * size)
        save_workflow(wf, tmp_path / folder / "wf.json")
    for folder in ("a", "b", "a"):
        values.append(engine.run(load_workflow(tmp_path / folder / "wf.json")).outputs["2"]["value"])
    assert values == [3.0, 7.0, 3.0]


def test_a_budget_smaller_than_one_run_neither_crashes_nor_changes_results(eng):
    """13.4: an entry planned for fetch was evicted by a put of the same run -> KeyError."""
    wf = Workflow()
    wf.add("Blob", {"size": 100, "tag": 1})                      # 1: changes between runs
    wf.add("Blob", {"size": 100, "tag": 2})                      # 2: cached on the second run
    wf.add("Join", {}, {"a": ("1", "data"), "b": ("2", "data")})
    wf.add("Keep", {}, {"data": ("3", "data")})
    first = eng.run(wf).outputs["4"]["data"]
    assert first == b"\x01\x02"
    eng.cache.set_budget(150)          # room for one blob: putting node 1 must not evict node 2
    wf.nodes["1"].params["tag"] = 5
    RAN.clear()
    result = eng.run(wf)
    assert result.outputs["4"]["data"] == b"\x05\x02"
    assert "2" in result.cached and "blob:2" not in RAN
    assert eng.cache.nbytes <= 150, "over budget only while the run needed the pinned entries"
    wf.nodes["1"].params["tag"] = 6    # and again, with a budget below a single value
    eng.cache.set_budget(10)
    assert eng.run(wf).outputs["4"]["data"] == b"\x06\x02"


def test_cancelling_a_queued_async_run_spares_the_running_one_and_never_runs(eng, tmp_path):
    """13.5: cancelling the waiting task cancelled the running one, and the waiting one still wrote."""
    running = Workflow()
    running.add("Blob", {"size": 4, "tag": 1})
    running.add("Gate", {"steps": 50}, {"data": ("1", "data")})
    running.add("Save", {"name": "running"}, {"data": ("2", "data")})
    queued = Workflow()
    queued.add("Blob", {"size": 4, "tag": 2})
    queued.add("Save", {"name": "queued"}, {"data": ("1", "data")})
    release = threading.Event()
    at_gate = threading.Event()

    def hold(event):
        # The running run waits at its first step until the queued task has been cancelled.
        if isinstance(event, ev.NodeProgress) and event.step == 1:
            at_gate.set()
            release.wait()

    eng.subscribe(hold)

    async def main():
        first = asyncio.ensure_future(eng.run_async(running))
        await asyncio.get_running_loop().run_in_executor(None, at_gate.wait)
        second = asyncio.ensure_future(eng.run_async(queued))
        await asyncio.sleep(0)          # the second task now waits for the engine
        second.cancel()
        for _ in range(3):              # let its cancellation handler run (loop steps, not time)
            await asyncio.sleep(0)
        release.set()
        with pytest.raises(asyncio.CancelledError):
            await second
        return await first

    result = asyncio.run(main())
    assert [Path(p).name for p in result.outputs["3"]] == ["running.bin"]
    assert not (tmp_path / "out" / "queued.bin").exists()
    assert "save:queued" not in RAN


def test_is_changed_gets_the_context_and_params_and_a_changed_file_reruns(eng, tmp_path):
    """13.6: the documented is_changed(ctx, **params) raised TypeError; a changed file did not re-run."""
    notes = tmp_path / "notes.txt"
    notes.write_text("first")
    wf = Workflow()
    wf.add("ReadText", {"path": str(notes)})
    wf.add("Keep", {}, {"data": ("1", "data")})
    assert eng.run(wf).outputs["2"]["data"] == b"first"
    RAN.clear()
    assert eng.run(wf).executed == [] and RAN == []
    notes.write_text("other")            # same size, and the mtime may not even move
    result = eng.run(wf)
    assert result.executed == ["1", "2"] and result.outputs["2"]["data"] == b"other"


def test_is_changed_that_raises_names_the_node(eng):
    spec = NodeSpec("Broken", "t", lambda ctx, n: {"data": b""}, params=(Param.int("n", 0),),
                    outputs=(Output("data", BLOB),), is_changed=lambda ctx, n: 1 / n)
    eng.registry.register(spec)
    wf = Workflow()
    wf.add("Broken")
    wf.add("Keep", {}, {"data": ("1", "data")})
    with pytest.raises(NodeExecutionError) as info:
        eng.run(wf)
    assert info.value.node_id == "1" and "ZeroDivisionError" in str(info.value)


@pytest.mark.parametrize("error, shown", [(KeyError(), "(Fails): KeyError"),
                                          (RuntimeError("weights do not fit\n  size mismatch for a.b"),
                                           "RuntimeError: weights do not fit")])
def test_a_node_error_is_one_line_and_never_empty(eng, error, shown):
    def fail(ctx):
        raise error

    eng.registry.register(NodeSpec("Fails", "t", fail, outputs=(Output("data", BLOB),)))
    wf = Workflow()
    wf.add("Fails")
    wf.add("Keep", {}, {"data": ("1", "data")})
    with pytest.raises(NodeExecutionError) as info:
        eng.run(wf)
    assert info.value.node_id == "1" and str(info.value).endswith(shown) and "\n" not in str(info.value)


def test_a_hugging_face_cache_snapshot_is_named_as_its_repository(tmp_path):
    from nodeforge.core.models import snapshot_name

    assert snapshot_name(tmp_path / "hub" / "models--Intel--dpt-hybrid-midas" / "snapshots" / "abc123") == \
        "dpt-hybrid-midas"
    assert snapshot_name(tmp_path / "models" / "depth" / "dpt-hybrid-midas") == "dpt-hybrid-midas"


@pytest.mark.parametrize("kind, shown", [("str", "str"), ("int", "int")])
def test_a_wrong_output_type_is_reported_at_the_node_that_returned_it(eng, kind, shown):
    registry = eng.registry
    registry.register(NodeSpec("UseImage", "t", lambda ctx, image: {"data": b""},
                               inputs=(Input("image", "IMAGE"),), outputs=(Output("data", BLOB),)))
    wf = Workflow()
    wf.add("Blob")
    wf.add("Blob")
    wf.add("Wrong", {"kind": kind})
    wf.add("UseImage", {}, {"image": ("3", "image")})
    wf.add("Keep", {}, {"data": ("4", "data")})
    with pytest.raises(NodeExecutionError) as info:
        eng.run(wf)
    assert str(info.value) == f"node 3 (Wrong), image: returned {shown} on output image, expected IMAGE " \
                              "(a bug in the node pack)"
