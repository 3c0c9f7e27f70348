"""Screenshots of the editor fixes for issue 31 (items 4-7, 9-11), one per named shot:

    xvfb-run -s "-screen 0 1600x1000x24" sh -c "openbox & sleep 1; python docs/screenshots/take_second_hour.py [SHOT...]"

Each shot is a fresh 1600x1000 window with the default docks, built as
MainWindow(Engine(device="cpu", registry=load_registry(), output_dir=tempfile.mkdtemp())), and writes
docs/screenshots/second-hour-SHOT.png. Shots: validate, progress, status-error, missing-vae,
import-notes, visuals, same-image, inpaint.
"""
from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

from shots import ROOT, editor_window, save_screen

from PySide6.QtCore import QPoint, Qt  # noqa: E402
from PySide6.QtTest import QTest  # noqa: E402

from nodeforge.core.registry import load_registry  # noqa: E402
from nodeforge.ui.app import make_app  # noqa: E402
from nodeforge.ui.main_window import MainWindow  # noqa: E402
WORKFLOWS = ROOT / "workflows"
DATA = ROOT / "tests" / "interop" / "data"


def grab(name: str) -> None:
    QTest.qWait(400)
    save_screen(f"second-hour-{name}.png")


def window(registry):
    win = editor_window(registry, maximized=True)
    QTest.qWait(300)
    return win


def wait_for(condition, ms: int = 120_000) -> None:
    for _ in range(ms // 20):
        if condition():
            return
        QTest.qWait(20)
    raise TimeoutError(condition)


def open_example(win: MainWindow, name: str) -> None:
    win.document.open_example(WORKFLOWS / f"{name}.json")
    wait_for(lambda: win.scene.panels_pending() == 0)
    QTest.qWait(200)


def run_and_wait(win: MainWindow) -> None:
    win.acts.run.trigger()
    wait_for(lambda: win.runner.running)
    wait_for(lambda: not win.runner.running)


def shot_validate(registry) -> None:
    """Item 5: an output whose image input is not wired: Run refuses as `nodeforge validate` does."""
    win = window(registry)
    open_example(win, "txt2img")
    win.controller.add_node("Preview", (1380, 420))
    win.acts.run.trigger()
    wait_for(lambda: win.problems.count() > 0)
    win.show_problems()
    grab("validate")
    win.close()


def shot_progress(registry) -> None:
    """Item 7: the Queue panel names the node, its step and its place in the run."""
    win = window(registry)
    open_example(win, "txt2img")
    win.show_queue()
    win.acts.run.trigger()
    wait_for(lambda: win.runner.active is not None and win.runner.active.step >= 7)
    grab("progress")
    wait_for(lambda: not win.runner.running)
    win.close()


def shot_status_error(registry) -> None:
    """Item 7: an example titled by its file; a long error shortened in its paths, not its fix."""
    win = window(registry)
    open_example(win, "img2img")
    loader = next(nid for nid, node in win.model.nodes.items() if node.type == "CheckpointLoader")
    win.controller.set_param(loader, "checkpoint", "dreamshaper_8")
    run_and_wait(win)
    grab("status-error")
    win.close()


def shot_missing_and_notes(registry) -> None:
    """Items 4 and 7: the Missing models dialog alone (a VAE offered the checkpoints' VAEs), then the
    notes it leaves, without the mapped models and without --model-map."""
    win = window(registry)
    prompt = json.loads((DATA / "comfy-hires-api.json").read_text())
    prompt["4"]["inputs"]["ckpt_name"] = "friends-model-v3.safetensors"
    for nid in ("3", "11"):
        prompt[nid]["inputs"]["sampler_name"] = "dpmpp_2s_ancestral"
    prompt["20"] = {"class_type": "VAELoader", "inputs": {"vae_name": "vae-ft-mse-840000.safetensors"}}
    prompt["12"]["inputs"]["vae"] = ["20", 0]
    path = Path(tempfile.mkdtemp()) / "from-a-friend.json"
    path.write_text(json.dumps(prompt))
    win.open_path(path)
    dialog = win.document.missing_dialog
    wait_for(lambda: dialog.isVisible())
    grab("missing-vae")
    for (kind, name), combo in dialog.combos.items():
        if combo.count() > 1:
            combo.setCurrentIndex(1)
    dialog.remember.setChecked(False)
    dialog.accept()
    wait_for(lambda: win.document.import_notice is not None)
    grab("import-notes")
    win.document.import_notice.close()
    win.close()


def shot_visuals(registry) -> None:
    """Item 9: the device named before any run, an unchecked box that shows, a node quick-added at
    the corner lands inside the view, and the Queue docked beside Images with the graph whole."""
    win = window(registry)
    open_example(win, "txt2img")
    win.show_queue()
    QTest.qWait(300)
    vp = win.view.viewport()
    corner = QPoint(vp.width() - 30, vp.height() - 30)
    QTest.mouseMove(vp, corner)
    win.activateWindow()
    win.view.setFocus()
    QTest.keyClick(win.view, Qt.Key.Key_Tab)
    wait_for(win.search.isVisible)
    QTest.keyClicks(win.search.edit, "Grow Mask")
    QTest.keyClick(win.search.edit, Qt.Key.Key_Return)
    grab("visuals")
    win.close()


def shot_same_image(registry) -> None:
    """Items 6 and 11: a second run of the unchanged graph says it is the same image, and where it is."""
    win = window(registry)
    open_example(win, "txt2img")
    run_and_wait(win)
    run_and_wait(win)
    grab("same-image")
    win.close()


def shot_inpaint(registry) -> None:
    """Item 10: the inpaint example after a run: the source kept outside the mask, a red circle inside."""
    win = window(registry)
    open_example(win, "inpaint")
    run_and_wait(win)
    grab("inpaint")
    win.close()


SHOTS = {"validate": shot_validate, "progress": shot_progress, "status-error": shot_status_error,
         "missing-vae": shot_missing_and_notes, "visuals": shot_visuals, "same-image": shot_same_image,
         "inpaint": shot_inpaint}


def main(names: list[str]) -> int:
    app = make_app(["nodeforge"])
    app.setQuitOnLastWindowClosed(False)
    registry = load_registry()
    for name in names or list(SHOTS):
        SHOTS[name](registry)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
