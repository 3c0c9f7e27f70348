"""Ports, wires and reroute dots: the small items that connect nodes."""
from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QBrush, QColor, QPainter, QPainterPath, QPainterPathStroker, QPen
from PySide6.QtWidgets import QGraphicsItem, QGraphicsPathItem, QStyleOptionGraphicsItem, QWidget

from nodeforge.ui import theme

if TYPE_CHECKING:  # pragma: no cover
    from nodeforge.ui.node_item import NodeItem

PORT_RADIUS = 5.5


class PortItem(QGraphicsItem):
    """A typed input or output socket on a node. Drags from it are handled by the scene."""

    def __init__(self, node: "NodeItem", name: str, port_type: str, is_output: bool, optional: bool = False) -> None:
        super().__init__(node)
        self.node = node
        self.name = name
        self.port_type = port_type
        self.is_output = is_output
        self.optional = optional
        self.connected = False
        self.hovered = False
        self.setAcceptHoverEvents(True)
        self.setCursor(Qt.CursorShape.CrossCursor)
        self.setZValue(2)
        self.setToolTip(f"{name}: {port_type}" + (" (optional)" if optional else ""))

    @property
    def node_id(self) -> str:
        return self.node.node_id

    def boundingRect(self) -> QRectF:  # noqa: N802 - Qt's name
        r = PORT_RADIUS + 5
        return QRectF(-r, -r, 2 * r, 2 * r)

    def paint(self, painter: QPainter, option: QStyleOptionGraphicsItem, widget: QWidget | None = None) -> None:
        if option.levelOfDetailFromTransform(painter.worldTransform()) < 0.3:
            return   # too small to see or hit
        color = theme.port_color(self.port_type)
        r = PORT_RADIUS + (1.5 if self.hovered else 0)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.setPen(QPen(color.darker(160), 1.4))
        painter.setBrush(QBrush(color) if self.connected or self.hovered else QBrush(QColor(theme.NODE_BG)))
        if self.connected or self.hovered:
            painter.drawEllipse(QPointF(0, 0), r, r)
        else:
            painter.setPen(QPen(color, 2))
            painter.drawEllipse(QPointF(0, 0), r - 1, r - 1)

    def hoverEnterEvent(self, event) -> None:  # noqa: N802
        self.hovered = True
        self.update()

    def hoverLeaveEvent(self, event) -> None:  # noqa: N802
        self.hovered = False
        self.update()

    def anchor(self) -> QPointF:
        return self.scenePos()


def wire_path(start: QPointF, end: QPointF) -> QPainterPath:
    """A horizontal S-curve from an output to an input, like every node editor artists know."""
    path = QPainterPath(start)
    dx = max(abs(end.x() - start.x()) * 0.5, 40.0)
    path.cubicTo(QPointF(start.x() + dx, start.y()), QPointF(end.x() - dx, end.y()), end)
    return path


class EdgeItem(QGraphicsPathItem):
    """The wire into one input: from the source output, through a reroute dot if it has one."""

    def __init__(self, dst: str, input_name: str, port_type: str) -> None:
        super().__init__()
        self.dst = dst
        self.input_name = input_name
        self.port_type = port_type
        self.setZValue(-1)
        self.setFlag(QGraphicsItem.GraphicsItemFlag.ItemIsSelectable, True)
        self.setAcceptHoverEvents(True)
        self.hovered = False
        self.set_type(port_type)

    def set_type(self, port_type: str) -> None:
        self.port_type = port_type
        self.update_pen()

    def update_pen(self) -> None:
        color = theme.port_color(self.port_type)
        width = 3.2 if self.isSelected() or self.hovered else 2.2
        if self.isSelected():
            color = color.lighter(140)
        self.setPen(QPen(color, width, Qt.PenStyle.SolidLine, Qt.PenCapStyle.RoundCap))

    def set_points(self, start: QPointF, end: QPointF, via: QPointF | None = None) -> None:
        if via is None:
            self.setPath(wire_path(start, end))
        else:
            path = wire_path(start, via)
            path.connectPath(wire_path(via, end))
            self.setPath(path)

    def shape(self) -> QPainterPath:
        stroker = QPainterPathStroker()
        stroker.setWidth(10)
        return stroker.createStroke(self.path())

    def itemChange(self, change, value):  # noqa: N802
        if change == QGraphicsItem.GraphicsItemChange.ItemSelectedHasChanged:
            self.update_pen()
        return super().itemChange(change, value)

    def hoverEnterEvent(self, event) -> None:  # noqa: N802
        self.hovered = True
        self.update_pen()

    def hoverLeaveEvent(self, event) -> None:  # noqa: N802
        self.hovered = False
        self.update_pen()


class RerouteItem(QGraphicsItem):
    """A dot that a wire passes through. Drag to move; Shift+drag pulls a new wire from it."""

    RADIUS = 7.0

    def __init__(self, rid: str, port_type: str) -> None:
        super().__init__()
        self.rid = rid
        self.port_type = port_type
        self.setFlag(QGraphicsItem.GraphicsItemFlag.ItemIsMovable, True)
        self.setFlag(QGraphicsItem.GraphicsItemFlag.ItemIsSelectable, True)
        self.setFlag(QGraphicsItem.GraphicsItemFlag.ItemSendsScenePositionChanges, True)
        self.setZValue(1)
        self.setToolTip("Reroute: drag to move, Shift+drag to wire another input from here")

    def boundingRect(self) -> QRectF:  # noqa: N802
        r = self.RADIUS + 2
        return QRectF(-r, -r, 2 * r, 2 * r)

    def paint(self, painter: QPainter, option: QStyleOptionGraphicsItem, widget: QWidget | None = None) -> None:
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        color = theme.port_color(self.port_type)
        painter.setPen(QPen(QColor(theme.SELECTED) if self.isSelected() else color.darker(170), 2))
        painter.setBrush(color)
        painter.drawEllipse(QPointF(0, 0), self.RADIUS, self.RADIUS)

    def itemChange(self, change, value):  # noqa: N802
        if change == QGraphicsItem.GraphicsItemChange.ItemScenePositionHasChanged and self.scene() is not None:
            self.scene().reroute_moved(self)
        return super().itemChange(change, value)
