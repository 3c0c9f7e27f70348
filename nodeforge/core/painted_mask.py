"""A mask painted in the editor, kept inside the workflow as a param value: a greyscale PNG as
base64 data (`data:image/png;base64,...`), white = 1 = repaint, at the picture's size.

The editor's mask editor writes it (`nodeforge/ui/dialogs/mask_editor.py`), LoadImage's MASK output
reads it (`nodes/images.py`), and the workflow file carries it, so a shared workflow keeps its mask
and no RGBA file is needed. Torch- and Qt-free: only the text form is checked here.
"""
from __future__ import annotations

import base64
import binascii

PREFIX = "data:image/png;base64,"
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def encode(png: bytes) -> str:
    """The param value for a PNG's bytes."""
    if not png.startswith(_PNG_SIGNATURE):
        raise ValueError("a painted mask must be PNG data")
    return PREFIX + base64.b64encode(png).decode("ascii")


def decode(value: str) -> bytes:
    """The PNG bytes of a param value; ValueError saying what is wrong (for the node's message)."""
    if not value.startswith(PREFIX):
        raise ValueError(f"not a painted mask (it should start with {PREFIX!r})")
    try:
        png = base64.b64decode(value[len(PREFIX):], validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("the painted mask's data is damaged (not base64)") from None
    if not png.startswith(_PNG_SIGNATURE):
        raise ValueError("the painted mask's data is not a PNG")
    return png


def check(value: str) -> str | None:
    """None when `value` is empty (no painted mask) or a well-formed one; else the reason."""
    if not value:
        return None
    try:
        decode(value)
    except ValueError as exc:
        return str(exc)
    return None


def summary(value: str) -> str:
    """How the canvas shows the param instead of its data: 'none' or 'painted (3 KB)'."""
    if not value:
        return "none"
    return f"painted ({max(1, round(len(value) * 3 / 4 / 1024))} KB)" if check(value) is None else "damaged"
