"""train-lora's --work checkpoint, sample images and clean stop (nodeforge.training.session): what
the editor's Train dialog runs, cancels and resumes."""
import json
import re
import signal

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")
pytest.importorskip("peft")

from nodeforge.training import data, lora, session  # noqa: E402


@pytest.fixture(scope="module")
def stars(tmp_path_factory):
    folder = tmp_path_factory.mktemp("stars")
    data.write_folder(folder, 4, seed=0, shapes=("star",))
    return folder


def _argv(stars, base, out, *more):
    return [str(stars), "--base", str(base), "--out", str(out), "--batch", "2", "--rank", "2", "--alpha", "2",
            "--lr", "0.01", "--seed", "3", *map(str, more)]


def test_samples_every_n_steps_from_the_fixed_prompt_and_seed_and_the_checkpoint(tiny_base, stars, tmp_path, capsys):
    from PIL import Image

    work = tmp_path / "work"
    assert lora.main(_argv(stars, tiny_base, tmp_path / "l.safetensors", "--steps", 4, "--work", work,
                           "--save-every", 3, "--sample-every", 2, "--sample-prompt", "a red star",
                           "--sample-steps", 2)) == 0
    err = capsys.readouterr().err
    lines = [m.groups() for m in map(session.SAMPLE.match, err.replace("\r", "\n").splitlines()) if m]
    assert lines == [("2", str(work / "samples" / "step-000002.png")), ("4", str(work / "samples" / "step-000004.png"))]
    for step in (2, 4):
        with Image.open(work / "samples" / f"step-{step:06d}.png") as img:
            assert img.size == (64, 64) and img.mode == "RGB"
    progress = [m.groups() for m in session.PROGRESS.finditer(err)]
    assert [p[:2] for p in progress] == [("1", "4"), ("2", "4"), ("3", "4"), ("4", "4")]
    assert all(float(p[2]) > 0 for p in progress)
    state = torch.load(work / session.CHECKPOINT, weights_only=True)
    assert state["step"] == 4 and state["config"]["rank"] == 2


def test_a_run_continued_from_its_checkpoint_gives_the_same_lora_as_an_unbroken_run(tiny_base, stars, tmp_path, capsys):
    whole, parts, work = tmp_path / "whole.safetensors", tmp_path / "parts.safetensors", tmp_path / "work"
    assert lora.main(_argv(stars, tiny_base, whole, "--steps", 5)) == 0
    assert lora.main(_argv(stars, tiny_base, parts, "--steps", 2, "--work", work)) == 0
    assert lora.main(_argv(stars, tiny_base, parts, "--steps", 5, "--work", work)) == 0   # --steps raised: trains on
    assert f"train-lora: resuming at step 2 from {work / session.CHECKPOINT}" in capsys.readouterr().err
    a, _ = lora.load_kohya(whole)
    b, _ = lora.load_kohya(parts)
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_a_stop_request_writes_the_checkpoint_of_the_step_and_exits_naming_it(tiny_base, stars, tmp_path, monkeypatch,
                                                                             capsys):
    real = session.Session.after_step

    def stop_at_3(self, step, total, state, sample):
        if step == 3:
            self._stop(signal.SIGTERM, None)   # what the SIGTERM handler does (the dialog's Cancel)
        real(self, step, total, state, sample)

    monkeypatch.setattr(session.Session, "after_step", stop_at_3)
    work = tmp_path / "work"
    with pytest.raises(SystemExit) as stopped:
        lora.main(_argv(stars, tiny_base, tmp_path / "l.safetensors", "--steps", 50, "--work", work))
    assert stopped.value.code == 128 + signal.SIGTERM
    assert torch.load(work / session.CHECKPOINT, weights_only=True)["step"] == 3   # not the save-every 100 one
    assert f"train-lora: stopped at step 3 of 50; the checkpoint is in {work}" in capsys.readouterr().err
    assert not (tmp_path / "l.safetensors").exists()
    assert signal.getsignal(signal.SIGTERM) is not session.Session._stop   # handlers restored


def test_a_checkpoint_of_other_settings_is_refused_naming_what_differs(tiny_base, stars, tmp_path):
    work = tmp_path / "work"
    assert lora.main(_argv(stars, tiny_base, tmp_path / "a.safetensors", "--steps", 1, "--work", work)) == 0
    with pytest.raises(SystemExit) as refused:
        lora.main(_argv(stars, tiny_base, tmp_path / "b.safetensors", "--steps", 2, "--work", work, "--dora"))
    assert str(refused.value) == (f"error: train-lora: --work {work} holds a checkpoint of another run: dora False "
                                  "(this run: True); use another --work folder or the same settings")


def test_samples_without_a_work_folder_are_refused_before_the_base_loads(stars, tmp_path, no_base_load):
    with pytest.raises(SystemExit) as refused:
        lora.main([str(stars), "--base", "nodeforge-shapes", "--out", str(tmp_path / "x.safetensors"),
                   "--sample-every", "5"])
    assert re.fullmatch(r"error: train-lora: --sample-every writes its images into the --work folder; give --work DIR",
                        str(refused.value))


def test_train_embedding_on_a_folder_resumes_as_an_unbroken_run_and_samples_with_the_embedding(tiny_base, stars,
                                                                                               tmp_path, capsys):
    from safetensors.torch import load_file

    from nodeforge.training import embedding

    common = ["--images-dir", str(stars), "--base", str(tiny_base), "--vectors", "2", "--batch", "2", "--lr", "0.01",
              "--seed", "1"]
    whole, parts, work = tmp_path / "whole.safetensors", tmp_path / "parts.safetensors", tmp_path / "work"
    assert embedding.main([*common, "--out", str(whole), "--steps", "4"]) == 0
    assert embedding.main([*common, "--out", str(parts), "--steps", "2", "--work", str(work)]) == 0
    capsys.readouterr()
    assert embedding.main([*common, "--out", str(parts), "--steps", "4", "--work", str(work), "--sample-every", "4",
                           "--sample-prompt", "a {} on a blue background", "--sample-steps", "2"]) == 0
    out = capsys.readouterr()
    assert f"train-embedding: sample step 4: {work / 'samples' / 'step-000004.png'}" in out.err
    assert (work / "samples" / "step-000004.png").is_file()
    numbers = json.loads(out.out)
    assert numbers["images"] == 4 and "embedding" not in numbers    # a folder's embedding is not judged
    a, b = load_file(str(whole))["emb_params"], load_file(str(parts))["emb_params"]
    assert a.shape == (2, 64) and torch.equal(a, b)


def test_a_setting_an_older_checkpoint_does_not_record_is_named_as_not_recorded():
    differ = session.differences({"rank": 4, "dora": False}, {"rank": 4, "dora": True, "class_cfg": 5.0})
    assert differ == ["dora False (this run: True)", "class_cfg not recorded (an older checkpoint; this run: 5.0)"]
    assert session.differences({"rank": 4}, {"rank": 4, "class_prompt": None}) == []   # as before: None matches
