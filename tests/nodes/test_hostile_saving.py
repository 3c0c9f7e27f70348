"""SaveImage against hostile prefixes and output folders (issue 27): refused at validate, one line
naming the prefix; saving never follows a symbolic link out of the output folder."""
from __future__ import annotations

import pytest
import torch

import nodeforge
from nodeforge import Engine, Workflow


@pytest.fixture
def saver(registry, tmp_path):
    from nodeforge.core.registry import Registry
    from nodeforge.core.spec import NodeSpec, Output

    grey = NodeSpec("Grey", "test", lambda ctx: {"image": torch.full((1, 8, 8, 3), 0.5)},
                    outputs=(Output("image", "IMAGE"),))
    engine = Engine(device="cpu", output_dir=tmp_path / "out", registry=Registry([*registry, grey]))

    def save(prefix):
        wf = Workflow()
        wf.add("Grey", {}, node_id="grey")
        wf.add("SaveImage", {"prefix": prefix}, {"image": ("grey", "image")}, node_id="save")
        return engine, wf
    return save


@pytest.mark.parametrize("prefix,words", [
    ("a\x00b", "control character"), ("line\nbreak", "control character"),
    ("x" * 201, "too long for a file name"), ("sub/" + "y" * 241, "too long for a file name"),
    ("../up", "inside the output folder"), ("sub/../../up", "inside the output folder"),
    ("/etc/x", "inside the output folder"),
])
def test_a_bad_prefix_is_refused_at_validate(saver, prefix, words):
    engine, wf = saver(prefix)
    problems = engine.validate(wf)
    assert [(p.node_id, p.field) for p in problems] == [("save", "prefix")]
    assert words in problems[0].message and "\n" not in problems[0].message


def test_a_long_but_fine_prefix_saves(saver):
    engine, wf = saver("z" * 200)
    assert engine.validate(wf) == []
    assert len(engine.run(wf).outputs["save"]) == 1


def test_saving_never_follows_a_symlink_out_of_the_output_folder(saver, tmp_path):
    engine, wf = saver("linked/img")
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "linked").symlink_to(outside)
    with pytest.raises(nodeforge.WorkflowError) as caught:
        engine.run(wf)
    assert "leads outside the output folder" in str(caught.value) and "\n" not in str(caught.value)
    assert list(outside.iterdir()) == []


def test_an_output_folder_that_is_itself_a_link_is_the_users_choice(saver, tmp_path):
    engine, wf = saver("img")
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "out").symlink_to(real)
    assert len(engine.run(wf).outputs["save"]) == 1 and len(list(real.glob("img_*.png"))) == 1
