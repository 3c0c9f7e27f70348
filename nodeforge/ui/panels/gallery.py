"""The Images panel's thumbnail grid: this session's results or a folder's PNGs (a batch folder),
newest first, several selectable (two to compare); drag a thumbnail out to copy its file elsewhere.

A folder's images are listed as `RunImage` records holding a thumbnail (`FOLDER` as their node id);
`full_image` reads the file when the whole picture is needed, so a folder of 500 large images costs
500 thumbnails. What made a folder image is read from its PNG text chunks
(`nodeforge/core/png_text.py`), as `nodeforge run image.png` does.
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from PySide6.QtCore import QMimeData, QSize, Qt, QUrl
from PySide6.QtGui import QColor, QIcon, QImage, QImageReader, QPainter, QPixmap
from PySide6.QtWidgets import QAbstractItemView, QListView, QListWidget, QListWidgetItem, QWidget

from nodeforge.core.errors import WorkflowError
from nodeforge.core.png_text import PNG_PARAMETERS_KEY, PNG_WORKFLOW_KEY, read_png_text
from nodeforge.ui.run.runner import RunImage

THUMB = 88
FOLDER = ""            # the node id of a record read from a folder (no node made it in this session)
MAX_FOLDER_IMAGES = 500


def thumbnail(image: QImage, size: int = THUMB) -> QPixmap:
    """The image fitted in a size x size square on the panel's dark background."""
    square = QPixmap(size, size)
    square.fill(QColor("#111214"))
    if image.isNull():
        return square
    fitted = image.scaled(size, size, Qt.AspectRatioMode.KeepAspectRatio, Qt.TransformationMode.SmoothTransformation)
    painter = QPainter(square)
    painter.drawImage((size - fitted.width()) // 2, (size - fitted.height()) // 2, fitted)
    painter.end()
    return square


def read_thumbnail(path: Path, size: int = THUMB * 2) -> QImage:
    """A small copy of an image file, decoded at that size (fast for large files)."""
    reader = QImageReader(str(path))
    reader.setAutoTransform(True)
    full = reader.size()
    if full.isValid() and (full.width() > size or full.height() > size):
        reader.setScaledSize(full.scaled(size, size, Qt.AspectRatioMode.KeepAspectRatio))
    return reader.read()


def folder_records(folder: Path) -> list[RunImage]:
    """The PNGs in `folder` and its sub-folders, newest first, as records holding thumbnails."""
    files = [p for p in folder.rglob("*.png") if p.is_file()]
    files.sort(key=lambda p: (p.stat().st_mtime, p.name), reverse=True)
    return [RunImage(read_thumbnail(p), str(p), FOLDER) for p in files[:MAX_FOLDER_IMAGES]]


def png_chunks(path: str | None) -> dict[str, str]:
    """The text chunks of a PNG file ({} for another file, a missing one or a damaged one)."""
    if not path or not path.lower().endswith(".png"):
        return {}
    try:
        return read_png_text(Path(path).read_bytes(), Path(path))
    except (OSError, ValueError, WorkflowError):      # WorkflowError: a zTXt bomb, a file cut short
        return {}


def has_workflow(path: str | None) -> bool:
    return PNG_WORKFLOW_KEY in png_chunks(path)


def parameters_text(path: str | None) -> str:
    """The A1111-style parameters a PNG carries (how a folder image was made), or ''."""
    return png_chunks(path).get(PNG_PARAMETERS_KEY, "")


def full_image(record: RunImage) -> QImage:
    """The whole picture: a record that holds less than its file (a folder's, or an older result
    kept as a thumbnail) reads the file."""
    if record.path and (record.node_id == FOLDER or record.image.size() != QImageReader(record.path).size()):
        image = QImage(record.path)
        if not image.isNull():
            return image
    return record.image


def slimmed(record: RunImage) -> RunImage:
    """The record with a thumbnail instead of its picture when the file keeps the picture (older
    results: a hundred 1024x1024 images would hold 400 MB)."""
    big = record.image.width() > THUMB * 2 or record.image.height() > THUMB * 2
    if not big or not record.path or not Path(record.path).is_file():
        return record
    small = record.image.scaled(THUMB * 2, THUMB * 2, Qt.AspectRatioMode.KeepAspectRatio,
                                Qt.TransformationMode.SmoothTransformation)
    return replace(record, image=small)


def label(record: RunImage) -> str:
    if record.info.seed is not None:
        return f"seed {record.info.seed}"
    return Path(record.path).stem if record.path else f"{record.image.width()}×{record.image.height()}"


class GalleryGrid(QListWidget):
    """Thumbnails of records; each item's UserRole is its index in `records`."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.records: list[RunImage] = []
        self.setViewMode(QListView.ViewMode.IconMode)
        self.setMovement(QListView.Movement.Static)
        self.setResizeMode(QListView.ResizeMode.Adjust)
        self.setIconSize(QSize(THUMB, THUMB))
        self.setGridSize(QSize(THUMB + 14, THUMB + 24))
        self.setUniformItemSizes(True)
        self.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.setDragEnabled(True)
        self.setDragDropMode(QAbstractItemView.DragDropMode.DragOnly)
        self.setDefaultDropAction(Qt.DropAction.CopyAction)
        self.setWordWrap(False)
        self.setTextElideMode(Qt.TextElideMode.ElideMiddle)

    def set_records(self, records: list[RunImage]) -> None:
        self.records = list(records)
        self.clear()
        for index, record in enumerate(self.records):
            item = QListWidgetItem(QIcon(thumbnail(record.image)), label(record))
            item.setData(Qt.ItemDataRole.UserRole, index)
            item.setToolTip(record.path or "not saved (a preview)")
            item.setSizeHint(QSize(THUMB + 10, THUMB + 20))
            self.addItem(item)

    def selected_records(self) -> list[RunImage]:
        rows = sorted(self.row(item) for item in self.selectedItems())
        return [self.records[row] for row in rows]

    def record_at(self, row: int) -> RunImage | None:
        return self.records[row] if 0 <= row < len(self.records) else None

    def mimeData(self, items) -> QMimeData:  # noqa: N802 - Qt's name
        """Dragging thumbnails out: their files (a file manager copies them) and the first picture."""
        data = QMimeData()
        records = [self.records[self.row(item)] for item in items]
        urls = [QUrl.fromLocalFile(r.path) for r in records if r.path and Path(r.path).is_file()]
        if urls:
            data.setUrls(urls)
        if records:
            data.setImageData(full_image(records[0]))
        return data
