"""How one node looks: its layout (ports, editors, images) and its painting at every zoom.

NodeGraphic holds what is drawn (size, run state, images, error) and draws it; NodeItem
(node_item.py) adds what the user does with it. Zoomed out below the readable zoom, a node
draws a clean level of detail: a large title and its ports, no text too small to read.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QColor, QFont, QFontMetricsF, QImage, QPainter, QPainterPath, QPen
from PySide6.QtWidgets import QGraphicsItem, QGraphicsProxyWidget, QStyleOptionGraphicsItem, QWidget

from nodeforge.core import painted_mask, placeholder
from nodeforge.core.types import ParamRole
from nodeforge.ui import theme
from nodeforge.ui.canvas.edges import PortItem, node_layout_changed
from nodeforge.ui.canvas.param_widgets import ParamPanel

if TYPE_CHECKING:  # pragma: no cover
    from nodeforge.ui.canvas.scene import GraphScene

HEADER = 28.0
ROW = 22.0
WIDTH = 260.0
IMAGE_MAX = 240.0
RADIUS = 7.0
MIN_WIDTH = 160.0
GRIP = 12.0   # the resize grip in the bottom-right corner
TINY = 0.3   # below this zoom a node is drawn as a coloured block with its title only
NOTE_Z = 20.0   # error notes draw above every node and wire
SHOWN_LINES = 8   # at most this many lines of an output node's text are drawn (the tooltip has it all)


class ErrorNote(QGraphicsItem):
    """The message band under a failed node. A top-level item above every node, so a neighbour
    never hides where to put the missing model."""

    def __init__(self, owner: "NodeGraphic") -> None:
        super().__init__()
        self.owner = owner
        self.text = ""
        self.setZValue(NOTE_Z)
        self.setAcceptedMouseButtons(Qt.MouseButton.NoButton)

    def set_text(self, text: str) -> None:
        self.prepareGeometryChange()
        self.text = text
        self.setToolTip(text)
        self.update()

    def _height(self) -> float:
        fm = QFontMetricsF(self.owner.small_font)
        rect = fm.boundingRect(QRectF(0, 0, self.owner.width - 12, 1000), int(Qt.TextFlag.TextWordWrap), self.text)
        return min(rect.height(), fm.lineSpacing() * 8) + 10

    def boundingRect(self) -> QRectF:  # noqa: N802
        return QRectF(0, 0, self.owner.width, self._height())

    def paint(self, painter: QPainter, option: QStyleOptionGraphicsItem, widget: QWidget | None = None) -> None:
        rect = self.boundingRect()
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.setPen(QPen(QColor(theme.ERROR), 1))
        painter.setBrush(QColor(120, 20, 20, 245))
        painter.drawRoundedRect(rect, 4, 4)
        painter.setPen(QColor("#ffffff"))
        painter.setFont(self.owner.small_font)
        painter.drawText(rect.adjusted(6, 5, -6, -5), int(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
                         | int(Qt.TextFlag.TextWordWrap), self.text)


class NodeGraphic(QGraphicsItem):
    """Layout and painting of a node; subclasses fill in the model and the interaction."""

    def __init__(self, scene: "GraphScene", node_id: str) -> None:
        super().__init__()
        self.graph = scene
        self.model = scene.model
        self.node_id = node_id
        self.spec = self.model.spec(node_id)
        self.inputs: dict[str, PortItem] = {}
        self.outputs: dict[str, PortItem] = {}
        self._panel: ParamPanel | None = None
        self.proxy: QGraphicsProxyWidget | None = None
        self.width = WIDTH
        self.height = HEADER
        # Run state, shown while and after a run.
        self.state: str | None = None        # "running", "done", "cached", "queued", "failed"
        self.seconds: float | None = None
        self.progress: tuple[int, int] | None = None
        self.images: list[QImage] = []
        self.error: str | None = None
        self.shown_text: str | None = None    # what an output node shows after a run (Show Value)
        self.note: ErrorNote | None = None
        self._title_font = QFont()
        self._title_font.setPointSizeF(10.0)
        self._title_font.setBold(True)
        self.small_font = QFont()
        self.small_font.setPointSizeF(8.5)

    @property
    def is_placeholder(self) -> bool:
        return self.spec is None

    @property
    def has_params(self) -> bool:
        return self.spec is not None and bool(self.spec.params)

    @property
    def collapsed(self) -> bool:
        return self.model.flag(self.node_id, "collapsed")

    # -- layout ---------------------------------------------------------------------------------
    def _panel_height(self) -> float:
        if self.proxy is not None:
            return self.proxy.size().height()
        if not self.has_params:
            return 0.0
        return ParamPanel.estimate_height(self.spec.params)

    def _body_rows(self) -> int:
        return max(len(self.inputs), len(self.outputs))

    def _text_lines(self) -> list[str]:
        """The lines drawn under the params: a placeholder's explanation, or what the node showed last run."""
        if self.is_placeholder:
            return self._placeholder_lines()
        if not self.shown_text:
            return []
        fm = QFontMetricsF(self.small_font)
        lines: list[str] = []
        for paragraph in self.shown_text.splitlines() or [""]:
            words, line = paragraph.split(" "), ""
            for word in words:
                wider = f"{line} {word}" if line else word
                if line and fm.horizontalAdvance(wider) > self.width - 20:
                    lines.append(line)
                    line = word
                else:
                    line = wider
            lines.append(line)
        if len(lines) > SHOWN_LINES:
            lines = lines[:SHOWN_LINES - 1] + [f"… {len(lines) - SHOWN_LINES + 1} more lines"]
        return [fm.elidedText(line, Qt.TextElideMode.ElideRight, self.width - 20) for line in lines]

    def set_shown_text(self, text: str | None) -> None:
        self.shown_text = text
        self.setToolTip(text or self._tooltip())
        self.relayout()

    def _placeholder_lines(self) -> list[str]:
        if not self.is_placeholder:
            return []
        node = self.model.nodes[self.node_id]
        lines = [f"unknown node type “{node.type}”", "kept as is; install its node pack to run it"]
        params = node.params
        if placeholder.is_placeholder(node):
            lines = [f"ComfyUI node “{placeholder.original_class(node)}”", "no NodeForge equivalent; bypass or replace it",
                     "(kept as is for export)"]
            widgets = params.get("widgets")
            params = widgets if isinstance(widgets, dict) else {"widgets": params.get("widgets_values")}
        for key, value in list(params.items())[:8]:
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
        top += len(self._text_lines()) * 16
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
        self.place_note()
        node_layout_changed()
        self.graph.node_geometry_changed(self)

    def boundingRect(self) -> QRectF:  # noqa: N802
        return QRectF(-6, -6, self.width + 12, self.height + 12)

    def body_rect(self) -> QRectF:
        return QRectF(0, 0, self.width, self.height)

    def size(self) -> tuple[float, float]:
        return self.width, self.height

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

    # -- the error note ---------------------------------------------------------------------------
    def set_error(self, message: str | None) -> None:
        self.error = message
        self.setToolTip(message or self._tooltip())
        if message and self.note is None and self.scene() is not None:
            self.note = ErrorNote(self)
            self.scene().addItem(self.note)
        if self.note is not None:
            if message:
                self.note.set_text(message)
            else:
                self.remove_note()
        self.place_note()
        self.update()

    def place_note(self) -> None:
        if self.note is not None:
            self.note.setPos(self.pos() + QPointF(0, self.height + 4))
            self.note.update()

    def remove_note(self) -> None:
        if self.note is not None:
            if self.note.scene() is not None:
                self.note.scene().removeItem(self.note)
            self.note = None

    def _tooltip(self) -> str:  # pragma: no cover - NodeItem's
        return ""

    # -- painting --------------------------------------------------------------------------------
    def paint(self, painter: QPainter, option: QStyleOptionGraphicsItem, widget: QWidget | None = None) -> None:
        lod = option.levelOfDetailFromTransform(painter.worldTransform())
        if lod < TINY:
            self._paint_tiny(painter, lod)
            return
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        low = self.graph.low_detail
        self._paint_body(painter)
        self._paint_title(painter, lod if low else 1.0)
        if not self.collapsed:
            if self.proxy is None or not self.proxy.isVisible():
                if low:
                    self._paint_param_bars(painter)
                else:
                    self._paint_param_text(painter)
                    if self.proxy is None:
                        self._schedule_panel()
            self._paint_ports(painter, lod if low else 1.0)
            self._paint_text_lines(painter)
            self._paint_images(painter)
            self._paint_progress(painter)
        self._paint_border(painter)

    def _schedule_panel(self) -> None:  # pragma: no cover - NodeItem's
        pass

    def _colors(self) -> tuple[QColor, QColor]:
        bypassed = self.model.flag(self.node_id, "bypassed")
        header = QColor(theme.PLACEHOLDER if self.is_placeholder else theme.BYPASSED if bypassed
                        else theme.NODE_HEADER)
        return header, QColor("#3b2d45" if bypassed else theme.NODE_BG)

    def _paint_body(self, painter: QPainter) -> None:
        rect = self.body_rect()
        header_color, body_color = self._colors()
        if self.state == "running":   # a glow
            for i, alpha in enumerate((40, 70, 110)):
                painter.setPen(QPen(QColor(79, 195, 247, alpha), 8 - 2.5 * i))
                painter.setBrush(Qt.BrushStyle.NoBrush)
                painter.drawRoundedRect(rect, RADIUS, RADIUS)
        path = QPainterPath()
        path.addRoundedRect(rect, RADIUS, RADIUS)
        painter.fillPath(path, body_color)
        header = QPainterPath()
        header.addRoundedRect(QRectF(0, 0, self.width, HEADER), RADIUS, RADIUS)
        if not self.collapsed:
            header.addRect(QRectF(0, HEADER - RADIUS, self.width, RADIUS))
        painter.fillPath(header.simplified(), header_color)

    def _paint_title(self, painter: QPainter, lod: float) -> None:
        """The collapse arrow, the title and the run badge. Below the readable zoom the title
        grows (up to the header's height) so it stays legible, and the badge gives way."""
        painter.setPen(QColor(theme.NODE_TEXT))
        painter.setFont(self.small_font)
        painter.drawText(QRectF(6, 0, 14, HEADER), Qt.AlignmentFlag.AlignVCenter, "▸" if self.collapsed else "▾")
        font = QFont(self._title_font)
        badge = self._badge()
        if lod < 1.0:
            font.setPixelSize(int(min(HEADER - 8, max(13.0, 11.0 / lod))))
            badge = None
        painter.setFont(font)
        title_rect = QRectF(22, 0, self.width - 30 - (60 if badge else 0), HEADER)
        title = QFontMetricsF(font).elidedText(self.model.title(self.node_id), Qt.TextElideMode.ElideRight,
                                               title_rect.width())
        painter.drawText(title_rect, Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignLeft, title)
        if badge:
            text, color = badge
            painter.setFont(self.small_font)
            painter.setPen(QColor(color))
            painter.drawText(QRectF(self.width - 90, 0, 82, HEADER),
                             Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignRight, text)

    def _paint_border(self, painter: QPainter) -> None:
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
        painter.drawRoundedRect(self.body_rect(), RADIUS, RADIUS)
        if not self.collapsed:
            painter.setPen(QPen(QColor(theme.NODE_SUBTEXT), 1.2))
            for i in (4.0, 8.0):
                painter.drawLine(QPointF(self.width - i, self.height - 2), QPointF(self.width - 2, self.height - i))

    def _paint_tiny(self, painter: QPainter, lod: float) -> None:
        """Zoomed far out: a block with a large title, no ports, so a whole large graph pans smoothly."""
        rect = self.body_rect()
        header, body = self._colors()
        painter.fillRect(rect, body)
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
        if self.state == "failed":
            return "✗ failed", theme.ERROR
        if self.state == "cached":
            return "cached", theme.CACHED
        if self.state == "done" and self.seconds is not None:
            return (f"✓ {self.seconds:.1f}s" if self.seconds >= 0.05 else "✓"), "#8bc34a"
        if self.state == "running":
            return "running…", theme.RUNNING
        if self.state == "queued":
            return "queued", theme.NODE_SUBTEXT
        return None

    def _paint_ports(self, painter: QPainter, lod: float = 1.0) -> None:
        """Each port's name; below the readable zoom in a larger font (up to a row's height), as
        the title, so a zoomed-out graph still says what connects to what."""
        font = QFont(self.small_font)
        if lod < 1.0:
            font.setPixelSize(int(min(ROW - 6, max(11.0, 9.0 / lod))))
        painter.setFont(font)
        fm = QFontMetricsF(font)
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

    def _param_rows(self) -> list[tuple[QRectF, object]]:
        y = HEADER + self._body_rows() * ROW + 4
        return [(QRectF(8, y + top, self.width - 16, height), param)
                for top, height, param in ParamPanel.row_layout(self.spec.params)]

    def param_at(self, scene_pos: QPointF) -> str | None:
        """The name of the param whose row (label or editor) is under `scene_pos`, if any."""
        if self.collapsed or not self.has_params:
            return None
        pos = self.mapFromScene(scene_pos)
        for rect, param in self._param_rows():
            if rect.adjusted(-8, -2, 8, 2).contains(pos):
                return param.name
        return None

    def _paint_param_bars(self, painter: QPainter) -> None:
        """Below the readable zoom: where each editor is, without text nobody could read."""
        if not self.has_params:
            return
        for rect, _param in self._param_rows():
            painter.fillRect(rect.adjusted(0, 2, 0, -2), QColor("#1f2024"))

    def _paint_param_text(self, painter: QPainter) -> None:
        """Params as text, where the editors are not built yet."""
        if not self.has_params:
            return
        painter.setFont(self.small_font)
        fm = QFontMetricsF(self.small_font)
        params = self.model.nodes[self.node_id].params
        top_left = Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop
        for rect, param in self._param_rows():
            value = params.get(param.name, param.default)
            painter.fillRect(rect.adjusted(0, 1, 0, -1), QColor("#1f2024"))
            painter.setPen(QColor(theme.NODE_SUBTEXT))
            painter.drawText(rect.adjusted(6, 0, -6, 0), top_left if param.multiline
                             else Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter,
                             param.name.replace("_", " "))
            painter.setPen(QColor(theme.NODE_TEXT))
            text = str(value).replace("\n", " ")
            if param.role is ParamRole.PAINTED_MASK:   # PNG data: say what it is, not its bytes
                text = painted_mask.summary(text)
            painter.drawText(rect.adjusted(6, 16 if param.multiline else 0, -6, 0),
                             top_left if param.multiline else (Qt.AlignmentFlag.AlignRight
                                                               | Qt.AlignmentFlag.AlignVCenter),
                             fm.elidedText(text, Qt.TextElideMode.ElideRight, rect.width() - 12))

    def _paint_text_lines(self, painter: QPainter) -> None:
        lines = self._text_lines()
        if not lines:
            return
        painter.setFont(self.small_font)
        y = HEADER + self._body_rows() * ROW + 2 + self._panel_height()
        for i, line in enumerate(lines):
            painter.setPen(QColor("#ff8a80") if i == 0 and self.is_placeholder else
                           QColor(theme.NODE_SUBTEXT if self.is_placeholder else theme.NODE_TEXT))
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
            painter.setFont(self.small_font)
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
