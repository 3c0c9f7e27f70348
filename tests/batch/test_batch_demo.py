"""Batches on the bundled demo model: job-numbered PNGs that carry the job's exact workflow, and
grouping by checkpoint so each checkpoint is loaded once per batch."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from nodeforge import Engine, load_workflow
from nodeforge.batch import BatchSpec, parse_axis, plan_batch, run_batch

ROOT = Path(__file__).resolve().parents[2]
MODEL = ROOT / "resources" / "models" / "nodeforge-shapes"


@pytest.fixture
def demo_workflow():
    assert (MODEL / "model_index.json").is_file(), f"the demo model is missing from {MODEL}"
    wf = load_workflow(ROOT / "workflows" / "txt2img.json")
    wf.nodes["5"].params["steps"] = 2
    return wf


def test_each_png_is_named_by_its_job_and_reruns_alone_to_the_same_pixels(demo_workflow, tmp_path):
    from PIL import Image
    import numpy as np

    engine = Engine(device="cpu")
    plan = plan_batch(BatchSpec(demo_workflow, grid=[parse_axis("5.seed=3,4"), parse_axis("5.cfg=2,5")]),
                      engine.registry)
    summary = run_batch(plan, tmp_path / "out", engine=engine)
    assert summary.done == 4 and summary.sheet is not None and summary.sheet.is_file()
    job3 = tmp_path / "out" / "txt2img_00003.png"
    embedded = load_workflow(job3)
    assert embedded.nodes["5"].params["seed"] == 4 and embedded.nodes["5"].params["cfg"] == 2.0
    again = Engine(device="cpu", output_dir=tmp_path / "alone").run(embedded).outputs["7"][0]
    assert np.array_equal(np.asarray(Image.open(again)), np.asarray(Image.open(job3)))


def test_two_checkpoints_times_twenty_seeds_load_each_checkpoint_once(demo_workflow, tmp_path):
    from nodeforge.core.registry import builtin_module

    loading = builtin_module("loading")

    demo_workflow.nodes["5"].params["steps"] = 1
    copy = tmp_path / "models" / "shapes-copy"
    shutil.copytree(MODEL, copy)
    # Seeds vary slowest, so in number order the jobs alternate checkpoints.
    spec = BatchSpec(demo_workflow, grid=[parse_axis("5.seed=1..20"),
                                          parse_axis(f"1.checkpoint=nodeforge-shapes,{copy}")])
    engine = Engine(device="cpu")
    plan = plan_batch(spec, engine.registry)
    loads = loading.load_count
    summary = run_batch(plan, tmp_path / "grouped", engine=engine, sheet=False)
    assert summary.done == 40
    assert [j.overrides_json()["1.checkpoint"] for j in plan.jobs] == ["nodeforge-shapes"] * 20 + [str(copy)] * 20
    assert loading.load_count - loads == 2

