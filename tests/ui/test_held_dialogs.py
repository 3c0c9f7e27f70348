"""The non-modal boxes a window holds one of (import and export notes, Compare): a new one replaces
the one before, never stacks on it, also once the one before has been deleted."""
from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtCore import QCoreApplication, QEvent
from PySide6.QtWidgets import QApplication, QMessageBox


def _import_notes(win, name):
    win.document._show_import_notes(Path(name), [f"{name}: a note"])
    return "Imported with notes", lambda: win.document.import_notice


def _export_notes(win, name):
    win.document.exporter.show_notes(Path(name), "ComfyUI workflow", [f"{name}: a note"])
    return "Exported with notes", lambda: win.document.exporter.notice


def _compare(win, name):
    from PySide6.QtGui import QColor, QImage

    from nodeforge.ui.run.runner import RunImage

    image = QImage(8, 8, QImage.Format.Format_RGB32)
    image.fill(QColor("#2050e0"))
    win.images.compare(RunImage(image, f"/{name}-a.png", "1"), RunImage(image, f"/{name}-b.png", "1"))
    return "Compare:", lambda: win.images.compare_dialog


def _shown(title):
    return [w for w in QApplication.topLevelWidgets() if w.isVisible() and w.windowTitle().startswith(title)]


def _says(box) -> str:
    return box.windowTitle() + (box.text() if isinstance(box, QMessageBox) else "")


@pytest.mark.parametrize("show", [_import_notes, _export_notes, _compare], ids=["import", "export", "compare"])
def test_a_third_box_replaces_the_second_after_the_first_is_deleted(window, show):
    show(window, "first.json")
    title, held = show(window, "second.json")      # closes the first, which is deleted later
    second = held()
    QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
    assert held() is second                           # the first's deletion did not forget the second
    show(window, "third.json")
    boxes = _shown(title)
    assert len(boxes) == 1 and "third.json" in _says(boxes[0]) and held() is boxes[0]
    boxes[0].close()
    QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
    assert held() is None and _shown(title) == []
