"""What a new user trips over in the first hour (issue 18): examples, error notes, problems,
popups, wires, fitting, first start, small things."""
from __future__ import annotations

import json

import pytest
from PySide6.QtCore import QPointF, QRectF

from nodeforge.paths import builtin_dir

EXAMPLES = sorted(builtin_dir("workflows").glob("*.json"))


@pytest.fixture(scope="module")
def real_registry():
    """The built-in pack's declarations (importing it loads no torch), so sizes are the real ones."""
    from nodeforge.core.registry import load_registry

    return load_registry(entry_points=False)


@pytest.fixture
def real_window(qtbot, real_registry, tmp_path):
    from nodeforge.core.engine import Engine
    from nodeforge.ui.main_window import MainWindow

    win = MainWindow(Engine(device="cpu", output_dir=tmp_path / "out", registry=real_registry))
    win.confirm_close = False
    qtbot.addWidget(win)
    win.resize(1500, 920)
    yield win
    win.runner.cancel()
    win.runner.wait(10)
    win.autosaver.discard()


def wires_through_bodies(win) -> list[tuple[str, str, str]]:
    """(consumer, input, node) for every wire that passes over a node body it does not connect."""
    found = []
    for (dst, name), edge in win.scene.edges.items():
        path = edge.path()
        points = [path.pointAtPercent(i / 200) for i in range(201)]
        for nid, item in win.scene.nodes.items():
            if nid in (dst, edge.src):
                continue
            body = item.mapRectToScene(item.body_rect()).adjusted(2, 2, -2, -2)
            if any(body.contains(p) for p in points):
                found.append((dst, name, nid))
    return found


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_examples_open_laid_out_and_unmodified(real_window, qtbot, path):
    win = real_window
    win.show()
    assert win.open_path(path)
    qtbot.waitUntil(lambda: win.scene.panels_pending() == 0)
    assert not win.nodes_overlap()
    assert win.stack.count() == 0                       # nothing was re-arranged
    assert not win.isWindowModified() and not win.document.is_modified()
    assert wires_through_bodies(win) == []               # no wire seems to plug into a node it skips
    qtbot.waitUntil(lambda: win.view.shows_graph())
