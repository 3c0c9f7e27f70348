"""Screenshots of the editor's run queue and Batch dialog (issue 17):

    xvfb-run -s "-screen 0 1600x1000x24" python docs/screenshots/take_queue_screenshots.py queue
    xvfb-run -s "-screen 0 1600x1000x24" python docs/screenshots/take_queue_screenshots.py batch

queue: docs/screenshots/queue-panel.png, the txt2img example with three done runs (thumbnails),
one failed (a checkpoint that is not installed), one running at step 13 of 20 and two pending.
batch: docs/screenshots/batch-dialog.png, the Batch dialog with cfg x sampler added from the canvas
(right-click a param: Add to Batch Grid) after the 6 jobs ran, showing the contact sheet.
Uses the numpy stand-in pack (tests/ui/packs/fake_sd.py), whose picture depends on the seed
only: here cfg and sampler are mixed into it, so the contact sheet's cells differ as a real
model's would. The running job is held inside UNet Denoise by an event until the picture is taken.
"""
from __future__ import annotations

import dataclasses
import os
import sys
import tempfile
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("NODEFORGE_HOME", tempfile.mkdtemp(prefix="nf-queue-shots-"))

from PySide6.QtCore import QTimer  # noqa: E402
from PySide6.QtGui import QGuiApplication  # noqa: E402

from nodeforge.core.engine import Engine  # noqa: E402
from nodeforge.core.registry import Registry, load_registry  # noqa: E402
from nodeforge.ui.app import make_app  # noqa: E402
from nodeforge.ui.main_window import MainWindow  # noqa: E402

OUT = ROOT / "docs" / "screenshots"
HOLD_SEED = 1234
GATE = threading.Event()


def registry() -> Registry:
    """The stand-in pack, with UNet Denoise stopping at step 13 of the run seeded HOLD_SEED and
    drawing a picture that depends on cfg and sampler too."""
    reg = load_registry(builtin=False, node_path=[ROOT / "tests" / "ui" / "packs" / "fake_sd.py"], entry_points=False)
    specs = []
    for spec in reg:
        if spec.type == "UNetDenoise":
            original = spec.run

            def held(ctx, seed, steps, **kw):  # noqa: ANN001, ANN003
                if seed == HOLD_SEED:
                    for i in range(1, 14):
                        ctx.progress(i, steps, None)
                    while not GATE.wait(0.02):
                        ctx.check_cancelled()
                if seed != HOLD_SEED:
                    seed = seed + 7 * int(kw["cfg"]) + 101 * len(kw["sampler"])
                return original(ctx, seed=seed, steps=steps, **kw)

            spec = dataclasses.replace(spec, run=held)
        specs.append(spec)
    return Registry(specs)


def grab(name: str, app) -> None:  # noqa: ANN001
    app.processEvents()
    path = OUT / name
    QGuiApplication.primaryScreen().grabWindow(0).save(str(path))
    print("saved", path)


def main(shot: str) -> int:
    app = make_app([sys.argv[0]])
    engine = Engine(device="cpu", output_dir=tempfile.mkdtemp(prefix="nf-queue-out-"), registry=registry())
    win = MainWindow(engine)
    win.confirm_close = False
    win.setGeometry(0, 0, 1600, 1000)
    win.show()
    win.open_path(ROOT / "tests" / "ui" / "data" / "txt2img.json")
    c = win.controller
    c.set_param("4", "width", 128)
    c.set_param("4", "height", 128)

    def finish() -> None:
        GATE.set()
        win.runner.cancel()
        win.runner.wait(10)
        win.close()
        app.quit()

    if shot == "queue":
        def queue_runs() -> None:
            win.view.fit()
            win.show_queue()
            c.set_seed_control("5", "increment")
            win.run(count=3)                                   # 42, 43, 44: done
            c.set_param("1", "checkpoint", "sd15-anime-v3.safetensors")
            win.run(count=1)                                   # not installed: fails
            c.set_param("1", "checkpoint", "nodeforge-shapes")
            c.set_param("5", "seed", HOLD_SEED)
            win.run(count=1)                                   # held at step 13
            win.run(count=2)                                   # waits
            taken = []

            def progressed(_nid, step, _total, _preview) -> None:  # noqa: ANN001
                job = win.runner.active
                if step == 13 and not taken and job is not None and job.workflow.nodes["5"].params["seed"] == HOLD_SEED:
                    taken.append(True)
                    QTimer.singleShot(700, lambda: (grab("queue-panel.png", app), finish()))

            win.runner.nodeProgress.connect(progressed)

        QTimer.singleShot(600, queue_runs)
    else:
        def open_batch() -> None:
            win.view.fit()
            dialog = win.add_to_grid("5", "cfg")
            dialog.set_values(0, "3,5,7")
            dialog.set_values(win.add_to_grid("5", "sampler").add_axis("5.sampler", ""), "euler,ddim")
            dialog.folder.setText(tempfile.mkdtemp(prefix="nf-batch-"))
            dialog.move(380, 80)
            dialog.resize(680, 840)
            dialog.batchFinished.connect(lambda _s: QTimer.singleShot(
                700, lambda: (grab("batch-dialog.png", app), finish())))
            dialog.run_batch()

        QTimer.singleShot(600, open_batch)
    return app.exec()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "queue"))
