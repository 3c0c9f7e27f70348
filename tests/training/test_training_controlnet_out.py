"""train-controlnet never deletes what it did not write: it refuses an --out it did not write before
training, replaces its own earlier output in one step (a kill leaves the old model or the new one),
keeps the user's files in it, and never touches a fixed `OUT.tmp`."""
import json

import pytest

pytest.importorskip("torch")

from nodeforge.training import common, controlnet  # noqa: E402


class FakeControlNet:
    """Writes what diffusers' save_pretrained writes for a ControlNet (its folder logic is under test,
    not the network)."""

    def __init__(self, weights: bytes = b"new weights", fail: bool = False):
        self.weights, self.fail = weights, fail

    def save_pretrained(self, folder, safe_serialization=True):
        from pathlib import Path

        folder = Path(folder)
        (folder / "config.json").write_text(json.dumps({"_class_name": "ControlNetModel"}))
        if self.fail:
            raise OSError(28, "No space left on device")
        (folder / "diffusion_pytorch_model.safetensors").write_bytes(self.weights)


def _earlier_output(out, weights=b"old weights"):
    out.mkdir()
    (out / "config.json").write_text(json.dumps({"_class_name": "ControlNetModel"}))
    (out / "diffusion_pytorch_model.safetensors").write_bytes(weights)
    (out / "training.json").write_text("{}")
    (out / "evaluation.json").write_text("{}")
    return out


def _refused(argv) -> str:
    with pytest.raises(SystemExit) as exit_:
        controlnet.main(argv)
    return str(exit_.value.code)


def test_a_folder_it_did_not_write_is_refused_before_training_and_left_as_it_was(tmp_path, no_base_load):
    out = tmp_path / "photos"
    out.mkdir()
    (out / "holiday.jpg").write_bytes(b"precious")
    assert _refused(["--out", str(out)]) == (
        f"error: train-controlnet: --out {out} holds files and is not a ControlNet train-controlnet wrote (no "
        "training.json beside a ControlNetModel config.json); give a new or empty folder")
    assert [p.name for p in out.iterdir()] == ["holiday.jpg"] and (out / "holiday.jpg").read_bytes() == b"precious"
    # A ControlNet config alone (someone else's ControlNet) is not train-controlnet's output either.
    (out / "config.json").write_text(json.dumps({"_class_name": "ControlNetModel"}))
    assert "is not a ControlNet train-controlnet wrote" in _refused(["--out", str(out)])


def test_a_file_or_a_link_as_out_is_refused(tmp_path, no_base_load):
    (tmp_path / "file").write_text("x")
    assert f"--out {tmp_path / 'file'} is a file" in _refused(["--out", str(tmp_path / "file")])
    own = _earlier_output(tmp_path / "own")
    (tmp_path / "link").symlink_to(own)
    assert "is a symbolic link; give the folder itself" in _refused(["--out", str(tmp_path / "link")])


def test_its_earlier_output_is_replaced_keeping_the_users_files_and_out_tmp(tmp_path):
    out = _earlier_output(tmp_path / "shapes-outline")
    (out / "README.md").write_text("model card")
    (out / "samples.png").write_bytes(b"png")
    (out / "notes").mkdir()
    (out / "notes" / "a.txt").write_text("mine")
    user_tmp = tmp_path / "shapes-outline.tmp"
    user_tmp.mkdir()
    (user_tmp / "keep.txt").write_text("the user's")

    controlnet.save_controlnet(FakeControlNet(), {"steps": 3}, out)

    assert (out / "diffusion_pytorch_model.safetensors").read_bytes() == b"new weights"
    assert json.loads((out / "training.json").read_text()) == {"steps": 3}
    assert not (out / "evaluation.json").exists()          # the old model's numbers went with it
    assert (out / "README.md").read_text() == "model card" and (out / "samples.png").read_bytes() == b"png"
    assert (out / "notes" / "a.txt").read_text() == "mine"
    assert (user_tmp / "keep.txt").read_text() == "the user's"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["shapes-outline", "shapes-outline.tmp"]


def test_a_failed_save_leaves_the_old_model_and_no_leftovers(tmp_path):
    out = _earlier_output(tmp_path / "cn")
    with pytest.raises(OSError):
        controlnet.save_controlnet(FakeControlNet(fail=True), {}, out)
    assert (out / "diffusion_pytorch_model.safetensors").read_bytes() == b"old weights"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cn"]


def test_a_new_or_empty_folder_is_written(tmp_path):
    controlnet.save_controlnet(FakeControlNet(), {}, tmp_path / "deep" / "new")
    (tmp_path / "empty").mkdir()
    controlnet.save_controlnet(FakeControlNet(), {}, tmp_path / "empty")
    for out in (tmp_path / "deep" / "new", tmp_path / "empty"):
        assert (out / "diffusion_pytorch_model.safetensors").read_bytes() == b"new weights"


@pytest.mark.parametrize("exchange", [True, False], ids=["exchange", "rename-aside"])
def test_the_swap_leaves_the_old_folder_or_the_new_one_at_every_step(tmp_path, monkeypatch, exchange):
    """Where the system cannot swap two names, the old folder is renamed aside first; a rename of
    the new one that fails puts the old one back."""
    import os

    if not exchange:
        monkeypatch.setattr(common, "_exchange", lambda a, b: False)
    out, new = tmp_path / "out", tmp_path / ".out.x.new"
    for folder, text in ((out, "old"), (new, "new")):
        folder.mkdir()
        (folder / "weights").write_text(text)
    common.replace_folder(new, out)
    assert (out / "weights").read_text() == "new" and [p.name for p in tmp_path.iterdir()] == ["out"]

    if exchange:
        return
    new.mkdir()
    (new / "weights").write_text("newer")
    real_rename = os.rename

    def rename(src, dst):
        if str(src) == str(new):
            raise OSError(5, "Input/output error")
        return real_rename(src, dst)

    monkeypatch.setattr(os, "rename", rename)
    with pytest.raises(OSError):
        common.replace_folder(new, out)
    assert (out / "weights").read_text() == "new" and (new / "weights").read_text() == "newer"


@pytest.mark.parametrize("make,expected", [
    (lambda d: None, "no such folder"),
    (lambda d: d.mkdir(), "is not a ControlNet folder (no config.json of a ControlNetModel)"),
    (lambda d: _earlier_output(d, b"\x00" * 16), "is not a readable .safetensors ControlNet"),
], ids=["missing", "empty", "broken-weights"])
def test_evaluate_names_a_folder_that_is_not_a_controlnet(tmp_path, make, expected, no_base_load):
    folder = tmp_path / "cn"
    make(folder)
    message = _refused(["--evaluate", str(folder)])
    assert message.startswith("error: train-controlnet: ") and expected in message


def test_the_folder_is_checked_again_when_training_ends(tmp_path):
    """Hours pass between the check and the save: a folder the user filled meanwhile is not replaced."""
    out = tmp_path / "cn"
    out.mkdir()
    (out / "mine.txt").write_text("written during training")
    with pytest.raises(common.TrainingInputError, match="is not a ControlNet train-controlnet wrote"):
        controlnet.save_controlnet(FakeControlNet(), {}, out)
    assert [p.name for p in tmp_path.iterdir()] == ["cn"] and (out / "mine.txt").exists()


def test_conditioning_widths_that_do_not_fit_the_vae_are_refused_before_training(tmp_path, no_base_load):
    message = _refused(["--out", str(tmp_path / "cn"), "--conditioning-channels", "16", "32"])
    assert message == ("error: train-controlnet: --conditioning-channels: 2 widths shrink the control image 2x, "
                       "but nodeforge-shapes's latents are 1/4 of the image: give 3 widths")
