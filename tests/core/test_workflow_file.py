"""The workflow file: round trips, unknown keys, versions, PNG chunks, atomic save, bad files."""
from __future__ import annotations

import json
import os
import struct
import zlib

import pytest

from nodeforge import Workflow, WorkflowFileError, load_workflow, save_workflow
from nodeforge.core.png_text import read_png_text
from nodeforge.core.workflow import FORMAT_VERSION

EXAMPLE = {
    "nodeforge": FORMAT_VERSION,
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


@pytest.mark.parametrize("old, sampler, schedule", [
    ("euler", "euler", "default"), ("euler_ancestral", "euler_ancestral", "default"), ("heun", "heun", "default"),
    ("lms", "lms", "default"), ("ddim", "ddim", "default"), ("ddpm", "ddpm", "default"),
    ("pndm", "pndm", "default"), ("dpmpp_2m", "dpmpp_2m", "default"), ("dpmpp_2m_karras", "dpmpp_2m", "karras"),
    ("dpmpp_sde", "dpmpp_sde", "karras"), ("unipc", "uni_pc_bh2", "default"), ("lcm", "lcm", "default"),
    ("no_such_sampler", "no_such_sampler", "default"),   # kept, so validate names it
])
def test_format_1_scheduler_becomes_sampler_and_schedule_in_place(tmp_path, old, sampler, schedule):
    v1 = {"nodeforge": 1, "nodes": {
        "5": {"type": "UNetDenoise", "params": {"seed": 1, "steps": 20, "cfg": 5.0, "scheduler": old, "denoise": 1.0}},
        "6": {"type": "Other", "params": {"scheduler": old}}}}   # another node's param of that name stays
    path = tmp_path / "old.json"
    path.write_text(json.dumps(v1))
    wf = load_workflow(path)
    assert FORMAT_VERSION == 2
    assert list(wf.nodes["5"].params.items()) == [("seed", 1), ("steps", 20), ("cfg", 5.0), ("sampler", sampler),
                                                   ("schedule", schedule), ("denoise", 1.0)]
    assert wf.nodes["6"].params == {"scheduler": old}
    saved = json.loads(save_workflow(wf, tmp_path / "new.json").read_text())
    assert saved["nodeforge"] == 2 and "scheduler" not in saved["nodes"]["5"]["params"]
    assert load_workflow(tmp_path / "new.json") == wf


def test_format_1_migration_keeps_inputs_title_and_unknown_keys_through_load_and_save(tmp_path):
    """Only `scheduler` changes: the node's inputs, title and keys NodeForge does not know (another
    tool's or a newer version's), the file's unknown top-level keys and its layout all survive."""
    v1 = {"nodeforge": 1, "nodes": {
        "4": {"type": "EmptyLatent", "params": {"width": 64, "height": 64, "batch_size": 1}},
        "5": {"type": "UNetDenoise", "title": "my sampler", "color": "#335", "x-plugin": {"locked": True},
              "params": {"seed": 7, "scheduler": "dpmpp_2m_karras"},
              "inputs": {"unet": ["1", "unet"], "positive": ["2", "conditioning"], "negative": ["3", "conditioning"],
                         "latent": ["4", "latent"]}}},
          "ui": {"positions": {"5": [10, 20]}}, "author": "someone", "x-tool": [1, 2]}
    (tmp_path / "v1.json").write_text(json.dumps(v1))
    wf = load_workflow(tmp_path / "v1.json")
    node = wf.nodes["5"]
    assert node.params == {"seed": 7, "sampler": "dpmpp_2m", "schedule": "karras"}
    assert node.title == "my sampler"
    assert node.inputs == {"unet": ("1", "unet"), "positive": ("2", "conditioning"),
                           "negative": ("3", "conditioning"), "latent": ("4", "latent")}
    saved = json.loads(save_workflow(wf, tmp_path / "v2.json").read_text())
    assert saved["nodeforge"] == 2
    assert saved["nodes"]["5"] == {"type": "UNetDenoise", "title": "my sampler", "color": "#335",
                                   "x-plugin": {"locked": True},
                                   "params": {"seed": 7, "sampler": "dpmpp_2m", "schedule": "karras"},
                                   "inputs": {"unet": ["1", "unet"], "positive": ["2", "conditioning"],
                                              "negative": ["3", "conditioning"], "latent": ["4", "latent"]}}
    assert saved["nodes"]["4"] == v1["nodes"]["4"]
    assert saved["author"] == "someone" and saved["x-tool"] == [1, 2]
    assert saved["ui"]["positions"] == {"5": [10, 20]}
    assert load_workflow(tmp_path / "v2.json") == wf


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


# -- hostile files ------------------------------------------------------------------------------------------
def test_duplicate_node_ids_are_an_error_naming_the_id(tmp_path):
    path = tmp_path / "dup.json"
    path.write_text('{"nodeforge": 1, "nodes": {"7": {"type": "Number"}, "8": {"type": "Show"},'
                    ' "7": {"type": "Add"}}}')
    with pytest.raises(WorkflowFileError) as info:
        load_workflow(path)
    assert str(info.value) == (f"{path}: node 7: its id '7' is used by two nodes; give each node its own id (only "
                               "the last would be kept)") and info.value.node_id == "7"


def test_a_key_given_twice_anywhere_is_an_error(tmp_path):
    path = tmp_path / "dup.json"
    path.write_text('{"nodeforge": 1, "nodes": {"1": {"type": "Number", "params": {"value": 1, "value": 2}}}}')
    with pytest.raises(WorkflowFileError, match="the key 'value' appears twice"):
        load_workflow(path)


def test_nan_in_the_layout_is_dropped_and_never_written_back(tmp_path):
    path = tmp_path / "nan.json"
    path.write_text('{"nodeforge": 1, "nodes": {"1": {"type": "Number"}, "2": {"type": "Show"}},'
                    ' "ui": {"positions": {"1": [NaN, 0], "2": [5, 6]}, "viewport": {"zoom": Infinity,'
                    ' "center": [0, 0]}}}')
    wf = load_workflow(path)
    assert wf.ui == {"positions": {"2": [5, 6]}, "viewport": {"center": [0, 0]}}
    wf.ui["viewport"]["zoom"] = float("nan")   # the editor computed one after loading
    save_workflow(wf, path)
    text = path.read_text()
    assert "NaN" not in text and "Infinity" not in text
    assert json.loads(text, parse_constant=lambda c: pytest.fail(f"non-standard {c}"))["ui"]["viewport"] == {
        "center": [0, 0]}


def test_a_nan_param_is_refused_on_save_naming_node_and_field(tmp_path):
    from nodeforge.core.errors import WorkflowSaveError

    wf = Workflow()
    wf.add("Number", {"value": float("nan")})
    with pytest.raises(WorkflowSaveError) as info:
        save_workflow(wf, tmp_path / "x.json")
    assert (info.value.node_id, info.value.field) == ("1", "value")
    assert not (tmp_path / "x.json").exists()


LONE = "a cat \ud800 on a mat"


def test_a_lone_surrogate_in_a_file_is_refused_when_loaded_naming_node_and_field(tmp_path):
    path = tmp_path / "s.json"
    path.write_text('{"nodeforge": 1, "nodes": {"1": {"type": "Number"},'
                    ' "2": {"type": "Label", "params": {"text": "a cat \\ud800 on a mat"}}}}')
    assert json.loads(path.read_text())["nodes"]["2"]["params"]["text"] == LONE, "it is valid JSON"
    with pytest.raises(WorkflowFileError) as info:
        load_workflow(path)
    message = str(info.value)
    assert (info.value.node_id, info.value.field) == ("2", "text")
    assert message.startswith(f"{path}: node 2 (Label), text: ") and "'\\ud800' at character 6" in message
    message.encode("utf-8")  # the message itself can be shown


@pytest.mark.parametrize("where", ["title", "param", "group"])
def test_save_refuses_unencodable_text_with_a_workflow_error_and_writes_nothing(tmp_path, where):
    from nodeforge.core.errors import WorkflowError, WorkflowSaveError

    wf = Workflow()
    wf.add("Label", {"text": LONE if where == "param" else "ok"}, title=LONE if where == "title" else None)
    if where == "group":
        wf.ui["groups"] = [{"title": LONE, "bounding": [0, 0, 10, 10]}]
    path = tmp_path / "s.json"
    path.write_text("old")
    with pytest.raises(WorkflowSaveError) as info:
        save_workflow(wf, path)
    assert isinstance(info.value, WorkflowError) and not isinstance(info.value, UnicodeError)
    if where != "group":
        assert (info.value.node_id, info.value.field) == ("1", "title" if where == "title" else "text")
    else:
        assert "ui (the layout)" in str(info.value)
    assert "lone surrogate" in str(info.value)
    assert path.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["s.json"]


def test_save_keeps_the_file_permissions(tmp_path):
    path = tmp_path / "shared.json"
    path.write_text("{}")
    path.chmod(0o644)
    save_workflow(Workflow.from_json(EXAMPLE), path)
    assert path.stat().st_mode & 0o777 == 0o644
    path.chmod(0o640)
    save_workflow(Workflow.from_json(EXAMPLE), path)
    assert path.stat().st_mode & 0o777 == 0o640


def test_a_new_file_gets_the_usual_permissions_not_0600(tmp_path):
    old = os.umask(0o022)
    try:
        save_workflow(Workflow.from_json(EXAMPLE), tmp_path / "new.json")
    finally:
        os.umask(old)
    assert (tmp_path / "new.json").stat().st_mode & 0o777 == 0o644


def test_save_writes_through_a_symlink_to_its_target(tmp_path):
    target = tmp_path / "real" / "wf.json"
    target.parent.mkdir()
    target.write_text("{}")
    link = tmp_path / "link.json"
    link.symlink_to(target)
    save_workflow(Workflow.from_json(EXAMPLE), link)
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert json.loads(target.read_text()) == EXAMPLE
    assert sorted(p.name for p in target.parent.iterdir()) == ["wf.json"]


def test_a_fifo_is_refused_at_once_instead_of_hanging(tmp_path):
    fifo = tmp_path / "wf.json"
    os.mkfifo(fifo)   # nobody writes to it: reading it would block forever
    with pytest.raises(WorkflowFileError, match="is a pipe \\(FIFO\\), not a regular file"):
        load_workflow(fifo)


@pytest.mark.parametrize("device", ["/dev/zero", "/dev/null"])
def test_a_device_is_refused_at_once(device):
    if not os.path.exists(device):
        pytest.skip(f"no {device} here")
    with pytest.raises(WorkflowFileError, match="is a device, not a regular file"):
        load_workflow(device)


def test_a_folder_is_refused(tmp_path):
    with pytest.raises(WorkflowFileError, match="is a folder"):
        load_workflow(tmp_path)


def _png_with_chunk(kind: bytes, body: bytes) -> bytes:
    def chunk(k: bytes, b: bytes) -> bytes:
        return struct.pack(">I", len(b)) + k + b + struct.pack(">I", zlib.crc32(k + b))

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)) + chunk(kind, body)
            + chunk(b"IDAT", zlib.compress(b"\0\0\0\0")) + chunk(b"IEND", b""))


@pytest.mark.parametrize("kind", [b"zTXt", b"iTXt"])
def test_a_ztxt_bomb_is_refused_after_the_cap_and_says_so(tmp_path, kind):
    from nodeforge.core import png_text

    # 40 MB of spaces compress to 40 KB (a 1 MB chunk inflating to 1 GB took 2 GB and 14 s).
    compressor = zlib.compressobj(9)
    block = b" " * (1 << 20)
    bomb = b"".join(compressor.compress(block) for _ in range(40)) + compressor.flush()
    header = b"workflow\0\0" if kind == b"zTXt" else b"workflow\0\x01\x00\0\0"
    path = tmp_path / "bomb.png"
    path.write_bytes(_png_with_chunk(kind, header + bomb))
    assert path.stat().st_size < 100_000
    limit_mb = png_text.MAX_PNG_TEXT_CHUNK_BYTES // (1024 * 1024)
    with pytest.raises(WorkflowFileError, match=f"inflates to more than {limit_mb} MB") as info:
        load_workflow(path)
    assert "decompression bomb" in str(info.value) and str(path) in str(info.value)


def test_png_text_under_the_cap_still_loads(tmp_path):
    wf = Workflow.from_json(EXAMPLE)
    wf.nodes["1"].extra["note"] = "x" * (2 * 1024 * 1024)   # 2 MB of text, well under the cap
    path = tmp_path / "big.png"
    path.write_bytes(_png_with_text({"workflow": wf.dumps()}, itxt=True))
    assert load_workflow(path) == wf


def test_save_refuses_a_read_only_file_and_leaves_it(tmp_path):
    path = tmp_path / "locked.json"
    path.write_text("{}")
    path.chmod(0o444)
    with pytest.raises(PermissionError) as info:
        save_workflow(Workflow.from_json(EXAMPLE), path)
    assert info.value.filename == str(path) and "read-only" in info.value.strerror
    assert path.read_text() == "{}" and sorted(p.name for p in tmp_path.iterdir()) == ["locked.json"]
    link = tmp_path / "link.json"                  # through a link, the target is what counts
    link.symlink_to(path)
    with pytest.raises(PermissionError):
        save_workflow(Workflow.from_json(EXAMPLE), link)
