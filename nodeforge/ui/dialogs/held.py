"""The attribute that holds a window's one open non-modal dialog (a notes box, Compare) and forgets
it when that dialog is deleted: only while it still holds that dialog, since an old one replaced by
a newer one is deleted after the newer one opened."""
from __future__ import annotations

from PySide6.QtWidgets import QWidget


def hold(owner: object, attr: str, dialog: QWidget) -> QWidget:
    """Set `owner.<attr>` to `dialog`, and back to None when `dialog` is destroyed if it still holds it."""
    setattr(owner, attr, dialog)
    dialog.destroyed.connect(lambda *_: getattr(owner, attr) is dialog and setattr(owner, attr, None))
    return dialog
