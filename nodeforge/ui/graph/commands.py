"""Undo commands: every edit of the graph is one of these, pushed on the window's QUndoStack.

Each command stores what it needs to go both ways and calls only `GraphModel` mutators, so the
scene follows through the model's signals whichever way the stack moves.
"""
from __future__ import annotations

import copy
from typing import Any

from PySide6.QtGui import QUndoCommand

from nodeforge.ui.graph.model import GraphModel

PARAM_COMMAND_ID = 1001


class AddNodesCommand(QUndoCommand):
    """Add nodes (with their incoming links), e.g. from the search popup, paste or duplicate."""

    def __init__(self, model: GraphModel, records: list[dict[str, Any]], text: str = "Add node",
                 groups_after: list[dict[str, Any]] | None = None) -> None:
        super().__init__(text)
        self.model = model
        self.records = copy.deepcopy(records)
        self.groups_before = copy.deepcopy(model.groups)
        self.groups_after = groups_after

    def redo(self) -> None:
        for record in self.records:
            self.model.insert_node(record)
        if self.groups_after is not None:
            self.model.set_groups(self.groups_after)

    def undo(self) -> None:
        if self.groups_after is not None:
            self.model.set_groups(self.groups_before)
        for record in reversed(self.records):
            self.model.remove_node(record["id"])


class RemoveNodesCommand(QUndoCommand):
    """Delete nodes; links from them into surviving nodes are removed and restored on undo."""

    def __init__(self, model: GraphModel, node_ids: list[str], text: str = "Delete") -> None:
        super().__init__(text)
        self.model = model
        ids = set(node_ids)
        self.records = [model.node_record(nid) for nid in node_ids if nid in model.nodes]
        self.cut_links = [(dst, name, model.nodes[dst].inputs[name])
                          for dst, node in model.nodes.items() if dst not in ids
                          for name, (src, _out) in node.inputs.items() if src in ids]
        self.reroutes_before = copy.deepcopy(model.reroutes)
        self.reroutes_after = _drop_reroute_links(model.reroutes, lambda dst, name: dst in ids or
                                                  any(d == dst and n == name for d, n, _ in self.cut_links))

    def redo(self) -> None:
        self.model.set_reroutes(self.reroutes_after)
        for dst, name, _link in self.cut_links:
            self.model.set_input(dst, name, None)
        for record in self.records:
            self.model.remove_node(record["id"])

    def undo(self) -> None:
        for record in self.records:
            self.model.insert_node(record)
        for dst, name, link in self.cut_links:
            self.model.set_input(dst, name, link)
        self.model.set_reroutes(self.reroutes_before)


class MoveCommand(QUndoCommand):
    """Move nodes, groups and reroute dots together (one drag is one step)."""

    def __init__(self, model: GraphModel, moves: dict[str, tuple[tuple[float, float], tuple[float, float]]],
                 groups_after: list[dict[str, Any]] | None = None,
                 reroutes_after: dict[str, dict[str, Any]] | None = None, text: str = "Move") -> None:
        super().__init__(text)
        self.model = model
        self.moves = dict(moves)
        self.groups_before = copy.deepcopy(model.groups)
        self.groups_after = copy.deepcopy(groups_after)
        self.reroutes_before = copy.deepcopy(model.reroutes)
        self.reroutes_after = copy.deepcopy(reroutes_after)

    def redo(self) -> None:
        self._apply(1, self.groups_after, self.reroutes_after)

    def undo(self) -> None:
        self._apply(0, self.groups_before, self.reroutes_before)

    def _apply(self, end: int, groups: Any, reroutes: Any) -> None:
        """Each node at its old (end 0) or new (end 1) position; groups and reroutes when moved."""
        for nid, positions in self.moves.items():
            self.model.set_position(nid, positions[end])
        if self.groups_after is not None:
            self.model.set_groups(groups)
        if self.reroutes_after is not None:
            self.model.set_reroutes(reroutes)


class SetInputCommand(QUndoCommand):
    """Connect, replace or disconnect one input (an input takes one wire)."""

    def __init__(self, model: GraphModel, node_id: str, name: str, link: tuple[str, str] | None,
                 text: str | None = None, via_reroute: str | None = None) -> None:
        super().__init__(text or ("Connect" if link else "Disconnect"))
        self.model = model
        self.node_id = node_id
        self.name = name
        self.old = model.nodes[node_id].inputs.get(name)
        self.new = tuple(link) if link else None
        self.reroutes_before = copy.deepcopy(model.reroutes)
        after = _drop_reroute_links(model.reroutes, lambda dst, n: dst == node_id and n == name)
        if via_reroute and via_reroute in after and link:
            after[via_reroute]["links"].append([node_id, name])
        self.reroutes_after = after

    def redo(self) -> None:
        self.model.set_input(self.node_id, self.name, self.new)
        self.model.set_reroutes(self.reroutes_after)

    def undo(self) -> None:
        self.model.set_input(self.node_id, self.name, self.old)
        self.model.set_reroutes(self.reroutes_before)


class SetParamCommand(QUndoCommand):
    """Change a widget value. Changes that share a `merge_key` (one slider drag) merge into one step."""

    def __init__(self, model: GraphModel, node_id: str, name: str, value: Any,
                 merge_key: Any = None) -> None:
        super().__init__(f"Change {name}")
        self.model = model
        self.node_id = node_id
        self.name = name
        params = model.nodes[node_id].params
        self.had_old = name in params
        self.old = copy.deepcopy(params.get(name))
        self.new = copy.deepcopy(value)
        self.merge_key = merge_key

    def id(self) -> int:  # noqa: A003 - Qt's name
        return PARAM_COMMAND_ID

    def mergeWith(self, other: QUndoCommand) -> bool:  # noqa: N802 - Qt's name
        if (isinstance(other, SetParamCommand) and self.merge_key is not None
                and other.merge_key == self.merge_key and other.node_id == self.node_id
                and other.name == self.name):
            self.new = other.new
            return True
        return False

    def redo(self) -> None:
        self.model.set_param(self.node_id, self.name, self.new)

    def undo(self) -> None:
        if self.had_old:
            self.model.set_param(self.node_id, self.name, self.old)
        else:
            self.model.unset_param(self.node_id, self.name)


class SetSizeCommand(QUndoCommand):
    """Resize a node (its width; the height follows its content)."""

    def __init__(self, model: GraphModel, node_id: str, size: tuple[float, float] | None) -> None:
        super().__init__("Resize")
        self.model = model
        self.node_id = node_id
        self.old = model.size(node_id)
        self.new = size

    def redo(self) -> None:
        self.model.set_size(self.node_id, self.new)

    def undo(self) -> None:
        self.model.set_size(self.node_id, self.old)


class SetNodeUiCommand(QUndoCommand):
    """Change a per-node editor setting kept in `ui` (how the seed changes after each run)."""

    def __init__(self, model: GraphModel, key: str, node_id: str, value: Any, text: str = "Change setting") -> None:
        super().__init__(text)
        self.model = model
        self.key = key
        self.node_id = node_id
        self.old = copy.deepcopy(model.node_ui(key, node_id))
        self.new = copy.deepcopy(value)

    def redo(self) -> None:
        self.model.set_node_ui(self.key, self.node_id, self.new)

    def undo(self) -> None:
        self.model.set_node_ui(self.key, self.node_id, self.old)


class SetTitleCommand(QUndoCommand):
    def __init__(self, model: GraphModel, node_id: str, title: str | None) -> None:
        super().__init__("Rename")
        self.model = model
        self.node_id = node_id
        self.old = model.nodes[node_id].title
        self.new = title or None

    def redo(self) -> None:
        self.model.set_title(self.node_id, self.new)

    def undo(self) -> None:
        self.model.set_title(self.node_id, self.old)


class SetFlagCommand(QUndoCommand):
    """Collapse, bypass or mute several nodes at once."""

    def __init__(self, model: GraphModel, node_ids: list[str], flag: str, on: bool) -> None:
        super().__init__(f"{'Set' if on else 'Clear'} {flag}")
        self.model = model
        self.flag = flag
        self.on = on
        self.before = {nid: model.flag(nid, flag) for nid in node_ids}

    def redo(self) -> None:
        for nid in self.before:
            self.model.set_flag(nid, self.flag, self.on)

    def undo(self) -> None:
        for nid, was in self.before.items():
            self.model.set_flag(nid, self.flag, was)


class _ReplacePartCommand(QUndoCommand):
    """Replace one part of the layout as a whole: deep copies of it before and after."""

    part = ""   # the GraphModel attribute, set through its set_<part> method

    def __init__(self, model: GraphModel, after: Any, text: str) -> None:
        super().__init__(text)
        self.model = model
        self.before = copy.deepcopy(getattr(model, self.part))
        self.after = copy.deepcopy(after)

    def redo(self) -> None:
        getattr(self.model, f"set_{self.part}")(self.after)

    def undo(self) -> None:
        getattr(self.model, f"set_{self.part}")(self.before)


class SetGroupsCommand(_ReplacePartCommand):
    """Add, remove, rename or resize groups (the whole list before and after)."""

    part = "groups"


class SetReroutesCommand(_ReplacePartCommand):
    """Add or remove reroute dots (all of them before and after)."""

    part = "reroutes"


def _drop_reroute_links(reroutes: dict[str, dict[str, Any]], drop) -> dict[str, dict[str, Any]]:
    """A copy of the reroutes without the links `drop(dst, name)` selects; empty dots go too."""
    out: dict[str, dict[str, Any]] = {}
    for rid, data in reroutes.items():
        links = [list(x) for x in data.get("links", []) if not drop(x[0], x[1])]
        if links:
            out[rid] = {**copy.deepcopy(data), "links": links}
    return out
