"""`nodeforge batch`: grids from the command line, one-line errors, resume, exit status."""
from __future__ import annotations

import json

import pytest

from nodeforge import Workflow, save_workflow
from nodeforge.cli import main

pytestmark = pytest.mark.usefixtures("packs_on_node_path")


def workflow(tmp_path):
    wf = Workflow()
    wf.add("Number", {"value": 3}, title="start")
    wf.add("Scale", {"factor": 2}, {"value": ("1", "value")})
    wf.add("WriteText", {"prefix": "r"}, {"value": ("2", "value")})
    return save_workflow(wf, tmp_path / "wf.json")


def test_batch_grid_from_the_command_line_and_resume(tmp_path, capsys):
    path = workflow(tmp_path)
    out = tmp_path / "out"
    args = ["batch", str(path), "--grid", "start.value=1,2", "--grid", "2.factor=1..3", "--out", str(out)]
    assert main(args + ["--save"]) == 0
    printed = capsys.readouterr().out
    assert "6 done, 0 failed of 6 jobs" in printed
    assert sorted(p.name for p in out.glob("r_*.txt")) == [f"r_3_{n:05d}.txt" for n in range(1, 7)]
    assert (out / "r_3_00006.txt").read_text() == "6.0\n"
    saved = json.loads((tmp_path / "wf.batch.json").read_text())
    assert saved["workflow"] == "wf.json" and [a["target"] for a in saved["grid"]] == ["start.value", "2.factor"]

    assert main(args) == 1
    assert capsys.readouterr().err.strip().splitlines() == [
        f"error: {out} already holds a batch (manifest.jsonl); add --resume to continue it or choose another --out"]
    assert main(["batch", str(tmp_path / "wf.batch.json"), "--out", str(out), "--resume"]) == 0
    assert "6 done, 0 failed of 6 jobs (6 already done)" in capsys.readouterr().out


@pytest.mark.parametrize("extra, message", [
    (["--grid", "2.factor=0,1"], "error: node 2 (Scale), factor: must not be zero (job 1)"),
    (["--grid", "2.speed=1"], "error: 2.speed: node 2 (Scale) has no param 'speed' (params: factor)"),
    (["--count", "2", "--seed-policy", "increment"], "error: --seed-policy increment needs a node with a seed"),
])
def test_batch_mistakes_are_one_line(tmp_path, capsys, extra, message):
    assert main(["batch", str(workflow(tmp_path)), "--out", str(tmp_path / "o")] + extra) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(message), err
    assert not (tmp_path / "o").exists()


def test_ray_without_ray_installed_says_how_to_install_it(tmp_path, capsys, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "ray", None)       # as if ray were not installed
    assert main(["batch", str(workflow(tmp_path)), "--out", str(tmp_path / "o"), "--ray"]) == 1
    assert capsys.readouterr().err.strip().splitlines() == [
        'error: --ray: Ray is not installed; install it with: pip install "nodeforge[ray]"']
    assert main(["batch", str(workflow(tmp_path)), "--out", str(tmp_path / "o"), "--workers", "2"]) == 1
    assert "--workers needs --ray" in capsys.readouterr().err
