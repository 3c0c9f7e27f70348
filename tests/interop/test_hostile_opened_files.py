"""Files a user opens that are not what they seem: an empty file, another image format named
.png, a PNG cut short inside its text, a PNG whose text is JSON but no workflow, A1111 text with
settings that are no numbers. Each is one `error:` or `warning:` line naming the file and what is
wrong, with exit status 1 for an error and no traceback."""
from __future__ import annotations

import json
import struct
import zlib

import pytest

from nodeforge.cli import main
from nodeforge.core.errors import WorkflowFileError
from nodeforge.core.png_text import read_png_text
from nodeforge.paths import builtin_dir

DEMO = (builtin_dir("workflows") / "txt2img.json").read_bytes()


def chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png(*chunks: bytes) -> bytes:
    header = chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0))
    return (b"\x89PNG\r\n\x1a\n" + header + b"".join(chunks) + chunk(b"IDAT", zlib.compress(b"\0\0\0\0"))
            + chunk(b"IEND", b""))


def validate(path, capsys) -> tuple[int, list[str]]:
    rc = main(["validate", str(path)])
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return rc, err.splitlines()


@pytest.mark.parametrize("name, content, says", [
    ("empty.json", b"", "the file is empty (nothing was saved in it)"),
    ("blank.png", b"\n  \n", "the file is empty (only spaces)"),
    ("photo.png", b"\xff\xd8\xff\xe0\0\x10JFIF\0", "is a JPEG image, not a PNG; a workflow is read from a PNG's"),
    ("anim.png", b"GIF89a\x01\0\x01\0", "is a GIF image, not a PNG"),
    ("web.png", b"RIFF\x10\0\0\0WEBPVP8 ", "is a WebP image, not a PNG"),
    ("renamed.png", b"hello, this is text", "named .png but is not a PNG image (it does not start with the PNG "
                                            "signature)"),
])
def test_a_file_that_plainly_is_no_workflow_says_what_it_is(tmp_path, capsys, name, content, says):
    path = tmp_path / name
    path.write_bytes(content)
    rc, err = validate(path, capsys)
    assert rc == 1 and err == [f"error: {path}: {says}" + err[0].split(says, 1)[1]]


def test_a_json_workflow_named_png_still_opens(tmp_path, capsys):
    path = tmp_path / "actually.png"
    path.write_bytes(DEMO)
    rc, err = validate(path, capsys)
    assert rc == 0


def test_a_png_cut_short_inside_its_workflow_text_says_so(tmp_path, capsys):
    whole = png(chunk(b"tEXt", b"workflow\0" + DEMO))
    path = tmp_path / "half.png"
    path.write_bytes(whole[:200])
    rc, err = validate(path, capsys)
    assert rc == 1
    assert err == [f"error: {path}: the file ends inside the PNG text chunk 'workflow' ({200 - 41} of "
                   f"{len(DEMO) + 9} bytes): it is cut short; copy or download it again"]
    # Pixels cut short after whole text chunks: the workflow is still there.
    assert read_png_text(whole[:-20])["workflow"] == DEMO.decode()
    with pytest.raises(WorkflowFileError):
        read_png_text(whole[:200])


def test_the_editors_gallery_reads_a_damaged_png_as_having_no_text(tmp_path):
    pytest.importorskip("PySide6")
    from nodeforge.ui.panels.gallery import png_chunks

    path = tmp_path / "half.png"
    path.write_bytes(png(chunk(b"tEXt", b"workflow\0" + DEMO))[:200])
    assert png_chunks(str(path)) == {}


def test_a_png_prompt_that_is_json_but_no_workflow_names_the_file_and_chunk(tmp_path, capsys):
    path = tmp_path / "odd.png"
    path.write_bytes(png(chunk(b"tEXt", b"prompt\x005")))
    rc, err = validate(path, capsys)
    assert rc == 1 and err[0].startswith(f"error: {path}: the PNG's 'prompt' text is not a workflow: not a "
                                         "workflow NodeForge knows (found a number;")


SETTINGS = "Sampler: Euler a, Seed: 5, Size: 64x64, Model: nodeforge-shapes"


@pytest.mark.parametrize("setting, key, raw", [
    ("Steps: abc, CFG scale: 7", "Steps", "abc"),          # was read as JSON: "not valid JSON"
    ("Steps: 1.5e309, CFG scale: 7", "Steps", "1.5e309"),  # was an OverflowError traceback
    ("Steps: 20, CFG scale: nan", "CFG scale", "nan"),     # were errors blaming node 5's cfg
    ("Steps: 20, CFG scale: -inf", "CFG scale", "-inf"),
])
def test_an_a1111_setting_that_is_no_number_is_a_warning_and_the_default(tmp_path, capsys, setting, key, raw):
    path = tmp_path / "params.txt"
    path.write_text(f"a red circle\n{setting}, {SETTINGS}")
    rc, err = validate(path, capsys)
    assert f"warning: A1111 parameters: {key} {raw!r} is not a number; NodeForge's default is used" in err
    assert rc == 0, err
    out = tmp_path / "mine.json"
    assert main(["import", str(path), "-o", str(out)]) == 0
    params = next(n["params"] for n in json.loads(out.read_text())["nodes"].values() if n["type"] == "UNetDenoise")
    assert params["seed"] == 5
    if key == "Steps":
        assert "steps" not in params and params["cfg"] == 7.0       # the node's default steps
    else:
        assert params["steps"] == 20 and "cfg" not in params


def test_a_prompt_of_megabytes_is_refused_at_validate_not_tokenized_for_minutes(tmp_path, capsys):
    """A 64 MB prompt (just under the file limit) took over 5 minutes and 8.5 GB in `nodeforge run`
    before this; now validate refuses it, naming the node and field."""
    workflow = json.loads(DEMO)
    workflow["nodes"]["2"]["params"]["text"] = "a red circle, " * 20_000      # 280,000 characters
    path = tmp_path / "long.json"
    path.write_text(json.dumps(workflow))
    rc, err = validate(path, capsys)
    assert rc == 1 and err == ["error: node 2 (TextEncoder), text: the prompt is 280,000 characters; more than "
                               "100,000 is not a prompt (was a file pasted in?): shorten it"]
    workflow["nodes"]["2"]["params"]["text"] = "a red circle, " * 7_000       # 98,000: a long prompt, allowed
    path.write_text(json.dumps(workflow))
    assert validate(path, capsys)[0] == 0


@pytest.mark.parametrize("link", [[6.0, 0], ["6", "0"], ["6", True]])
def test_an_api_link_that_is_no_link_is_a_warning_not_dropped_silently(tmp_path, capsys, link):
    prompt = {
        "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "nodeforge-shapes"}},
        "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a cat", "clip": ["4", 1]}},
        "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "", "clip": ["4", 1]}},
        "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}},
        "3": {"class_type": "KSampler", "inputs": {
            "seed": 1, "steps": 2, "cfg": 5, "sampler_name": "euler", "scheduler": "normal", "denoise": 1,
            "model": ["4", 0], "positive": link, "negative": ["7", 0], "latent_image": ["5", 0]}},
        "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["4", 2]}},
        "9": {"class_type": "SaveImage", "inputs": {"filename_prefix": "x", "images": ["8", 0]}},
    }
    path = tmp_path / "api.json"
    path.write_text(json.dumps(prompt))
    rc, err = validate(path, capsys)
    assert rc == 1 and err == [
        f"warning: node 3 (KSampler), positive: {link!r} is not a link ([node id, output slot number]); the input "
        "is left unconnected",
        "error: node 3 (UNetDenoise), positive: required input is not connected; link a CONDITIONING output to it"]
