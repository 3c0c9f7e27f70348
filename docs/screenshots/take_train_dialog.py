"""Screenshot of Run > Train LoRA… (issue 32, item 4) during a real run:

    xvfb-run -s "-screen 0 1600x1000x24" sh -c 'openbox & sleep 1; python docs/screenshots/take_train_dialog.py'

Twelve generated pictures of stars (a shape the bundled nodeforge-shapes model cannot draw) with
their captions, a LoRA on nodeforge-shapes, 120 steps with a sample every 20 ("a red star on a blue
background", seed 0): grabbed at step 100 or later with the progress bar, the loss curve and the
last sample, then cancelled (the checkpoint stays). Writes docs/screenshots/train-dialog.png (the
dialog only). Takes a minute or two on two CPU cores.
"""
from __future__ import annotations

import tempfile
from pathlib import Path

from shots import OUT, editor_window, run_shots

from PySide6.QtCore import QTimer  # noqa: E402
from PySide6.QtGui import QGuiApplication  # noqa: E402


def shot_train(app, registry, done) -> None:
    from nodeforge.training import data

    folder = Path(tempfile.mkdtemp(prefix="nf-train-shot-")) / "stars"
    data.write_folder(folder, 12, seed=0, shapes=("star",))
    win = editor_window(registry)
    dialog = win.open_train(folder)
    dialog.move(120, 60)
    dialog.steps.setValue(120)
    dialog.every.setValue(20)
    job = dialog.start()

    def check() -> None:
        if dialog.progress.value() >= 100 and dialog.sample_path and dialog.sample_path.endswith("100.png"):
            QGuiApplication.processEvents()
            dialog.grab().save(str(OUT / "train-dialog.png"))
            print("saved", OUT / "train-dialog.png")
            job.ended.connect(lambda *_: (win.close(), done()))
            dialog.cancel()
        elif not job.running():
            print("the run ended first:", dialog.status.text())
            win.close()
            done()
        else:
            QTimer.singleShot(250, check)

    QTimer.singleShot(250, check)


if __name__ == "__main__":
    raise SystemExit(run_shots({"train": shot_train}, []))
