"""The drawing of one node: header, typed ports, inline param editors, run state and images.

A NodeItem observes the model through the scene (which forwards model signals to it) and
sends edits to the controller; it never changes the model itself.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QColor, QFont, QFontMetricsF, QImage, QPainter, QPainterPath, QPen
from PySide6.QtWidgets import QGraphicsItem, QGraphicsProxyWidget, QStyleOptionGraphicsItem, QWidget

from nodeforge.core.types import FileKind
from nodeforge.ui import theme
from nodeforge.ui.edges import PortItem
from nodeforge.ui.param_widgets import ParamPanel

if TYPE_CHECKING:  # pragma: no cover
    from nodeforge.ui.scene import GraphScene

HEADER = 28.0
ROW = 22.0
WIDTH = 260.0
IMAGE_MAX = 240.0
RADIUS = 7.0
MIN_WIDTH = 160.0
GRIP = 12.0   # the resize grip in the bottom-right corner
TINY = 0.3   # below this zoom a node is drawn as a coloured block with its title only


class NodeItem(QGraphicsItem):
    def __init__(self, scene: "GraphScene", node_id: str) -> None:
        super().__init__()
        self.graph = scene
        self.model = scene.model
        self.node_id = node_id
        self.spec = self.model.spec(node_id)
        self.setFlag(QGraphicsItem.GraphicsItemFlag.ItemIsMovable, True)
        self.setFlag(QGraphicsItem.GraphicsItemFlag.ItemIsSelectable, True)
        self.setFlag(QGraphicsItem.GraphicsItemFlag.ItemSendsGeometryChanges, True)
        self.setCacheMode(QGraphicsItem.CacheMode.DeviceCoordinateCache)
        self.setAcceptHoverEvents(True)
        self.setZValue(0)
        self.inputs: dict[str, PortItem] = {}
        self.outputs: dict[str, PortItem] = {}
        self._panel: ParamPanel | None = None
        self.proxy: QGraphicsProxyWidget | None = None
        self._panel_scheduled = False
        self.width = WIDTH
        self.height = HEADER
        # Run state, shown while and after a run.
        self.state: str | None = None        # "running", "done", "cached", "queued"
        self.seconds: float | None = None
        self.progress: tuple[int, int] | None = None
        self.images: list[QImage] = []
        self.error: str | None = None
        self._title_font = QFont()
        self._title_font.setPointSizeF(10.0)
        self._title_font.setBold(True)
        self._small_font = QFont()
        self._small_font.setPointSizeF(8.5)
        self._build()
        if self.spec is not None and any(p.file is FileKind.IMAGE for p in self.spec.params):
            self.show_input_image()
        self.setPos(*self.model.position(node_id))

    # -- building -----------------------------------------------------------------------------------
    @property
    def is_placeholder(self) -> bool:
        return self.spec is None

    def _port_decls(self) -> tuple[list[tuple[str, str, bool]], list[tuple[str, str]]]:
        if self.spec is not None:
            ins = [(i.name, str(i.type), i.optional) for i in self.spec.inputs]
            outs = [(o.name, str(o.type)) for o in self.spec.outputs]
            return ins, outs
        # An unknown type: keep whatever ports its links use, so nothing is lost.
        node = self.model.nodes[self.node_id]
        ins = [(name, "*", False) for name in node.inputs]
        outs: list[tuple[str, str]] = []
        for _dst, _name, output in self.model.consumers(self.node_id):
            if output not in [o[0] for o in outs]:
                outs.append((output, "*"))
        return ins, outs

    def _build(self) -> None:
        ins, outs = self._port_decls()
        for name, port_type, optional in ins:
            self.inputs[name] = PortItem(self, name, port_type, False, optional)
        for name, port_type in outs:
            self.outputs[name] = PortItem(self, name, port_type, True)
        self.width = self._wanted_width()
        self.sync_connections(self.graph.used_outputs.get(self.node_id) if self.graph.used_outputs else None)
        self.relayout()

    def _natural_width(self) -> float:
        fm = QFontMetricsF(self._title_font)
        return max(WIDTH, fm.horizontalAdvance(self.model.title(self.node_id)) + 90)

    def _wanted_width(self) -> float:
        size = self.model.size(self.node_id)
        return max(MIN_WIDTH, size[0]) if size else self._natural_width()

    def sync_size(self) -> None:
        self.set_width(self._wanted_width())

    def set_width(self, width: float) -> None:
        width = max(MIN_WIDTH, float(width))
        if width == self.width:
            return
        self.prepareGeometryChange()
        self.width = width
        if self._panel is not None:
            self._panel.setFixedWidth(int(width))
            self.proxy.resize(width, self.proxy.size().height())
        self.relayout()

    # -- the param editors, created when the node is first shown ------------------------------------
    @property
    def has_params(self) -> bool:
        return self.spec is not None and bool(self.spec.params)

    @property
    def panel(self) -> ParamPanel | None:
        """The param editors (created on first use: building widgets for 500 nodes at load is slow)."""
        self.ensure_panel()
        return self._panel

    def ensure_panel(self) -> None:
        if self._panel is not None or not self.has_params:
            return
        self._panel = ParamPanel(self.spec.params, self._edited, int(self.width))
        for name in self._panel.editors:
            self.sync_param(name)
        seed = self._panel.editors.get("seed")
        if getattr(seed, "dice", None) is not None:
            seed.seedModeChosen.connect(self._seed_mode_chosen)
            seed.show_seed_mode(self.model.node_ui("seed_control", self.node_id))
        self.proxy = QGraphicsProxyWidget(self)
        self.proxy.setWidget(self._panel)
        self.proxy.setZValue(1)
        # Panning then blits a cached pixmap instead of repainting every widget.
        self.proxy.setCacheMode(QGraphicsItem.CacheMode.DeviceCoordinateCache)
        self.relayout()

    def _schedule_panel(self) -> None:
        if not self._panel_scheduled and self._panel is None and self.has_params:
            self._panel_scheduled = True
            self.graph.want_panel(self)

    def _panel_height(self) -> float:
        if self.proxy is not None:
            return self.proxy.size().height()
        if not self.has_params:
            return 0.0
        return ParamPanel.estimate_height(self.spec.params)

    def rebuild_ports(self) -> None:
        """For placeholders, whose ports follow their links."""
        if not self.is_placeholder:
            return
        ins, outs = self._port_decls()
        if [n for n, *_ in ins] == list(self.inputs) and [n for n, _ in outs] == list(self.outputs):
            return
        for port in list(self.inputs.values()) + list(self.outputs.values()):
            port.setParentItem(None)
            if port.scene() is not None:
                port.scene().removeItem(port)
        self.inputs.clear()
        self.outputs.clear()
        for name, port_type, optional in ins:
            self.inputs[name] = PortItem(self, name, port_type, False, optional)
        for name, port_type in outs:
            self.outputs[name] = PortItem(self, name, port_type, True)
        self.sync_connections()
        self.relayout()

    # -- geometry -------------------------------------------------------------------------------
    @property
    def collapsed(self) -> bool:
        return self.model.flag(self.node_id, "collapsed")

    def _body_rows(self) -> int:
        return max(len(self.inputs), len(self.outputs))

    def _placeholder_lines(self) -> list[str]:
        if not self.is_placeholder:
            return []
        node = self.model.nodes[self.node_id]
        lines = [f"unknown node type “{node.type}”", "kept as is; install its node pack to run it"]
        for key, value in list(node.params.items())[:8]:
            text = repr(value) if not isinstance(value, str) else value
            lines.append(f"{key} = {text[:40]}")
        return lines

    def image_rect(self) -> QRectF | None:
        if not self.images or self.collapsed:
            return None
        top = self._images_top()
        img = self.images[-1]
        w = self.width - 16
        h = min(IMAGE_MAX, w * img.height() / max(1, img.width()))
        return QRectF(8, top, w, h)

    def _images_top(self) -> float:
        top = HEADER + self._body_rows() * ROW + 4
        top += self._panel_height()
        top += len(self._placeholder_lines()) * 16
        return top

    def relayout(self) -> None:
        self.prepareGeometryChange()
        collapsed = self.collapsed
        for i, port in enumerate(self.inputs.values()):
            port.setPos(0, HEADER / 2 if collapsed else HEADER + ROW * i + ROW / 2)
            port.setVisible(not collapsed)
        for i, port in enumerate(self.outputs.values()):
            port.setPos(self.width, HEADER / 2 if collapsed else HEADER + ROW * i + ROW / 2)
            port.setVisible(not collapsed)
        if self.proxy is not None:
            self.proxy.setPos(0, HEADER + self._body_rows() * ROW + 2)
            self.proxy.setVisible(not collapsed and not self.graph.low_detail)
        if collapsed:
            self.height = HEADER
        else:
            height = self._images_top()
            rect = self.image_rect()
            if rect is not None:
                height = rect.bottom() + 4
            if self.progress is not None or self.state == "running":
                height += 8
            self.height = max(height + 6, HEADER + ROW)
        self.update()
        self.graph.node_geometry_changed(self)

    def boundingRect(self) -> QRectF:  # noqa: N802
        extra = self._error_height() + 8 if self.error else 0.0
        return QRectF(-6, -6, self.width + 12, self.height + 12 + extra)

    def body_rect(self) -> QRectF:
        return QRectF(0, 0, self.width, self.height)

    def size(self) -> tuple[float, float]:
        return self.width, self.height

    # -- painting --------------------------------------------------------------------------------
    def paint(self, painter: QPainter, option: QStyleOptionGraphicsItem, widget: QWidget | None = None) -> None:
        lod = option.levelOfDetailFromTransform(painter.worldTransform())
        if lod < TINY:
            self._paint_tiny(painter, lod)
            return
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        rect = self.body_rect()
        bypassed = self.model.flag(self.node_id, "bypassed")
        header_color = QColor(theme.PLACEHOLDER if self.is_placeholder else theme.NODE_HEADER)
        body_color = QColor(theme.NODE_BG)
        if bypassed:
            header_color = QColor(theme.BYPASSED)
            body_color = QColor("#3b2d45")
        # Glow while running.
        if self.state == "running":
            for i, alpha in enumerate((40, 70, 110)):
                painter.setPen(QPen(QColor(79, 195, 247, alpha), 8 - 2.5 * i))
                painter.setBrush(Qt.BrushStyle.NoBrush)
                painter.drawRoundedRect(rect, RADIUS, RADIUS)
        path = QPainterPath()
        path.addRoundedRect(rect, RADIUS, RADIUS)
        painter.fillPath(path, body_color)
        # Header.
        header = QPainterPath()
        header.addRoundedRect(QRectF(0, 0, self.width, HEADER), RADIUS, RADIUS)
        if not self.collapsed:
            header.addRect(QRectF(0, HEADER - RADIUS, self.width, RADIUS))
        painter.fillPath(header.simplified(), header_color)
        # Collapse arrow and title.
        painter.setPen(QColor(theme.NODE_TEXT))
        painter.setFont(self._small_font)
        painter.drawText(QRectF(6, 0, 14, HEADER), Qt.AlignmentFlag.AlignVCenter, "▸" if self.collapsed else "▾")
        painter.setFont(self._title_font)
        badge = self._badge()
        title_rect = QRectF(22, 0, self.width - 30 - (60 if badge else 0), HEADER)
        fm = QFontMetricsF(self._title_font)
        title = fm.elidedText(self.model.title(self.node_id), Qt.TextElideMode.ElideRight, title_rect.width())
        painter.drawText(title_rect, Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignLeft, title)
        if badge:
            text, color = badge
            painter.setFont(self._small_font)
            painter.setPen(QColor(color))
            painter.drawText(QRectF(self.width - 90, 0, 82, HEADER),
                             Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignRight, text)
        if not self.collapsed:
            if self.proxy is None or not self.proxy.isVisible():
                self._paint_param_text(painter)
                if self.proxy is None and not self.graph.low_detail:
                    self._schedule_panel()
            self._paint_ports(painter)
            self._paint_placeholder(painter)
            self._paint_images(painter)
            self._paint_progress(painter)
        # Border: selection, error, or plain.
        if self.error:
            pen = QPen(QColor(theme.ERROR), 3)
        elif self.isSelected():
            pen = QPen(QColor(theme.SELECTED), 2)
        elif self.is_placeholder:
            pen = QPen(QColor(theme.ERROR).darker(130), 1.5)
        else:
            pen = QPen(QColor(theme.NODE_BORDER), 1.2)
        painter.setPen(pen)
        painter.setBrush(Qt.BrushStyle.NoBrush)
        painter.drawRoundedRect(rect, RADIUS, RADIUS)
        if self.error:
            self._paint_error(painter)
        if not self.collapsed:
            painter.setPen(QPen(QColor(theme.NODE_SUBTEXT), 1.2))
            for i in (4.0, 8.0):
                painter.drawLine(QPointF(self.width - i, self.height - 2), QPointF(self.width - 2, self.height - i))

    def _paint_tiny(self, painter: QPainter, lod: float) -> None:
        """Zoomed far out: a block with a large title, no ports, so a whole large graph pans smoothly."""
        rect = self.body_rect()
        bypassed = self.model.flag(self.node_id, "bypassed")
        painter.fillRect(rect, QColor("#3b2d45" if bypassed else theme.NODE_BG))
        header = QColor(theme.PLACEHOLDER if self.is_placeholder else theme.BYPASSED if bypassed else theme.NODE_HEADER)
        painter.fillRect(QRectF(0, 0, self.width, HEADER), header)
        if self.error or self.isSelected() or self.state == "running":
            color = theme.ERROR if self.error else theme.RUNNING if self.state == "running" else theme.SELECTED
            painter.setPen(QPen(QColor(color), 6))
            painter.setBrush(Qt.BrushStyle.NoBrush)
            painter.drawRect(rect)
        rect_img = self.image_rect()
        if rect_img is not None:
            painter.drawImage(rect_img, self.images[-1])
        if lod > 0.12 and rect_img is None:
            font = QFont(self._title_font)
            font.setPointSizeF(min(40.0, 8.0 / lod))
            painter.setFont(font)
            painter.setPen(QColor(theme.NODE_TEXT))
            painter.drawText(rect.adjusted(8, 0, -8, 0), Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap,
                             self.model.title(self.node_id))

    def _badge(self) -> tuple[str, str] | None:
        if self.model.flag(self.node_id, "muted"):
            return "muted", theme.NODE_SUBTEXT
        if self.model.flag(self.node_id, "bypassed"):
            return "bypassed", "#e0c3f0"
        if self.state == "cached":
            return "cached", theme.CACHED
        if self.state == "done" and self.seconds is not None:
            return (f"✓ {self.seconds:.1f}s" if self.seconds >= 0.05 else "✓"), "#8bc34a"
        if self.state == "running":
            return "running…", theme.RUNNING
        if self.state == "queued":
            return "queued", theme.NODE_SUBTEXT
        return None

    def _paint_ports(self, painter: QPainter) -> None:
        painter.setFont(self._small_font)
        fm = QFontMetricsF(self._small_font)
        half = self.width / 2 - 14
        for port in self.inputs.values():
            y = port.pos().y()
            painter.setPen(QColor(theme.NODE_TEXT if port.connected else theme.NODE_SUBTEXT))
            label = fm.elidedText(port.name, Qt.TextElideMode.ElideRight, half)
            painter.drawText(QRectF(12, y - ROW / 2, half, ROW), Qt.AlignmentFlag.AlignVCenter, label)
        for port in self.outputs.values():
            y = port.pos().y()
            painter.setPen(QColor(theme.NODE_TEXT))
            label = fm.elidedText(port.name, Qt.TextElideMode.ElideRight, half)
            painter.drawText(QRectF(self.width - 12 - half, y - ROW / 2, half, ROW),
                             Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignRight, label)

    def _paint_param_text(self, painter: QPainter) -> None:
        """Params as text, where the editors are not shown (zoomed far out, or not built yet)."""
        if not self.has_params:
            return
        painter.setFont(self._small_font)
        params = self.model.nodes[self.node_id].params
        y = HEADER + self._body_rows() * ROW + 4
        for row_top, row_h, param in ParamPanel.row_layout(self.spec.params):
            value = params.get(param.name, param.default)
            rect = QRectF(8, y + row_top, self.width - 16, row_h)
            painter.fillRect(rect.adjusted(0, 1, 0, -1), QColor("#1f2024"))
            painter.setPen(QColor(theme.NODE_SUBTEXT))
            painter.drawText(rect.adjusted(6, 0, -6, 0), Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop
                             if param.multiline else Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter,
                             param.name.replace("_", " "))
            painter.setPen(QColor(theme.NODE_TEXT))
            text = str(value).replace("\n", " ")
            fm = QFontMetricsF(self._small_font)
            painter.drawText(rect.adjusted(6, 16 if param.multiline else 0, -6, 0),
                             (Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop) if param.multiline
                             else (Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter),
                             fm.elidedText(text, Qt.TextElideMode.ElideRight, rect.width() - 12))

    def _paint_placeholder(self, painter: QPainter) -> None:
        lines = self._placeholder_lines()
        if not lines:
            return
        painter.setFont(self._small_font)
        y = HEADER + self._body_rows() * ROW + 2
        for i, line in enumerate(lines):
            painter.setPen(QColor("#ff8a80") if i == 0 else QColor(theme.NODE_SUBTEXT))
            painter.drawText(QRectF(10, y + 16 * i, self.width - 20, 16), Qt.AlignmentFlag.AlignVCenter, line)

    def _paint_images(self, painter: QPainter) -> None:
        rect = self.image_rect()
        if rect is None:
            return
        img = self.images[-1]
        painter.fillRect(rect, QColor("#111214"))
        scaled = img.size().scaled(rect.size().toSize(), Qt.AspectRatioMode.KeepAspectRatio)
        target = QRectF(rect.x() + (rect.width() - scaled.width()) / 2, rect.y() + (rect.height() - scaled.height()) / 2,
                        scaled.width(), scaled.height())
        painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, True)
        painter.drawImage(target, img)
        if len(self.images) > 1:
            painter.setFont(self._small_font)
            painter.setPen(QColor(theme.NODE_TEXT))
            painter.drawText(rect.adjusted(4, 2, -4, -2), Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignRight,
                             f"{len(self.images)} images")

    def _paint_progress(self, painter: QPainter) -> None:
        if self.progress is None:
            return
        step, total = self.progress
        bar = QRectF(8, self.height - 10, self.width - 16, 5)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(QColor("#15161a"))
        painter.drawRoundedRect(bar, 2, 2)
        painter.setBrush(QColor(theme.RUNNING))
        frac = step / total if total else 0
        painter.drawRoundedRect(QRectF(bar.x(), bar.y(), bar.width() * min(1.0, frac), bar.height()), 2, 2)

    def _error_height(self) -> float:
        """The message band under a failed node: the whole message, wrapped, up to 6 lines."""
        fm = QFontMetricsF(self._small_font)
        text = fm.boundingRect(QRectF(0, 0, self.width - 12, 1000), int(Qt.TextFlag.TextWordWrap), self.error or "")
        return min(text.height(), fm.lineSpacing() * 6) + 10

    def _paint_error(self, painter: QPainter) -> None:
        rect = QRectF(0, self.height + 4, self.width, self._error_height())
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(QColor(120, 20, 20, 235))
        painter.drawRoundedRect(rect, 4, 4)
        painter.setPen(QColor("#ffffff"))
        painter.setFont(self._small_font)
        painter.drawText(rect.adjusted(6, 5, -6, -5), int(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
                         | int(Qt.TextFlag.TextWordWrap), self.error or "")

    # -- model → item ---------------------------------------------------------------------------
    def sync_param(self, name: str) -> None:
        param = self.spec.param(name) if self.spec is not None else None
        if param is not None and param.file is FileKind.IMAGE:
            self.show_input_image()
        if self._panel is None or name not in self._panel.editors:
            self.update()
            return
        params = self.model.nodes[self.node_id].params
        value = params[name] if name in params else self.spec.param(name).default
        self._panel.editors[name].set_value(value)

    def show_input_image(self) -> None:
        """An image-loading node shows the picture its path names, as in ComfyUI's LoadImage."""
        for param in self.spec.params:
            if param.file is not FileKind.IMAGE:
                continue
            value = self.model.nodes[self.node_id].params.get(param.name, param.default)
            path = self.graph.resolve_file(param.file, value) if value else None
            image = QImage(str(path)) if path is not None else QImage()
            if not image.isNull():
                if image.width() > 512 or image.height() > 512:
                    image = image.scaled(512, 512, Qt.AspectRatioMode.KeepAspectRatio,
                                         Qt.TransformationMode.SmoothTransformation)
                self.set_images([image])
            elif self.images:
                self.set_images([])
            return

    def sync_title(self) -> None:
        self.setToolTip(self._tooltip())
        if self.model.size(self.node_id) is None:
            self.set_width(self._natural_width())   # a long title widens a node that was not resized
        self.update()

    def sync_flags(self) -> None:
        self.setOpacity(0.45 if self.model.flag(self.node_id, "muted") else 1.0)
        self.relayout()

    def sync_connections(self, used: set[str] | None = None) -> None:
        node = self.model.nodes[self.node_id]
        for name, port in self.inputs.items():
            port.connected = name in node.inputs
            port.update()
        if used is None:
            used = {out for _d, _n, out in self.model.consumers(self.node_id)} if self.outputs else set()
        for name, port in self.outputs.items():
            port.connected = name in used
            port.update()
        self.update()

    def _tooltip(self) -> str:
        node = self.model.nodes[self.node_id]
        desc = self.spec.description if self.spec else "Unknown node type"
        return f"{node.type} (id {self.node_id})" + (f"\n{desc}" if desc else "")

    # -- run state ----------------------------------------------------------------------------------
    def set_state(self, state: str | None, seconds: float | None = None) -> None:
        self.state = state
        self.seconds = seconds
        if state != "running":
            self.progress = None
        self.relayout()

    def set_progress(self, step: int, total: int) -> None:
        first = self.progress is None
        self.progress = (step, total)
        if first:
            self.relayout()
        else:
            self.update()

    def set_images(self, images: list[QImage]) -> None:
        self.images = list(images)
        self.relayout()

    def set_error(self, message: str | None) -> None:
        self.prepareGeometryChange()
        self.error = message
        self.setToolTip(message or self._tooltip())
        self.update()

    # -- interaction ------------------------------------------------------------------------------
    def _seed_mode_chosen(self, mode: str) -> None:
        self.graph.controller.set_seed_control(self.node_id, mode)

    def sync_node_ui(self, key: str) -> None:
        if key == "seed_control" and self._panel is not None and "seed" in self._panel.editors:
            editor = self._panel.editors["seed"]
            if hasattr(editor, "show_seed_mode"):
                editor.show_seed_mode(self.model.node_ui("seed_control", self.node_id))
        self.update()

    def _edited(self, name: str, value: Any, merge_key: Any) -> None:
        self.graph.controller.set_param(self.node_id, name, value, merge_key)

    def itemChange(self, change, value):  # noqa: N802
        if change == QGraphicsItem.GraphicsItemChange.ItemPositionHasChanged and self.scene() is not None:
            self.graph.node_moved(self)
        elif change == QGraphicsItem.GraphicsItemChange.ItemSelectedHasChanged:
            self.setZValue(0.5 if value else 0)
        return super().itemChange(change, value)

    def _on_grip(self, pos: QPointF) -> bool:
        return (not self.collapsed and pos.x() > self.width - GRIP and pos.y() > self.height - GRIP
                and pos.x() <= self.width and pos.y() <= self.height)

    def hoverMoveEvent(self, event) -> None:  # noqa: N802
        self.setCursor(Qt.CursorShape.SizeHorCursor if self._on_grip(event.pos()) else Qt.CursorShape.ArrowCursor)
        super().hoverMoveEvent(event)

    def mousePressEvent(self, event) -> None:  # noqa: N802
        if event.button() == Qt.MouseButton.LeftButton and event.pos().y() < HEADER and event.pos().x() < 22:
            self.graph.controller.toggle_flag([self.node_id], "collapsed")
            event.accept()
            return
        if event.button() == Qt.MouseButton.LeftButton and self._on_grip(event.pos()):
            self._resizing = (event.scenePos().x(), self.width)
            event.accept()
            return
        super().mousePressEvent(event)

    def mouseMoveEvent(self, event) -> None:  # noqa: N802
        if getattr(self, "_resizing", None):
            start_x, start_w = self._resizing
            self.set_width(start_w + event.scenePos().x() - start_x)
            event.accept()
            return
        super().mouseMoveEvent(event)

    def mouseReleaseEvent(self, event) -> None:  # noqa: N802
        if getattr(self, "_resizing", None):
            self._resizing = None
            self.graph.controller.resize(self.node_id, (round(self.width, 1), round(self.height, 1)))
            event.accept()
            return
        super().mouseReleaseEvent(event)

    def mouseDoubleClickEvent(self, event) -> None:  # noqa: N802
        if event.pos().y() < HEADER:
            self.graph.request_rename(self.node_id)
            event.accept()
            return
        rect = self.image_rect()
        if rect is not None and rect.contains(event.pos()):
            self.graph.imageActivated.emit(self.node_id)
            event.accept()
            return
        super().mouseDoubleClickEvent(event)

    def port_at(self, scene_pos: QPointF) -> PortItem | None:
        for port in list(self.inputs.values()) + list(self.outputs.values()):
            if port.isVisible() and (port.scenePos() - scene_pos).manhattanLength() < 14:
                return port
        return None

