"""The non-modal "... with notes" box: what an import or an export changed or left out, shown while
the user goes on editing (File > Open of another tool's file, File > Export to ComfyUI)."""
from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QMessageBox, QWidget

from nodeforge.ui.dialogs.held import hold

MAX_SHOWN = 30   # notes listed; the rest are counted


def show_notes_box(parent: QWidget, title: str, done: str, notes: list[str]) -> QMessageBox:
    """Show `done` ("x.json was imported"), how many notes there are and the first MAX_SHOWN of them as
    bullets, in a box that does not block the window and deletes itself when closed."""
    shown = notes[:MAX_SHOWN] + ([f"... and {len(notes) - MAX_SHOWN} more"] if len(notes) > MAX_SHOWN else [])
    box = QMessageBox(QMessageBox.Icon.Information, title,
                      f"{done}; {len(notes)} thing{'s' if len(notes) != 1 else ''} to know:\n\n"
                      + "\n".join(f"• {line}" for line in shown),
                      QMessageBox.StandardButton.Ok, parent)
    box.setWindowModality(Qt.WindowModality.NonModal)
    box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
    box.show()
    return box


def replace_notes_box(owner: object, attr: str, parent: QWidget, title: str, done: str,
                      notes: list[str]) -> QMessageBox:
    """Close the box `owner.<attr>` holds, show a new one there, and set `attr` back to None once
    that box is gone (hold: not when the old box is deleted after the new one opened, which let a
    third box stack on the second)."""
    old = getattr(owner, attr)
    if old is not None:
        old.close()
    box = show_notes_box(parent, title, done, notes)
    hold(owner, attr, box)
    return box
