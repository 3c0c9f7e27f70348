"""Running from the editor: progress, results, cancel, errors, queued runs, bypass."""
from __future__ import annotations

import sys

from PySide6.QtWidgets import QLabel

from nodeforge.ui.run.runner import runnable_copy
from tests.ui.helpers import add, chain

TIMEOUT = 30_000


def test_a_run_shows_progress_states_and_result_images(window, qtbot):
    solid, slow, preview = chain(window, "SolidImage", "Slow", "PreviewOut")
    save = add(window, "SaveOut", 900, 300)
    window.controller.connect(slow, "image", save, "image")
    steps = []
    window.runner.nodeProgress.connect(lambda nid, s, t, img: steps.append((nid, s, t, img is not None)))
    with qtbot.waitSignal(window.runner.runFinished, timeout=TIMEOUT):
        window.acts.run.trigger()
    shown = [s[1] for s in steps]          # steps that arrive together are shown once, the latest
    assert shown == sorted(shown) and shown[-1] == 20
    assert all(s[0] == slow and s[2] == 20 and s[3] for s in steps)
    assert window.scene.nodes[slow].state == "done"
    assert window.scene.nodes[preview].images and window.scene.nodes[preview].images[0].width() == 32
    assert window.scene.nodes[save].images
    assert len(window.images.records) == 2
    assert any(r.path and r.path.endswith(".png") for r in window.images.records)
    assert "Done" in window.statusBar().currentMessage()
    # The same graph again: everything but the uncacheable save comes from the cache.
    with qtbot.waitSignal(window.runner.runFinished, timeout=TIMEOUT):
        window.run()
    assert window.scene.nodes[slow].state == "cached"
    assert window.scene.nodes[save].state == "done"


def test_cancel_stops_a_run(window, qtbot, gate):
    solid, slow, preview = chain(window, "SolidImage", "Slow", "PreviewOut")
    window.controller.set_param(slow, "hold", True)
    with qtbot.waitSignal(window.runner.nodeProgress, timeout=TIMEOUT):
        window.run()
    assert window.acts.cancel.isEnabled()
    assert window.scene.nodes[slow].state == "running"
    with qtbot.waitSignal(window.runner.runningChanged, timeout=TIMEOUT):
        window.acts.cancel.trigger()
    assert not window.runner.running
    assert not window.acts.cancel.isEnabled()
    assert window.scene.nodes[slow].state is None
    assert "cancelled" in window.statusBar().currentMessage()


def test_a_failing_node_is_highlighted_with_its_message(window, qtbot):
    solid, fail, preview = chain(window, "SolidImage", "Fail", "PreviewOut")
    window.controller.set_param(fail, "message", "the brush is dry")
    with qtbot.waitSignal(window.runner.runFailed, timeout=TIMEOUT):
        window.run()
    item = window.scene.nodes[fail]
    assert "the brush is dry" in item.error
    assert window.scene.nodes[solid].error is None
    assert "the brush is dry" in window.statusBar().currentMessage()
    window.controller.set_param(fail, "message", "x")   # an edit clears the highlight
    assert item.error is None


def test_validation_problems_highlight_every_node_at_fault(window, qtbot):
    a = add(window, "Invert")
    b = add(window, "PreviewOut", 300)
    c = add(window, "Slow", 0, 300)
    window.controller.connect(a, "image", b, "image")
    window.controller.connect(a, "image", c, "image")
    d = add(window, "PreviewOut", 300, 300)
    window.controller.connect(c, "image", d, "image")
    with qtbot.waitSignal(window.runner.runFailed, timeout=TIMEOUT):
        window.run()
    assert "image" in window.scene.nodes[a].error and "not connected" in window.scene.nodes[a].error
    assert window.scene.nodes[b].error is None


def test_editing_during_a_run_queues_the_next_run_on_a_fresh_copy(window, qtbot, gate):
    solid, slow, preview = chain(window, "SolidImage", "Slow", "PreviewOut")
    window.controller.set_param(slow, "hold", True)
    with qtbot.waitSignal(window.runner.nodeProgress, timeout=TIMEOUT):
        window.run()
    window.controller.set_param(solid, "color", "blue")
    window.controller.set_param(slow, "hold", False)
    window.run()
    assert len(window.runner.pending) == 1
    assert window.runner.current.nodes[solid].params["color"] == "red"   # the running copy is untouched
    finished = []
    window.runner.runFinished.connect(finished.append)
    gate.set()
    qtbot.waitUntil(lambda: len(finished) == 2, timeout=TIMEOUT)
    img = window.scene.nodes[preview].images[0]
    assert img.pixelColor(0, 0).blue() > 200     # the second run used the new colour


def test_bypassed_nodes_pass_their_input_through_and_muted_ones_do_not_run(window, registry, qtbot):
    solid, inv, preview = chain(window, "SolidImage", "Invert", "PreviewOut")
    other = add(window, "PreviewOut", 600, 300)
    window.controller.connect(inv, "image", other, "image")
    window.controller.toggle_flag([inv], "bypassed")
    wf = runnable_copy(window.model.snapshot(), registry)
    assert inv not in wf.nodes
    assert wf.nodes[preview].inputs == {"image": (solid, "image")}
    window.controller.toggle_flag([inv], "bypassed")
    window.controller.toggle_flag([inv], "muted")
    wf = runnable_copy(window.model.snapshot(), registry)
    assert set(wf.nodes) == {solid}
    window.controller.toggle_flag([inv], "muted")
    window.controller.toggle_flag([inv], "bypassed")
    with qtbot.waitSignal(window.runner.runFinished, timeout=TIMEOUT):
        window.run()
    img = window.scene.nodes[preview].images[0]
    assert img.pixelColor(0, 0).red() > 200       # red, not inverted


def test_the_editor_starts_without_torch(tmp_path):
    """In a fresh interpreter (other test modules may have imported torch in this one)."""
    import os
    import subprocess
    from pathlib import Path

    code = (
        "import sys\n"
        "from nodeforge.ui.app import make_app, build_window\n"
        "app = make_app(['nodeforge'])\n"
        "win = build_window()\n"
        "win.show(); app.processEvents()\n"
        "print('TORCH' if 'torch' in sys.modules else 'NO-TORCH')\n"
        "win.confirm_close = False; win.close()\n"
    )
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "NODEFORGE_HOME": str(tmp_path),
           "PYTHONPATH": str(root)}
    out = subprocess.run([sys.executable, "-c", code], cwd=root, env=env, capture_output=True, text=True,
                         timeout=120)
    assert "NO-TORCH" in out.stdout, out.stdout + out.stderr


def test_auto_queue_runs_after_a_change_and_queues_during_a_run(window, qtbot, gate):
    solid, slow, preview = chain(window, "SolidImage", "Slow", "PreviewOut")
    window.controller.set_param(slow, "hold", True)
    window.acts.auto.setChecked(True)
    try:
        with qtbot.waitSignal(window.runner.nodeProgress, timeout=TIMEOUT):
            window.controller.set_param(solid, "width", 64)      # starts a run by itself
        window.controller.set_param(solid, "color", "green")     # during the run: queued
        qtbot.waitUntil(lambda: len(window.runner.pending) == 1, timeout=TIMEOUT)
        assert window.runner.current.nodes[solid].params["color"] == "red"
        window.controller.set_param(slow, "hold", False)
        finished = []
        window.runner.runFinished.connect(finished.append)
        gate.set()
        qtbot.waitUntil(lambda: bool(finished) and not window.runner.running and not window.runner.pending,
                        timeout=TIMEOUT)
        assert window.scene.nodes[preview].images[0].pixelColor(0, 0).green() > 150
    finally:
        window.acts.auto.setChecked(False)


def test_the_image_panel_shows_the_seed_and_copies_it_on_click(window, qtbot):
    from PySide6.QtCore import Qt
    from PySide6.QtGui import QGuiApplication
    from PySide6.QtWidgets import QLabel

    solid, mix, preview = chain(window, "SolidImage", "Mix", "PreviewOut")
    window.controller.set_param(mix, "seed", 1234)
    with qtbot.waitSignal(window.runner.runFinished, timeout=TIMEOUT):
        window.run()
    (record,) = window.images.records
    assert record.info.seed == 1234 and record.info.params["strength"] == 0.5
    seed_label = window.images.findChild(QLabel, "seedLabel")
    assert "1234" in seed_label.text()
    qtbot.mouseClick(seed_label, Qt.MouseButton.LeftButton)
    assert QGuiApplication.clipboard().text() == "1234"


def test_the_status_bar_shows_device_memory_and_cache(window, qtbot):
    from nodeforge.ui.panels.status_bar import human_size

    assert human_size(4 * 2**20) == "4 MB" and human_size(9.4 * 2**30) == "9.4 GB" and human_size(512) == "512 B"
    chain(window, "SolidImage", "PreviewOut")
    with qtbot.waitSignal(window.runner.runFinished, timeout=TIMEOUT):
        window.run()
    window.status.update_stats()
    assert window.status.device_label.text().startswith("Device:")
    assert window.status.memory_label.text().startswith("Memory:")
    assert window.status.cache_label.text().startswith("Cache: 2 items")


def test_a_seed_set_to_randomize_changes_after_each_run_not_before(window, qtbot):
    solid, mix, preview = chain(window, "SolidImage", "Mix", "PreviewOut")
    window.controller.set_param(mix, "seed", 5)
    editor = window.scene.nodes[mix].panel.editors["seed"]
    editor.seedModeChosen.emit("increment")            # the dice button's menu
    assert window.model.workflow.ui["seed_control"] == {mix: "increment"}
    assert editor.dice.property("seedMode") == "increment"
    with qtbot.waitSignal(window.runner.runFinished, timeout=TIMEOUT):
        window.run()
    assert window.runner.current.nodes[mix].params["seed"] == 5      # the run used the old seed
    assert window.model.nodes[mix].params["seed"] == 6
    assert editor.spin.value() == 6
    window.scene.select_nodes([mix])
    (copy,) = window.edits.duplicate()
    assert window.model.node_ui("seed_control", copy) == "increment"
    editor.seedModeChosen.emit("fixed")
    assert window.model.workflow.ui["seed_control"] == {copy: "increment"}


def test_a_seed_param_is_found_by_its_declared_role_not_its_name(window, qtbot):
    solid, grain, preview = chain(window, "SolidImage", "Grain", "PreviewOut")
    window.controller.set_param(grain, "noise_seed", 70)
    panel = window.scene.nodes[grain].panel
    editor = panel.editors["noise_seed"]
    assert panel.seed_editor is editor and editor.dice is not None      # the dice button and its menu
    assert window.scene.nodes[solid].panel.seed_editor is None           # width and height are no seeds
    editor.seedModeChosen.emit("increment")
    with qtbot.waitSignal(window.runner.runFinished, timeout=TIMEOUT):
        window.run()
    assert window.runner.current.nodes[grain].params["noise_seed"] == 70
    assert window.model.nodes[grain].params["noise_seed"] == 71 and editor.spin.value() == 71
    (record,) = window.images.records
    assert record.info.seed == 70 and record.prompts == [("Grain", "film grain")]
    assert "70" in window.images.findChild(QLabel, "seedLabel").text()


def test_batch_count_queues_runs_with_advancing_seeds(window, qtbot, gate):
    solid, mix, preview = chain(window, "SolidImage", "Mix", "PreviewOut")
    window.controller.set_param(mix, "seed", 10)
    window.controller.set_seed_control(mix, "increment")
    window.batch.setValue(3)
    seeds = []
    window.runner.runningChanged.connect(
        lambda running: seeds.append(window.runner.current.nodes[mix].params["seed"]) if running else None)
    finished = []
    window.runner.runFinished.connect(finished.append)
    window.acts.run.trigger()
    qtbot.waitUntil(lambda: len(finished) == 3 and not window.runner.running, timeout=TIMEOUT)
    assert seeds == [10, 11, 12]
    assert window.model.nodes[mix].params["seed"] == 13
    assert window.status.queue_label.isHidden()


def test_cancel_drops_queued_runs(window, qtbot, gate):
    solid, slow, preview = chain(window, "SolidImage", "Slow", "PreviewOut")
    window.controller.set_param(slow, "hold", True)
    window.batch.setValue(3)
    with qtbot.waitSignal(window.runner.nodeProgress, timeout=TIMEOUT):
        window.run()
    assert len(window.runner.pending) == 2
    assert window.status.queue_label.text() == "Queue: 2"
    with qtbot.waitSignal(window.runner.runningChanged, timeout=TIMEOUT):
        window.cancel()
    assert window.runner.pending == [] and not window.runner.running


def test_an_image_opens_at_full_size_from_the_panel(window, qtbot):
    from nodeforge.ui.panels.image_panel import ImageView

    solid, preview = chain(window, "SolidImage", "PreviewOut")
    window.controller.set_param(solid, "width", 200)
    with qtbot.waitSignal(window.runner.runFinished, timeout=TIMEOUT):
        window.run()
    view = window.images.findChild(ImageView)
    viewer = view.open_viewer()
    assert not viewer.fit and viewer.label.pixmap().width() == 200      # 100%: every pixel
    viewer.close()


def test_a_half_built_branch_or_a_missing_pack_does_not_block_the_rest(window, registry, qtbot):
    solid, preview = chain(window, "SolidImage", "PreviewOut")
    add(window, "Invert", 0, 400)                          # its input is not connected
    wf = window.model.snapshot()
    wf.add("FancyUpscaler", {"scale": 2}, {"image": (solid, "image")})   # a pack that is not installed
    window.set_document(wf, None)
    assert set(runnable_copy(window.model.snapshot(), registry).nodes) == {solid, preview}
    with qtbot.waitSignal(window.runner.runFinished, timeout=TIMEOUT):
        window.run()
    assert window.scene.nodes[preview].images


def test_an_unknown_node_that_an_output_needs_is_reported(window, qtbot):
    wf = window.model.snapshot()
    up = wf.add("FancyUpscaler", {"scale": 2})
    out = wf.add("PreviewOut", {}, {"image": (up, "upscaled")})
    window.set_document(wf, None)
    with qtbot.waitSignal(window.runner.runFailed, timeout=TIMEOUT):
        window.run()
    assert "FancyUpscaler" in window.scene.nodes[up].error
    assert out in window.scene.nodes
