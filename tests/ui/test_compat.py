"""The installed PySide6 must not leak references to None on void calls.

PySide6 6.12.0 under Python < 3.12 drops one reference to None on every void C++ call and the
interpreter aborts with "none_dealloc" after a few thousand paints; pyproject.toml pins it below
6.12 there. This test notices if a broken build comes back (measuring a drift, not crashing).
"""
from __future__ import annotations

import sys

from PySide6.QtWidgets import QGraphicsRectItem


def test_void_calls_keep_none_references_balanced(qtbot):
    item = QGraphicsRectItem()
    before = sys.getrefcount(None)
    for _ in range(2_000):
        item.setPos(1, 2)
    assert abs(sys.getrefcount(None) - before) < 100
