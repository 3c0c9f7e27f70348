"""The engine: what runs, what comes from cache, events, failures, cancellation, scale."""
from __future__ import annotations

import asyncio
import threading

import pytest

from nodeforge import Cancelled, NodeExecutionError, Workflow
from nodeforge.core import events as ev
from nodeforge.core.cache import OutputCache, estimate_nbytes


def diamond() -> Workflow:
    """1 -> 2 (Scale) -> 4 (Add) -> 5 (Show);  3 (Number) -> 4."""
    wf = Workflow()
    wf.add("Number", {"value": 2})
    wf.add("Scale", {"factor": 3}, {"value": ("1", "value")})
    wf.add("Number", {"value": 10})
    wf.add("Add", {}, {"a": ("2", "value"), "b": ("3", "value")})
    wf.add("Show", {"label": "sum"}, {"value": ("4", "value")})
    return wf


def test_first_run_executes_everything_in_dependency_order(engine, arith):
    result = engine.run(diamond())
    assert result.outputs["5"] == {"label": "sum", "value": 16.0}
    assert result.executed.index("1") < result.executed.index("2") < result.executed.index("4")
    assert sorted(result.executed) == ["1", "2", "3", "4", "5"] and result.cached == []


def test_rerunning_an_unchanged_graph_is_served_from_cache(engine, arith):
    wf = diamond()
    engine.run(wf)
    arith.RUNS.clear()
    result = engine.run(wf)
    assert result.executed == [] and sum(arith.RUNS.values()) == 0
    assert sorted(result.cached) == ["1", "2", "3", "4", "5"]
    assert result.outputs["5"]["value"] == 16.0


def test_changing_a_param_reruns_only_that_node_and_what_depends_on_it(engine, arith):
    wf = diamond()
    engine.run(wf)
    wf.nodes["3"].params["value"] = 20
    result = engine.run(wf)
    assert sorted(result.executed) == ["3", "4", "5"]
    assert sorted(result.cached) == ["1", "2"]
    assert result.outputs["5"]["value"] == 26.0
    wf.nodes["3"].params["value"] = 10    # back to the first value: all cached again
    assert engine.run(wf).executed == []


def test_a_changed_title_or_layout_does_not_rerun_anything(engine):
    wf = diamond()
    engine.run(wf)
    wf.nodes["2"].title = "triple"
    wf.ui["positions"] = {"1": [5, 5]}
    assert engine.run(wf).executed == []


def test_only_what_the_requested_outputs_need_runs(engine, arith):
    wf = diamond()
    wf.add("Scale", {"factor": 5}, {"value": ("3", "value")})        # 6: feeds nothing
    result = engine.run(wf, outputs=["2"])
    assert sorted(result.executed) == ["1", "2"]
    assert result.outputs == {"2": {"value": 6.0}}
    assert arith.RUNS["Scale"] == 1


def test_a_cached_node_spares_its_ancestors(engine, arith):
    wf = diamond()
    engine.run(wf)
    engine.cache.clear()
    engine.run(wf, outputs=["4"])                                    # only 1..4 cached now
    arith.RUNS.clear()
    wf.nodes["5"].params["label"] = "renamed"
    result = engine.run(wf)
    assert result.executed == ["5"] and sum(arith.RUNS.values()) == 1


def test_uncacheable_nodes_run_every_time_and_print_paths(engine, arith, tmp_path):
    wf = Workflow()
    wf.add("Number", {"value": 4})
    wf.add("WriteText", {"prefix": "n"}, {"value": ("1", "value")})
    first = engine.run(wf)
    second = engine.run(wf)
    assert first.executed == ["1", "2"] and second.executed == ["2"]
    [path] = second.outputs["2"]
    assert open(path).read() == "4.0\n"


def read_file(path: str) -> Workflow:
    """1 ReadFile (`path`) -> 2 Show: the file's length."""
    wf = Workflow()
    wf.add("ReadFile", {"path": path})
    wf.add("Show", {}, {"value": ("1", "value")})
    return wf


def test_replacing_a_file_reruns_the_node_that_reads_it(engine, tmp_path):
    data = tmp_path / "data.png"
    data.write_bytes(b"12345")
    wf = read_file(str(data))
    assert engine.run(wf).outputs["2"]["value"] == 5.0
    assert engine.run(wf).executed == []
    data.write_bytes(b"1234567")
    result = engine.run(wf)
    assert result.executed == ["1", "2"] and result.outputs["2"]["value"] == 7.0


def test_events_tell_the_story_of_a_run(engine):
    seen: list = []
    wf = diamond()
    wf.nodes["2"] = wf.nodes["2"].__class__("Slow", {"steps": 3}, {"value": ("1", "value")})
    engine.subscribe(seen.append)
    engine.run(wf)
    kinds = [type(e).__name__ for e in seen]
    assert kinds[0] == "RunStarted" and kinds[-1] == "RunFinished"
    steps = [(e.node_id, e.step, e.total) for e in seen if isinstance(e, ev.NodeProgress)]
    assert steps == [("2", 1, 3), ("2", 2, 3), ("2", 3, 3)]
    finished = {e.node_id: e for e in seen if isinstance(e, ev.NodeFinished)}
    assert not finished["2"].cached and finished["2"].seconds >= 0
    assert finished["5"].output == {"label": "sum", "value": 12.0}
    seen.clear()
    engine.run(wf)
    assert all(e.cached for e in seen if isinstance(e, ev.NodeFinished))


def test_a_node_that_raises_names_itself_and_the_cache_stays_consistent(engine, arith):
    wf = diamond()
    wf.add("Fail", {"message": "kaput"}, {"value": ("4", "value")})
    wf.add("Show", {}, {"value": ("6", "value")})
    failures: list = []
    with pytest.raises(NodeExecutionError) as info:
        engine.run(wf, on_event=lambda e: failures.append(e) if isinstance(e, ev.RunFailed) else None)
    err = info.value
    assert (err.node_id, err.problem.node_type) == ("6", "Fail")
    assert str(err) == "node 6 (Fail): RuntimeError: kaput"
    assert isinstance(err.original, RuntimeError)
    assert failures and failures[0].node_id == "6"
    # What finished before the failure is cached; the failing node is not.
    wf.nodes["6"].params["message"] = "user"
    arith.RUNS.clear()
    with pytest.raises(NodeExecutionError) as info:
        engine.run(wf)
    assert info.value.field == "value" and "pick another" in str(info.value)
    assert dict(arith.RUNS) == {"Fail": 1}


def test_cancel_from_another_thread_stops_at_the_next_progress_point(engine, arith):
    wf = Workflow()
    wf.add("Number", {"value": 1})
    wf.add("Slow", {"steps": 1000}, {"value": ("1", "value")})
    wf.add("Show", {}, {"value": ("2", "value")})
    steps: list[int] = []
    cancellers: list[int] = []

    def cancel_from_a_thread() -> None:
        cancellers.append(threading.get_ident())
        engine.cancel()

    def listener(event):
        if isinstance(event, ev.NodeProgress):
            steps.append(event.step)
            if event.step == 5:
                # Another thread cancels; joining it (no sleep, no timeout) makes the order certain:
                # the cancel lands before step 5's progress call returns to the node.
                thread = threading.Thread(target=cancel_from_a_thread)
                thread.start()
                thread.join()

    with pytest.raises(Cancelled) as info:
        engine.run(wf, on_event=listener)
    assert info.value.node_id == "2"
    assert cancellers and cancellers[0] != threading.get_ident()
    assert steps == list(range(steps[0], 6)), "stopped at the progress point where the cancel came"
    # The cache is consistent: Number is cached, Slow is not, and the next run completes.
    result = engine.run(wf)
    assert result.executed == ["2", "3"] and result.cached == ["1"]


def test_run_async_delivers_events_on_the_loop_thread(engine):
    loop_thread: list = []
    event_threads: set = set()

    async def main():
        loop_thread.append(threading.get_ident())
        return await engine.run_async(diamond(), on_event=lambda e: event_threads.add(threading.get_ident()))

    result = asyncio.run(main())
    assert result.outputs["5"]["value"] == 16.0
    assert event_threads == {loop_thread[0]}


def test_cancelling_the_async_task_cancels_the_run(engine):
    wf = Workflow()
    wf.add("Number")
    wf.add("Slow", {"steps": 10_000}, {"value": ("1", "value")})
    wf.add("Show", {}, {"value": ("2", "value")})

    async def main():
        started = asyncio.Event()
        task = asyncio.ensure_future(engine.run_async(
            wf, on_event=lambda e: started.set() if isinstance(e, ev.NodeProgress) else None))
        await started.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    assert "2" in engine.run(wf).executed, "the interrupted node was not cached"


def test_a_workflow_of_10000_nodes_validates_and_runs(engine):
    wf = Workflow()
    prev = wf.add("Number", {"value": 0})
    for _ in range(9_998):
        prev = wf.add("Add", {"offset": 1}, {"a": (prev, "value")})
    wf.add("Show", {}, {"value": (prev, "value")})
    result = engine.run(wf)
    assert len(result.executed) == 10_000
    assert result.outputs[str(10_000)]["value"] == 9_998.0


def test_the_cache_evicts_least_recently_used_over_its_budget():
    cache = OutputCache(budget=250)
    cache.put("a", {"x": b"a" * 100})
    cache.put("b", {"x": b"b" * 100})
    cache.get("a")
    cache.put("c", {"x": b"c" * 100})
    assert "a" in cache and "c" in cache and "b" not in cache
    assert cache.stats().nbytes == 200 and cache.stats().evictions == 1
    cache.put("huge", b"h" * 1000)       # bigger than the budget: kept alone, not refused
    assert list(cache._entries) == ["huge"]


def test_sizes_are_estimated_for_tensors_modules_and_containers():
    torch = pytest.importorskip("torch")
    t = torch.zeros(10, 10)
    assert estimate_nbytes(t) == 400
    assert estimate_nbytes({"a": t, "b": t[1:]}) == 400, "views share storage"
    layer = torch.nn.Linear(10, 10)
    assert estimate_nbytes(layer) == (100 + 10) * 4


def test_evicted_values_are_recomputed_when_needed(engine, arith):
    wf = diamond()
    engine.cache.set_budget(-1)          # keeps only the newest entry
    engine.run(wf)
    assert len(engine.cache) == 1
    wf.nodes["5"].params["label"] = "again"
    result = engine.run(wf)
    assert sorted(result.executed) == ["1", "2", "3", "4", "5"]
    assert result.outputs["5"] == {"label": "again", "value": 16.0}


def test_a_file_deleted_between_runs_is_reported_not_crashed_on(engine, tmp_path):
    from nodeforge import ValidationError

    data = tmp_path / "data.png"
    data.write_bytes(b"123")
    wf = read_file(str(data))
    engine.run(wf)
    data.unlink()
    with pytest.raises(ValidationError) as info:
        engine.run(wf)
    assert info.value.problems[0].field == "path" and "does not exist" in str(info.value)


def test_relative_file_paths_are_found_beside_the_workflow_file(engine, tmp_path, monkeypatch):
    from nodeforge import load_workflow, save_workflow

    shared = tmp_path / "shared"
    (shared / "inputs").mkdir(parents=True)
    (shared / "inputs" / "pic.png").write_bytes(b"1234")
    wf = read_file("inputs/pic.png")
    save_workflow(wf, shared / "wf.json")
    monkeypatch.chdir(tmp_path)          # somewhere else entirely
    assert engine.run(load_workflow(shared / "wf.json")).outputs["2"]["value"] == 4.0
    problems = engine.validate(wf)       # not loaded from a file: looked up from the working folder
    assert problems and "does not exist" in problems[0].message
