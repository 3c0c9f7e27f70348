"""Issue 31: what a new user tripped over in the editor's second hour."""
from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication

from nodeforge.paths import builtin_dir

EXAMPLES = sorted(builtin_dir("workflows").glob("*.json"))
INTEROP = Path(__file__).parents[1] / "interop" / "data"


def _visible(win):
    return win.view.mapToScene(win.view.viewport().rect()).boundingRect()


def _assert_readable(win, starts_in_view=True):
    """Editors, values and port names are drawn: not the low level of detail, not grey boxes."""
    from nodeforge.ui.canvas.view import READABLE_ZOOM

    assert win.view.zoom() >= READABLE_ZOOM - 1e-9 and not win.scene.low_detail
    visible = _visible(win)
    shown = [item for item in win.scene.nodes.values() if visible.intersects(item.sceneBoundingRect())]
    assert len(shown) >= 3
    with_editors = [item for item in shown if item.proxy is not None]
    assert all(item.proxy.isVisible() for item in with_editors if not item.collapsed)
    assert win.view.shows_graph()
    if starts_in_view:                              # a fit: the graph's start in view, the rest a pan away
        assert visible.contains(win.view.graph_rect().topLeft())


# -- item 1: graphs open readable ------------------------------------------------------------------
@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_an_example_opened_and_fitted_with_f_stays_readable(big_window, qtbot, path):
    win = big_window
    assert win.document.open_example(path)
    qtbot.waitUntil(lambda: win.scene.panels_pending() == 0)
    _assert_readable(win)
    win.view.set_zoom(0.2)                          # zoomed far out by hand, then F
    win.view.setFocus()
    QTest.keyClick(win.view, Qt.Key.Key_F)
    qtbot.waitUntil(lambda: win.view.zoom() >= 0.6)
    _assert_readable(win)


@pytest.mark.parametrize("name", ["comfy-hires-api.json", "all-nodes-1.json", "comfy-inpaint-0.4.json"])
def test_an_imported_comfyui_file_opens_readable(big_window, qtbot, name):
    win = big_window
    assert win.open_path(INTEROP / name)
    qtbot.waitUntil(lambda: win.scene.panels_pending() == 0)
    qtbot.wait(50)                                  # the viewport is restored after the event loop turns
    _assert_readable(win, starts_in_view=False)     # the sender's viewport where it shows the graph
    for _ in range(2):                              # the Missing models dialog, then the notes it leaves
        for box in (win.document.missing_dialog, win.document.import_notice):
            if box is not None:                     # the user reads the notes and closes them
                box.close()
    qtbot.waitUntil(lambda: win.document.import_notice is None and win.document.missing_dialog is None)
    win.activateWindow()
    qtbot.waitUntil(lambda: QApplication.activeWindow() is win)
    win.view.setFocus()
    QTest.keyClick(win.view, Qt.Key.Key_F)
    _assert_readable(win)


def test_low_detail_still_draws_titles_and_port_names(big_window, qtbot, monkeypatch):
    """Zoomed out by hand below the readable zoom: each node still paints its title and its ports' names."""
    win = big_window
    assert win.document.open_example(builtin_dir("workflows") / "txt2img.json")
    qtbot.waitUntil(lambda: win.scene.panels_pending() == 0)
    win.view.set_zoom(0.45)
    assert win.scene.low_detail
    drawn: list[str] = []
    from PySide6.QtGui import QPainter

    real = QPainter.drawText

    def record(painter, *args):
        drawn.append(str(args[-1]))
        return real(painter, *args)

    monkeypatch.setattr(QPainter, "drawText", record)
    win.view.grab()
    assert "Load Checkpoint" in drawn and {"unet", "clip", "vae", "latent", "conditioning"} <= set(drawn)


def test_a_zoom_without_an_anchor_keeps_the_view_centre_wherever_the_mouse_was_left(big_window, qtbot):
    """set_zoom with no anchor (a fit, a restored viewport, a test) zooms about the view's centre,
    not about a mouse left over the canvas (the view's anchor for the wheel): that made the
    low-detail test above fail after the quick-add test had moved the mouse to a corner."""
    from PySide6.QtCore import QPoint

    win = big_window
    assert win.document.open_example(builtin_dir("workflows") / "txt2img.json")
    qtbot.waitUntil(lambda: win.scene.panels_pending() == 0)
    vp = win.view.viewport()
    QTest.mouseMove(vp, QPoint(vp.width() - 30, vp.height() - 30))
    before = win.view.center()
    win.view.set_zoom(0.45)
    assert win.view.zoom() == pytest.approx(0.45)
    assert (win.view.center() - before).manhattanLength() < 4 / 0.45   # a few view pixels of rounding


# -- item 3: Save As rebases relative input paths --------------------------------------------------
def _load_image_node(win):
    return next(nid for nid, node in win.model.nodes.items() if node.type == "LoadImage")


def test_save_as_an_example_elsewhere_rebases_its_input_image(big_window, qtbot, tmp_path, monkeypatch):
    from PySide6.QtWidgets import QFileDialog

    from nodeforge.core.validate import check_workflow
    from nodeforge.core.workflow import load_workflow

    win = big_window
    example = builtin_dir("workflows") / "controlnet.json"
    assert win.document.open_example(example)
    nid = _load_image_node(win)
    assert win.model.nodes[nid].params["path"] == "inputs/yellow-triangle.png"
    target = tmp_path / "elsewhere" / "mine.json"
    target.parent.mkdir()
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *a, **k: (str(target), ""))
    QTest.keySequence(win, "Ctrl+Shift+S")          # File > Save As, as the user presses it
    qtbot.waitUntil(lambda: target.exists())
    saved = load_workflow(target)
    rebased = saved.nodes[nid].params["path"]
    assert rebased != "inputs/yellow-triangle.png" and not Path(rebased).is_absolute()
    assert (target.parent / rebased).resolve() == (example.parent / "inputs/yellow-triangle.png").resolve()
    assert win.model.nodes[nid].params["path"] == rebased and not win.document.is_modified()
    assert "rebased" in win.statusBar().currentMessage() and "yellow-triangle.png" in win.statusBar().currentMessage()
    checked = check_workflow(saved, win.engine.registry, win.engine.model_paths)
    assert not [p for p in checked.problems if p.node_id == nid], checked.problems   # the copy finds it


def test_save_as_says_which_relative_paths_it_cannot_rebase(big_window, tmp_path):
    win = big_window
    assert win.document.open_example(builtin_dir("workflows") / "controlnet.json")
    nid = _load_image_node(win)
    win.controller.set_param(nid, "path", "inputs/not-there.png")
    target = tmp_path / "elsewhere" / "mine.json"
    target.parent.mkdir()
    assert win.document.save_to(target)
    assert "inputs/not-there.png" in win.last_error and "could not be rebased" in win.last_error
    assert "Load Image" in win.last_error


def test_saving_again_in_the_same_folder_keeps_relative_paths(big_window, tmp_path):
    win = big_window
    assert win.document.open_example(builtin_dir("workflows") / "img2img.json")
    assert win.document.save_to(tmp_path / "a.json")
    nid = _load_image_node(win)
    first = win.model.nodes[nid].params["path"]
    assert (tmp_path / first).resolve() == (builtin_dir("workflows") / "inputs/red-circle.png").resolve()
    assert win.document.save_to(tmp_path / "b.json")
    assert win.model.nodes[nid].params["path"] == first
    assert win.statusBar().currentMessage() == f"Saved {tmp_path / 'b.json'}"
