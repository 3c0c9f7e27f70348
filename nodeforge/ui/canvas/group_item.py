"""Groups: titled frames behind nodes. Dragging the title bar moves the frame and its nodes."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QColor, QFont, QPainter, QPen
from PySide6.QtWidgets import QGraphicsItem, QStyleOptionGraphicsItem, QWidget

if TYPE_CHECKING:  # pragma: no cover
    from nodeforge.ui.canvas.scene import GraphScene

TITLE = 30.0
GRIP = 14.0


class GroupItem(QGraphicsItem):
    def __init__(self, scene: "GraphScene", index: int, data: dict[str, Any]) -> None:
        super().__init__()
        self.graph = scene
        self.index = index
        self.data = data
        x, y, w, h = data.get("bounding", [0, 0, 400, 300])
        self.rect = QRectF(0, 0, w, h)
        self.setPos(x, y)
        self.setZValue(-10)
        self.setFlag(QGraphicsItem.GraphicsItemFlag.ItemIsSelectable, True)
        self._drag: str | None = None
        self._press = QPointF()
        self._start_pos = QPointF()
        self._start_rect = QRectF()
        self._members: list[Any] = []
        self._font = QFont()
        self._font.setPointSizeF(13)
        self._font.setBold(True)

    def boundingRect(self) -> QRectF:  # noqa: N802
        return self.rect.adjusted(-2, -2, 2, 2)

    def paint(self, painter: QPainter, option: QStyleOptionGraphicsItem, widget: QWidget | None = None) -> None:
        color = QColor(self.data.get("color") or "#3f5a7a")
        fill = QColor(color)
        fill.setAlpha(50)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.setPen(QPen(QColor("#f0b429") if self.isSelected() else color, 2))
        painter.setBrush(fill)
        painter.drawRoundedRect(self.rect, 6, 6)
        head = QColor(color)
        head.setAlpha(160)
        painter.fillRect(QRectF(1, 1, self.rect.width() - 2, TITLE - 1), head)
        painter.setFont(self._font)
        painter.setPen(QColor("#f2f2f2"))
        painter.drawText(QRectF(10, 0, self.rect.width() - 20, TITLE), Qt.AlignmentFlag.AlignVCenter,
                         self.data.get("title") or "Group")
        painter.setPen(QPen(color.lighter(150), 2))
        r = self.rect
        for i in (4, 8, 12):
            painter.drawLine(QPointF(r.right() - i, r.bottom() - 2), QPointF(r.right() - 2, r.bottom() - i))

    def scene_rect(self) -> QRectF:
        return self.rect.translated(self.pos())

    def mousePressEvent(self, event) -> None:  # noqa: N802
        p = event.pos()
        if event.button() != Qt.MouseButton.LeftButton:
            return super().mousePressEvent(event)
        if p.x() > self.rect.right() - GRIP and p.y() > self.rect.bottom() - GRIP:
            self._drag = "resize"
        elif p.y() < TITLE:
            self._drag = "move"
            self._members = self.graph.items_in_group(self)
        else:
            event.ignore()   # clicks inside the frame reach the canvas (box select)
            return
        self._press = event.scenePos()
        self._start_pos = self.pos()
        self._start_rect = QRectF(self.rect)
        self._member_starts = [(item, item.pos()) for item in self._members]
        self.setSelected(True)
        event.accept()

    def mouseMoveEvent(self, event) -> None:  # noqa: N802
        delta = event.scenePos() - self._press
        if self._drag == "move":
            self.setPos(self._start_pos + delta)
            for item, start in self._member_starts:
                item.setPos(start + delta)
        elif self._drag == "resize":
            self.prepareGeometryChange()
            self.rect = QRectF(0, 0, max(120, self._start_rect.width() + delta.x()),
                               max(80, self._start_rect.height() + delta.y()))
            self.update()

    def mouseReleaseEvent(self, event) -> None:  # noqa: N802
        if self._drag is not None:
            self.graph.group_dragged(self)
        self._drag = None
        self._members = []

    def mouseDoubleClickEvent(self, event) -> None:  # noqa: N802
        if event.pos().y() < TITLE:
            self.graph.request_group_rename(self.index)
        else:
            super().mouseDoubleClickEvent(event)

    def bounding(self) -> list[float]:
        r = self.scene_rect()
        return [round(r.x(), 1), round(r.y(), 1), round(r.width(), 1), round(r.height(), 1)]
