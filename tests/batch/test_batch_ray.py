"""The Ray runner on a local Ray (2 CPUs) with the demo model: the same pixels as in-process,
each job exactly once, and a killed worker's job retried elsewhere."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from nodeforge import Engine, load_workflow
from nodeforge.batch import BatchSpec, parse_axis, plan_batch, run_batch
from nodeforge.batch.manifest import read_records

pytestmark = pytest.mark.ray
ray = pytest.importorskip("ray", reason="the Ray tests need ray (CI installs it: pip install ray)")

ROOT = Path(__file__).resolve().parents[2]
MODEL = ROOT / "resources" / "models" / "nodeforge-shapes"


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


def grid_plan(engine):
    assert (MODEL / "model_index.json").is_file(), f"the demo model is missing from {MODEL}"
    wf = load_workflow(ROOT / "workflows" / "txt2img.json")
    wf.nodes["5"].params["steps"] = 3
    spec = BatchSpec(wf, grid=[parse_axis("5.seed=1..4"), parse_axis("5.cfg=2,4,6")])
    return plan_batch(spec, engine.registry)


def pixels(path):
    from PIL import Image

    return np.asarray(Image.open(path))


def done_jobs(out):
    return sorted(r["job"] for r in read_records(out / "manifest.jsonl")[1:] if r["status"] == "done")


def test_ray_grid_matches_in_process_pixels_each_job_once_and_survives_a_killed_worker(local_ray, tmp_path):
    from nodeforge.batch.ray_runner import ray_runner

    import torch

    engine = Engine(device="cpu")
    plan = grid_plan(engine)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)        # as each 1-CPU actor: CPU float sums depend on the thread count
    try:
        local = run_batch(plan, tmp_path / "local", engine=engine, sheet=False)
    finally:
        torch.set_num_threads(threads)
    assert local.done == 12

    summary = run_batch(plan, tmp_path / "ray", runner=ray_runner(workers=2, device="cpu", threads=1), sheet=False)
    assert (summary.done, summary.failed) == (12, 0)
    assert done_jobs(tmp_path / "ray") == list(range(1, 13))          # each job exactly once
    for n in range(1, 13):
        name = f"txt2img_{n:05d}.png"
        assert np.array_equal(pixels(tmp_path / "ray" / name), pixels(tmp_path / "local" / name)), name
    workers = {r["worker"] for r in read_records(tmp_path / "ray" / "manifest.jsonl")[1:]}
    assert workers == {"worker-1", "worker-2"}

    submitted = []

    def kill_the_fifth(actor, job):
        submitted.append(job.number)
        if len(submitted) == 5:          # kill the worker the moment it is handed its job
            ray.kill(actor, no_restart=True)

    summary = run_batch(plan, tmp_path / "killed", runner=ray_runner(workers=2, device="cpu", threads=1,
                                                                       on_submit=kill_the_fifth),
                        sheet=False)
    assert (summary.done, summary.failed) == (12, 0)
    records = read_records(tmp_path / "killed" / "manifest.jsonl")[1:]
    retries = [r for r in records if r["status"] == "retry"]
    assert [r["job"] for r in retries] == [submitted[4]] and "died" in retries[0]["reason"]
    assert done_jobs(tmp_path / "killed") == list(range(1, 13))
    again = next(r for r in records if r["job"] == submitted[4] and r["status"] == "done")
    assert again["attempt"] == 2 and again["worker"] != retries[0]["worker"]
    for n in range(1, 13):
        name = f"txt2img_{n:05d}.png"
        assert np.array_equal(pixels(tmp_path / "killed" / name), pixels(tmp_path / "local" / name)), name
