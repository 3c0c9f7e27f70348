"""Ports, wires and reroute dots: the small items that connect nodes."""
from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QBrush, QColor, QPainter, QPainterPath, QPainterPathStroker, QPen
from PySide6.QtWidgets import QGraphicsItem, QGraphicsPathItem, QStyleOptionGraphicsItem, QWidget

from nodeforge.ui import theme
from nodeforge.ui.canvas.help_text import port_help

if TYPE_CHECKING:  # pragma: no cover
    from nodeforge.ui.canvas.node_item import NodeItem

PORT_RADIUS = 5.5
CROSSING_Z = 10.0        # above every node (0, 0.5 selected), below error notes (20)
CROSSING_OPACITY = 0.35
_layout_generation = [0]


def node_layout_changed() -> None:
    """A node moved, resized, appeared or went: every wire crossing recomputes at its next paint."""
    _layout_generation[0] += 1


class Hovered:
    """`hovered` follows the mouse over the item; `hover_changed()` shows it."""

    hovered = False

    def hoverEnterEvent(self, event) -> None:  # noqa: N802
        self.hovered = True
        self.hover_changed()

    def hoverLeaveEvent(self, event) -> None:  # noqa: N802
        self.hovered = False
        self.hover_changed()

    def hover_changed(self) -> None:  # pragma: no cover - each item says how it shows it
        raise NotImplementedError


class PortItem(Hovered, QGraphicsItem):
    """A typed input or output socket on a node. Drags from it are handled by the scene."""

    def __init__(self, node: "NodeItem", name: str, port_type: str, is_output: bool, optional: bool = False,
                 description: str = "") -> None:
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
        self.setToolTip(port_help(name, port_type, optional, description))

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

    def hover_changed(self) -> None:
        self.update()

    def anchor(self) -> QPointF:
        return self.scenePos()


def wire_path(start: QPointF, end: QPointF) -> QPainterPath:
    """A horizontal S-curve from an output to an input, like every node editor artists know."""
    path = QPainterPath(start)
    dx = max(abs(end.x() - start.x()) * 0.5, 40.0)
    path.cubicTo(QPointF(start.x() + dx, start.y()), QPointF(end.x() - dx, end.y()), end)
    return path


class EdgeItem(Hovered, QGraphicsPathItem):
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
        self.src: str | None = None
        self.crossing = WireCrossing(self)
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
        self.crossing.update()

    def set_points(self, start: QPointF, end: QPointF, via: QPointF | None = None) -> None:
        if via is None:
            self.setPath(wire_path(start, end))
        else:
            path = wire_path(start, via)
            path.connectPath(wire_path(via, end))
            self.setPath(path)
        self.crossing.path_changed()

    def shape(self) -> QPainterPath:
        stroker = QPainterPathStroker()
        stroker.setWidth(10)
        return stroker.createStroke(self.path())

    def itemChange(self, change, value):  # noqa: N802
        if change == QGraphicsItem.GraphicsItemChange.ItemSelectedHasChanged:
            self.update_pen()
        elif change == QGraphicsItem.GraphicsItemChange.ItemSceneHasChanged:
            # The crossing overlay lives in the same scene as its wire, as a top-level item.
            old = self.crossing.scene()
            if old is not None and old is not value:
                old.removeItem(self.crossing)
            if value is not None and self.crossing.scene() is not value:
                value.addItem(self.crossing)
        elif change == QGraphicsItem.GraphicsItemChange.ItemVisibleHasChanged:
            self.crossing.setVisible(bool(value))
        return super().itemChange(change, value)

    def hover_changed(self) -> None:
        self.update_pen()


class WireCrossing(QGraphicsItem):
    """Where a wire passes behind a node it does not connect: the wire drawn faintly over that
    node's body, with a gap around each port. So a wire that only passes behind a node can no
    longer seem to end at one of its ports (the vae wire into an unconnected "positive"), and the
    ports stay crisp on top.

    A top-level item above every node (CROSSING_Z) that takes no clicks and has no shape, so
    picking, rubber bands and drops see only the real wire below the nodes. Which nodes it
    crosses is read at paint time from the scene's index: a node moved over a wire repaints
    that area, and the crossing follows.
    """

    def __init__(self, edge: EdgeItem) -> None:
        super().__init__()
        self.edge = edge
        self.setZValue(CROSSING_Z)
        self.setAcceptedMouseButtons(Qt.MouseButton.NoButton)
        self.setAcceptHoverEvents(False)
        self._rect = QRectF()
        self._cache: tuple = (None, QPainterPath())   # (layout generation it was computed at, area)

    def path_changed(self) -> None:
        self.prepareGeometryChange()
        self._rect = self.edge.path().boundingRect().adjusted(-4, -4, 4, 4)
        self._cache = (None, QPainterPath())
        self.update()

    def boundingRect(self) -> QRectF:  # noqa: N802
        return self._rect

    def shape(self) -> QPainterPath:
        return QPainterPath()   # never hit: clicks go to the node or the wire underneath

    def crossed(self) -> QPainterPath:
        """The scene area where this wire is drawn over nodes: the bodies of the nodes it passes
        over (not its own two), less a disc around each of their ports."""
        scene = self.scene()
        area = QPainterPath()
        if scene is None or self._rect.isEmpty():
            return area
        if self._cache[0] == ("generation", _layout_generation[0]):
            return self._cache[1]   # panning and repainting: nothing moved, nothing to recompute
        from nodeforge.ui.canvas.node_item import NodeItem

        path = self.edge.path()
        ends = (self.edge.src, self.edge.dst)
        ports = QPainterPath()
        nodes = [(item, item.mapRectToScene(item.body_rect()))
                 for item in scene.items(self._rect, Qt.ItemSelectionMode.IntersectsItemBoundingRect)
                 if isinstance(item, NodeItem) and item.node_id not in ends and item.isVisible()]
        for item, body in nodes:
            if not path.intersects(body):
                continue
            area.addRoundedRect(body, 7, 7)
            for port in list(item.inputs.values()) + list(item.outputs.values()):
                if port.isVisible():
                    ports.addEllipse(port.scenePos(), PORT_RADIUS + 3.5, PORT_RADIUS + 3.5)
        if not ports.isEmpty():
            area = area.subtracted(ports)
        self._cache = (("generation", _layout_generation[0]), area)
        return area

    def paint(self, painter: QPainter, option: QStyleOptionGraphicsItem, widget: QWidget | None = None) -> None:
        area = self.crossed()
        if area.isEmpty():
            return
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.setClipPath(area)
        painter.setOpacity(CROSSING_OPACITY)
        painter.strokePath(self.edge.path(), self.edge.pen())


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
