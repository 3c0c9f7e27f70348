"""Screenshots of the fixes for issue 18 (the editor's first hour), one per named shot:

    xvfb-run -s "-screen 0 1600x1000x24" python docs/screenshots/take_first_hour.py SHOT [SHOT...]

Shots: wires (a wire passing behind a node's unconnected port), clamp (0 typed into steps),
shortcuts (Help > Canvas and Shortcuts), run-menu (the run key's name), preview (a
run on the demo model: the step preview's colours are the decoded image's), png-open (a PNG
with a stale viewport is fitted), fit (readable zoom), first-start (the example and its hint). Each writes
docs/screenshots/first-hour-SHOT.png. Uses the built-in pack's declarations (no model is loaded).
"""
from __future__ import annotations

import os
import sys
import tempfile

from shots import ROOT, editor_window, run_shots, save_screen

from PySide6.QtCore import QPointF, QRect, QTimer  # noqa: E402

EXAMPLE = os.path.join(ROOT, "workflows", "txt2img.json")


def grab(win, name: str, rect: QRect | None = None) -> None:
    save_screen(f"first-hour-{name}.png", rect)


def window(app, registry):
    return editor_window(registry)


def shot_wires(app, registry, done) -> None:
    """The vae wire passes straight over a port it does not connect: it shows faintly over the
    node's body, with a gap at each port, so it cannot be read as plugged in."""
    win = window(app, registry)
    win.open_path(EXAMPLE)
    scene = win.scene
    vae = next(e for (dst, name), e in scene.edges.items() if name == "vae")
    point = vae.path().pointAtPercent(0.3)
    neg = next(n for n, node in win.model.nodes.items() if node.title == "negative")
    # A prompt node dropped over the wire: its clip input sits right on the vae wire.
    item = scene.nodes[neg]
    port = item.inputs["clip"].scenePos() - item.scenePos()
    win.controller.disconnect(neg, "clip")
    win.controller.move({neg: (win.model.position(neg), (point.x() - port.x(), point.y() - port.y()))})

    def later():
        win.view.set_zoom(1.0)
        win.view.centerOn(QPointF(point.x() + 60, point.y()))
        QTimer.singleShot(400, lambda: (grab(win, "wires", QRect(300, 250, 900, 520)), done()))

    QTimer.singleShot(600, later)


def shot_clamp(app, registry, done) -> None:
    """Typing 0 into steps: the field says it became 1, and so does the status bar."""
    from PySide6.QtCore import Qt
    from PySide6.QtTest import QTest

    win = window(app, registry)
    win.open_path(EXAMPLE)
    nid = next(n for n, node in win.model.nodes.items() if node.type == "UNetDenoise")
    item = win.scene.nodes[nid]

    def later():
        win.view.set_zoom(1.0)
        win.view.centerOn(item.sceneBoundingRect().center())
        spin = item.panel.editors["steps"].spin
        spin.setFocus()
        spin.lineEdit().selectAll()
        QTest.keyClicks(spin.lineEdit(), "0")
        QTest.keyClick(spin, Qt.Key.Key_Return)
        QTimer.singleShot(500, lambda: (grab(win, "clamp"), win.close(), done()))

    QTimer.singleShot(600, later)


def shot_shortcuts(app, registry, done) -> None:
    """Help > Canvas and Shortcuts: the key column is spaced from its descriptions."""
    from PySide6.QtWidgets import QMessageBox

    win = window(app, registry)
    win.open_path(EXAMPLE)

    def later():
        win.show_shortcuts()
        box = next(w for w in app.topLevelWidgets() if isinstance(w, QMessageBox) and w.isVisible())
        box.move(300, 150)
        QTimer.singleShot(400, lambda: (grab(win, "shortcuts", box.frameGeometry().adjusted(-10, -10, 10, 10)),
                                        box.close(), win.close(), done()))

    QTimer.singleShot(600, later)


def shot_run_menu(app, registry, done) -> None:
    """The Run menu names the run key as the README and Help do: Ctrl+Enter."""
    win = window(app, registry)
    win.open_path(EXAMPLE)
    bar = win.menuBar()
    action = next(a for a in bar.actions() if a.text() == "&Run")

    def later():
        bar.setActiveAction(action)
        QTimer.singleShot(400, lambda: (grab(win, "run-menu", QRect(0, 0, 520, 200)),
                                        action.menu().close(), win.close(), done()))

    QTimer.singleShot(600, later)


def shot_preview(app, registry, done) -> None:
    """A run on the demo model: the last step preview in UNet Denoise has the colours of the
    decoded image in Save Image (a green circle on black; the old linear map drew it grey)."""
    win = window(app, registry)
    win.open_path(EXAMPLE)
    positive = next(n for n, node in win.model.nodes.items() if node.title == "positive")
    win.controller.set_param(positive, "text", "a large green circle on a black background")
    denoise = next(n for n, node in win.model.nodes.items() if node.type == "UNetDenoise")
    save = next(n for n, node in win.model.nodes.items() if node.type == "SaveImage")

    def finished(*_):
        rect = win.scene.nodes[denoise].sceneBoundingRect().united(win.scene.nodes[save].sceneBoundingRect())
        win.view.fit(rect.adjusted(-20, -20, 20, 20))
        QTimer.singleShot(500, lambda: (grab(win, "preview"), win.close(), done()))

    win.runner.runFinished.connect(finished)
    QTimer.singleShot(600, win.run)


def shot_png_open(app, registry, done) -> None:
    """A NodeForge PNG whose stored viewport predates its positions (it looks at empty canvas far
    to the upper left): opening it fits the graph."""
    from PIL import Image
    from PIL.PngImagePlugin import PngInfo

    from nodeforge.core.workflow import load_workflow

    wf = load_workflow(EXAMPLE)
    wf.ui["viewport"] = {"center": [-2400, -1600], "zoom": 1.0}
    info = PngInfo()
    info.add_text("workflow", wf.dumps())
    png = os.path.join(tempfile.mkdtemp(), "stale-viewport.png")
    Image.new("RGB", (64, 64), (220, 40, 40)).save(png, pnginfo=info)
    win = window(app, registry)
    win.open_path(png)
    QTimer.singleShot(800, lambda: (grab(win, "png-open"), win.close(), done()))


def shot_fit(app, registry, done) -> None:
    """F on the txt2img example in a smaller window: fitted at the readable zoom (0.6, editors
    shown) since it fits there, not at the 0.5 a plain fit with margins would choose."""
    win = window(app, registry)
    win.setGeometry(0, 0, 1280, 800)
    win.open_path(EXAMPLE)

    def later():
        win.view.fit()
        QTimer.singleShot(500, lambda: (print("fit zoom", round(win.view.zoom(), 3)), grab(win, "fit", QRect(0, 0, 1280, 800)),
                                        win.close(), done()))

    QTimer.singleShot(700, later)


def shot_first_start(app, registry, done) -> None:
    """The first start: the txt2img example, and one line on how to run it."""
    from nodeforge.ui.app import open_start_graph

    win = window(app, registry)
    win.settings().remove("lastSession")
    open_start_graph(win)
    QTimer.singleShot(800, lambda: (grab(win, "first-start"), win.close(), done()))


SHOTS = {"png-open": shot_png_open, "fit": shot_fit, "first-start": shot_first_start, "preview": shot_preview, "wires": shot_wires, "clamp": shot_clamp, "shortcuts": shot_shortcuts, "run-menu": shot_run_menu}


if __name__ == "__main__":
    sys.exit(run_shots(SHOTS, sys.argv[1:]))
