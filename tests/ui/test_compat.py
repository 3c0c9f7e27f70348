"""Long sessions must not exhaust None's references through PySide's void-method bug."""
from __future__ import annotations

import sys

from PySide6.QtWidgets import QGraphicsRectItem

import nodeforge.ui  # noqa: F401  (pins the singletons)


def test_many_void_calls_do_not_free_none(qtbot):
    item = QGraphicsRectItem()
    for _ in range(20_000):
        item.setPos(1, 2)
        item.parentItem()
    assert sys.getrefcount(None) > 0
    assert None is None
