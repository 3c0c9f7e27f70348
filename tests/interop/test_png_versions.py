"""Every saved PNG records the NodeForge, torch and diffusers versions that made it, and opening an
image made with other versions says so (a new version of any of them may draw another picture
from the same seed): on the command line and in the editor."""
from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image
from PIL.PngImagePlugin import PngInfo

import nodeforge
from nodeforge.cli import main

VERSION_KEYS = ("nodeforge-version", "torch-version", "diffusers-version")


@pytest.fixture
def saved(tmp_path, registry):
    """A PNG saved by SaveImage (an 8x8 Empty Image: no model needed)."""
    from nodeforge.core.engine import Engine
    from nodeforge.core.workflow import Workflow

    wf = Workflow()
    image = wf.add("EmptyImage", {"width": 8, "height": 8, "batch_size": 2, "color": 0xFF0000})
    wf.add("SaveImage", {"prefix": "made"}, inputs={"image": (image, "image")})
    result = Engine(device="cpu", output_dir=tmp_path / "out", registry=registry).run(wf)
    [paths] = result.outputs.values()
    return [Path(p) for p in paths]


def with_text(source: Path, target: Path, **changes: str | None) -> Path:
    """A copy of `source` with some text chunks changed (None: left out)."""
    image = Image.open(source)
    text = {**image.text, **changes}
    info = PngInfo()
    for key, value in text.items():
        if value is not None:
            info.add_text(key, value)
    image.save(target, pnginfo=info)
    return target


def test_every_saved_png_records_the_versions_that_made_it(saved):
    import diffusers
    import torch

    assert len(saved) == 2
    for path in saved:
        text = Image.open(path).text
        assert text["nodeforge-version"] == nodeforge.__version__
        assert text["torch-version"] == torch.__version__
        assert text["diffusers-version"] == diffusers.__version__


def test_the_same_versions_open_without_a_note(saved, capsys):
    assert main(["validate", str(saved[0])]) == 0
    assert capsys.readouterr().err == ""


def test_an_image_from_another_torch_says_so_on_the_command_line(saved, tmp_path, capsys):
    import torch

    old = with_text(saved[0], tmp_path / "old.png", **{"torch-version": "2.1.0"})
    assert main(["validate", str(old)]) == 0
    assert capsys.readouterr().err.splitlines() == [
        f"warning: old.png: this image was made with torch 2.1.0; this is torch {torch.__version__}: "
        "the same seed may draw a different picture"]


def test_every_version_that_differs_is_named_and_hostile_text_is_cut(saved, tmp_path, capsys):
    old = with_text(saved[0], tmp_path / "old.png", **{"nodeforge-version": "0.0.1", "diffusers-version": "9" * 500 + "\x1b[2J"})
    assert main(["validate", str(old)]) == 0
    [line] = capsys.readouterr().err.splitlines()
    assert f"made with NodeForge 0.0.1, diffusers {'9' * 30}...; this is NodeForge {nodeforge.__version__}, diffusers " in line
    assert "torch" not in line and "\x1b" not in line


def test_an_image_that_records_no_versions_says_it_comes_from_an_earlier_nodeforge(saved, tmp_path, capsys):
    bare = with_text(saved[0], tmp_path / "bare.png", **dict.fromkeys(VERSION_KEYS))
    assert not set(VERSION_KEYS) & set(Image.open(bare).text)
    assert main(["validate", str(bare)]) == 0
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith("warning: bare.png: this image records no versions (an earlier NodeForge saved it); "
                           f"this is NodeForge {nodeforge.__version__}, torch ")


def test_a_comfyui_png_has_no_version_note(tmp_path, read):
    """Only NodeForge's own PNGs record versions; another tool's image is not told off for lacking them."""
    info = PngInfo()
    info.add_text("prompt", (Path(__file__).parent / "data" / "all-nodes-api.json").read_text())
    Image.new("RGB", (8, 8)).save(tmp_path / "comfy.png", pnginfo=info)
    assert not any("versions" in w or "made with" in w for w in read(tmp_path / "comfy.png").warnings)
