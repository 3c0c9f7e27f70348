"""Small helpers the editor's tests share (fixtures live in conftest.py)."""
from __future__ import annotations

from pathlib import Path

PACKS = Path(__file__).parent / "packs"
DATA = Path(__file__).parent / "data"


def add(win, node_type, x=0.0, y=0.0):
    """Add a node through the controller, as the search popup does; returns its id."""
    return win.controller.add_node(node_type, (x, y))


def chain(win, *types, y=0):
    """Nodes of `types` in a row at height `y`, each one's image wired to the next; their ids."""
    ids = [add(win, t, 300 * i, y) for i, t in enumerate(types)]
    for a, b in zip(ids, ids[1:]):
        assert win.controller.connect(a, "image", b, "image")
    return ids


def new_window(qtbot, engine, size: tuple[int, int] | None = (1200, 800)):
    """The editor on `engine`, closing without asking, resized to `size` (None: as Qt makes it); not shown."""
    from nodeforge.ui.main_window import MainWindow

    win = MainWindow(engine)
    win.confirm_close = False
    qtbot.addWidget(win)
    if size is not None:
        win.resize(*size)
    return win


def close_window(win) -> None:
    """What each window fixture does after its test: stop the window's runs and drop its autosave."""
    win.runner.cancel()
    win.runner.wait(10)
    win.autosaver.discard()
