"""Small helpers the editor's tests share (fixtures live in conftest.py)."""
from __future__ import annotations

from pathlib import Path

PACKS = Path(__file__).parent / "packs"
DATA = Path(__file__).parent / "data"


def add(win, node_type, x=0.0, y=0.0):
    """Add a node through the controller, as the search popup does; returns its id."""
    return win.controller.add_node(node_type, (x, y))
