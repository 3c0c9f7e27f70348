"""What a new user trips over in the first hour (issue 18): examples, error notes, problems,
popups, wires, fitting, first start, small things."""
from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtCore import QPointF

from nodeforge.paths import builtin_dir
from tests.ui.helpers import close_window, new_window

EXAMPLES = sorted(builtin_dir("workflows").glob("*.json"))


@pytest.fixture
def real_window(qtbot, real_registry, tmp_path):
    """The editor on the built-in pack's declarations (conftest's real_registry), at 1500x920."""
    from nodeforge.core.engine import Engine

    win = new_window(qtbot, Engine(device="cpu", output_dir=tmp_path / "out", registry=real_registry), (1500, 920))
    yield win
    close_window(win)


def wires_through_bodies(win) -> list[tuple[str, str, str]]:
    """(consumer, input, node) for every wire that passes over a node body it does not connect."""
    found = []
    for (dst, name), edge in win.scene.edges.items():
        path = edge.path()
        points = [path.pointAtPercent(i / 200) for i in range(201)]
        for nid, item in win.scene.nodes.items():
            if nid in (dst, edge.src):
                continue
            body = item.mapRectToScene(item.body_rect()).adjusted(2, 2, -2, -2)
            if any(body.contains(p) for p in points):
                found.append((dst, name, nid))
    return found


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_examples_open_laid_out_and_unmodified(real_window, qtbot, path):
    win = real_window
    win.show()
    assert win.open_path(path)
    qtbot.waitUntil(lambda: win.scene.panels_pending() == 0)
    assert not win.edits.nodes_overlap()
    assert win.stack.count() == 0                       # nothing was re-arranged
    assert not win.isWindowModified() and not win.document.is_modified()
    assert wires_through_bodies(win) == []               # no wire seems to plug into a node it skips
    qtbot.waitUntil(lambda: win.view.shows_graph())


# -- error notes, the status bar and the Problems panel (item 2; item 12's failed tick) ----------------
def _fail_run(window, qtbot, message="the brush is dry"):
    from tests.ui.helpers import add

    solid = add(window, "SolidImage", 0, 0)
    fail = add(window, "Fail", 300, 0)
    out = add(window, "PreviewOut", 600, 0)
    window.controller.connect(solid, "image", fail, "image")
    window.controller.connect(fail, "image", out, "image")
    window.controller.set_param(fail, "message", message)
    with qtbot.waitSignal(window.runner.runFailed, timeout=30_000):
        window.run()
    return solid, fail, out


def test_an_error_note_draws_above_a_node_placed_under_it(window, qtbot):
    from tests.ui.helpers import add

    below = add(window, "SolidImage", 300, 100)    # sits where the note of the node above goes
    window.scene.nodes[below].setZValue(0.5)      # even above the failed node itself
    _solid, fail, _out = _fail_run(window, qtbot)
    item = window.scene.nodes[fail]
    note = item.note
    assert note is not None and "the brush is dry" in note.text
    centre = note.sceneBoundingRect().center()
    assert window.scene.nodes[below].sceneBoundingRect().contains(centre)
    assert window.scene.items(centre)[0] is note                 # the topmost item there is the note
    item.setPos(320, 40)                                         # the note follows its node
    assert note.scenePos() == item.scenePos() + QPointF(0, item.height + 4)
    window.controller.set_param(fail, "message", "x")            # an edit clears it
    assert item.note is None and note.scene() is None


def test_a_failed_node_shows_that_it_failed_not_its_earlier_tick(window, qtbot):
    from tests.ui.helpers import add

    solid, invert, out = add(window, "SolidImage"), add(window, "Invert", 300), add(window, "PreviewOut", 600)
    window.controller.connect(solid, "image", invert, "image")
    window.controller.connect(invert, "image", out, "image")
    with qtbot.waitSignal(window.runner.runFinished, timeout=30_000):
        window.run()
    item = window.scene.nodes[invert]
    assert item.state == "done" and item._badge()[0].startswith("✓")
    window.controller.disconnect(invert, "image")
    with qtbot.waitSignal(window.runner.runFailed, timeout=30_000):
        window.run()
    assert item.state == "failed" and "✓" not in item._badge()[0] and "failed" in item._badge()[0]


def test_the_status_message_is_elided_with_a_tooltip_and_opens_the_problems(window, qtbot):
    from PySide6.QtCore import Qt

    long = "the checkpoint is not installed; put nodeforge-shapes.safetensors into " + "/very/long/folder" * 12
    solid, fail, _out = _fail_run(window, qtbot, message=long)
    window.show()
    label = window.status.message
    assert long in label.full_text and long in label.toolTip()
    assert label.elided() != " ".join(label.full_text.split()) and "…" in label.elided()
    assert window.problems.isHidden()
    qtbot.mouseClick(label, Qt.MouseButton.LeftButton)
    assert window.problems.isVisible() and window.problems.count() == 1
    assert long in window.problems.text(0) and f"node {fail}" in window.problems.text(0)
    window.view.centerOn(5000, 5000)
    window.problems.list.itemClicked.emit(window.problems.list.item(0))
    centre = window.view.mapToScene(window.view.viewport().rect().center())
    assert window.scene.nodes[fail].sceneBoundingRect().contains(centre)
    assert window.scene.selected_node_ids() == [fail]


# -- issue 13 item 2: every save path reports every failure ------------------------------------------
def test_save_refuses_text_that_cannot_be_encoded_naming_node_and_field(window, tmp_path):
    from tests.ui.helpers import add

    nid = add(window, "Prompt")
    window.model.nodes[nid].params["text"] = "a \ud800 cat"      # as a file could hold it (valid JSON)
    out = tmp_path / "bad.json"
    assert not window.save_to(out)
    assert not out.exists() and not list(tmp_path.iterdir())      # no file, no temporary left
    assert f"node {nid}" in window.last_error and "text" in window.last_error
    assert "U+D800" in window.last_error
    assert window.isWindowModified()                               # still unsaved


def test_save_reports_os_errors_and_unexpected_ones(window, tmp_path, monkeypatch):
    from tests.ui.helpers import add

    add(window, "SolidImage")
    (tmp_path / "file").write_text("x")
    assert not window.save_to(tmp_path / "file" / "inside.json")   # a folder that is a file
    assert "inside.json" in window.last_error and "File exists" in window.last_error   # mkdir of the folder
    window.last_error = None

    def broken(*_a, **_k):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr("nodeforge.ui.files.document.save_workflow", broken)
    assert not window.save_to(tmp_path / "ok.json")
    assert "disk on fire" in window.last_error


def test_typing_text_that_cannot_be_encoded_is_refused_naming_node_and_field(window):
    from tests.ui.helpers import add

    nid = add(window, "Prompt")
    before = window.stack.count()
    editor = window.scene.nodes[nid].panel.editors["text"]
    editor.on_edit("a \udc80 dog", None)                        # what the editor reports as typed
    assert window.stack.count() == before                        # not applied
    assert "a \udc80" not in window.model.nodes[nid].params.get("text", "")
    assert f"node {nid}" in window.last_error and "text" in window.last_error
    window.controller.set_title(nid, "bad \ud800")
    assert window.model.nodes[nid].title is None and "title" in window.last_error


def test_autosave_failure_shows_a_non_modal_notice_and_keeps_retrying(window, monkeypatch):
    from PySide6.QtCore import Qt

    from tests.ui.helpers import add

    add(window, "SolidImage")
    calls = []

    def full_disk(workflow):
        calls.append(1)
        raise OSError(28, "No space left on device")

    real = window.autosaver.save
    monkeypatch.setattr(window.autosaver, "save", full_disk)
    assert not window.autosave()
    notice = window.document.autosave_notice
    assert notice is not None and notice.isVisible()
    assert notice.windowModality() == Qt.WindowModality.NonModal
    assert "No space left" in notice.text()
    assert not window.autosave()                                  # tried again, one notice
    assert len(calls) == 2 and window.document.autosave_notice is notice
    assert window.document.autosave_timer.isActive()
    monkeypatch.setattr(window.autosaver, "save", real)
    assert window.autosave()
    assert window.document.autosave_failure is None
    assert window.autosaver.path.exists()


def test_autosave_of_unencodable_text_is_reported_not_raised(window):
    from tests.ui.helpers import add

    nid = add(window, "Prompt")
    window.model.nodes[nid].params["text"] = "\ud800"
    assert not window.autosave()
    assert f"node {nid}" in window.document.autosave_failure


# -- wires behind nodes (item 5) ---------------------------------------------------------------------
def test_a_wire_passing_behind_a_node_is_drawn_faintly_over_it_with_a_gap_at_its_ports(window, qtbot):
    """SolidImage -> PreviewOut runs straight through Invert's unconnected input port: drawn only
    behind Invert it would seem to plug into it."""
    from PySide6.QtGui import QColor

    from nodeforge.ui.canvas.edges import WireCrossing
    from tests.ui.helpers import add

    win = window
    solid = add(win, "SolidImage", 0, 0)
    invert = add(win, "Invert", 400, 0)
    out = add(win, "PreviewOut", 900, 0)
    win.controller.connect(solid, "image", out, "image")
    win.show()
    qtbot.waitUntil(lambda: win.scene.panels_pending() == 0)
    edge = win.scene.edges[(out, "image")]
    port = win.scene.nodes[invert].inputs["image"].scenePos()
    assert edge.path().contains(port) or abs(edge.path().pointAtPercent(0.5).y() - port.y()) < 1
    crossing = edge.crossing
    assert crossing.scene() is win.scene and crossing.zValue() > win.scene.nodes[invert].zValue()
    body = win.scene.nodes[invert].mapRectToScene(win.scene.nodes[invert].body_rect())
    on_wire = QPointF(body.center().x(), port.y())
    area = crossing.crossed()
    assert area.contains(on_wire)                      # drawn over Invert's body
    assert not area.contains(port)                     # but never over its port
    assert not area.contains(win.scene.nodes[solid].mapRectToScene(win.scene.nodes[solid].body_rect()).center())
    # it takes no clicks: what is under the cursor there is still Invert
    assert not any(isinstance(i, WireCrossing) for i in win.scene.items(on_wire))

    win.view.set_zoom(1.0)
    win.view.centerOn(on_wire)
    image = win.view.grab().toImage()
    at = win.view.mapFromScene(on_wire)
    off = win.view.mapFromScene(QPointF(on_wire.x(), on_wire.y() - 7))
    wire_px, body_px = QColor(image.pixel(at)), QColor(image.pixel(off))
    assert wire_px != body_px                          # the wire shows across the body
    wire_color = edge.pen().color()
    full = abs(wire_px.red() - wire_color.red()) + abs(wire_px.green() - wire_color.green()) + abs(
        wire_px.blue() - wire_color.blue())
    assert full > 30                                   # faintly, not at full strength

    # moving Invert away: nothing crossed, nothing drawn
    win.controller.move({invert: ((400, 0), (400, 400))})
    assert crossing.crossed().isEmpty()
    # removing the wire removes its overlay
    win.controller.disconnect(out, "image")
    assert crossing.scene() is None


# -- popups and quick add (item 4) ---------------------------------------------------------------------
def test_quick_add_ranks_exact_word_starts_first(real_registry):
    from nodeforge.ui.canvas.search import search

    titles = [s.title for s in search(real_registry, "lat")]
    assert titles.index("Empty Latent") < titles.index("Set Latent Mask")
    word_start = [t for t in titles if any(w.lower().startswith("lat") for w in t.split())]
    assert {"Empty Latent", "Set Latent Mask", "Upscale Latent", "Upscale Latent By"} <= set(word_start)
    assert titles[:len(word_start)] == word_start        # every word-start match above every other match
    assert len(titles) > len(word_start)                 # (there are others: fuzzy and category matches)
    assert [s.title for s in search(real_registry, "vae")][:2] == ["VAE Encode", "VAE Decode"]


def test_quick_add_near_the_screen_edges_stays_on_the_screen(window, qtbot):
    from PySide6.QtCore import QPoint
    from PySide6.QtGui import QGuiApplication

    area = QGuiApplication.primaryScreen().availableGeometry()
    popup = window.search
    for corner in (QPoint(area.right() - 5, area.bottom() - 5), QPoint(area.left() + 3, area.bottom() - 2),
                   QPoint(area.right() - 2, area.top() + 4)):
        popup.open_at(corner)
        qtbot.waitUntil(popup.isVisible)
        assert area.contains(popup.frameGeometry()), (corner, popup.frameGeometry(), area)
        popup.hide()
    popup.open_at(QPoint(area.left() + 50, area.bottom() - 10))
    assert popup.frameGeometry().bottom() <= area.bottom() and popup.y() < area.bottom() - 10  # opened upwards
    popup.hide()


def test_the_canvas_context_menu_near_the_bottom_right_corner_stays_on_the_screen(window, qtbot):
    from PySide6.QtCore import QPoint
    from PySide6.QtGui import QGuiApplication

    from nodeforge.ui.actions import context_menu

    area = QGuiApplication.primaryScreen().availableGeometry()
    menu = context_menu(window, window.acts, None, QPointF(0, 0))
    menu.popup(QPoint(area.right() - 3, area.bottom() - 3))
    qtbot.waitUntil(menu.isVisible)
    assert area.contains(menu.frameGeometry())
    menu.close()


# -- small things (item 12) ----------------------------------------------------------------------------
def _type_into(qtbot, spin, text):
    from PySide6.QtCore import Qt

    spin.lineEdit().selectAll()
    spin.lineEdit().setText(text)
    qtbot.keyClick(spin, Qt.Key.Key_Return)


@pytest.mark.parametrize("typed, became, words", [("0", 1, "steps: 0 is below the minimum, so it is 1"),
                                                  ("5000", 1000, "steps: 5000 is above the maximum, so it is 1000")])
def test_typing_a_number_out_of_range_says_it_was_clamped(window, qtbot, typed, became, words):
    from PySide6.QtWidgets import QToolTip

    from tests.ui.helpers import add

    window.show()
    nid = add(window, "Slow")
    spin = window.scene.nodes[nid].panel.editors["steps"].spin
    _type_into(qtbot, spin, typed)
    assert window.model.nodes[nid].params["steps"] == became and spin.lineEdit().text() == str(became)
    assert window.statusBar().currentMessage() == f"Slow: {words}"
    assert QToolTip.text() == words


def test_a_float_out_of_range_is_clamped_and_said_too(window, qtbot):
    from tests.ui.helpers import add

    window.show()
    nid = add(window, "Mix")
    spin = window.scene.nodes[nid].panel.editors["strength"].spin
    _type_into(qtbot, spin, "3")           # QDoubleSpinBox would refuse the key
    assert window.model.nodes[nid].params["strength"] == 1.0
    assert window.statusBar().currentMessage() == "Mix: strength: 3 is above the maximum, so it is 1"
    _type_into(qtbot, spin, "-0.5")
    assert window.model.nodes[nid].params["strength"] == 0.0
    assert "strength: -0.5 is below the minimum, so it is 0" in window.statusBar().currentMessage()
    _type_into(qtbot, spin, "0.25")        # in range: no message
    assert window.model.nodes[nid].params["strength"] == 0.25
    assert "0.25" not in window.statusBar().currentMessage()


def test_the_run_shortcut_has_one_name_everywhere(window):
    from PySide6.QtGui import QKeySequence

    from nodeforge.ui.actions import shortcuts_html

    run = window.acts.run
    shown = run.shortcut().toString(QKeySequence.SequenceFormat.NativeText)   # what the Run menu shows
    assert shown == "Ctrl+Enter"
    assert "Ctrl+Enter" in run.toolTip() and "Ctrl+Enter" in shortcuts_html()
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    assert "Ctrl+Enter" in readme
    for text in (run.toolTip(), shortcuts_html(), readme, window.images.empty.text()):
        assert "Ctrl+Return" not in text
    assert QKeySequence("Ctrl+Return") in run.shortcuts()    # the main keyboard's Enter key works too


def test_the_shortcuts_table_pads_its_columns(window, qtbot):
    from PySide6.QtGui import QTextDocument

    from nodeforge.ui.actions import SHORTCUTS, shortcuts_html

    doc = QTextDocument()
    doc.setHtml(shortcuts_html())
    doc.setTextWidth(900)
    table = doc.rootFrame().childFrames()[0]
    cell = table.cellAt(0, 0).format().toTableCellFormat()
    assert cell.rightPadding() >= 12 and table.rows() == len(SHORTCUTS)


# -- opening files: the stored viewport, fit (items 6 and 7) --------------------------------------------
def _far_graph(tmp_path, viewport, suffix=".png"):
    """Four nodes around (3000, 2000) in a file whose stored viewport looks elsewhere."""
    from PIL import Image
    from PIL.PngImagePlugin import PngInfo

    from nodeforge.core.workflow import Workflow

    wf = Workflow()
    a = wf.add("SolidImage", {"color": "green"})
    b = wf.add("Invert", {}, {"image": (a, "image")})
    c = wf.add("Slow", {}, {"image": (b, "image")})
    wf.add("PreviewOut", {}, {"image": (c, "image")})
    wf.ui = {"positions": {nid: [3000 + 300 * i, 2000 + 40 * i] for i, nid in enumerate(wf.nodes)},
             "viewport": viewport}
    path = tmp_path / f"far{suffix}"
    if suffix == ".png":
        info = PngInfo()
        info.add_text("workflow", wf.dumps())
        Image.new("RGB", (8, 8), "red").save(path, pnginfo=info)
    else:
        path.write_text(wf.dumps(), encoding="utf-8")
    return path


def _visible(win):
    return win.view.mapToScene(win.view.viewport().rect()).boundingRect()


@pytest.mark.parametrize("suffix", [".png", ".json"])
def test_opening_a_file_whose_viewport_misses_the_graph_fits_it(window, qtbot, tmp_path, suffix):
    path = _far_graph(tmp_path, {"center": [0, 0], "zoom": 1.0}, suffix)
    window.show()
    assert window.open_path(path)
    qtbot.waitUntil(lambda: _visible(window).contains(window.view.graph_rect()))
    assert not window.document.is_modified()


def test_opening_before_the_window_shows_fits_the_shown_window(qtbot, engine, tmp_path):
    """`nodeforge FILE.png` opens the file before the window is shown (and sized)."""
    from nodeforge.ui.main_window import MainWindow

    win = MainWindow(engine)
    win.confirm_close = False
    qtbot.addWidget(win)
    win.resize(1200, 800)
    assert win.open_path(_far_graph(tmp_path, {"center": [0, 0], "zoom": 1.0}))
    win.show()
    qtbot.waitUntil(lambda: _visible(win).contains(win.view.graph_rect()))
    from nodeforge.ui.canvas.view import READABLE_ZOOM

    assert win.view.zoom() >= READABLE_ZOOM          # fitted in the real window, not a 100-pixel one
    win.autosaver.discard()


def test_a_stored_viewport_that_shows_the_graph_is_kept(window, qtbot, tmp_path):
    path = _far_graph(tmp_path, {"center": [3450, 2060], "zoom": 0.9}, ".json")
    window.show()
    assert window.open_path(path)
    qtbot.waitUntil(lambda: abs(window.view.zoom() - 0.9) < 1e-6)
    centre = window.view.center()
    assert abs(centre.x() - 3450) < 2 and abs(centre.y() - 2060) < 2


# -- first start (item 11) -----------------------------------------------------------------------------
@pytest.fixture
def no_last_session(real_window):
    real_window.settings().remove("lastSession")
    yield
    real_window.settings().remove("lastSession")


def test_first_start_opens_the_txt2img_example_with_how_to_run_it(real_window, qtbot, no_last_session):
    from nodeforge.ui.app import open_start_graph

    win = real_window
    win.show()
    assert open_start_graph(win)
    types = {n.type for n in win.model.nodes.values()}
    assert {"CheckpointLoader", "UNetDenoise", "VAEDecode", "SaveImage"} <= types
    assert win.path is None and not win.document.is_modified()     # Save asks where: not over the example
    assert win.hint.isVisible() and "Ctrl+Enter" in win.hint.text() and "txt2img" in win.hint.text()
    qtbot.waitUntil(lambda: win.view.shows_graph())
    hint = win.hint.geometry()
    assert win.view.viewport().geometry().contains(hint) and hint.top() < 40     # one line at the top
    win.view.translate_view(300, 200)                                           # it stays when the canvas pans
    assert win.hint.geometry() == hint


def test_start_reopens_the_last_sessions_graph(real_window, qtbot, tmp_path, no_last_session):
    from nodeforge.paths import builtin_dir
    from nodeforge.ui.app import open_start_graph

    win = real_window
    win.show()
    saved = tmp_path / "mine.json"
    saved.write_text((builtin_dir("workflows") / "img2img.json").read_text(encoding="utf-8"), encoding="utf-8")
    assert win.open_path(saved)
    win.save_layout()                        # what closing the window does
    win.set_document(__import__("nodeforge").Workflow(), None)
    assert open_start_graph(win)
    assert win.path == saved and "mine.json" in win.hint.text() and "last session" in win.hint.text()
    saved.unlink()                           # gone since: the example instead
    assert open_start_graph(win) and win.path is None and "txt2img" in win.hint.text()


def test_the_hint_goes_when_the_user_runs_or_opens_another_graph(window, qtbot, tmp_path):
    from tests.ui.helpers import add

    window.show()
    window.show_hint("press <b>Ctrl+Enter</b>")
    assert window.hint.isVisible()
    solid, out = add(window, "SolidImage"), add(window, "PreviewOut", 300)
    window.controller.connect(solid, "image", out, "image")
    with qtbot.waitSignal(window.runner.runFinished, timeout=30_000):
        window.run()
    assert not window.hint.isVisible()
    window.show_hint("again")
    window.document.new_document()
    assert not window.hint.isVisible()
    window.show_hint("and the close button")
    window.hint.close_button.click()
    assert not window.hint.isVisible()


def _spread(win, width, height=0):
    from tests.ui.helpers import add

    win.set_document(__import__("nodeforge").Workflow(), None)
    add(win, "SolidImage", 0, 0)
    add(win, "PreviewOut", width, height)


def test_fit_never_goes_below_a_readable_zoom(window, qtbot):
    """A graph that fits at the readable zoom is shown whole; a larger one opens at the readable
    zoom from its top-left corner, to pan from (issue 31: fit never hides editors and ports)."""
    from nodeforge.ui.canvas.view import READABLE_ZOOM

    window.show()
    view = window.view
    qtbot.waitUntil(lambda: view.viewport().width() > 600)
    room = view.viewport().width()
    whole, panned = 0, 0
    for width in range(200, 4000, 150):
        _spread(window, width)
        view.fit()
        graph = view.graph_rect()
        assert view.zoom() >= READABLE_ZOOM - 1e-9, (width, view.zoom())
        assert not window.scene.low_detail
        if graph.width() * READABLE_ZOOM <= room:
            assert _visible(window).contains(graph), width                  # fit shows it all
            whole += 1
        else:
            visible = _visible(window)
            assert abs(view.zoom() - READABLE_ZOOM) < 1e-9
            assert visible.contains(graph.topLeft()) and visible.left() < graph.left()   # starts at the left
            assert not visible.contains(graph.topRight())                   # the rest is a pan away
            panned += 1
    assert whole >= 3 and panned >= 3        # both cases were met
    # the band just below the normal margin: fits tightly at 0.6, so 0.6 with a thin margin
    _spread(window, int((room - 40) / READABLE_ZOOM) - 260)
    view.fit()
    assert abs(view.zoom() - READABLE_ZOOM) < 1e-9 and _visible(window).contains(view.graph_rect())


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_each_example_fits_readable(real_window, qtbot, path):
    """At the default window size every example opens and fits at a readable zoom, whole where
    it fits at it (the larger ones, hires-fix and regions, from their top-left corner)."""
    from nodeforge.ui.canvas.view import READABLE_ZOOM

    win = real_window
    win.show()
    assert win.open_path(path)
    qtbot.waitUntil(lambda: win.scene.panels_pending() == 0)
    win.view.fit()
    graph, room = win.view.graph_rect(), win.view.viewport().rect()
    assert win.view.zoom() >= READABLE_ZOOM and not win.scene.low_detail
    if graph.width() * READABLE_ZOOM <= room.width() and graph.height() * READABLE_ZOOM <= room.height():
        assert _visible(win).contains(graph)
    else:
        assert _visible(win).contains(graph.topLeft())


def _niceness_of_a_run_thread(monkeypatch, value: str | None) -> tuple[int, int]:
    """(niceness of the calling thread, niceness a run worker thread gives itself)."""
    import os
    import threading

    from nodeforge.ui.run import runner

    if value is None:
        monkeypatch.delenv("NODEFORGE_RUN_NICE", raising=False)
    else:
        monkeypatch.setenv("NODEFORGE_RUN_NICE", value)
    seen: list[int] = []

    def work() -> None:
        runner._lower_thread_priority()
        seen.append(os.getpriority(os.PRIO_PROCESS, threading.get_native_id()))

    thread = threading.Thread(target=work)
    thread.start()
    thread.join()
    return os.getpriority(os.PRIO_PROCESS, threading.get_native_id()), seen[0]


@pytest.mark.skipif(not __import__("sys").platform.startswith("linux"), reason="per-thread niceness is Linux's")
def test_a_run_in_the_editor_keeps_the_priority_a_command_line_run_has(monkeypatch):
    """Issue 18.9: a niceness of 5 made an editor run lose the cores to every other busy process
    (76.9 s against 33.3 s for `nodeforge run` in benchmarks/bench_editor_run.py --load 1)."""
    ui_level, run_level = _niceness_of_a_run_thread(monkeypatch, None)
    assert run_level == ui_level
    ui_level, run_level = _niceness_of_a_run_thread(monkeypatch, "not a number")
    assert run_level == ui_level
    ui_level, run_level = _niceness_of_a_run_thread(monkeypatch, "3")
    assert run_level == max(ui_level, 3)   # asked for: lowered to that level
