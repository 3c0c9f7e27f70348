"""Issue 31, items 4-7 and 9-11: validation, re-runs, progress text, titles, dialogs, the status bar,
visuals and where images go, as a new user met them in a 1600x1000 window with the default docks."""
from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication

from nodeforge.paths import builtin_dir
from tests.ui.helpers import new_window

TXT2IMG = builtin_dir("workflows") / "txt2img.json"
TIMEOUT = 60_000


def _open(win, qtbot, path=TXT2IMG):
    assert win.document.open_example(path)
    qtbot.waitUntil(lambda: win.scene.panels_pending() == 0)


def _press_run(win, qtbot):
    win.activateWindow()
    win.view.setFocus()
    QTest.keySequence(win.view, "Ctrl+Return")


# -- item 5: one validation for the editor and the command line -----------------------------------------
def test_the_editor_refuses_an_unconnected_required_input_as_validate_and_run_do(big_window, qtbot, tmp_path,
                                                                                  capsys):
    """A second output whose image input is not wired: `nodeforge validate` and `nodeforge run` refuse
    the file; Ctrl+Enter in the editor refuses it too, before any node runs, with the same problem."""
    from nodeforge.cli import main

    win = big_window
    _open(win, qtbot)
    preview = win.controller.add_node("Preview", (1400, 600))
    path = tmp_path / "half-wired.json"
    assert win.document.save_to(path)
    capsys.readouterr()
    assert main(["validate", str(path)]) == 1
    cli_error = capsys.readouterr().err.strip()
    assert cli_error == f"error: node {preview} (Preview), image: required input is not connected; " \
                        "link an IMAGE output to it"
    started = []
    win.runner.nodeStarted.connect(started.append)
    with qtbot.waitSignal(win.runner.runFailed, timeout=TIMEOUT) as failed:
        _press_run(win, qtbot)
    nid, message, problems = failed.args
    assert nid == preview and f"error: {message}" == cli_error
    assert started == [] and win.runner.jobs[-1].state == "failed"
    assert win.problems.count() == 1 and "image: required input is not connected" in win.problems.text(0)
    assert win.scene.nodes[preview].state == "failed"
    assert win.statusBar().currentMessage() == "Run failed: Preview Image, image: required input is not connected; " \
        "link an IMAGE output to it"


# -- item 7: queue progress that reads sanely ------------------------------------------------------------
def test_a_running_job_names_its_node_step_and_place_in_the_run(window, qtbot, gate):
    """The row said "76% · step 7/20" (the run's share of nodes beside the sampler's step); now each
    number says what it counts, and the bar's tooltip gives the whole run's share."""
    from tests.ui.test_queue import start_held

    solid, slow, preview = start_held(window, qtbot)
    window.show_queue()
    job = window.runner.jobs[-1]
    row = window.queue.row(job.id)
    qtbot.waitUntil(lambda: job.step == 9)
    row.update_job(job)
    assert row.state.text() == "Running Slow · step 9/20 · node 2 of 3"
    assert row.bar.toolTip() == f"The whole run: {round(job.progress * 100)}% of its nodes"
    gate.set()
    qtbot.waitUntil(lambda: job.state == "done", timeout=TIMEOUT)
    assert row.state.text().startswith("Done in")


def test_an_example_opens_titled_by_its_file_name_and_saves_elsewhere(big_window, qtbot, tmp_path, monkeypatch):
    from PySide6.QtWidgets import QFileDialog

    win = big_window
    win.acts.examples_menu.aboutToShow.emit()
    action = next(a for a in win.acts.examples_menu.actions() if a.text() == "img2img")
    action.trigger()                                  # File > Examples > img2img
    assert win.windowTitle().startswith("img2img.json (example)") and win.path is None
    asked = []

    def save_dialog(parent, caption, suggested, *rest):
        asked.append(suggested)
        return str(tmp_path / "mine.json"), ""

    monkeypatch.setattr(QFileDialog, "getSaveFileName", save_dialog)
    win.activateWindow()
    QTest.keySequence(win, "Ctrl+S")                  # an example is never saved over: Save asks where
    qtbot.waitUntil(lambda: (tmp_path / "mine.json").exists())
    assert asked == ["img2img.json"] and win.windowTitle().startswith("mine.json")


def test_a_long_error_in_the_status_bar_shortens_its_paths_not_its_fix(big_window, qtbot):
    """A checkpoint that is not installed: the message names the folders searched and where to put
    it. The status bar shortens the paths in their middle, so "put it in ..." and the fix after it
    still show; the tooltip has every word, and a click opens the Problems panel with it in full."""
    win = big_window
    _open(win, qtbot)
    loader = next(nid for nid, node in win.model.nodes.items() if node.type == "CheckpointLoader")
    win.controller.set_param(loader, "checkpoint", "dreamshaper_8")
    with qtbot.waitSignal(win.runner.runFailed, timeout=TIMEOUT):
        _press_run(win, qtbot)
    label = win.status.message
    full = " ".join(label.full_text.split())
    assert "put it in /" in full and full.endswith("add its folder to NODEFORGE_MODELS, or give a path")
    metrics = label.fontMetrics()
    assert metrics.horizontalAdvance(full) > label.width()        # too long for the bar, even at 1600 px
    shown = label.elided()
    assert shown.endswith("or give a path") and "put it in " in shown and "…" in shown
    assert metrics.horizontalAdvance(shown) <= label.width()
    assert label.toolTip() == label.full_text
    QTest.mouseClick(label, Qt.MouseButton.LeftButton)
    assert win.problems.isVisible() and "put it in /" in win.problems.text(0)


# -- item 7: import dialogs one at a time, notes that fit the editor, one note per class -----------------
def _friends_prompt(tmp_path):
    """A ComfyUI API prompt (the hires example) whose two KSamplers use a sampler NodeForge lacks
    and whose checkpoint this machine does not have."""
    import json

    prompt = json.loads((Path(__file__).parents[1] / "interop" / "data" / "comfy-hires-api.json").read_text())
    prompt["4"]["inputs"]["ckpt_name"] = "friends-model-v3.safetensors"
    for nid in ("3", "11"):
        prompt[nid]["inputs"]["sampler_name"] = "dpmpp_2s_ancestral"
    path = tmp_path / "from-a-friend.json"
    path.write_text(json.dumps(prompt))
    return path


def test_the_same_import_note_on_several_nodes_of_a_class_is_one_line(real_registry, tmp_path):
    from nodeforge.interop import read_workflow

    imported = read_workflow(_friends_prompt(tmp_path), registry=real_registry)
    sampler = [line for line in imported.warnings if "dpmpp_2s_ancestral" in line]
    assert sampler == ["nodes 3, 11 (KSampler): sampler 'dpmpp_2s_ancestral' is not in NodeForge; "
                       "using the nearest, 'euler_ancestral'"]


def test_import_dialogs_come_one_at_a_time_and_the_notes_follow_the_choice(big_window, qtbot, tmp_path,
                                                                           monkeypatch):
    from PySide6.QtWidgets import QDialogButtonBox, QFileDialog

    win = big_window
    path = _friends_prompt(tmp_path)
    monkeypatch.setattr(QFileDialog, "getOpenFileName", lambda *a, **k: (str(path), ""))
    win.activateWindow()
    QTest.keySequence(win, "Ctrl+O")                      # File > Open
    dialog = win.document.missing_dialog
    assert dialog is not None and dialog.isVisible()
    assert win.document.import_notice is None             # not stacked on it: the notes wait
    dialog.remember.setChecked(False)
    dialog.choose("checkpoint", "friends-model-v3.safetensors", "nodeforge-shapes")
    ok = dialog.findChild(QDialogButtonBox).button(QDialogButtonBox.StandardButton.Ok)
    QTest.mouseClick(ok, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: win.document.import_notice is not None)
    notes = win.document.import_notice.text()
    assert win.document.missing_dialog is None
    assert "friends-model-v3" not in notes and "--model-map" not in notes    # mapped: not called missing
    assert notes.count("dpmpp_2s_ancestral") == 1 and "nodes 3, 11 (KSampler)" in notes
    assert win.model.nodes["4"].params["checkpoint"] == "nodeforge-shapes"
    win.document.import_notice.close()
    qtbot.waitUntil(lambda: win.document.import_notice is None)

    assert win.open_path(path)                            # again, and this time leave it missing
    win.document.missing_dialog.reject()
    qtbot.waitUntil(lambda: win.document.import_notice is not None)
    notes = win.document.import_notice.text()
    assert "missing checkpoint 'friends-model-v3.safetensors' (node 4): put it in " in notes
    assert "or pick one of yours in the node's list" in notes and "--model-map" not in notes


# -- item 9: visuals ---------------------------------------------------------------------------------------
def _indicator_contrast(win, item, box) -> float:
    """How far the check box's indicator, as the canvas draws it, stands out from the node around it
    (largest RGB distance of a pixel inside it to the node's body just right of it)."""
    from PySide6.QtCore import QPointF
    from PySide6.QtWidgets import QStyle, QStyleOptionButton

    option = QStyleOptionButton()
    box.initStyleOption(option)
    rect = box.style().subElementRect(QStyle.SubElement.SE_CheckBoxIndicator, option, box)

    def on_view(x, y):
        point = box.mapTo(item.panel, rect.topLeft()).toPointF() + QPointF(x, y)
        return win.view.mapFromScene(item.proxy.mapToScene(point))

    image = win.view.viewport().grab().toImage()
    ratio = image.devicePixelRatio()
    pixel = lambda p: image.pixelColor(int(p.x() * ratio), int(p.y() * ratio))   # noqa: E731
    around = pixel(on_view(rect.width() + 6, rect.height() / 2))
    best = 0.0
    for x in range(rect.width()):
        for y in range(rect.height()):
            c = pixel(on_view(x, y))
            best = max(best, ((c.red() - around.red()) ** 2 + (c.green() - around.green()) ** 2
                              + (c.blue() - around.blue()) ** 2) ** 0.5)
    return best


def test_an_unchecked_box_shows_in_the_dark_theme_and_a_click_checks_it(big_window, qtbot, request):
    from nodeforge.ui import theme

    win = big_window
    app = QApplication.instance()
    before = app.styleSheet()
    app.setStyleSheet(theme.stylesheet())                 # as the app applies it
    request.addfinalizer(lambda: app.setStyleSheet(before))
    nid = win.controller.add_node("GrowMask", (0, 0))
    win.controller.set_param(nid, "tapered_corners", False)
    qtbot.waitUntil(lambda: win.scene.panels_pending() == 0)
    item = win.scene.nodes[nid]
    win.view.set_zoom(1.0)
    win.view.centerOn(item.sceneBoundingRect().center())
    box = item.panel.editors["tapered_corners"].box
    assert not box.isChecked() and _indicator_contrast(win, item, box) > 90      # a light frame on the dark node
    centre = box.mapTo(item.panel, box.rect().center())
    at = win.view.mapFromScene(item.proxy.mapToScene(centre.toPointF()))
    QTest.mouseClick(win.view.viewport(), Qt.MouseButton.LeftButton, pos=at)
    qtbot.waitUntil(lambda: win.model.nodes[nid].params.get("tapered_corners") is True)
    assert box.isChecked() and _indicator_contrast(win, item, box) > 90


def test_a_node_quick_added_at_the_canvas_edge_lands_whole_in_view(big_window, qtbot):
    """Tab with the mouse near the bottom-right corner, type, Enter: the node is moved just inside
    the view (it used to hang half off screen), in the same undo step as the adding."""
    win = big_window
    _open(win, qtbot)
    vp = win.view.viewport()
    corner = QPoint(vp.width() - 30, vp.height() - 30)
    QTest.mouseMove(vp, corner)
    win.view.last_scene_pos = win.view.mapToScene(corner)
    win.activateWindow()
    win.view.setFocus()
    QTest.keyClick(win.view, Qt.Key.Key_Tab)
    qtbot.waitUntil(win.search.isVisible)
    QTest.keyClicks(win.search.edit, "UNet Denoise")
    before = set(win.model.nodes)
    QTest.keyClick(win.search.edit, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: len(win.model.nodes) == len(before) + 1)
    (nid,) = set(win.model.nodes) - before
    visible = win.view.mapToScene(vp.rect()).boundingRect()
    assert visible.contains(win.scene.nodes[nid].sceneBoundingRect())
    assert win.stack.undoText() == "Add UNet Denoise"
    win.stack.undo()
    assert set(win.model.nodes) == before


def test_one_wheel_notch_zooms_ten_percent_at_the_cursor(big_window, qtbot):
    from PySide6.QtGui import QWheelEvent

    win = big_window
    _open(win, qtbot)
    vp = win.view.viewport()
    at = QPointF(500, 400)
    start, under = win.view.zoom(), win.view.mapToScene(at.toPoint())
    wheel = QWheelEvent(at, vp.mapToGlobal(at), QPoint(0, 0), QPoint(0, 120), Qt.MouseButton.NoButton,
                        Qt.KeyboardModifier.NoModifier, Qt.ScrollPhase.NoScrollPhase, False)
    QApplication.sendEvent(vp, wheel)
    assert win.view.zoom() / start == pytest.approx(1.1, abs=1e-3)   # was 1.2 a notch
    assert (win.view.mapToScene(at.toPoint()) - under).manhattanLength() < 2


def test_docking_the_queue_beside_the_images_keeps_a_fitted_graph_whole(qtbot, real_registry, tmp_path):
    """At 1600x1000 with the default docks, txt2img opens whole; showing the Queue panel and widening
    the dock column (as a user drags the splitter) re-fits it, so no node or title is cut at an edge."""
    from nodeforge.core.engine import Engine

    win = new_window(qtbot, Engine(device="cpu", output_dir=tmp_path / "out", registry=real_registry), (1600, 1000))
    win.show()
    qtbot.waitExposed(win)
    _open(win, qtbot)
    qtbot.wait(50)
    visible = lambda: win.view.mapToScene(win.view.viewport().rect()).boundingRect()   # noqa: E731
    assert visible().contains(win.view.graph_rect())
    win.show_queue()
    win.resizeDocks([win.images], [520], Qt.Orientation.Horizontal)
    qtbot.waitUntil(lambda: win.view.viewport().width() < 1100)
    assert visible().contains(win.view.graph_rect()) and not win.scene.low_detail
    win.autosaver.discard()


def test_the_status_bar_names_the_device_before_the_first_run(qtbot, real_registry, tmp_path, monkeypatch):
    """It said "Device: auto" until a run had loaded torch; now the device is named from the start,
    without importing torch (the editor loads it at the first run)."""
    import sys

    from nodeforge import devices
    from nodeforge.core.engine import Engine

    monkeypatch.delitem(sys.modules, "torch", raising=False)     # as in a fresh editor
    monkeypatch.setattr(devices, "_nvidia_model", lambda: None)
    win = new_window(qtbot, Engine(device="auto", output_dir=tmp_path / "out", registry=real_registry), None)
    assert win.status.device_label.text() == "Device: CPU"
    monkeypatch.setattr(devices, "_nvidia_model", lambda: "NVIDIA H100 80GB HBM3")
    win.status.update_stats()
    assert win.status.device_label.text() == "Device: auto: NVIDIA H100 80GB HBM3 found (used if torch has CUDA)"
    assert "torch" not in sys.modules
    win.engine.device = "cpu"
    win.status.update_stats()
    assert win.status.device_label.text() == "Device: CPU"
    win.autosaver.discard()


# -- item 6: re-running an unchanged graph -----------------------------------------------------------------
def test_a_rerun_of_an_unchanged_graph_says_it_is_the_same_image_and_can_skip_the_save(window, qtbot):
    from PySide6.QtWidgets import QLabel

    from tests.ui.helpers import chain

    window.show()
    qtbot.waitExposed(window)
    solid, save = chain(window, "SolidImage", "SaveOut")
    out = window.engine.output_dir

    def run_once():
        with qtbot.waitSignal(window.runner.runFinished, timeout=TIMEOUT):
            window.acts.run.trigger()                     # Run > Run
        qtbot.waitUntil(lambda: not window.runner.running)
        return window.runner.jobs[-1].images[0]

    def captions():
        return " ".join(label.text() for label in window.images.findChildren(QLabel))

    first = run_once()
    assert first.same_as is None and "same image" not in window.statusBar().currentMessage()
    again = run_once()                                    # nothing changed: a second file, the same pixels
    assert again.path != first.path and again.same_as == first.path and again.saved_again
    assert sorted(p.name for p in out.glob("*.png")) == ["test_00000.png", "test_00001.png"]
    assert "the same image as test_00000.png" in window.statusBar().currentMessage()
    assert "the same image as test_00000.png" in captions()

    window.acts.skip_saves.trigger()                      # Run > Skip Unchanged Saves
    assert window.settings().value("skipUnchangedSaves", type=bool)
    third = run_once()
    assert third.path == first.path and not third.saved_again
    assert sorted(p.name for p in out.glob("*.png")) == ["test_00000.png", "test_00001.png"]   # no third copy
    assert "not saved again" in window.statusBar().currentMessage()

    window.controller.set_param(solid, "color", "green")  # a change that changes the picture
    fourth = run_once()
    assert fourth.same_as is None and fourth.saved_again and Path(fourth.path).is_file()
    window.acts.skip_saves.trigger()


# -- item 11: one place for the editor's and the command line's images, when asked -----------------------
def test_nodeforge_output_is_where_the_editor_and_run_both_save(monkeypatch, tmp_path):
    from nodeforge.cli import build_parser
    from nodeforge.ui.app import default_output_dir

    monkeypatch.delenv("NODEFORGE_OUTPUT", raising=False)
    assert build_parser().parse_args(["run", "x.json"]).out == "output"          # ./output, as the README says
    monkeypatch.setenv("NODEFORGE_OUTPUT", str(tmp_path / "images"))
    assert build_parser().parse_args(["run", "x.json"]).out == str(tmp_path / "images")
    assert default_output_dir() == tmp_path / "images"
    assert build_parser().parse_args(["run", "x.json", "--out", "o"]).out == "o"   # --out still wins
    readme = (Path(__file__).parents[2] / "README.md").read_text(encoding="utf-8")
    assert "**Where images go.**" in readme and "`~/Pictures/NodeForge`" in readme and "`./output`" in readme
