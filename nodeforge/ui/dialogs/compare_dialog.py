"""Compare two images: a slider (the first image left of a divider you drag, the second right of
it, both fitted to the same rectangle) or side by side. Opened from the Images panel."""
from __future__ import annotations

from PySide6.QtCore import QPointF, QRectF, QSize, Qt
from PySide6.QtGui import QColor, QImage, QPainter, QPen
from PySide6.QtWidgets import QDialog, QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget


class CompareView(QWidget):
    """Paints the two images; `split` (0..1) is the divider's place in slider mode."""

    def __init__(self, first: QImage, second: QImage, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.first, self.second = first, second
        self.split = 0.5
        self.side_by_side = False
        self.setMinimumSize(360, 280)
        self.setCursor(Qt.CursorShape.SplitHCursor)

    def _fit(self, image: QImage, area: QRectF) -> QRectF:
        size = QSize(image.size())
        size.scale(area.size().toSize(), Qt.AspectRatioMode.KeepAspectRatio)
        return QRectF(area.x() + (area.width() - size.width()) / 2, area.y() + (area.height() - size.height()) / 2,
                      size.width(), size.height())

    def image_rect(self) -> QRectF:
        """Where both images are drawn in slider mode (the first image's aspect)."""
        return self._fit(self.first, QRectF(self.rect()))

    def divider_x(self) -> float:
        rect = self.image_rect()
        return rect.x() + rect.width() * self.split

    def paintEvent(self, event) -> None:  # noqa: N802 - Qt's name
        painter = QPainter(self)
        painter.fillRect(self.rect(), QColor("#111214"))
        painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
        if self.side_by_side:
            half = self.width() / 2
            painter.drawImage(self._fit(self.first, QRectF(0, 0, half - 2, self.height())), self.first)
            painter.drawImage(self._fit(self.second, QRectF(half + 2, 0, half - 2, self.height())), self.second)
            return
        rect = self.image_rect()
        x = self.divider_x()
        painter.save()
        painter.setClipRect(QRectF(rect.x(), rect.y(), x - rect.x(), rect.height()))
        painter.drawImage(rect, self.first)
        painter.setClipRect(QRectF(x, rect.y(), rect.right() - x, rect.height()))
        painter.drawImage(rect, self.second)
        painter.restore()
        painter.setPen(QPen(QColor(255, 255, 255, 220), 2))
        painter.drawLine(QPointF(x, rect.top()), QPointF(x, rect.bottom()))

    def _move_to(self, x: float) -> None:
        rect = self.image_rect()
        self.split = min(1.0, max(0.0, (x - rect.x()) / max(1.0, rect.width())))
        self.update()

    def mousePressEvent(self, event) -> None:  # noqa: N802
        if event.button() == Qt.MouseButton.LeftButton and not self.side_by_side:
            self._move_to(event.position().x())

    def mouseMoveEvent(self, event) -> None:  # noqa: N802
        if event.buttons() & Qt.MouseButton.LeftButton and not self.side_by_side:
            self._move_to(event.position().x())


class CompareDialog(QDialog):
    def __init__(self, first: QImage, second: QImage, names: tuple[str, str], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle(f"Compare: {names[0]} | {names[1]}")
        self.view = CompareView(first, second, self)
        layout = QVBoxLayout(self)
        row = QHBoxLayout()
        self.names = QLabel(f"left: {names[0]}    right: {names[1]}")
        self.names.setObjectName("panelCaption")
        row.addWidget(self.names, 1)
        self.mode_button = QPushButton("Side by Side")
        self.mode_button.setCheckable(True)
        self.mode_button.toggled.connect(self._mode)
        row.addWidget(self.mode_button)
        layout.addLayout(row)
        layout.addWidget(self.view, 1)
        hint = QLabel("Drag across the picture to move the divider.")
        hint.setObjectName("panelCaption")
        layout.addWidget(hint)
        width = max(first.width(), second.width())
        self.resize(min(1300, max(640, width + 40)), min(900, max(480, max(first.height(), second.height()) + 90)))

    def _mode(self, side_by_side: bool) -> None:
        self.view.side_by_side = side_by_side
        self.view.setCursor(Qt.CursorShape.ArrowCursor if side_by_side else Qt.CursorShape.SplitHCursor)
        self.view.update()
