"""The run queue (Queue panel) and the Batch dialog, with the fast test pack (issue 17)."""
from __future__ import annotations

import json
from pathlib import Path

from PySide6.QtCore import QPointF, Qt
from PySide6.QtGui import QImage

from nodeforge.ui.actions import context_menu
from nodeforge.ui.run.runner import CANCELLED, DONE, FAILED, PENDING, RUNNING
from tests.ui.helpers import add, chain

TIMEOUT = 30_000


def states(win):
    return [job.state for job in win.runner.jobs]


def colour(image: QImage):
    c = image.pixelColor(0, 0)
    return c.red(), c.green(), c.blue()


def start_held(win, qtbot):
    """A graph whose run waits inside Slow until the test opens the gate; the run is started."""
    solid, slow, preview = chain(win, "SolidImage", "Slow", "PreviewOut")
    win.controller.set_param(slow, "hold", True)
    with qtbot.waitSignal(win.runner.nodeProgress, timeout=TIMEOUT):
        win.run(count=1)
    win.controller.set_param(slow, "hold", False)
    return solid, slow, preview


def test_the_queue_panel_shows_pending_running_done_and_failed_jobs_and_reorders(window, qtbot, gate):
    solid, slow, preview = start_held(window, qtbot)
    window.run(count=1)                                   # B: waits
    fail = add(window, "Fail", 300, 300)
    window.controller.set_param(fail, "message", "the brush is dry")
    out = add(window, "PreviewOut", 600, 300)
    window.controller.connect(solid, "image", fail, "image")
    window.controller.connect(fail, "image", out, "image")
    window.run(count=1)                                   # C: will fail
    panel = window.queue
    assert panel.toggleViewAction() in window.acts.view_menu.actions()
    assert states(window) == [RUNNING, PENDING, PENDING]
    assert panel.list.count() == 3 and panel.windowTitle() == "Queue (1 running, 2 pending)"
    a, b, c = window.runner.jobs
    assert not panel.row(a.id).bar.isHidden() and panel.row(b.id).bar.isHidden()
    assert "Running" in panel.row(a.id).state.text() and panel.row(b.id).state.text() == "Pending"
    # C moves before B with the Up button; the running job cannot move.
    panel.select(c.id)
    assert panel.up.isEnabled() and not panel.down.isEnabled()
    qtbot.mouseClick(panel.up, Qt.MouseButton.LeftButton)
    assert [j.id for j in window.runner.jobs] == [a.id, c.id, b.id]
    assert panel.selected_id() == c.id and [panel._id(i) for i in range(3)] == [a.id, c.id, b.id]
    assert window.runner.move_job(a.id, 1) is False
    finished = []
    window.runner.jobFinished.connect(lambda job: finished.append(job.id))
    gate.set()
    qtbot.waitUntil(lambda: len(finished) == 3, timeout=TIMEOUT)
    assert finished == [a.id, c.id, b.id]
    assert states(window) == [DONE, FAILED, DONE]
    assert c.error == "Fail, message: the brush is dry"       # the node by its title, as on the canvas
    assert panel.row(c.id).state.text() == "Failed: Fail, message: the brush is dry"
    assert panel.row(a.id).state.text().startswith("Done in")
    assert a.thumbnail is not None and a.thumbnail.width() == 32
    assert not panel.row(a.id).thumb.pixmap().isNull() and panel.row(a.id).thumb.pixmap().width() == 44
    assert panel.row(a.id).bar.isHidden()
    assert panel.windowTitle() == "Queue"
    # Double-click a done job: its image first in the Images panel.
    window.images.clear()
    item = panel.list.item(0)
    panel.list.itemDoubleClicked.emit(item)
    assert window.images.records and window.images.records[0].image is a.images[0].image
    # Clear finished empties the queue.
    qtbot.mouseClick(panel.clear_done, Qt.MouseButton.LeftButton)
    assert window.runner.jobs == [] and panel.list.count() == 0 and panel.empty.isVisibleTo(panel)


def test_cancel_one_pending_job_then_the_running_one_and_the_queue_goes_on(window, qtbot, gate):
    start_held(window, qtbot)
    window.run(count=3)
    running, b, c, d = window.runner.jobs
    panel = window.queue
    panel.select(c.id)
    qtbot.mouseClick(panel.cancel, Qt.MouseButton.LeftButton)      # a pending job leaves the queue
    assert [j.id for j in window.runner.jobs] == [running.id, b.id, d.id]
    assert window.status.queue_label.text() == "Queue: 2"
    assert window.queue.isHidden()
    qtbot.mouseClick(window.status.queue_label, Qt.MouseButton.LeftButton)   # the count opens the panel
    assert not window.queue.isHidden()
    finished = []
    window.runner.jobFinished.connect(lambda job: finished.append((job.id, job.state)))
    panel.select(running.id)
    qtbot.mouseClick(panel.cancel, Qt.MouseButton.LeftButton)      # the running one is cancelled
    qtbot.waitUntil(lambda: len(finished) == 3, timeout=TIMEOUT)
    assert finished == [(running.id, CANCELLED), (b.id, DONE), (d.id, DONE)]
    assert panel.row(running.id).state.text() == "Cancelled"
    assert window.status.queue_label.isHidden()


def test_clear_pending_keeps_the_running_job(window, qtbot, gate):
    start_held(window, qtbot)
    window.run(count=2)
    assert states(window) == [RUNNING, PENDING, PENDING]
    qtbot.mouseClick(window.queue.clear_pending, Qt.MouseButton.LeftButton)
    assert states(window) == [RUNNING]
    assert not window.queue.clear_pending.isEnabled()
    with qtbot.waitSignal(window.runner.jobFinished, timeout=TIMEOUT):
        gate.set()
    assert states(window) == [DONE]


def test_a_job_queued_before_an_edit_runs_the_graph_as_it_was_queued(window, qtbot, gate):
    solid, slow, preview = start_held(window, qtbot)
    window.run(count=1)                                   # red, queued while the first runs
    window.controller.set_param(solid, "color", "blue")   # the canvas stays editable
    window.controller.set_param(solid, "width", 64)
    window.run(count=1)                                   # blue
    first, red, blue = window.runner.jobs
    assert red.workflow.nodes[solid].params["color"] == "red"
    gate.set()
    qtbot.waitUntil(lambda: states(window) == [DONE, DONE, DONE], timeout=TIMEOUT)
    assert colour(red.thumbnail) == (220, 40, 40) and red.thumbnail.width() == 32
    assert colour(blue.thumbnail) == (40, 90, 230) and blue.thumbnail.width() == 64
    assert window.model.nodes[solid].params["color"] == "blue"


# -- the Batch dialog -------------------------------------------------------------------------------
def solid_graph(win, out="PreviewOut"):
    solid, mix, output = chain(win, "SolidImage", "Mix", out)
    return solid, mix, output


def test_the_batch_dialog_builds_the_exact_job_list_for_a_grid_and_a_zip(window, qtbot):
    solid, mix, _ = solid_graph(window)
    dialog = window.open_batch()
    qtbot.addWidget(dialog)
    assert dialog.isVisible() and not dialog.isModal()
    assert dialog.summary.text().startswith("1 job · no axis yet")
    dialog.add_axis(f"{solid}.color", "red,green")
    dialog.add_axis(f"{solid}.width", "16..32..16")
    assert [j.overrides_json() for j in dialog.jobs()] == [
        {f"{solid}.color": "red", f"{solid}.width": 16}, {f"{solid}.color": "red", f"{solid}.width": 32},
        {f"{solid}.color": "green", f"{solid}.width": 16}, {f"{solid}.color": "green", f"{solid}.width": 32}]
    assert dialog.summary.text() == "4 jobs (2 × 2)" and dialog.run_button.text() == "Run 4 Jobs"
    dialog.mode.setCurrentIndex(dialog.mode.findData("zip"))
    assert [j.overrides_json() for j in dialog.jobs()] == [
        {f"{solid}.color": "red", f"{solid}.width": 16}, {f"{solid}.color": "green", f"{solid}.width": 32}]
    assert dialog.summary.text() == "2 jobs (2 together)"
    # A count with increment seeds: every zipped pair three times, the seed counting up from the graph's.
    window.controller.set_param(mix, "seed", 7)
    dialog.count.setValue(3)
    dialog.seed_policy.setCurrentIndex(dialog.seed_policy.findText("increment"))
    jobs = dialog.jobs()
    assert [(j.overrides_json()[f"{solid}.color"], j.overrides_json()[f"{mix}.seed"]) for j in jobs] == [
        ("red", 7), ("red", 8), ("red", 9), ("green", 7), ("green", 8), ("green", 9)]
    assert dialog.summary.text() == "6 jobs (2 together × 3)"
    # A zip of unequal lengths is refused, with the reason, before anything runs.
    dialog.set_values(1, "16,24,32")
    assert not dialog.run_button.isEnabled()
    assert "same number of values" in dialog.summary.text()
    dialog.set_values(1, "8000")
    assert not dialog.run_button.isEnabled() and "width" in dialog.summary.text()


def param_scene_pos(item, name):
    rect = next(r for r, p in item._param_rows() if p.name == name)
    return item.mapToScene(rect.center())


def test_add_to_grid_on_a_param_opens_the_dialog_with_that_param_and_its_value(window, qtbot):
    solid, mix, _ = solid_graph(window)
    window.controller.set_param(mix, "strength", 0.25)
    item = window.scene.nodes[mix]
    menu = context_menu(window, window.acts, item, param_scene_pos(item, "strength"))
    (grid,) = [a for a in menu.actions() if a.objectName() == "addToGrid"]
    assert grid.text() == "Add “strength” to Batch Grid"
    grid.trigger()
    dialog = window.batch_dialog
    qtbot.addWidget(dialog)
    assert dialog.isVisible()
    assert dialog.axis_rows() == [(f"{mix}.strength", "0.25")]
    # A second param of another node adds a row; the same param again does not.
    solid_item = window.scene.nodes[solid]
    next(a for a in context_menu(window, window.acts, solid_item, param_scene_pos(solid_item, "color")).actions()
         if a.objectName() == "addToGrid").trigger()
    next(a for a in context_menu(window, window.acts, item, param_scene_pos(item, "strength")).actions()
         if a.objectName() == "addToGrid").trigger()
    assert dialog.axis_rows() == [(f"{mix}.strength", "0.25"), (f"{solid}.color", "red")]
    assert dialog.summary.text() == "1 job (1 × 1)"
    # On the node's title there is no param: no such entry.
    header = item.mapToScene(QPointF(20, 10))
    assert not [a for a in context_menu(window, window.acts, item, header).actions() if a.objectName() == "addToGrid"]


def test_a_2x2_grid_runs_through_the_queue_and_ends_with_a_contact_sheet_of_4_cells(window, qtbot, tmp_path):
    solid, mix, save = solid_graph(window, "SaveOut")
    window.controller.set_param(save, "prefix", "grid")
    dialog = window.open_batch(f"{solid}.color", "red,green")
    qtbot.addWidget(dialog)
    dialog.add_axis(f"{solid}.width", "64,128")
    dialog.folder.setText(str(tmp_path / "grid"))
    with qtbot.waitSignal(dialog.batchFinished, timeout=TIMEOUT) as finished:
        qtbot.mouseClick(dialog.run_button, Qt.MouseButton.LeftButton)
        assert not window.queue.isHidden()
        assert len(window.runner.jobs) == 4
        window.controller.set_param(solid, "color", "blue")    # editing meanwhile changes no job
    sheet = finished.args[0]
    jobs = window.runner.jobs
    assert [j.state for j in jobs] == [DONE] * 4
    assert [j.label for j in jobs] == [f"Batch 1/4: {solid}.color=red, {solid}.width=64",
                                       f"Batch 2/4: {solid}.color=red, {solid}.width=128",
                                       f"Batch 3/4: {solid}.color=green, {solid}.width=64",
                                       f"Batch 4/4: {solid}.color=green, {solid}.width=128"]
    assert [(colour(j.thumbnail), j.thumbnail.width()) for j in jobs] == [
        ((220, 40, 40), 64), ((220, 40, 40), 128), ((40, 200, 80), 64), ((40, 200, 80), 128)]
    out = tmp_path / "grid"
    assert sheet == out / "contact_sheet.png" and sheet.is_file()
    assert sorted(p.name for p in out.glob("grid_*.png")) == [f"grid_0000{n}.png" for n in (1, 2, 3, 4)]
    lines = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    assert [(r["job"], r["status"]) for r in lines[1:]] == [(n, "done") for n in (1, 2, 3, 4)]
    assert json.loads((out / "batch.json").read_text())["grid"][0]["values"] == ["red", "green"]
    # The folder is a batch `nodeforge batch DIR/batch.json --out DIR --resume` recognises as its own.
    from nodeforge.batch import load_spec, plan_batch

    assert plan_batch(load_spec(out / "batch.json"), window.registry).fingerprint == lines[0]["batch"]
    layout = dialog.last.layout
    assert len(layout.cells) == 4
    assert layout.column_labels == [f"{solid}.color=red", f"{solid}.color=green"]
    assert layout.row_labels == [f"{solid}.width=64", f"{solid}.width=128"]
    image = QImage(str(sheet))
    x0, y0, x1, y1 = layout.cells[3]          # green, 64 px, centred in its 128 px cell
    c = image.pixelColor((x0 + x1) // 2, (y0 + y1) // 2)
    assert (c.red(), c.green(), c.blue()) == (40, 200, 80)
    assert not dialog.sheet_label.pixmap().isNull() and dialog.sheet_scroll.isVisibleTo(dialog)
    assert window.images.records[0].path == str(sheet)
    # Issue 31.2: each job's image is listed under the batch folder, where the file is, not under the
    # deleted staging folder it was first written to.
    listed = [Path(r.path) for r in window.images.records[1:5]]
    assert sorted(p.name for p in listed) == [f"grid_0000{n}.png" for n in (1, 2, 3, 4)]
    assert all(p.parent == out and p.is_file() for p in listed), listed
    assert "4 done" in dialog.progress.text() or "Contact sheet" in dialog.progress.text()
    assert not list((tmp_path / "out").glob("*.png"))     # the batch wrote only into its folder


def test_a_preview_only_grid_keeps_each_first_image_with_its_workflow_and_a_second_run_gets_a_new_folder(
        window, qtbot, tmp_path):
    from nodeforge.core.png_text import read_png_text

    solid, mix, _ = solid_graph(window)
    dialog = window.open_batch(f"{solid}.color", "red,blue")
    qtbot.addWidget(dialog)
    dialog.folder.setText(str(tmp_path / "b"))
    for folder in ("b", "b-2"):
        with qtbot.waitSignal(dialog.batchFinished, timeout=TIMEOUT):
            dialog.run_batch()
        pngs = sorted((tmp_path / folder).glob("preview_*.png"))
        assert [p.name for p in pngs] == ["preview_00001.png", "preview_00002.png"]
        embedded = json.loads(read_png_text(pngs[1].read_bytes())["workflow"])
        assert embedded["nodes"][solid]["params"]["color"] == "blue"


def test_a_right_click_on_a_param_editor_offers_add_to_batch_grid(window, qtbot):
    """Through the real event path: a context-menu event on the canvas over the cfg editor."""
    from PySide6.QtGui import QContextMenuEvent
    from PySide6.QtWidgets import QApplication, QMenu

    solid, mix, _ = solid_graph(window)
    window.show()
    qtbot.waitExposed(window)
    item = window.scene.nodes[mix]
    item.ensure_panel()
    window.view.centerOn(item)
    editor = item.panel.editors["seed"]
    centre = item.proxy.mapToScene(QPointF(editor.geometry().center()))
    pos = window.view.mapFromScene(centre)
    event = QContextMenuEvent(QContextMenuEvent.Reason.Mouse, pos, window.view.viewport().mapToGlobal(pos))
    QApplication.sendEvent(window.view.viewport(), event)
    menu = next(m for m in window.findChildren(QMenu) if m.isVisible())
    (grid,) = [a for a in menu.actions() if a.objectName() == "addToGrid"]
    assert grid.text() == "Add “seed” to Batch Grid"
    menu.hide()
    grid.trigger()
    qtbot.addWidget(window.batch_dialog)
    assert window.batch_dialog.axis_rows() == [(f"{mix}.seed", "0")]


def test_only_the_newest_finished_jobs_keep_full_size_images_the_rest_keep_a_thumbnail(
        window, qtbot, monkeypatch):
    import nodeforge.ui.run.runner as runner_module

    monkeypatch.setattr(runner_module, "KEEP_IMAGES", 2)
    solid, mix, _ = solid_graph(window)
    window.controller.set_param(solid, "width", 256)
    window.controller.set_seed_control(mix, "increment")
    window.run(count=4)
    qtbot.waitUntil(lambda: states(window) == [DONE] * 4, timeout=TIMEOUT)
    assert [len(job.images) for job in window.runner.jobs] == [0, 0, 1, 1]
    assert [job.thumbnail.width() for job in window.runner.jobs] == [128] * 4
    assert window.runner.jobs[3].images[0].image.width() == 256


def test_a_batch_job_cancelled_in_the_queue_is_left_out_and_the_core_resumes_just_that_one(
        window, qtbot, gate, tmp_path):
    from nodeforge.batch import load_spec, plan_batch, run_batch

    solid, slow, save = chain(window, "SolidImage", "Slow", "SaveOut")
    window.controller.set_param(slow, "hold", True)
    dialog = window.open_batch(f"{solid}.color", "red,green,blue")
    qtbot.addWidget(dialog)
    dialog.folder.setText(str(tmp_path / "b"))
    with qtbot.waitSignal(window.runner.nodeProgress, timeout=TIMEOUT):
        dialog.run_batch()
    first, second, third = window.runner.jobs
    assert window.runner.cancel_job(third.id)
    with qtbot.waitSignal(dialog.batchFinished, timeout=TIMEOUT) as finished:
        gate.set()
    assert [j.state for j in window.runner.jobs] == [DONE, DONE]
    assert len(dialog.last.layout.cells) == 2 and finished.args[0].is_file()
    summary = run_batch(plan_batch(load_spec(tmp_path / "b" / "batch.json"), window.registry), tmp_path / "b",
                        engine=window.engine, resume=True)
    assert (summary.resumed, summary.ran, summary.done, summary.failed) == (2, 1, 3, 0)
    assert sorted(p.name for p in (tmp_path / "b").glob("test_*.png")) == [
        "test_00001.png", "test_00002.png", "test_00003.png"]


def test_delete_in_the_queue_panel_cancels_the_selected_job_not_the_selected_nodes(window, qtbot, gate):
    solid, slow, preview = start_held(window, qtbot)
    window.run(count=1)
    running, waiting = window.runner.jobs
    window.scene.select_nodes([solid, slow])
    window.show()
    window.show_queue()
    qtbot.waitExposed(window)
    window.activateWindow()
    window.queue.list.setFocus()
    qtbot.waitUntil(lambda: window.queue.list.hasFocus(), timeout=TIMEOUT)
    window.queue.select(waiting.id)
    window.acts.delete.trigger()
    assert [j.id for j in window.runner.jobs] == [running.id]
    assert solid in window.model.nodes and slow in window.model.nodes


def test_delete_with_the_focus_in_another_panel_leaves_the_canvas_alone(window, qtbot):
    solid = add(window, "SolidImage")
    window.scene.select_nodes([solid])
    window.show()
    qtbot.waitExposed(window)
    window.activateWindow()
    window.problems.show()
    window.problems.list.setFocus()
    qtbot.waitUntil(lambda: window.problems.list.hasFocus(), timeout=TIMEOUT)
    window.acts.delete.trigger()
    assert solid in window.model.nodes
    window.view.setFocus()
    qtbot.waitUntil(lambda: window.view.hasFocus(), timeout=TIMEOUT)
    window.acts.delete.trigger()
    assert solid not in window.model.nodes
