"""Screenshots of the fixes for issue 18 (the editor's first hour), one per named shot:

    xvfb-run -s "-screen 0 1600x1000x24" python docs/screenshots/take_first_hour.py SHOT [SHOT...]

Shots: wires (a wire passing behind a node's unconnected port), more are added below. Each writes
docs/screenshots/first-hour-SHOT.png. Uses the built-in pack's declarations (no model is loaded).
"""
from __future__ import annotations

import os
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)
os.environ.setdefault("NODEFORGE_HOME", tempfile.mkdtemp(prefix="nf-shots-"))

from PySide6.QtCore import QPointF, QRect, QTimer  # noqa: E402
from PySide6.QtGui import QGuiApplication  # noqa: E402

from nodeforge.core.engine import Engine  # noqa: E402
from nodeforge.core.registry import load_registry  # noqa: E402
from nodeforge.ui.app import make_app  # noqa: E402
from nodeforge.ui.main_window import MainWindow  # noqa: E402

OUT = os.path.join(ROOT, "docs", "screenshots")
EXAMPLE = os.path.join(ROOT, "workflows", "txt2img.json")


def grab(win, name: str, rect: QRect | None = None) -> None:
    QGuiApplication.processEvents()
    shot = QGuiApplication.primaryScreen().grabWindow(0)
    if rect is not None:
        shot = shot.copy(rect)
    path = os.path.join(OUT, f"first-hour-{name}.png")
    shot.save(path)
    print("saved", path)


def window(app, registry) -> MainWindow:
    win = MainWindow(Engine(device="cpu", registry=registry, output_dir=tempfile.mkdtemp()))
    win.confirm_close = False
    win.setGeometry(0, 0, 1600, 1000)
    win.show()
    return win


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


SHOTS = {"wires": shot_wires}


def main(names: list[str]) -> int:
    app = make_app(["nodeforge"])
    registry = load_registry(entry_points=False)
    queue = list(names or SHOTS)

    def next_shot() -> None:
        if not queue:
            app.quit()
            return
        SHOTS[queue.pop(0)](app, registry, lambda: QTimer.singleShot(0, next_shot))

    QTimer.singleShot(0, next_shot)
    app.exec()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
