"""One node on the canvas as the user works with it: ports and editors built from its
declaration, model changes shown, drags, resizes, collapse and edits sent to the controller.

Drawing and layout live in NodeGraphic (node_graphic.py). A NodeItem observes the model
through the scene (which forwards model signals to it) and never changes the model itself.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QPointF, Qt
from PySide6.QtGui import QFontMetricsF, QImage
from PySide6.QtWidgets import QGraphicsItem, QGraphicsProxyWidget

from nodeforge.core import placeholder
from nodeforge.core.types import PARAM_PORTS, FileKind, ParamRole
from nodeforge.ui.canvas.edges import PortItem, node_layout_changed
from nodeforge.ui.canvas.help_text import node_help, param_help
from nodeforge.ui.canvas.node_graphic import GRIP, HEADER, MIN_WIDTH, WIDTH, NodeGraphic
from nodeforge.ui.canvas.param_widgets import MaskEditor, ParamPanel

if TYPE_CHECKING:  # pragma: no cover
    from nodeforge.ui.canvas.scene import GraphScene

__all__ = ["NodeItem", "HEADER"]


_LAYOUT_CHANGES = (QGraphicsItem.GraphicsItemChange.ItemPositionHasChanged,
                   QGraphicsItem.GraphicsItemChange.ItemSceneHasChanged,
                   QGraphicsItem.GraphicsItemChange.ItemVisibleHasChanged)


class NodeItem(NodeGraphic):
    def __init__(self, scene: "GraphScene", node_id: str) -> None:
        super().__init__(scene, node_id)
        self.setFlag(QGraphicsItem.GraphicsItemFlag.ItemIsMovable, True)
        self.setFlag(QGraphicsItem.GraphicsItemFlag.ItemIsSelectable, True)
        self.setFlag(QGraphicsItem.GraphicsItemFlag.ItemSendsGeometryChanges, True)
        self.setCacheMode(QGraphicsItem.CacheMode.DeviceCoordinateCache)
        self.setAcceptHoverEvents(True)
        self.setZValue(0)
        self._panel_scheduled = False
        self._resizing: tuple[float, float] | None = None
        self._build()
        self.setToolTip(self._tooltip())
        if self.spec is not None and any(p.file is FileKind.IMAGE for p in self.spec.params):
            self.show_input_image()
        self.setPos(*self.model.position(node_id))

    # -- building -----------------------------------------------------------------------------------
    def _port_decls(self) -> tuple[list[tuple[str, str, bool]], list[tuple[str, str]]]:
        if self.spec is not None:
            ins = [(i.name, str(i.type), i.optional) for i in self.spec.inputs]
            # a param a wire feeds (an INT output into a width) shows a port while the wire is there
            node = self.model.nodes[self.node_id]
            ins += [(p.name, PARAM_PORTS.get(p.kind, "*"), True) for p in self.spec.params if p.name in node.inputs]
            outs = [(o.name, str(o.type)) for o in self.spec.outputs]
            return ins, outs
        # An unknown type: keep whatever ports its links use, so nothing is lost.
        node = self.model.nodes[self.node_id]
        if placeholder.is_placeholder(node):   # a ComfyUI node: it recorded its ports' types
            in_types, out_types = placeholder.input_types(node), placeholder.output_types(node)
            ins = [(name, in_types.get(name, "*"), False) for name in node.inputs]
            outs = list(out_types.items())
            for _dst, _name, output in self.model.consumers(self.node_id):
                if output not in out_types:
                    outs.append((output, "*"))
            return ins, outs
        ins = [(name, "*", False) for name in node.inputs]
        outs: list[tuple[str, str]] = []
        for _dst, _name, output in self.model.consumers(self.node_id):
            if output not in [o[0] for o in outs]:
                outs.append((output, "*"))
        return ins, outs

    def _build(self) -> None:
        ins, outs = self._port_decls()
        for name, port_type, optional in ins:
            self.inputs[name] = PortItem(self, name, port_type, False, optional, self._port_description(name, False))
        for name, port_type in outs:
            self.outputs[name] = PortItem(self, name, port_type, True, description=self._port_description(name, True))
        self.width = self._wanted_width()
        self.sync_connections(self.graph.used_outputs.get(self.node_id) if self.graph.used_outputs else None)
        self.relayout()

    def _port_description(self, name: str, is_output: bool) -> str:
        port = None if self.spec is None else (self.spec.output(name) if is_output else self.spec.input(name))
        return port.description if port is not None else ""

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
    def panel(self) -> ParamPanel | None:
        """The param editors (created on first use: building widgets for 500 nodes at load is slow)."""
        self.ensure_panel()
        return self._panel

    def ensure_panel(self) -> None:
        if self._panel is not None or not self.has_params:
            return
        self._panel = ParamPanel(self.spec.params, self._edited, int(self.width))
        self._panel.clamped.connect(self._clamped)
        for name in self._panel.editors:
            self.sync_param(name)
        self.sync_wired_editors()
        for name, editor in self._panel.editors.items():
            if isinstance(editor, MaskEditor):
                editor.editRequested.connect(lambda name=name: self.graph.request_mask_edit(self.node_id, name))
        seed = self._panel.seed_editor
        if seed is not None:
            seed.seedModeChosen.connect(self._seed_mode_chosen)
            seed.show_seed_mode(self.model.node_ui("seed_control", self.node_id))
        self.proxy = QGraphicsProxyWidget(self)
        self.proxy.setWidget(self._panel)
        self.proxy.setZValue(1)
        # Panning then blits a cached pixmap instead of repainting every widget.
        self.proxy.setCacheMode(QGraphicsItem.CacheMode.DeviceCoordinateCache)
        self.relayout()

    def _clamped(self, name: str, text: str) -> None:
        self.graph.paramClamped.emit(self.node_id, name, text)

    def _schedule_panel(self) -> None:
        if not self._panel_scheduled and self._panel is None and self.has_params:
            self._panel_scheduled = True
            self.graph.want_panel(self)

    def rebuild_ports(self) -> None:
        """For placeholders, whose ports follow their links, and for params a wire feeds."""
        if not self.is_placeholder and (self.spec is None or not self.spec.params):
            return
        self.sync_wired_editors()
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

    def sync_wired_editors(self) -> None:
        """A param a wire feeds takes its value from the wire: its editor is greyed and says so."""
        if self._panel is None:
            return
        wired = self.model.nodes[self.node_id].inputs
        for name, editor in self._panel.editors.items():
            link = wired.get(name)
            editor.setEnabled(link is None)
            editor.setToolTip(param_help(self.spec.param(name)) if link is None else
                              f"set by the wire from node {link[0]}'s {link[1]}; disconnect it to edit the value here")

    # -- model → item ---------------------------------------------------------------------------
    def sync_param(self, name: str) -> None:
        param = self.spec.param(name) if self.spec is not None else None
        if param is not None and (param.file is FileKind.IMAGE or param.role is ParamRole.PAINTED_MASK):
            self.show_input_image()
        if self._panel is None or name not in self._panel.editors:
            self.update()
            return
        params = self.model.nodes[self.node_id].params
        value = params[name] if name in params else self.spec.param(name).default
        self._panel.editors[name].set_value(value)

    def refresh_file_choices(self) -> int:
        """Re-list the choices of this node's file params (built editors only); returns how many."""
        if self._panel is None:
            return 0
        editors = [e for e in self._panel.editors.values() if e.param.file is not None and hasattr(e, "refresh")]
        for editor in editors:
            editor.refresh()
        return len(editors)

    def show_input_image(self) -> None:
        """An image-loading node shows the picture its path names, as in ComfyUI's LoadImage, with
        the mask painted on it (if any) in red."""
        for param in self.spec.params:
            if param.file is not FileKind.IMAGE:
                continue
            params = self.model.nodes[self.node_id].params
            value = params.get(param.name, param.default)
            path = self.graph.resolve_file(param.file, value) if value else None
            image = QImage(str(path)) if path is not None else QImage()
            if not image.isNull():
                mask = self.spec.param_with(ParamRole.PAINTED_MASK)
                if mask is not None and params.get(mask.name):
                    from nodeforge.ui.dialogs.mask_editor import with_mask

                    image = with_mask(image, params[mask.name])
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
        desc = node_help(self.spec) if self.spec else "Unknown node type"
        return f"{self.model.title(self.node_id)}: {node.type} (id {self.node_id})\n{desc}"

    # -- interaction ------------------------------------------------------------------------------
    def _seed_mode_chosen(self, mode: str) -> None:
        self.graph.controller.set_seed_control(self.node_id, mode)

    def sync_node_ui(self, key: str) -> None:
        if key == "seed_control" and self._panel is not None and self._panel.seed_editor is not None:
            self._panel.seed_editor.show_seed_mode(self.model.node_ui("seed_control", self.node_id))
        self.update()

    def _edited(self, name: str, value: Any, merge_key: Any) -> None:
        self.graph.controller.set_param(self.node_id, name, value, merge_key)

    def itemChange(self, change, value):  # noqa: N802
        if change in _LAYOUT_CHANGES:
            node_layout_changed()   # wire crossings recompute what they pass over
        if change == QGraphicsItem.GraphicsItemChange.ItemPositionHasChanged and self.scene() is not None:
            self.place_note()
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
        if self._resizing is not None:
            start_x, start_w = self._resizing
            self.set_width(start_w + event.scenePos().x() - start_x)
            event.accept()
            return
        super().mouseMoveEvent(event)

    def mouseReleaseEvent(self, event) -> None:  # noqa: N802
        if self._resizing is not None:
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

