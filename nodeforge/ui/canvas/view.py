"""The canvas view: grid, pan (middle drag, Space+drag), zoom to cursor, fit, box select, drops."""
from __future__ import annotations

import math
from typing import Any

from PySide6.QtCore import QEvent, QLineF, QPoint, QPointF, QRect, QRectF, Qt, QTimer, Signal
from PySide6.QtGui import QColor, QPainter, QPen
from PySide6.QtWidgets import QGraphicsProxyWidget, QGraphicsView, QPlainTextEdit

from nodeforge.ui import theme
from nodeforge.ui.canvas.scene import GraphScene

MIN_ZOOM = 0.1
MAX_ZOOM = 3.0
LOW_DETAIL_BELOW = 0.6    # as ComfyUI: below this, editors are not shown (titles and ports only)
READABLE_ZOOM = LOW_DETAIL_BELOW   # fit stops here when the graph fits at it
MAX_FIT_ZOOM = 1.25
FIT_MARGIN_PX = 40
WHEEL_ZOOM_STEP = 1.1     # per notch of the wheel (120 units); 1.2 jumped past the zoom one wanted


def _fit_centre(rect: QRectF, width: float, height: float, margin: float) -> QPointF:
    """The centre of a view `width` x `height` (scene units) showing `rect`: centred on each axis
    where it fits (if only with a thin margin), else from its left or top edge plus `margin`."""
    def axis(start: float, size: float, room: float) -> float:
        if size <= room:
            return start + size / 2
        return start - margin + room / 2
    return QPointF(axis(rect.left(), rect.width(), width), axis(rect.top(), rect.height(), height))


class GraphView(QGraphicsView):
    searchRequested = Signal(QPointF)     # scene pos where a node should be added
    filesDropped = Signal(list, QPointF)  # local paths, scene pos
    zoomChanged = Signal(float)

    def __init__(self, scene: GraphScene, parent=None) -> None:
        super().__init__(scene, parent)
        self.graph = scene
        self.setRenderHints(QPainter.RenderHint.Antialiasing | QPainter.RenderHint.TextAntialiasing)
        self.setViewportUpdateMode(QGraphicsView.ViewportUpdateMode.SmartViewportUpdate)
        self.setOptimizationFlag(QGraphicsView.OptimizationFlag.DontSavePainterState, True)
        self.setCacheMode(QGraphicsView.CacheModeFlag.CacheBackground)
        self.setTransformationAnchor(QGraphicsView.ViewportAnchor.AnchorUnderMouse)
        self.setResizeAnchor(QGraphicsView.ViewportAnchor.AnchorViewCenter)
        self.setDragMode(QGraphicsView.DragMode.RubberBandDrag)
        self.setRubberBandSelectionMode(Qt.ItemSelectionMode.IntersectsItemShape)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setAcceptDrops(True)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self._panning = False
        self._pan_last = QPointF()
        self._space = False
        self.last_scene_pos = QPointF(0, 0)
        # While the wheel zooms, editors are drawn from a scaled bitmap; crisp again once it stops.
        self._zoom_settle = QTimer(self)
        self._zoom_settle.setSingleShot(True)
        self._zoom_settle.setInterval(180)
        self._zoom_settle.timeout.connect(lambda: self.graph.set_fast_zoom(False))

    # -- zoom and pan -------------------------------------------------------------------------------
    def zoom(self) -> float:
        return self.transform().m11()

    def set_zoom(self, value: float, anchor_view_pos: QPointF | None = None) -> None:
        value = max(MIN_ZOOM, min(MAX_ZOOM, value))
        factor = value / self.zoom()
        if abs(factor - 1) < 1e-6:
            return
        if anchor_view_pos is not None:
            # Only where editors show: far out, nodes are cheap drawings and caching 500 of them
            # at full size would cost more than it saves.
            self.graph.set_fast_zoom(value >= LOW_DETAIL_BELOW)
            self._zoom_settle.start()
            before = self.mapToScene(anchor_view_pos.toPoint())
            self.scale(factor, factor)
            after = self.mapToScene(anchor_view_pos.toPoint())
            delta = after - before
            self.translate_view(-delta.x() * self.zoom(), -delta.y() * self.zoom())
        else:   # keeps the view's centre: the AnchorUnderMouse anchor would follow wherever the mouse was left
            self.graph.set_fast_zoom(False)
            centre = self.center()
            self.scale(factor, factor)
            self.centerOn(centre)
        self.graph.set_low_detail(self.zoom() < LOW_DETAIL_BELOW)
        self.zoomChanged.emit(self.zoom())

    def translate_view(self, dx: float, dy: float) -> None:
        """Scroll by (dx, dy) view pixels."""
        self.horizontalScrollBar().setValue(int(self.horizontalScrollBar().value() + dx))
        self.verticalScrollBar().setValue(int(self.verticalScrollBar().value() + dy))

    def center(self) -> QPointF:
        return self.mapToScene(self.viewport().rect().center())

    def graph_rect(self) -> QRectF:
        rect = QRectF()
        for item in list(self.graph.nodes.values()) + self.graph.group_items:
            rect = rect.united(item.sceneBoundingRect())
        return rect

    def fit(self, rect: QRectF | None = None) -> None:
        """Show `rect` (the graph by default) whole where it fits at a readable zoom; a larger one
        opens at the readable zoom from its top-left corner (where a graph starts), to pan from:
        a fit never hides the editors, values and port names (issue 31)."""
        if rect is None:
            rect = self.graph_rect()
        if rect.isNull() or rect.isEmpty():
            rect = QRectF(-200, -150, 400, 300)
        view = self.viewport().rect()
        margin = FIT_MARGIN_PX
        zoom = min((view.width() - 2 * margin) / rect.width(), (view.height() - 2 * margin) / rect.height(),
                   MAX_FIT_ZOOM)
        zoom = max(zoom, READABLE_ZOOM)
        self.set_zoom(zoom)
        self.centerOn(_fit_centre(rect, view.width() / zoom, view.height() / zoom, margin / zoom))

    def shows_graph(self) -> bool:
        """Whether most of the graph (or, for a graph larger than the view, a view full of it) is in view."""
        graph = self.graph_rect()
        if graph.isNull() or graph.isEmpty():
            return True
        visible = self.mapToScene(self.viewport().rect()).boundingRect()
        shared = graph.intersected(visible)
        area = shared.width() * shared.height()
        return area >= 0.6 * min(graph.width() * graph.height(), visible.width() * visible.height())

    def restore_viewport(self, viewport: Any) -> None:
        """The centre and zoom a file stored; a fit when there is none, or when it would not show
        the graph (a viewport saved before the nodes moved)."""
        try:
            center = viewport["center"]
            zoom = float(viewport["zoom"])
            if not math.isfinite(zoom) or zoom <= 0:
                raise ValueError(zoom)
            self.set_zoom(max(zoom, READABLE_ZOOM))     # a file opens readable, as a fit does
            self.centerOn(float(center[0]), float(center[1]))
        except (TypeError, KeyError, ValueError, IndexError):
            self.fit()
            return
        if not self.shows_graph():
            self.fit()

    def resizeEvent(self, event) -> None:  # noqa: N802
        """A dock shown or widened beside the canvas (the Queue panel on a run) narrows the view:
        a graph that was whole in view is fitted again, so no node is cut at an edge (issue 31)."""
        old = event.oldSize()
        graph = self.graph_rect()
        was_whole = (old.width() > 0 and old.height() > 0 and not graph.isEmpty()
                     and self.mapToScene(QRect(QPoint(0, 0), old)).boundingRect().contains(graph))
        super().resizeEvent(event)
        if was_whole and not self.mapToScene(self.viewport().rect()).boundingRect().contains(graph):
            self.fit()

    def fit_selection(self) -> None:
        items = self.graph.selectedItems()
        if not items:
            self.fit()
            return
        rect = QRectF()
        for item in items:
            rect = rect.united(item.sceneBoundingRect())
        self.fit(rect)

    def wheelEvent(self, event) -> None:  # noqa: N802
        if self._wheel_scrolls_text(event):
            super().wheelEvent(event)
            return
        delta = event.angleDelta().y() or event.angleDelta().x()
        if delta == 0:
            return
        self.set_zoom(self.zoom() * math.pow(WHEEL_ZOOM_STEP, delta / 120), event.position())
        event.accept()

    def _wheel_scrolls_text(self, event) -> bool:
        """The wheel zooms everywhere, except over a prompt being edited, which it scrolls."""
        item = self.itemAt(event.position().toPoint())
        if not isinstance(item, QGraphicsProxyWidget) or self.graph.focusItem() is not item:
            return False
        local = item.mapFromScene(self.mapToScene(event.position().toPoint())).toPoint()
        widget = item.widget().childAt(local)
        while widget is not None and not isinstance(widget, QPlainTextEdit):
            widget = widget.parentWidget()
        return widget is not None and widget.hasFocus()

    def mousePressEvent(self, event) -> None:  # noqa: N802
        scene_pos = self.mapToScene(event.position().toPoint())
        if self.graph.focusItem() is not None and not any(
                isinstance(i, QGraphicsProxyWidget) for i in self.graph.items(scene_pos)):
            # A click outside a node's text field ends typing in it, so canvas keys work again.
            self.graph.setFocusItem(None)
            self.setFocus()
        if event.button() == Qt.MouseButton.MiddleButton or (
                event.button() == Qt.MouseButton.LeftButton and self._space):
            self._panning = True
            self._pan_last = event.position()
            self.viewport().setCursor(Qt.CursorShape.ClosedHandCursor)
            event.accept()
            return
        super().mousePressEvent(event)

    def mouseMoveEvent(self, event) -> None:  # noqa: N802
        self.last_scene_pos = self.mapToScene(event.position().toPoint())
        if self._panning:
            delta = event.position() - self._pan_last
            self._pan_last = event.position()
            self.translate_view(-delta.x(), -delta.y())
            event.accept()
            return
        super().mouseMoveEvent(event)

    def mouseReleaseEvent(self, event) -> None:  # noqa: N802
        if self._panning and event.button() in (Qt.MouseButton.MiddleButton, Qt.MouseButton.LeftButton):
            self._panning = False
            self.viewport().setCursor(Qt.CursorShape.OpenHandCursor if self._space else Qt.CursorShape.ArrowCursor)
            event.accept()
            return
        super().mouseReleaseEvent(event)

    def mouseDoubleClickEvent(self, event) -> None:  # noqa: N802
        pos = self.mapToScene(event.position().toPoint())
        items = [i for i in self.graph.items(pos) if i.zValue() > -10]
        if event.button() == Qt.MouseButton.LeftButton and not items:
            self.searchRequested.emit(pos)
            event.accept()
            return
        super().mouseDoubleClickEvent(event)

    def event(self, event) -> bool:  # noqa: A003 - Qt's name
        # QGraphicsView hands Tab to the scene, which would move focus into a node's widgets;
        # on the canvas, Tab opens the node search instead (as in ComfyUI).
        if (event.type() == QEvent.Type.KeyPress and event.key() == Qt.Key.Key_Tab
                and not event.modifiers() & (Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.AltModifier)
                and not self._focus_in_widget()):
            self.searchRequested.emit(self.cursor_scene_pos())
            return True
        return super().event(event)

    def keyPressEvent(self, event) -> None:  # noqa: N802
        if event.key() == Qt.Key.Key_Space and not event.isAutoRepeat() and not self._focus_in_widget():
            self._space = True
            self.viewport().setCursor(Qt.CursorShape.OpenHandCursor)
            event.accept()
            return
        if event.key() == Qt.Key.Key_Tab and not self._focus_in_widget():
            self.searchRequested.emit(self.cursor_scene_pos())
            event.accept()
            return
        if event.key() == Qt.Key.Key_Escape and self.graph.wires.drag is not None:
            self.graph.wires.cancel()
            event.accept()
            return
        super().keyPressEvent(event)

    def keyReleaseEvent(self, event) -> None:  # noqa: N802
        if event.key() == Qt.Key.Key_Space and not event.isAutoRepeat():
            self._space = False
            self.viewport().setCursor(Qt.CursorShape.ArrowCursor)
            event.accept()
            return
        super().keyReleaseEvent(event)

    def focusNextPrevChild(self, next: bool) -> bool:  # noqa: N802, A002 - Tab opens the search
        if self._focus_in_widget():
            return super().focusNextPrevChild(next)
        return False

    def _focus_in_widget(self) -> bool:
        """Whether the keyboard is in a field inside a node (typing there must not reach the canvas)."""
        item = self.graph.focusItem()
        if not isinstance(item, QGraphicsProxyWidget) or item.widget() is None:
            return item is not None
        inner = item.widget().focusWidget()
        return inner is not None and (inner.hasFocus() or not self.graph.isActive())

    def cursor_scene_pos(self) -> QPointF:
        pos = self.viewport().mapFromGlobal(self.cursor().pos())
        if self.viewport().rect().contains(pos):
            return self.mapToScene(pos)
        return self.center()

    # -- drawing ----------------------------------------------------------------------------------------
    def drawBackground(self, painter: QPainter, rect: QRectF) -> None:  # noqa: N802
        painter.fillRect(rect, QColor(theme.CANVAS_BG))
        zoom = self.zoom()
        step = 25.0
        while step * zoom < 12:
            step *= 4
        left = math.floor(rect.left() / step) * step
        top = math.floor(rect.top() / step) * step
        minor = QPen(QColor(theme.GRID_MINOR), 0)
        major = QPen(QColor(theme.GRID_MAJOR), 0)
        lines_minor, lines_major = [], []
        x = left
        while x < rect.right():
            (lines_major if round(x / step) % 4 == 0 else lines_minor).append(QLineF(x, rect.top(), x, rect.bottom()))
            x += step
        y = top
        while y < rect.bottom():
            (lines_major if round(y / step) % 4 == 0 else lines_minor).append(QLineF(rect.left(), y, rect.right(), y))
            y += step
        painter.setPen(minor)
        painter.drawLines(lines_minor)
        painter.setPen(major)
        painter.drawLines(lines_major)

    # -- drag and drop of files -------------------------------------------------------------------------
    def dragEnterEvent(self, event) -> None:  # noqa: N802
        if event.mimeData().hasUrls():
            event.acceptProposedAction()
        else:
            super().dragEnterEvent(event)

    def dragMoveEvent(self, event) -> None:  # noqa: N802
        if event.mimeData().hasUrls():
            event.acceptProposedAction()
        else:
            super().dragMoveEvent(event)

    def dropEvent(self, event) -> None:  # noqa: N802
        if event.mimeData().hasUrls():
            paths = [u.toLocalFile() for u in event.mimeData().urls() if u.isLocalFile()]
            if paths:
                self.filesDropped.emit(paths, self.mapToScene(event.position().toPoint()))
                event.acceptProposedAction()
                return
        super().dropEvent(event)
