"""Edits on the canvas selection: delete, select all, duplicate, align, arrange, group, fit a group
to its nodes, rename. The window's actions, its context menu and the document call these; each
edit is one undo step through the `GraphController`."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from PySide6.QtWidgets import QInputDialog, QWidget

from nodeforge.ui.canvas.layout import arrange, overlapping
from nodeforge.ui.canvas.node_item import NodeItem

if TYPE_CHECKING:  # pragma: no cover
    from nodeforge.ui.canvas.scene import GraphScene
    from nodeforge.ui.graph.controller import GraphController
    from nodeforge.ui.graph.model import GraphModel

ARRANGE = "Arrange graph"


class SelectionEdits:
    def __init__(self, model: "GraphModel", controller: "GraphController", scene: "GraphScene",
                 parent: QWidget) -> None:
        self.model = model
        self.controller = controller
        self.stack = controller.stack
        self.scene = scene
        self.parent = parent        # the rename dialogs open over it

    def delete(self) -> None:
        scene, controller = self.scene, self.controller
        nodes = scene.selected_node_ids()
        edges = scene.selected_edges()
        reroutes = scene.selected_reroutes()
        groups = scene.selected_group_indexes()
        if not (nodes or edges or reroutes or groups):
            return
        self.stack.beginMacro("Delete")
        for dst, name in edges:
            if dst not in nodes:
                controller.disconnect(dst, name)
        if reroutes:
            controller.remove_reroutes(reroutes)
        controller.remove_nodes(nodes)
        for index in sorted(groups, reverse=True):
            controller.remove_group(index)
        self.stack.endMacro()

    def select_all(self) -> None:
        if self.scene.focusItem() is not None:
            return
        for item in self.scene.nodes.values():
            item.setSelected(True)

    def toggle_flag(self, flag: str) -> None:
        """Collapse, bypass or mute the selected nodes (`flag` is "collapsed", "bypassed", "muted")."""
        self.controller.toggle_flag(self.scene.selected_node_ids(), flag)

    def duplicate(self) -> list[str]:
        ids = self.controller.duplicate(self.scene.selected_node_ids())
        self.scene.select_nodes(ids)
        return ids

    def align(self, mode: str) -> None:
        ids = self.scene.selected_node_ids()
        sizes = {n: self.scene.nodes[n].size() for n in ids}
        self.controller.align(ids, mode, sizes)

    def nodes_overlap(self) -> bool:
        rects = {}
        for nid, item in self.scene.nodes.items():
            x, y = self.model.position(nid)
            rects[nid] = (x, y, item.width, item.height)
        return overlapping(rects)

    def arrange(self, label: Any = ARRANGE) -> None:
        """The selection (or the whole graph) in columns along the wires; `label` names the undo
        step (a QAction's `checked` flag when triggered from a menu: then the default)."""
        model = self.model
        ids = self.scene.selected_node_ids() or list(model.nodes)
        if not ids:
            return
        chosen = set(ids)
        links = [(src, nid) for nid in ids for src, _ in model.nodes[nid].inputs.values() if src in chosen]
        sizes = {n: self.scene.nodes[n].size() for n in ids}
        origin = (min(model.position(n)[0] for n in ids), min(model.position(n)[1] for n in ids))
        positions = arrange(ids, links, sizes, origin)
        self.stack.beginMacro(label if isinstance(label, str) else ARRANGE)
        self.controller.move({n: (model.position(n), positions[n]) for n in ids})
        self.stack.endMacro()

    def group_selection(self) -> None:
        items = [self.scene.nodes[n] for n in self.scene.selected_node_ids()]
        if items:
            rect = _united(items).adjusted(-20, -50, 20, 20)
            self.controller.add_group((rect.x(), rect.y(), rect.width(), rect.height()), "Group")

    def fit_group(self, index: int) -> None:
        group = self.scene.group_items[index]
        members = [m for m in self.scene.items_in_group(group) if isinstance(m, NodeItem)]
        if members:
            rect = _united(members).adjusted(-20, -50, 20, 20)
            self.controller.edit_group(index, bounding=[round(v, 1) for v in (rect.x(), rect.y(), rect.width(),
                                                                               rect.height())])

    def rename_selected(self) -> None:
        ids = self.scene.selected_node_ids()
        if len(ids) == 1:
            self.rename_node(ids[0])
        elif len(self.scene.selected_group_indexes()) == 1:
            self.rename_group(self.scene.selected_group_indexes()[0])

    def rename_node(self, nid: str) -> None:
        text, ok = QInputDialog.getText(self.parent, "Rename node", "Title:", text=self.model.title(nid))
        if ok:
            self.controller.set_title(nid, text.strip() or None)

    def rename_group(self, index: int) -> None:
        text, ok = QInputDialog.getText(self.parent, "Rename group", "Title:",
                                        text=self.model.groups[index].get("title", ""))
        if ok:
            self.controller.edit_group(index, title=text.strip() or "Group")


def _united(items: list) -> Any:
    rect = items[0].sceneBoundingRect()
    for item in items[1:]:
        rect = rect.united(item.sceneBoundingRect())
    return rect
