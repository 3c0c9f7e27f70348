"""Dragging a wire on the canvas: the state machine from a press on a port to the drop.

- begin: from an output (forwards), from an unconnected input (backwards), from a connected
  input (its wire is picked up by that end, as in ComfyUI) or, with Shift, from a reroute dot;
  ports the wire cannot reach are dimmed;
- move: the dashed wire follows the cursor and snaps to a compatible port under it;
- finish: connect to the port dropped on (or the node's first free compatible port); a picked-up
  wire dropped on empty canvas is disconnected, a new one asks what to add there (the scene's
  `wireDropped`); a port of the wrong direction or a node with no fitting port does nothing;
- cancel (Esc): everything as before the press.
Every change to the graph goes through the controller, as one undo step.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QPointF, Qt
from PySide6.QtGui import QPen
from PySide6.QtWidgets import QGraphicsPathItem

from nodeforge.core.types import ports_compatible
from nodeforge.ui import theme
from nodeforge.ui.canvas.edges import PortItem, RerouteItem, wire_path
from nodeforge.ui.canvas.node_item import NodeItem

if TYPE_CHECKING:  # pragma: no cover
    from nodeforge.ui.canvas.scene import EdgeKey, GraphScene
    from nodeforge.ui.graph.controller import GraphController
    from nodeforge.ui.graph.model import GraphModel


class WireDrag:
    """A wire being dragged: from an output (forwards) or from an input (backwards)."""

    def __init__(self, start: PortItem | None, *, source: tuple[str, str] | None = None,
                 target: tuple[str, str] | None = None, port_type: str, detaching: "EdgeKey | None" = None,
                 via_reroute: str | None = None, anchor: QPointF) -> None:
        self.start = start
        self.source = source            # (node, output) the wire comes from, if known
        self.target = target            # (node, input) the wire goes into, when dragging backwards
        self.port_type = port_type
        self.detaching = detaching
        self.via_reroute = via_reroute
        self.anchor = anchor
        self.path = QGraphicsPathItem()
        self.path.setZValue(5)
        self.path.setPen(QPen(theme.port_color(port_type), 2.4, Qt.PenStyle.DashLine))


class WireDragger:
    """The wire drag of one scene; `drag` is the wire in flight, or None."""

    def __init__(self, scene: "GraphScene", model: "GraphModel", controller: "GraphController") -> None:
        self.scene = scene
        self.model = model
        self.controller = controller
        self.drag: WireDrag | None = None

    # -- begin ------------------------------------------------------------------------------------
    def begin(self, port: PortItem) -> WireDrag:
        scene = self.scene
        nid = port.node_id
        if port.is_output:
            drag = WireDrag(port, source=(nid, port.name), port_type=port.port_type, anchor=port.scenePos())
        else:
            link = self.model.nodes[nid].inputs.get(port.name)
            if link is not None and link[0] in scene.nodes and link[1] in scene.nodes[link[0]].outputs:
                # Pick the existing wire up by its input end, as in ComfyUI.
                src_port = scene.nodes[link[0]].outputs[link[1]]
                rid = self.model.reroute_of(nid, port.name)
                anchor = scene.reroute_items[rid].scenePos() if rid in scene.reroute_items else src_port.scenePos()
                drag = WireDrag(src_port, source=link, port_type=src_port.port_type, detaching=(nid, port.name),
                                via_reroute=rid, anchor=anchor)
            else:
                drag = WireDrag(port, target=(nid, port.name), port_type=port.port_type, anchor=port.scenePos())
        self._start(drag)
        return drag

    def begin_from_reroute(self, item: RerouteItem) -> WireDrag | None:
        source = self.controller.reroute_source(item.rid)
        if source is None:
            return None
        drag = WireDrag(None, source=source, port_type=item.port_type, via_reroute=item.rid, anchor=item.scenePos())
        self._start(drag)
        return drag

    def _start(self, drag: WireDrag) -> None:
        self.drag = drag
        self.scene.addItem(drag.path)
        drag.path.setPath(wire_path(drag.anchor, drag.anchor))
        self._show_detached(drag, False)
        self._dim_incompatible(True)

    # -- move ---------------------------------------------------------------------------------------
    def move(self, scene_pos: QPointF) -> None:
        drag = self.drag
        if drag is None:
            return
        port = self.scene.port_at(scene_pos)
        end = port.scenePos() if port is not None and self.compatible(port) else scene_pos
        if drag.source is not None:
            drag.path.setPath(wire_path(drag.anchor, end))
        else:
            drag.path.setPath(wire_path(end, drag.anchor))

    def compatible(self, port: PortItem) -> bool:
        """Whether the wire in flight may end at `port` (any port when none is in flight)."""
        return self.drag is None or _fits(self.drag, port)

    # -- finish or cancel ---------------------------------------------------------------------------
    def finish(self, scene_pos: QPointF) -> None:
        """Drop the dragged wire: connect to a compatible port, or ask what to add there."""
        drag = self._end()
        if drag is None:
            return
        scene = self.scene
        port = scene.port_at(scene_pos)
        on_node = any(isinstance(i, NodeItem) for i in scene.items(scene_pos))
        if port is None and on_node and self._connect_to_param(drag, scene_pos):
            return
        if port is None and on_node:
            port = self._first_free_port(scene_pos, drag)
        if port is not None:
            if port.is_output == (drag.source is None):
                self._connect_dropped(drag, port)
            return   # a port of the wrong direction: nothing happens
        if on_node:
            return   # a node with no compatible port: nothing happens
        if drag.detaching:
            self.controller.disconnect(*drag.detaching)
            return
        context: dict[str, Any] = {"type": drag.port_type, "via_reroute": drag.via_reroute}
        if drag.source is not None:
            context["connect_from"] = drag.source
        else:
            context["connect_to"] = drag.target
        scene.wireDropped.emit(scene_pos, context)

    def cancel(self) -> None:
        self._end()

    def _end(self) -> WireDrag | None:
        """Take the wire in flight off the canvas and undim the ports; the drag, or None."""
        drag, self.drag = self.drag, None
        if drag is not None:
            self._dim_incompatible(False)
            self.scene.removeItem(drag.path)
            self._show_detached(drag, True)
        return drag

    def _show_detached(self, drag: WireDrag, visible: bool) -> None:
        edges = self.scene.edges
        if drag.detaching and drag.detaching in edges:
            edges[drag.detaching].setVisible(visible)

    def _dim_incompatible(self, on: bool) -> None:
        for item in self.scene.nodes.values():
            for port in list(item.inputs.values()) + list(item.outputs.values()):
                port.setOpacity(1.0 if not on or self.compatible(port) else 0.2)

    def _connect_dropped(self, drag: WireDrag, port: PortItem) -> None:
        controller = self.controller
        if drag.source is None:
            controller.connect(port.node_id, port.name, drag.target[0], drag.target[1])
            return
        if drag.detaching == (port.node_id, port.name):
            return   # put back where it was
        controller.stack.beginMacro("Connect")
        ok = controller.connect(drag.source[0], drag.source[1], port.node_id, port.name, via_reroute=drag.via_reroute)
        if ok and drag.detaching:
            controller.disconnect(*drag.detaching)
        controller.stack.endMacro()

    def _connect_to_param(self, drag: WireDrag, scene_pos: QPointF) -> bool:
        """A plain value (an INT output, say) dropped on a param's row wires into that param, as ComfyUI does
        when a link is dropped on a widget; False when it is no such row or the value does not fit it."""
        node = next((i for i in self.scene.items(scene_pos) if isinstance(i, NodeItem)), None)
        name = node.param_at(scene_pos) if node is not None and drag.source is not None else None
        controller = self.controller
        if name is None or not controller.can_connect(drag.source[0], drag.source[1], node.node_id, name):
            return False
        controller.stack.beginMacro("Connect")
        controller.connect(drag.source[0], drag.source[1], node.node_id, name, via_reroute=drag.via_reroute)
        if drag.detaching and drag.detaching != (node.node_id, name):
            controller.disconnect(*drag.detaching)
        controller.stack.endMacro()
        return True

    def _first_free_port(self, scene_pos: QPointF, drag: WireDrag) -> PortItem | None:
        """Dropped on a node's body: its first compatible port, preferring an unconnected one."""
        node = next((i for i in self.scene.items(scene_pos) if isinstance(i, NodeItem)), None)
        if node is None:
            return None
        ports = node.outputs.values() if drag.source is None else node.inputs.values()
        fits = [p for p in ports if _fits(drag, p)]
        free = [p for p in fits if not p.connected]
        return (free or fits or [None])[0]


def _fits(drag: WireDrag, port: PortItem) -> bool:
    """Whether `drag` may end at `port`: the other direction, another node, compatible types."""
    if drag.source is not None:
        return not port.is_output and port.node_id != drag.source[0] and ports_compatible(drag.port_type, port.port_type)
    return port.is_output and port.node_id != drag.target[0] and ports_compatible(port.port_type, drag.port_type)
