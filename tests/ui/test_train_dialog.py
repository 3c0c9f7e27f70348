"""Run > Train LoRA… (issue 32, item 4): the Train dialog runs the command line's trainer in a
separate process on a tiny random base, shows its progress, loss and sample images, stops it with
the checkpoint kept, resumes it, and the result is listed in the LoRA lists without a restart."""
from __future__ import annotations

import pytest
from PySide6.QtCore import Qt

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")
pytest.importorskip("peft")

RUN_MS = 240_000   # a generous bound on one trainer process (starting Python and torch); nothing waits for it


@pytest.fixture
def stars(tmp_path):
    from nodeforge.training import data

    folder = tmp_path / "red-stars"
    data.write_folder(folder, 4, seed=0, shapes=("star",))
    return folder


@pytest.fixture
def dialog(studio, tiny_base, stars, tmp_path):
    """The dialog on the red stars, with the tiny base as one of the user's own checkpoints."""
    mine = studio.engine.model_paths.user_folder / "checkpoints" / "tiny-train-base"
    mine.parent.mkdir(parents=True, exist_ok=True)
    mine.symlink_to(tiny_base, target_is_directory=True)
    menu = next(a.menu() for a in studio.menuBar().actions() if a.text() == "&Run")
    next(a for a in menu.actions() if a.text() == "&Train LoRA…").trigger()
    dlg = studio.train_dialog
    assert dlg.isVisible()
    dlg.work_root = tmp_path / "training"
    dlg.set_folder(stars)
    dlg.base.setCurrentIndex(dlg.base.findText("tiny-train-base"))
    dlg.batch.setValue(2)
    yield dlg
    dlg.discard()
    if dlg.result is not None:
        dlg.result.unlink(missing_ok=True)


def _lora_choices(studio, nid):
    combo = studio.scene.nodes[nid].panel.editors["lora"].combo
    return [combo.itemText(i) for i in range(combo.count())]


def test_the_dialog_shows_the_folder_as_thumbnails_with_editable_captions_saved_back(dialog, stars):
    assert dialog.table.rowCount() == 4
    assert not dialog.table.item(0, 0).icon().isNull()
    assert dialog.table.caption(0) == (stars / "00000.txt").read_text(encoding="utf-8").strip()
    assert dialog.folder_note.text() == "4 images, all captioned"
    assert dialog.name.text() == "red-stars"                    # named after the folder
    assert dialog.resolution.value() == 64                       # the tiny base's own size
    dialog.table.set_caption(1, "a red star, hand drawn ")
    assert (stars / "00001.txt").read_text(encoding="utf-8") == "a red star, hand drawn\n"
    assert not dialog.resume_button.isEnabled() and not dialog.cancel_button.isEnabled()


def test_training_shows_progress_loss_and_samples_and_the_lora_is_listed_without_a_restart(studio, dialog, qtbot):
    nid = studio.controller.add_node("LoRALoader", (0, 0))
    assert "red-stars.safetensors" not in _lora_choices(studio, nid)
    dialog.steps.setValue(4)
    dialog.every.setValue(2)
    job = dialog.start()
    assert job is not None, dialog.status.text()
    assert job.argv[:2] == ["train-lora", str(dialog.table.images[0].parent)]   # the command line's trainer
    assert dialog.cancel_button.isEnabled() and not dialog.start_button.isEnabled()
    assert not dialog.steps.isEnabled()                           # settings stay as the run has them
    assert dialog.table.isEnabled() and dialog.table.editTriggers() == dialog.table.EditTrigger.NoEditTriggers
    with qtbot.waitSignal(job.ended, timeout=RUN_MS) as ended:
        pass
    assert ended.args == ["done", ""], job.lines
    assert dialog.progress.value() == dialog.progress.maximum() == 4
    assert [s for s, _ in dialog.curve.points] == [1, 2, 3, 4] and all(v > 0 for _, v in dialog.curve.points)
    assert dialog.sample_path == str(dialog.settings().work / "samples" / "step-000004.png")
    assert dialog.sample.pixmap().width() == 160 and dialog.sample_note.text() == "sample at step 4, seed 0"
    assert dialog.result == studio.engine.model_paths.user_folder / "loras" / "red-stars.safetensors"
    assert dialog.status.text().startswith(f"Done: wrote {dialog.result}; it is in the LoRA lists now")
    assert "red-stars.safetensors" in _lora_choices(studio, nid)   # rescanned: no restart
    from nodeforge.training.lora import load_kohya

    tensors, metadata = load_kohya(dialog.result)
    assert metadata["ss_max_train_steps"] == "4" and metadata["ss_network_dim"] == "4"


def test_cancel_stops_the_run_keeps_its_checkpoint_and_resume_continues_from_it(dialog, qtbot):
    from nodeforge.training.session import CHECKPOINT

    dialog.steps.setValue(100_000)       # far more than the test waits for
    dialog.every.setValue(0)
    job = dialog.start()
    qtbot.waitUntil(lambda: dialog.progress.value() >= 2, timeout=RUN_MS)
    with qtbot.waitSignal(job.ended, timeout=RUN_MS) as ended:
        qtbot.mouseClick(dialog.cancel_button, Qt.MouseButton.LeftButton)
    assert ended.args[0] == "stopped", job.lines
    work = dialog.settings().work
    step = torch.load(work / CHECKPOINT, weights_only=True)["step"]
    assert 2 <= step < 100_000 and ended.args[1] == f"Stopped at step {step}"
    assert dialog.status.text() == f"Stopped at step {step}; the checkpoint is in {work}: Resume continues from it."
    assert dialog.result is None and not dialog.settings().out.exists()
    assert dialog.resume_button.isEnabled() and dialog.start_button.isEnabled()

    dialog.steps.setValue(step + 2)
    job = dialog.start(resume=True)
    with qtbot.waitSignal(job.ended, timeout=RUN_MS) as ended:
        pass
    assert ended.args == ["done", ""], job.lines
    assert f"train-lora: resuming at step {step} from {work / CHECKPOINT}" in job.lines
    assert [s for s, _ in dialog.curve.points] == [step + 1, step + 2]   # only the steps left
    assert dialog.result is not None and dialog.result.is_file()


def test_a_trainer_refusal_shows_its_one_line_error(dialog, qtbot, tmp_path):
    (tmp_path / "not-a-model").mkdir()
    dialog.base.addItem("not-a-model", str(tmp_path / "not-a-model"))
    dialog.base.setCurrentIndex(dialog.base.count() - 1)
    job = dialog.start()
    with qtbot.waitSignal(job.ended, timeout=RUN_MS) as ended:
        pass
    assert ended.args == ["failed", f"train-lora: --base {tmp_path / 'not-a-model'} is not a diffusers model "
                                    "folder: it has no 'unet'"]
    assert dialog.status.text() == f"Training failed: {ended.args[1]}"
    assert dialog.start_button.isEnabled() and not dialog.resume_button.isEnabled()


def test_an_embedding_trained_from_the_dialog_is_in_the_embedding_list(studio, dialog, qtbot):
    dialog.method.setCurrentIndex(dialog.method.findData("embedding"))
    assert not dialog.rank.isEnabled() and dialog.lr.value() == 5e-3
    dialog.steps.setValue(2)
    dialog.every.setValue(2)
    dialog.prompt.setText("a embedding:red-stars on a blue background")
    job = dialog.start()
    assert job.argv[:3] == ["train-embedding", "--images-dir", str(dialog.table.images[0].parent)]
    assert job.argv[job.argv.index("--sample-prompt") + 1] == "a {} on a blue background"
    with qtbot.waitSignal(job.ended, timeout=RUN_MS) as ended:
        pass
    assert ended.args == ["done", ""], job.lines
    assert dialog.result == studio.engine.model_paths.user_folder / "embeddings" / "red-stars.safetensors"
    assert dialog.status.text() == (f"Done: wrote {dialog.result}; it is in the embedding lists now "
                                    "(use embedding:red-stars).")
    assert dialog.sample_path.endswith("step-000002.png")
    assert "red-stars.safetensors" in studio.show_models().kinds_shown()["embedding"]


def test_dreambooth_with_prior_preservation_from_the_dialog(studio, dialog, qtbot):
    assert not dialog.form.isRowVisible(dialog.class_prompt)
    dialog.method.setCurrentIndex(dialog.method.findData("dreambooth"))
    assert dialog.form.isRowVisible(dialog.class_prompt) and dialog.rank.isEnabled()
    dialog.instance_prompt.setText("a sks star")
    dialog.class_prompt.setText("a star")
    dialog.class_images.setValue(2)
    dialog.steps.setValue(2)
    dialog.every.setValue(0)
    job = dialog.start()
    class_dir = dialog.work_root / "red-stars-class-images"
    assert job.argv[:5] == ["train-dreambooth", "--instance-dir", str(dialog.table.images[0].parent),
                            "--instance-prompt", "a sks star"]
    assert job.argv[job.argv.index("--class-prompt"):][:8] == ["--class-prompt", "a star", "--class-images", "2",
                                                             "--prior-weight", "1", "--class-dir", str(class_dir)]
    with qtbot.waitSignal(job.ended, timeout=RUN_MS) as ended:
        pass
    assert ended.args == ["done", ""], job.lines
    assert "train-dreambooth: drew class images 2/2" in job.lines
    assert sorted(p.name for p in class_dir.glob("*.png")) == ["class-00000.png", "class-00001.png"]
    from nodeforge.training.lora import load_kohya

    _, metadata = load_kohya(dialog.result)
    assert metadata["nodeforge_instance_prompt"] == "a sks star" and metadata["ss_num_reg_images"] == "2"
    nid = studio.controller.add_node("LoRALoader", (0, 0))
    assert "red-stars.safetensors" in _lora_choices(studio, nid)


def test_the_trainer_runs_as_this_python_or_as_the_packaged_apps_own_command(monkeypatch):
    import sys

    from nodeforge.ui.dialogs.train_job import command

    assert command(["train-lora", "x"]) == (sys.executable, ["-m", "nodeforge", "train-lora", "x"])
    monkeypatch.setattr(sys, "frozen", True, raising=False)   # PyInstaller's bundle: the exe is `nodeforge`
    assert command(["train-lora", "x"]) == (sys.executable, ["train-lora", "x"])
