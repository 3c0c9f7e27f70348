"""Batches against hostile files (issue 27): `@file` values, specs from strangers, edited manifests.

Each case is a one-line BatchSpecError naming the file and the fix, or a job that simply runs
again; never a hang, a traceback, a file read from outside the spec's folder, or a miscount.
"""
from __future__ import annotations

import json
import os
import time

import pytest

from nodeforge.batch import BatchSpec, BatchSpecError, load_spec, parse_axis, plan_batch, run_batch
from nodeforge.batch.manifest import MANIFEST_NAME, Manifest, read_records
from nodeforge.batch.spec import MAX_VALUES_FILE_BYTES

from .conftest import seeded_workflow, written_values


def _refused(call, *words):
    start = time.monotonic()
    with pytest.raises(BatchSpecError) as caught:
        call()
    assert time.monotonic() - start < 5, "refused before reading"
    text = str(caught.value)
    assert "\n" not in text and all(word in text for word in words), text
    return text


# -- @file values --------------------------------------------------------------------------------
def test_a_values_fifo_is_refused_without_waiting_for_a_writer(tmp_path):
    os.mkfifo(tmp_path / "prompts.txt")
    _refused(lambda: parse_axis("1.value=@prompts.txt", tmp_path), "prompts.txt", "is a pipe", "one a line")


def test_a_values_device_is_refused_before_reading_it(tmp_path):
    _refused(lambda: parse_axis("1.value=@/dev/zero", tmp_path), "/dev/zero", "is a device")


def test_a_values_folder_is_refused(tmp_path):
    (tmp_path / "prompts").mkdir()
    _refused(lambda: parse_axis("1.value=@prompts", tmp_path), "prompts", "is a folder")


def test_a_huge_values_file_is_refused_by_its_size(tmp_path):
    with open(tmp_path / "huge.txt", "wb") as handle:
        handle.truncate(MAX_VALUES_FILE_BYTES + 1)     # sparse: costs no disk, would cost memory to read
    _refused(lambda: parse_axis("1.value=@huge.txt", tmp_path), "huge.txt", "more than 8 MB", "split it")


def test_values_that_are_not_utf8_say_so(tmp_path):
    (tmp_path / "latin1.txt").write_bytes("caf\xe9\n".encode("latin-1"))
    _refused(lambda: parse_axis("1.value=@latin1.txt", tmp_path), "latin1.txt", "not UTF-8", "save it as UTF-8")


# -- a spec reads only beside itself --------------------------------------------------------------
def _spec_with_values(folder, values):
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "wf.batch.json"
    path.write_text(json.dumps({"nodeforge_batch": 1, "workflow": seeded_workflow().to_json(),
                                "grid": [{"target": "1.value", "values": values}]}))
    return path


@pytest.mark.parametrize("reach", ["@../secret.txt", "@{secret}", "@~/secret.txt", "@link.txt"])
def test_a_specs_values_file_outside_its_folder_is_refused(tmp_path, reach):
    secret = tmp_path / "secret.txt"
    secret.write_text("1\n2\n")
    folder = tmp_path / "shared"
    folder.mkdir()
    (folder / "link.txt").symlink_to(secret)
    path = _spec_with_values(folder, reach.format(secret=secret))
    _refused(lambda: load_spec(path), "1.value", "outside its folder", "--grid/--zip ID.param=@FILE")


def test_a_specs_values_file_beside_it_or_below_is_read(tmp_path):
    (tmp_path / "shared" / "lists").mkdir(parents=True)
    (tmp_path / "shared" / "lists" / "v.txt").write_text("3\n4\n")
    spec = load_spec(_spec_with_values(tmp_path / "shared", "@lists/v.txt"))
    assert spec.grid[0].values == ("3", "4")


def test_the_user_may_name_any_values_file_on_the_command_line(tmp_path):
    (tmp_path / "secret.txt").write_text("5\n6\n")
    (tmp_path / "here").mkdir()
    assert parse_axis(f"1.value=@{tmp_path / 'secret.txt'}", tmp_path / "here").values == ("5", "6")
    assert parse_axis("1.value=@../secret.txt", tmp_path / "here").values == ("5", "6")


def test_a_batch_spec_that_is_a_fifo_is_refused(tmp_path):
    os.mkfifo(tmp_path / "wf.batch.json")
    _refused(lambda: load_spec(tmp_path / "wf.batch.json"), "wf.batch.json", "pipe")


# -- --resume against any manifest --------------------------------------------------------------
def _plan(registry):
    return plan_batch(BatchSpec(seeded_workflow(), grid=[parse_axis("2.seed=1..3")]), registry)


def _manifest_with(out, plan, *lines):
    out.mkdir(parents=True, exist_ok=True)
    header = json.dumps({"manifest": 1, "batch": plan.fingerprint, "jobs": len(plan.jobs)})
    (out / MANIFEST_NAME).write_bytes((header + "\n" + "".join(line + "\n" for line in lines)).encode())


GARBAGE = [
    '{"job": 1, "status": "done", "outputs": 5}',
    '{"job": 1, "status": "done", "outputs": null}',
    '{"job": 1, "status": "done", "outputs": [null, 7]}',
    '{"job": 1, "status": "done", "outputs": "n_3_00001.txt"}',
    '{"job": 1, "status": "done", "outputs": [{"a": 1}]}',
    '{"job": 1, "status": ["done"], "outputs": []}',
    '{"job": true, "status": "done", "outputs": []}',
    '{"job": "1", "status": "done", "outputs": []}',
    '{"job": 1.0, "status": "done", "outputs": []}',
    '{"job": 1, "status": "done", "outputs": ["a\\u0000b.txt"]}',
    "null", "5", '"done"', "[1, 2]",
    "[" * 100_000 + "]" * 100_000,
    '{"job": 1, "status": "done", "outputs": ' + "[" * 100_000 + "]" * 100_000 + "}",
]


@pytest.mark.parametrize("line", GARBAGE, ids=lambda line: line[:40])
def test_resume_survives_any_manifest_line_by_running_the_job_again(batch_registry, batch_engine, tmp_path, line):
    plan = _plan(batch_registry)
    out = tmp_path / "out"
    _manifest_with(out, plan, line)
    summary = run_batch(plan, out, engine=batch_engine, resume=True)
    assert (summary.resumed, summary.ran, summary.done, summary.failed) == (0, 3, 3, 0)
    assert sorted(written_values(out)) == ["n_3_00001.txt", "n_3_00002.txt", "n_3_00003.txt"]


def test_a_manifest_that_is_a_folder_is_one_line(batch_registry, batch_engine, tmp_path):
    (tmp_path / "out" / MANIFEST_NAME).mkdir(parents=True)
    _refused(lambda: run_batch(_plan(batch_registry), tmp_path / "out", engine=batch_engine, resume=True),
             MANIFEST_NAME, "is a folder", "choose another --out")


@pytest.mark.parametrize("device", ["/dev/zero", "fifo"])
def test_a_manifest_that_is_a_device_or_pipe_is_one_line(batch_registry, batch_engine, tmp_path, device):
    out = tmp_path / "out"
    out.mkdir()
    if device == "fifo":
        os.mkfifo(out / MANIFEST_NAME)
    else:
        (out / MANIFEST_NAME).symlink_to(device)
    _refused(lambda: run_batch(_plan(batch_registry), out, engine=batch_engine, resume=True),
             MANIFEST_NAME, "not a regular file", "choose another --out")


def test_job_numbers_outside_the_plan_are_ignored_and_the_summary_counts_the_plan(batch_registry, batch_engine,
                                                                                   tmp_path):
    plan = _plan(batch_registry)
    out = tmp_path / "out"
    _manifest_with(out, plan, *(json.dumps({"job": n, "status": s, "outputs": []})
                                for n in (0, -1, 4, 99, 10 ** 30) for s in ("done", "failed")))
    summary = run_batch(plan, out, engine=batch_engine, resume=True)
    assert (summary.total, summary.done, summary.failed, summary.resumed, summary.ran) == (3, 3, 0, 0, 3)


# -- a "done" job must have its whole files, inside the folder ------------------------------------
PNG_END = b"\x00\x00\x00\x00IEND\xaeB`\x82"


def _png(path, whole=True):
    from io import BytesIO

    from PIL import Image

    buffer = BytesIO()
    Image.new("RGB", (16, 16), (10, 200, 30)).save(buffer, format="PNG")
    data = buffer.getvalue()
    assert data.endswith(PNG_END)
    path.write_bytes(data if whole else data[: len(data) // 2])


def _finished(out, *records):
    lines = [json.dumps({"manifest": 1, "batch": "x", "jobs": 3})] + [json.dumps(r) for r in records]
    (out / MANIFEST_NAME).write_text("\n".join(lines) + "\n")
    return set(Manifest(out / MANIFEST_NAME, read_records(out / MANIFEST_NAME), total=3).finished())


def test_a_done_job_whose_png_is_truncated_is_not_done(tmp_path):
    _png(tmp_path / "a_00001.png")
    _png(tmp_path / "a_00002.png", whole=False)
    (tmp_path / "a_00003.png").write_bytes(b"")
    assert _finished(tmp_path, *({"job": n, "status": "done", "outputs": [f"a_{n:05d}.png"]}
                                 for n in (1, 2, 3))) == {1}


def test_a_done_job_whose_output_is_outside_the_batch_folder_is_not_done(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    _png(tmp_path / "elsewhere.png")
    (out / "link.png").symlink_to(tmp_path / "elsewhere.png")
    _png(out / "mine.png")
    records = [{"job": 1, "status": "done", "outputs": ["../elsewhere.png"]},
               {"job": 2, "status": "done", "outputs": [str(tmp_path / "elsewhere.png")]},
               {"job": 3, "status": "done", "outputs": ["link.png"]}]
    assert _finished(out, *records) == set()
    assert _finished(out, {"job": 3, "status": "done", "outputs": ["mine.png"]}) == {3}


def _args(path, **more):
    import argparse

    return argparse.Namespace(file=str(path), grid=more.get("grid", []), zip=[], count=more.get("count"),
                              seed_policy=None)


def test_a_spec_without_its_version_key_says_which_key_to_add(tmp_path):
    from nodeforge.batch.command import build_spec

    path = tmp_path / "wf.batch.json"
    path.write_text(json.dumps({"workflow": "wf.json", "count": 3}))
    _refused(lambda: build_spec(_args(path)), f"{path}: looks like a batch spec but has no \"nodeforge_batch\" "
                                              "version key; add \"nodeforge_batch\": 1")


def test_a_batch_of_another_tools_file_imports_it_and_a_saved_spec_embeds_it(tmp_path, capsys):
    """As `nodeforge run`: an A1111 text (or a ComfyUI file) is imported, its warnings printed; the spec
    embeds what was imported, since importing again may differ (Seed -1 draws a new seed)."""
    from nodeforge.batch.command import build_spec
    from nodeforge.core.registry import default_registry

    path = tmp_path / "params.txt"
    path.write_text("a cat\nSteps: 2, Seed: -1, Size: 64x64, Model: nodeforge-shapes")
    spec = build_spec(_args(path, count=2), default_registry())
    assert [n.type for n in spec.workflow.nodes.values()][-3:] == ["UNetDenoise", "VAEDecode", "SaveImage"]
    assert "warning: A1111 parameters: Seed -1 means a random seed" in capsys.readouterr().err
    saved = json.loads(spec.dumps())
    assert saved["workflow"] == spec.workflow.to_json() and saved["count"] == 2
