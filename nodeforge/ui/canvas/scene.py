"""The canvas scene: mirrors the graph model as items and hands mouse gestures to the controller.

Items are created and removed only in response to model signals, so undo, redo, paste and
file loading all draw through the same path. Wire drags are their own state machine
(`nodeforge.ui.canvas.wiring.WireDragger`, the scene's `wires`).
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from PySide6.QtCore import QPointF, Qt, QTimer, Signal
from PySide6.QtWidgets import QGraphicsItem, QGraphicsScene

from nodeforge.ui.graph.controller import GraphController
from nodeforge.ui.canvas.edges import EdgeItem, PortItem, RerouteItem
from nodeforge.ui.canvas.group_item import GroupItem
from nodeforge.ui.graph.model import GraphModel
from nodeforge.ui.canvas.node_item import NodeItem
from nodeforge.ui.canvas.wiring import WireDragger

EdgeKey = tuple[str, str]   # (consumer node id, input name)


class GraphScene(QGraphicsScene):
    wireDropped = Signal(QPointF, object)     # scene pos, {"connect_from"|"connect_to", "type", "via_reroute"}
    renameRequested = Signal(str)
    groupRenameRequested = Signal(int)
    imageActivated = Signal(str)
    maskEditRequested = Signal(str, str)      # node id, painted-mask param
    paramClamped = Signal(str, str, str)      # node id, param, what the typed value became (in words)

    def __init__(self, model: GraphModel, controller: GraphController, parent=None) -> None:
        super().__init__(parent)
        self.model = model
        self.controller = controller
        self.nodes: dict[str, NodeItem] = {}
        self.edges: dict[EdgeKey, EdgeItem] = {}
        self.reroute_items: dict[str, RerouteItem] = {}
        self.group_items: list[GroupItem] = []
        self._outgoing: dict[str, set[EdgeKey]] = {}
        self.low_detail = False
        self.fast_zoom = False
        self.wires = WireDragger(self, model, controller)
        self.used_outputs: dict[str, set[str]] = {}
        # How a file param's value becomes a path (the window sets the engine's model paths).
        self.file_resolver: Any = None    # during rebuild only: node -> outputs in use
        self._panel_queue: list[NodeItem] = []
        self._panel_timer = QTimer(self)
        self._panel_timer.setInterval(0)
        self._panel_timer.timeout.connect(self._build_some_panels)
        self.setSceneRect(-20000, -20000, 40000, 40000)
        self.setItemIndexMethod(QGraphicsScene.ItemIndexMethod.BspTreeIndex)
        model.reset.connect(self.rebuild)
        model.nodeAdded.connect(self._on_node_added)
        model.nodeRemoved.connect(self._on_node_removed)
        model.inputChanged.connect(self._on_input_changed)
        model.paramChanged.connect(lambda nid, name: self.nodes[nid].sync_param(name) if nid in self.nodes else None)
        model.titleChanged.connect(lambda nid: self.nodes[nid].sync_title() if nid in self.nodes else None)
        model.positionChanged.connect(self._on_position_changed)
        model.flagChanged.connect(lambda nid, _f: self.nodes[nid].sync_flags() if nid in self.nodes else None)
        model.nodeUiChanged.connect(lambda nid, key: self.nodes[nid].sync_node_ui(key) if nid in self.nodes else None)
        model.sizeChanged.connect(lambda nid: self.nodes[nid].sync_size() if nid in self.nodes else None)
        model.groupsChanged.connect(self._rebuild_groups)
        model.reroutesChanged.connect(self._rebuild_reroutes)
        self.rebuild()

    # -- building from the model --------------------------------------------------------------------
    def rebuild(self) -> None:
        self.wires.drag = None
        self.clear()
        self.nodes.clear()
        self.edges.clear()
        self.reroute_items.clear()
        self.group_items.clear()
        self._outgoing.clear()
        self._panel_queue.clear()
        self.used_outputs = {}
        for node in self.model.nodes.values():
            for src, out in node.inputs.values():
                self.used_outputs.setdefault(src, set()).add(out)
        for nid in self.model.nodes:
            item = NodeItem(self, nid)
            self.nodes[nid] = item
            self.addItem(item)
        self.used_outputs = {}
        for nid, node in self.model.nodes.items():
            for name in node.inputs:
                self._refresh_edge((nid, name))
        self._rebuild_reroutes()
        self._rebuild_groups()
        self.queue_all_panels()

    # -- param editors are built lazily: first for nodes being drawn, then the rest when idle ----------
    def want_panel(self, item: NodeItem) -> None:
        self._panel_queue.insert(0, item)
        self._panel_timer.start()

    def queue_all_panels(self) -> None:
        self._panel_queue.extend(i for i in self.nodes.values() if i.has_params and i.proxy is None)
        if self._panel_queue:
            self._panel_timer.start()

    def _build_some_panels(self) -> None:
        # A small time budget per event-loop turn keeps the canvas responsive meanwhile.
        start = time.perf_counter()
        while self._panel_queue and time.perf_counter() - start < 0.008:
            item = self._panel_queue.pop(0)
            if item.proxy is None and self.nodes.get(item.node_id) is item:
                item.ensure_panel()
        if not self._panel_queue:
            self._panel_timer.stop()

    def panels_pending(self) -> int:
        return sum(1 for i in self.nodes.values() if i.has_params and i.proxy is None)

    def _on_node_added(self, nid: str) -> None:
        item = NodeItem(self, nid)
        self.nodes[nid] = item
        self.addItem(item)
        # Editors come on the next event-loop turns, so pasting a hundred nodes does not freeze.
        self.want_panel(item)
        for name in self.model.nodes[nid].inputs:
            self._refresh_edge((nid, name))

    def _on_node_removed(self, nid: str) -> None:
        for key in [k for k in self.edges if k[0] == nid] + list(self._outgoing.pop(nid, ())):
            self._drop_edge(key)
        item = self.nodes.pop(nid, None)
        if item is not None:
            item.remove_note()
            self.removeItem(item)

    def _on_input_changed(self, nid: str, name: str) -> None:
        old = self.edges.get((nid, name))
        old_src = getattr(old, "src", None)
        self._refresh_edge((nid, name))
        if nid in self.nodes:
            self.nodes[nid].rebuild_ports()      # a param's port goes with the wire that fed it
            self.nodes[nid].sync_connections()
        for src in {old_src, (self.model.nodes[nid].inputs.get(name) or (None,))[0]}:
            if src in self.nodes:
                self.nodes[src].rebuild_ports()
                self.nodes[src].sync_connections()
                self._update_node_edges(src)

    def _on_position_changed(self, nid: str) -> None:
        item = self.nodes.get(nid)
        if item is not None:
            pos = QPointF(*self.model.position(nid))
            if item.pos() != pos:
                item.setPos(pos)

    def _drop_edge(self, key: EdgeKey) -> None:
        edge = self.edges.pop(key, None)
        if edge is None:
            return
        src = getattr(edge, "src", None)
        if src in self._outgoing:
            self._outgoing[src].discard(key)
        self.removeItem(edge)

    def _refresh_edge(self, key: EdgeKey) -> None:
        dst, name = key
        node = self.model.nodes.get(dst)
        link = node.inputs.get(name) if node else None
        if link is None or link[0] not in self.nodes or dst not in self.nodes:
            self._drop_edge(key)
            return
        src, output = link
        src_item = self.nodes[src]
        if output not in src_item.outputs:
            src_item.rebuild_ports()
        if name not in self.nodes[dst].inputs:
            self.nodes[dst].rebuild_ports()
        edge = self.edges.get(key)
        port_type = self.model.output_type(src, output)
        if port_type == "*":
            port_type = self.model.input_type(dst, name)
        if edge is None:
            edge = EdgeItem(dst, name, port_type)
            self.edges[key] = edge
            self.addItem(edge)
        else:
            old_src = getattr(edge, "src", None)
            if old_src in self._outgoing:
                self._outgoing[old_src].discard(key)
            edge.set_type(port_type)
        edge.src = src
        edge.output = output
        self._outgoing.setdefault(src, set()).add(key)
        self._place_edge(edge)

    def _place_edge(self, edge: EdgeItem) -> None:
        src_item = self.nodes.get(edge.src)
        dst_item = self.nodes.get(edge.dst)
        if src_item is None or dst_item is None:
            return
        out_port = src_item.outputs.get(edge.output)
        in_port = dst_item.inputs.get(edge.input_name)
        if out_port is None or in_port is None:
            return
        rid = self.model.reroute_of(edge.dst, edge.input_name)
        via = self.reroute_items[rid].scenePos() if rid in self.reroute_items else None
        edge.set_points(out_port.scenePos(), in_port.scenePos(), via)

    def _update_node_edges(self, nid: str) -> None:
        for key in [k for k in self.edges if k[0] == nid] if nid in self.nodes else []:
            self._place_edge(self.edges[key])
        for key in list(self._outgoing.get(nid, ())):
            if key in self.edges:
                self._place_edge(self.edges[key])

    def node_moved(self, item: NodeItem) -> None:
        if self.nodes.get(item.node_id) is item:
            self._update_node_edges(item.node_id)

    def node_geometry_changed(self, item: NodeItem) -> None:
        self.node_moved(item)

    def _rebuild_reroutes(self) -> None:
        for item in self.reroute_items.values():
            self.removeItem(item)
        self.reroute_items.clear()
        for rid, data in self.model.reroutes.items():
            src = self.controller.reroute_source(rid)
            port_type = self.model.output_type(*src) if src else "*"
            item = RerouteItem(rid, port_type)
            item.setPos(*data.get("pos", [0, 0]))
            self.reroute_items[rid] = item
            self.addItem(item)
        for edge in self.edges.values():
            self._place_edge(edge)

    def reroute_moved(self, item: RerouteItem) -> None:
        data = self.model.reroutes.get(item.rid)
        if not data or self.reroute_items.get(item.rid) is not item:
            return
        for dst, name in data.get("links", []):
            edge = self.edges.get((dst, name))
            if edge is not None:
                self._place_edge(edge)

    def _rebuild_groups(self) -> None:
        for item in self.group_items:
            self.removeItem(item)
        self.group_items = []
        for i, data in enumerate(self.model.groups):
            item = GroupItem(self, i, data)
            self.group_items.append(item)
            self.addItem(item)

    def items_in_group(self, group: GroupItem) -> list[QGraphicsItem]:
        frame = group.scene_rect()
        members: list[QGraphicsItem] = [n for n in self.nodes.values()
                                        if frame.contains(n.sceneBoundingRect().center())]
        members += [r for r in self.reroute_items.values() if frame.contains(r.scenePos())]
        return members

    def group_dragged(self, group: GroupItem) -> None:
        groups = [dict(g) for g in self.model.groups]
        groups[group.index] = {**groups[group.index], "bounding": group.bounding()}
        self.commit_moves(groups_after=groups)

    # -- selection helpers ------------------------------------------------------------------------------
    def selected_node_ids(self) -> list[str]:
        return [item.node_id for item in self.selectedItems() if isinstance(item, NodeItem)]

    def selected_group_indexes(self) -> list[int]:
        return [item.index for item in self.selectedItems() if isinstance(item, GroupItem)]

    def selected_reroutes(self) -> list[str]:
        return [item.rid for item in self.selectedItems() if isinstance(item, RerouteItem)]

    def selected_edges(self) -> list[EdgeKey]:
        return [(item.dst, item.input_name) for item in self.selectedItems() if isinstance(item, EdgeItem)]

    def refresh_file_choices(self) -> int:
        """Every model list on the canvas reads the model folders again (Models > Rescan); returns
        how many lists were refreshed."""
        return sum(item.refresh_file_choices() for item in self.nodes.values())

    def select_nodes(self, ids: list[str]) -> None:
        self.clearSelection()
        for nid in ids:
            if nid in self.nodes:
                self.nodes[nid].setSelected(True)

    def set_low_detail(self, low: bool) -> None:
        if low == self.low_detail:
            return
        self.low_detail = low
        for item in self.nodes.values():
            if item.proxy is not None:
                item.proxy.setVisible(not low and not item.collapsed)

    def resolve_file(self, kind: Any, name: str) -> Path | None:
        try:
            if self.file_resolver is not None:
                return Path(self.file_resolver(kind, name))
            path = Path(name).expanduser()
            return path if path.is_file() else None
        except Exception:   # not found: nothing to show
            return None

    def set_fast_zoom(self, on: bool) -> None:
        """During a zoom gesture, draw nodes and their editors from bitmaps cached at one scale
        (fast, slightly soft) instead of re-rendering every widget at every step."""
        if on == self.fast_zoom:
            return
        self.fast_zoom = on
        mode = (QGraphicsItem.CacheMode.ItemCoordinateCache if on
                else QGraphicsItem.CacheMode.DeviceCoordinateCache)
        for item in self.nodes.values():
            item.setCacheMode(mode)
            if item.proxy is not None:
                item.proxy.setCacheMode(mode)

    def request_rename(self, nid: str) -> None:
        self.renameRequested.emit(nid)

    def request_mask_edit(self, nid: str, param: str) -> None:
        self.maskEditRequested.emit(nid, param)

    def request_group_rename(self, index: int) -> None:
        self.groupRenameRequested.emit(index)

    # -- moves -------------------------------------------------------------------------------------------
    def commit_moves(self, groups_after: list[dict[str, Any]] | None = None) -> None:
        """After a drag: record every item that moved away from its model position as one step."""
        moves = {}
        for nid, item in self.nodes.items():
            old = self.model.position(nid)
            new = (round(item.pos().x(), 1), round(item.pos().y(), 1))
            if abs(old[0] - new[0]) > 0.05 or abs(old[1] - new[1]) > 0.05:
                moves[nid] = (old, new)
        reroutes_after = None
        for rid, item in self.reroute_items.items():
            old = self.model.reroutes[rid]["pos"]
            new = [round(item.pos().x(), 1), round(item.pos().y(), 1)]
            if abs(old[0] - new[0]) > 0.05 or abs(old[1] - new[1]) > 0.05:
                if reroutes_after is None:
                    reroutes_after = {k: dict(v) for k, v in self.model.reroutes.items()}
                reroutes_after[rid]["pos"] = new
        self.controller.move(moves, groups_after, reroutes_after)

    # -- ports under the cursor (the wire drag asks too) ---------------------------------------------------
    def port_at(self, scene_pos: QPointF) -> PortItem | None:
        for item in self.items(scene_pos):
            if isinstance(item, PortItem):
                return item
        for item in self.items(scene_pos):
            if isinstance(item, NodeItem):
                return item.port_at(scene_pos)
        return None

    # -- mouse --------------------------------------------------------------------------------------------
    def mousePressEvent(self, event) -> None:  # noqa: N802
        if event.button() == Qt.MouseButton.LeftButton:
            pos = event.scenePos()
            port = self.port_at(pos)
            if port is not None:
                self.wires.begin(port)
                event.accept()
                return
            if event.modifiers() & Qt.KeyboardModifier.ShiftModifier:
                for item in self.items(pos):
                    if isinstance(item, RerouteItem) and self.wires.begin_from_reroute(item):
                        event.accept()
                        return
        super().mousePressEvent(event)

    def mouseMoveEvent(self, event) -> None:  # noqa: N802
        if self.wires.drag is not None:
            self.wires.move(event.scenePos())
            event.accept()
            return
        super().mouseMoveEvent(event)

    def mouseReleaseEvent(self, event) -> None:  # noqa: N802
        if self.wires.drag is not None and event.button() == Qt.MouseButton.LeftButton:
            self.wires.finish(event.scenePos())
            event.accept()
            return
        super().mouseReleaseEvent(event)
        if event.button() == Qt.MouseButton.LeftButton:
            self.commit_moves()

    def mouseDoubleClickEvent(self, event) -> None:  # noqa: N802
        for item in self.items(event.scenePos()):
            if isinstance(item, EdgeItem):
                p = event.scenePos()
                self.controller.add_reroute(item.dst, item.input_name, (p.x(), p.y()))
                event.accept()
                return
            if isinstance(item, RerouteItem):
                self.controller.remove_reroutes([item.rid])
                event.accept()
                return
        super().mouseDoubleClickEvent(event)

