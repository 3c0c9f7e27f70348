"""Screenshots of what artists expect beside the canvas (issue 31), one per named shot:

    xvfb-run -s "-screen 0 1600x1000x24" sh -c 'openbox & sleep 1; python docs/screenshots/take_artist.py SHOT...'

Shots: help-quick-add (quick add with the highlighted node's help), help-tooltip (a port's
description on hover), models (Models > Installed Models), mask (the mask editor on the inpaint example), gallery (six runs in the Images panel, then
gallery-compare: two of them compared). Each writes docs/screenshots/artist-SHOT.png of the whole 1600x1000 screen,
the editor built as a user starts it (built-in pack, default docks; no model is loaded).
"""
from __future__ import annotations

import os
import sys

from shots import ROOT, editor_window, run_shots, save_screen

from PySide6.QtCore import QPoint, QTimer  # noqa: E402
from PySide6.QtWidgets import QToolTip  # noqa: E402

EXAMPLES = os.path.join(ROOT, "workflows")


def grab(name: str) -> None:
    save_screen(f"artist-{name}.png")


def window(registry):
    return editor_window(registry)


def later(ms: int, *steps) -> None:
    """Run `steps` one after another, `ms` apart (the window manager and Qt settle between)."""
    if steps:
        QTimer.singleShot(ms, lambda: (steps[0](), later(ms, *steps[1:])))


def shot_help_quick_add(app, registry, done) -> None:
    """Tab, type 'denoise': the list, and under it what the highlighted node does and takes."""
    win = window(registry)
    win.open_path(os.path.join(EXAMPLES, "txt2img.json"))

    def search():
        centre = win.view.viewport().rect().center()
        win.search.open_at(win.view.viewport().mapToGlobal(centre - QPoint(300, 200)))
        win.search.edit.setText("denoise")

    later(700, search, lambda: grab("help-quick-add"), lambda: (win.search.hide(), win.close(), done()))


def shot_help_tooltip(app, registry, done) -> None:
    """Hovering UNet Denoise's positive input: its type and what it is for."""
    win = window(registry)
    win.open_path(os.path.join(EXAMPLES, "txt2img.json"))

    def hover():
        node = next(n for n, ref in win.model.nodes.items() if ref.type == "UNetDenoise")
        item = win.scene.nodes[node]
        win.view.set_zoom(1.0)
        win.view.centerOn(item)
        port = item.inputs["positive"]
        at = win.view.viewport().mapToGlobal(win.view.mapFromScene(port.scenePos()))
        QToolTip.showText(at + QPoint(8, 8), port.toolTip(), win.view.viewport())

    later(700, hover, lambda: grab("help-tooltip"), lambda: (win.close(), done()))


def shot_models(app, registry, done) -> None:
    """Models > Installed Models, with one LoRA of the user's beside the bundled models."""
    win = window(registry)
    win.open_path(os.path.join(EXAMPLES, "txt2img.json"))
    lora = win.engine.model_paths.make_user_folders() / "loras" / "watercolor-style.safetensors"
    lora.write_bytes(b"\0" * 151 * 1024)

    def show():
        dialog = win.show_models()
        dialog.move(win.geometry().center() - dialog.rect().center())

    later(700, show, lambda: grab("models"), lambda: (win.models_dialog.close(), win.close(), done()))


def shot_mask(app, registry, done) -> None:
    """The inpaint example's Load Image: the editor starts from the picture's transparent right half;
    a blob is painted on the left with a feathered brush, stored with OK, and the editor opened again
    beside the node, which shows the mask in red."""
    from PySide6.QtCore import QPointF

    win = window(registry)
    win.open_path(os.path.join(EXAMPLES, "inpaint.json"))
    node = next(n for n, ref in win.model.nodes.items() if ref.type == "LoadImage")

    def paint():
        dialog = win.edit_mask(node, "mask")
        canvas = dialog.canvas
        canvas.brush_size, canvas.feather = 14, 0.4
        for y in range(14, 52, 6):          # a rough blob, as a hand paints it
            for x in range(10 + (y % 12), 34, 3):
                canvas.dab(QPointF(x, y), erase=False)
        dialog.accept()

    def reopen():
        win.view.set_zoom(1.0)
        item = win.scene.nodes[node]
        win.view.centerOn(item.sceneBoundingRect().center() + QPointF(420, 0))
        dialog = win.edit_mask(node, "mask")
        dialog.size_spin.setValue(10)
        dialog.move(win.geometry().right() - dialog.width() - 300, 110)

    later(700, paint, reopen, lambda: grab("mask"), lambda: (win.close(), done()))


def shot_gallery(app, registry, done) -> None:
    """Six runs of the txt2img example on the demo model (seed control: increment), the Images panel
    as a grid of them with the second one selected; then two selected and compared with the slider."""
    win = window(registry)
    win.open_path(os.path.join(EXAMPLES, "txt2img.json"))
    sampler = next(n for n, ref in win.model.nodes.items() if ref.type == "UNetDenoise")
    win.controller.set_seed_control(sampler, "increment")
    win.batch.setValue(6)
    win.run()

    def when_done():
        if win.runner.running or win.runner.pending:
            QTimer.singleShot(500, when_done)
            return
        grid = win.images.grid
        grid.setCurrentRow(1)
        later(600, lambda: grab("gallery"), compare, lambda: grab("gallery-compare"),
              lambda: (win.images.compare_dialog.close(), win.close(), done()))

    def compare():
        grid = win.images.grid
        grid.setCurrentRow(0)
        grid.item(3).setSelected(True)
        dialog = win.images.compare_selected()
        dialog.resize(700, 560)
        dialog.move(win.geometry().center() - dialog.rect().center())
        dialog.view.split = 0.42

    QTimer.singleShot(1000, when_done)


SHOTS = {"gallery": shot_gallery, "mask": shot_mask, "help-quick-add": shot_help_quick_add, "help-tooltip": shot_help_tooltip, "models": shot_models}


if __name__ == "__main__":
    sys.exit(run_shots(SHOTS, sys.argv[1:]))
