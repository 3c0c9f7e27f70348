"""What the take_*.py screenshot scripts share: the checkout on sys.path, a throwaway
NODEFORGE_HOME, the editor window as a user starts it, a grab of the screen, and the loop that
takes named shots one after another in one QApplication.

Import it first (before PySide6 and nodeforge): `from shots import ROOT, OUT, editor_window, save_screen, run_shots`.
"""
from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("NODEFORGE_HOME", tempfile.mkdtemp(prefix="nf-shots-"))
OUT = ROOT / "docs" / "screenshots"

from PySide6.QtCore import QRect, QTimer  # noqa: E402
from PySide6.QtGui import QGuiApplication  # noqa: E402

from nodeforge.core.engine import Engine  # noqa: E402
from nodeforge.core.registry import load_registry  # noqa: E402
from nodeforge.ui.app import make_app  # noqa: E402
from nodeforge.ui.main_window import MainWindow  # noqa: E402


def save_screen(filename: str, rect: QRect | None = None) -> None:
    """The whole screen (or `rect` of it) as docs/screenshots/FILENAME."""
    QGuiApplication.processEvents()
    shot = QGuiApplication.primaryScreen().grabWindow(0)
    if rect is not None:
        shot = shot.copy(rect)
    path = OUT / filename
    shot.save(str(path))
    print("saved", path)


def editor_window(registry, maximized: bool = False) -> MainWindow:
    """A 1600x1000 editor on the CPU with a throwaway output folder, shown."""
    win = MainWindow(Engine(device="cpu", registry=registry, output_dir=tempfile.mkdtemp()))
    win.confirm_close = False
    win.setGeometry(0, 0, 1600, 1000)
    win.showMaximized() if maximized else win.show()
    return win


def run_shots(shots: dict[str, Callable], names: list[str]) -> int:
    """Take the named shots (all when none is named) one after another: each is called as
    shot(app, registry, done) and calls done() when its window is closed."""
    app = make_app(["nodeforge"])
    app.setQuitOnLastWindowClosed(False)   # one window per shot
    registry = load_registry(entry_points=False)
    queue = list(names or shots)

    def next_shot() -> None:
        if not queue:
            app.quit()
            return
        shots[queue.pop(0)](app, registry, lambda: QTimer.singleShot(0, next_shot))

    QTimer.singleShot(0, next_shot)
    app.exec()
    return 0
