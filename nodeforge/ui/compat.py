"""Work around a refcount bug of PySide6 6.12 / shiboken6 on Python < 3.12.

There, every call of a C++ method that returns void (`painter.setPen`, `item.setPos`, ...)
drops one reference to `None` without taking it (shiboken assumes the immortal singletons of
Python 3.12+), and some calls do the same to `True`/`False`. After a few thousand paints the
interpreter aborts with "Fatal Python error: none_dealloc". Python 3.12 made these objects
immortal by giving them a huge reference count; we do the same on older versions.
"""
from __future__ import annotations

import ctypes
import sys

_PINNED = False


def pin_singletons() -> None:
    global _PINNED
    if _PINNED or sys.version_info >= (3, 12) or sys.implementation.name != "cpython":
        return
    for obj in (None, True, False, NotImplemented, Ellipsis):
        # ob_refcnt is the first field of every CPython object.
        ctypes.c_ssize_t.from_address(id(obj)).value += 1 << 40
    _PINNED = True
