"""Running a batch in-process: job-numbered outputs, a manifest written as jobs finish, and a
resume after a crash that runs no job twice and loses none."""
from __future__ import annotations

import json

import pytest

from nodeforge.batch import BatchSpec, BatchSpecError, parse_axis, plan_batch, run_batch
from nodeforge.batch.manifest import Manifest, read_records
from nodeforge.batch import runner as rn

from .conftest import RUNS, seeded_workflow, written_values


def grid_plan(registry):
    spec = BatchSpec(seeded_workflow(), grid=[parse_axis("1.value=100,200"), parse_axis("2.seed=1..3")])
    return plan_batch(spec, registry)


def test_batch_writes_job_numbered_files_and_one_manifest_line_each(batch_registry, batch_engine, tmp_path):
    out = tmp_path / "out"
    summary = run_batch(grid_plan(batch_registry), out, engine=batch_engine)
    assert (summary.done, summary.failed, summary.ran) == (6, 0, 6)
    assert written_values(out) == {"n_3_00001.txt": "101.0", "n_3_00002.txt": "102.0", "n_3_00003.txt": "103.0",
                                   "n_3_00004.txt": "201.0", "n_3_00005.txt": "202.0", "n_3_00006.txt": "203.0"}
    records = read_records(out / "manifest.jsonl")
    assert records[0]["jobs"] == 6
    assert [(r["job"], r["status"], r["outputs"]) for r in records[1:]] == [
        (n, "done", [f"n_3_{n:05d}.txt"]) for n in range(1, 7)]
    assert records[5]["overrides"] == {"1.value": 200.0, "2.seed": 2}
    copy = json.loads((out / "batch.json").read_text())
    assert copy["workflow"]["nodes"]["2"]["type"] == "Seeded"     # the folder alone re-makes any job


class Crash(Exception):
    pass


def test_resume_after_a_crash_runs_no_job_twice_and_loses_none(batch_registry, batch_engine, tmp_path, monkeypatch):
    out = tmp_path / "out"
    plan = grid_plan(batch_registry)
    real_append = Manifest.append
    calls = []

    def crashing_append(self, record):
        calls.append(record)
        if len(calls) == 5:     # header + 3 jobs recorded; job 4's file is written, its line is not
            with open(self.path, "ab") as handle:
                handle.write(b'{"job": 4, "status": "do')     # and the process dies mid-line
            raise Crash()
        real_append(self, record)

    monkeypatch.setattr(Manifest, "append", crashing_append)
    with pytest.raises(Crash):
        run_batch(plan, out, engine=batch_engine)
    monkeypatch.setattr(Manifest, "append", real_append)
    assert sorted(written_values(out)) == [f"n_3_{n:05d}.txt" for n in (1, 2, 3, 4)]
    with pytest.raises(BatchSpecError, match="--resume"):
        run_batch(plan, out, engine=batch_engine)

    from nodeforge import Engine

    fresh = Engine(device="cpu", registry=batch_registry, model_paths=batch_engine.model_paths)   # a new process
    before = RUNS.copy()
    summary = run_batch(plan, out, engine=fresh, resume=True)
    assert (summary.resumed, summary.ran, summary.done) == (3, 3, 6)
    rerun = {key[1:] for key, count in RUNS.items() if count > before.get(key, 0)}
    assert rerun == {(1, 200.0), (2, 200.0), (3, 200.0)}      # jobs 4-6 only; 1-3 never run again
    records = read_records(out / "manifest.jsonl")
    done = [r["job"] for r in records[1:] if r["status"] == "done"]
    assert sorted(done) == [1, 2, 3, 4, 5, 6] and len(done) == 6       # each job recorded exactly once
    assert (out / "manifest.jsonl").read_bytes().count(b'"do\n') == 0   # the torn line was cut off
    assert written_values(out)["n_3_00004.txt"] == "201.0" and len(written_values(out)) == 6


def test_resume_into_another_batchs_folder_is_refused(batch_registry, batch_engine, tmp_path):
    out = tmp_path / "out"
    run_batch(grid_plan(batch_registry), out, engine=batch_engine)
    other = plan_batch(BatchSpec(seeded_workflow(), grid=[parse_axis("2.seed=7,8")]), batch_registry)
    with pytest.raises(BatchSpecError, match="belongs to another batch"):
        run_batch(other, out, engine=batch_engine, resume=True)


def test_a_failing_job_is_recorded_with_its_reason_and_the_batch_goes_on(batch_registry, batch_engine, tmp_path):
    from nodeforge import Workflow

    wf = Workflow()
    wf.add("Number", {"value": 1.0})
    wf.add("Fail", {"message": "boom"}, {"value": ("1", "value")})
    wf.add("WriteText", {}, {"value": ("2", "value")})
    plan = plan_batch(BatchSpec(wf, grid=[parse_axis("1.value=1,2")]), batch_registry)
    summary = run_batch(plan, tmp_path / "out", engine=batch_engine)
    assert (summary.done, summary.failed) == (0, 2)
    records = read_records(tmp_path / "out" / "manifest.jsonl")[1:]
    assert [r["status"] for r in records] == ["failed", "failed"]
    assert records[0]["error"] == "node 2 (Fail): RuntimeError: boom"


def test_every_job_is_validated_before_any_runs(batch_registry, batch_engine):
    from nodeforge import ValidationError

    plan = plan_batch(BatchSpec(seeded_workflow(), grid=[parse_axis("2.seed=1,2")]), batch_registry)
    plan.workflow.nodes["1"].params["value"] = "not a number"
    with pytest.raises(ValidationError) as info:
        rn.check_jobs(plan, batch_engine)
    assert "(all 2 jobs)" in str(info.value.problems[0]) and len(info.value.problems) == 1
    assert not RUNS
