"""The workflow file: round trips, unknown keys, versions, PNG chunks, atomic save, bad files."""
from __future__ import annotations

import json
import os
import struct
import zlib

import pytest

from nodeforge import Workflow, WorkflowFileError, load_workflow, save_workflow
from nodeforge.core.workflow import FORMAT_VERSION, read_png_text

EXAMPLE = {
    "nodeforge": 1,
    "nodes": {
        "1": {"type": "Number", "params": {"value": 2}},
        "2": {"type": "Add", "inputs": {"a": ["1", "value"], "b": ["1", "value"]}, "title": "sum"},
        "3": {"type": "Show", "inputs": {"value": ["2", "value"]}, "future_node_key": [1, 2]},
    },
    "ui": {"positions": {"1": [0, 0], "2": [200, 10]}, "groups": [], "viewport": {"center": [0, 0], "zoom": 1.0}},
    "author": {"name": "someone"},
}


def test_save_then_load_is_the_same_workflow_and_keeps_unknown_keys(tmp_path):
    wf = Workflow.from_json(EXAMPLE)
    path = save_workflow(wf, tmp_path / "a.json")
    again = load_workflow(path)
    assert again == wf
    assert json.loads(path.read_text()) == EXAMPLE
    assert again.extra == {"author": {"name": "someone"}}
    assert again.nodes["3"].extra == {"future_node_key": [1, 2]}


def test_newer_format_is_refused_with_a_clear_message(tmp_path):
    path = tmp_path / "new.json"
    path.write_text(json.dumps({**EXAMPLE, "nodeforge": FORMAT_VERSION + 1}))
    with pytest.raises(WorkflowFileError, match="newer NodeForge"):
        load_workflow(path)


def test_version_0_files_are_migrated():
    old = {"nodes": {"1": {"type": "Number", "widgets": {"value": 3}, "pos": [5, 6]}}}
    wf = Workflow.from_json(old)
    assert wf.nodes["1"].params == {"value": 3}
    assert wf.ui["positions"] == {"1": [5, 6]}
    assert wf.to_json()["nodeforge"] == FORMAT_VERSION


@pytest.mark.parametrize("text, needle", [
    ("{not json", "not valid JSON"),
    ("[1, 2, 3]", "top level is a list"),
    ('{"hello": 1}', "not a NodeForge workflow"),
    ('{"nodeforge": 1, "nodes": []}', '"nodes" must be an object'),
    ('{"nodeforge": 1, "nodes": {"1": 5}}', "node 1: must be an object"),
    ('{"nodeforge": 1, "nodes": {"1": {"params": {}}}}', '"type" must be'),
    ('{"nodeforge": 1, "nodes": {"1": {"type": "A", "inputs": {"x": "2.value"}}}}', "a link must be"),
    ('{"nodeforge": "one", "nodes": {}}', "format version number"),
    ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
])
def test_bad_files_give_a_clear_error(tmp_path, text, needle):
    path = tmp_path / "bad.json"
    path.write_text(text)
    with pytest.raises(WorkflowFileError, match=needle) as info:
        load_workflow(path)
    assert str(path) in str(info.value)


def test_missing_file_and_binary_file(tmp_path):
    with pytest.raises(WorkflowFileError, match="no such file"):
        load_workflow(tmp_path / "nope.json")
    (tmp_path / "bin.json").write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(WorkflowFileError, match="not a text file"):
        load_workflow(tmp_path / "bin.json")


def _png_with_text(chunks: dict[str, str], itxt: bool) -> bytes:
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    out = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0))
    for key, value in chunks.items():
        if itxt:
            out += chunk(b"iTXt", key.encode() + b"\0\x01\x00\0\0" + zlib.compress(value.encode()))
        else:
            out += chunk(b"tEXt", key.encode("latin-1") + b"\0" + value.encode("latin-1"))
    out += chunk(b"IDAT", zlib.compress(b"\0\0\0\0")) + chunk(b"IEND", b"")
    return out


@pytest.mark.parametrize("itxt", [True, False])
def test_a_png_with_an_embedded_workflow_loads_as_that_workflow(tmp_path, itxt):
    wf = Workflow.from_json(EXAMPLE)
    path = tmp_path / "image.png"
    path.write_bytes(_png_with_text({"parameters": "steps 20", "workflow": wf.dumps()}, itxt))
    assert read_png_text(path.read_bytes())["parameters"] == "steps 20"
    assert load_workflow(path) == wf


def test_a_png_without_a_workflow_says_so(tmp_path):
    path = tmp_path / "plain.png"
    path.write_bytes(_png_with_text({}, False))
    with pytest.raises(WorkflowFileError, match="holds no NodeForge workflow"):
        load_workflow(path)


def test_save_is_atomic_a_failed_write_leaves_the_old_file_whole(tmp_path, monkeypatch):
    path = tmp_path / "keep.json"
    save_workflow(Workflow.from_json(EXAMPLE), path)
    before = path.read_bytes()

    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken_replace)
    wf = Workflow.from_json(EXAMPLE)
    wf.add("Number", {"value": 9})
    with pytest.raises(OSError, match="disk full"):
        save_workflow(wf, path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["keep.json"], "the temporary file was removed"


def test_ids_titles_and_building():
    wf = Workflow()
    a = wf.add("Number", {"value": 1}, title="first")
    b = wf.add("Add", inputs={"a": (a, "value")})
    assert (a, b) == ("1", "2")
    assert wf.find("first") == "1" and wf.find("2") == "2" and wf.find("nope") is None
    wf.add("Number", title="first")
    assert wf.find("first") is None, "an ambiguous title finds nothing"
