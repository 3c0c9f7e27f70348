"""Starting the editor: `nodeforge`, `nodeforge FILE`, `python -m nodeforge.ui`.

Nothing here imports torch: the node packs import it inside their run functions, so the window
opens fast and torch loads with the first run.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

from PySide6.QtCore import QStandardPaths, Qt
from PySide6.QtWidgets import QApplication, QMessageBox

from nodeforge.core.engine import Engine
from nodeforge.core.models import user_data_dir
from nodeforge.ui import theme
from nodeforge.ui.files.autosave import find_recoverable, load_recoverable
from nodeforge.ui.run.interrupt import TerminalInterrupt
from nodeforge.ui.main_window import MainWindow, register_window


def make_app(argv: list[str] | None = None) -> QApplication:
    app = QApplication.instance()
    if app is None:
        QApplication.setHighDpiScaleFactorRoundingPolicy(Qt.HighDpiScaleFactorRoundingPolicy.PassThrough)
        app = QApplication(argv if argv is not None else sys.argv[:1])
    app.setApplicationName("NodeForge")
    app.setOrganizationName("NodeForge")
    app.setApplicationDisplayName("NodeForge")
    app.setDesktopFileName("nodeforge")
    theme.apply(app)
    return app


def default_output_dir() -> Path:
    """Where the editor saves images: NODEFORGE_OUTPUT, else Pictures/NodeForge, else the data folder.

    Not the working folder: a desktop launcher starts programs in the home folder.
    """
    env = os.environ.get("NODEFORGE_OUTPUT")
    if env:
        return Path(env).expanduser()
    pictures = QStandardPaths.writableLocation(QStandardPaths.StandardLocation.PicturesLocation)
    if pictures:
        return Path(pictures) / "NodeForge"
    return user_data_dir() / "output"


def build_window(path: str | None = None, engine: Engine | None = None) -> MainWindow:
    win = MainWindow(engine or Engine(output_dir=default_output_dir()))
    win.restore_layout()
    register_window(win)
    if path:
        win.open_path(path)
    return win


def open_start_graph(win: MainWindow) -> bool:
    """Started without a file: the last session's graph, else the txt2img example, as ComfyUI
    opens with a working graph, and one line over the canvas on how to run it."""
    from html import escape

    from nodeforge.paths import builtin_dir
    from nodeforge.ui.actions import RUN_KEYS

    last = str(win.settings().value("lastSession", "") or "")
    if last and Path(last).is_file() and win.open_path(last):
        win.show_hint(f"Reopened <b>{escape(Path(last).name)}</b> from your last session · "
                      f"<b>{RUN_KEYS}</b> (or Run) runs it")
        return True
    example = builtin_dir("workflows") / "txt2img.json"
    if example.is_file() and win.document.open_example(example):
        win.show_hint(f"This is the <b>txt2img</b> example: press <b>{RUN_KEYS}</b> (or Run) to make an "
                      f"image · Tab adds a node · File › Examples has more")
        return True
    return False


def offer_recovery(win: MainWindow) -> bool:
    """After a crash, offer the autosaved graph (the newest one) back; True if it was taken."""
    found = find_recoverable()
    if not found:
        return False
    recovered = False
    newest = found[0]
    answer = QMessageBox.question(
        win, "Recover unsaved work?",
        f"NodeForge did not close cleanly. Recover the graph autosaved at {_when(newest.mtime)}"
        + (f" (from {newest.source})" if newest.source else "") + "?",
        QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No)
    for item in found:
        if item is newest and answer == QMessageBox.StandardButton.Yes:
            try:
                wf = load_recoverable(item)
            except Exception as exc:
                win.show_error("Cannot recover", str(exc))
                continue
            win.set_document(wf, None)
            win.stack.resetClean()   # recovered work is unsaved work
            win._update_title()
            recovered = True
        try:
            item.path.unlink()
        except OSError:
            pass
    return recovered


def _when(mtime: float) -> str:
    import time

    return time.strftime("%H:%M on %d %b", time.localtime(mtime))


def open_windows() -> list[MainWindow]:
    return [w for w in QApplication.topLevelWidgets() if isinstance(w, MainWindow) and w.isVisible()]


def main(path: str | None = None) -> int:
    from nodeforge.ui.platform_check import xcb_problem

    problem = xcb_problem()   # before QApplication: Qt aborts (status 134) when its plugin cannot load
    if problem:
        print(problem, file=sys.stderr)
        return 1
    app = make_app()
    win = build_window(path)
    win.show()
    if not path and not offer_recovery(win):
        open_start_graph(win)
    interrupt = TerminalInterrupt(app, open_windows)   # Ctrl+C in the terminal
    try:
        return app.exec()
    finally:
        interrupt.uninstall()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else None))
