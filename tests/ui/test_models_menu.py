"""The Models menu (issue 31): what is installed by kind, the models folder, and a rescan that the
canvas's model lists follow, without restarting the editor."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QAction


def _menu_action(win, name: str) -> QAction:
    menu = next(a.menu() for a in win.menuBar().actions() if a.text() == "&Models")
    return next(a for a in menu.actions() if a.objectName() == name)


@pytest.fixture
def user_models(studio):
    root = studio.engine.model_paths.user_folder
    made: list[Path] = []

    def put(sub: str, name: str, size: int = 2048) -> Path:
        path = root / sub / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"\0" * size)
        made.append(path)
        return path
    yield put
    for path in made:
        path.unlink(missing_ok=True)


def test_installed_models_lists_every_kind_with_the_bundled_and_the_users_files(studio, qtbot, user_models):
    user_models("checkpoints", "my-model.safetensors", 3 * 1024 * 1024)
    _menu_action(studio, "installedModels").trigger()
    dialog = studio.models_dialog
    assert dialog.isVisible()
    shown = dialog.kinds_shown()
    from nodeforge.core.models import MODEL_KINDS

    assert list(shown) == [kind.value for kind in MODEL_KINDS]   # every kind the loaders read, in their order
    assert {"checkpoint", "lora", "vae", "embedding", "controlnet", "upscale_model"} <= set(shown)
    assert "my-model.safetensors" in shown["checkpoint"] and "nodeforge-shapes" in shown["checkpoint"]
    assert "shapes-star.safetensors" in shown["lora"] and shown["vae"] == []
    top = dialog.tree.topLevelItem(0)
    assert top.text(0) == f"Checkpoints ({len(shown['checkpoint'])})"
    mine = next(top.child(i) for i in range(top.childCount()) if top.child(i).text(0) == "my-model.safetensors")
    assert mine.text(1) == "3.0 MB" and mine.text(2) == str(studio.engine.model_paths.user_folder / "checkpoints")
    bundled = next(top.child(i) for i in range(top.childCount()) if top.child(i).text(0) == "nodeforge-shapes")
    assert bundled.text(2) == "bundled with NodeForge"
    vaes = dialog.tree.topLevelItem(2)
    assert vaes.text(0) == "VAEs (0)" and vaes.child(0).text(0) == "none: put VAE files in vae/"


def test_rescan_in_the_dialog_lists_a_file_added_meanwhile(studio, qtbot, user_models):
    dialog = studio.show_models()
    assert "fresh.safetensors" not in dialog.kinds_shown()["lora"]
    user_models("loras", "fresh.safetensors")
    qtbot.mouseClick(dialog.rescan_button, Qt.MouseButton.LeftButton)
    assert "fresh.safetensors" in dialog.kinds_shown()["lora"]


def test_rescan_models_refreshes_the_lists_on_the_canvas(studio, qtbot, user_models):
    nid = studio.controller.add_node("LoRALoader", (0, 0))
    combo = studio.scene.nodes[nid].panel.editors["lora"].combo
    assert "new-style.safetensors" not in [combo.itemText(i) for i in range(combo.count())]
    user_models("loras", "new-style.safetensors")
    _menu_action(studio, "rescanModels").trigger()
    assert "new-style.safetensors" in [combo.itemText(i) for i in range(combo.count())]
    assert studio.model.nodes[nid].params.get("lora", "shapes-star") == "shapes-star"   # the choice kept
    assert studio.statusBar().currentMessage().startswith("Rescanned the model folders")


def test_open_models_folder_makes_a_folder_per_kind_and_opens_it(studio, monkeypatch):
    opened = []
    monkeypatch.setattr("nodeforge.ui.dialogs.models_dialog.QDesktopServices.openUrl",
                        lambda url: opened.append(url.toLocalFile()))
    _menu_action(studio, "openModelsFolder").trigger()
    root = studio.engine.model_paths.user_folder
    assert opened == [str(root)]
    assert {p for p in os.listdir(root)} >= {"checkpoints", "loras", "vae", "embeddings", "controlnet",
                                             "upscale_models"}
