"""The editor's graph model: a Workflow plus its layout, with a Qt signal for every change.

Scene items observe this model; only undo commands (see `commands.py`) call its mutators, so
every edit is undoable. The model knows nothing of QGraphicsItems. Layout lives in the
workflow's `ui` dict (positions, sizes, collapsed, bypassed, muted, groups, reroutes,
viewport), which the engine ignores and which round-trips through save/load untouched.
"""
from __future__ import annotations

import copy
from typing import Any

from PySide6.QtCore import QObject, Signal

from nodeforge.core import placeholder
from nodeforge.core.registry import Registry
from nodeforge.core.spec import NodeSpec
from nodeforge.core.workflow import NodeRef, Workflow

# Keys of the `ui` dict this editor reads and writes. Others are kept as they are.
LIST_FLAGS = ("collapsed", "bypassed", "muted")
# Per-node editor settings kept in `ui` as {key: {node id: value}}.
NODE_UI_KEYS = ("seed_control",)


class GraphModel(QObject):
    """A live, editable workflow. Signals carry node ids (strings)."""

    nodeAdded = Signal(str)
    nodeRemoved = Signal(str)
    inputChanged = Signal(str, str)          # node id, input name (linked, relinked or unlinked)
    paramChanged = Signal(str, str)          # node id, param name
    titleChanged = Signal(str)
    positionChanged = Signal(str)
    flagChanged = Signal(str, str)           # node id, flag name ("collapsed", "bypassed", "muted")
    sizeChanged = Signal(str)
    nodeUiChanged = Signal(str, str)         # node id, key of NODE_UI_KEYS
    groupsChanged = Signal()
    reroutesChanged = Signal()
    reset = Signal()                         # the whole workflow was replaced

    def __init__(self, registry: Registry, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.registry = registry
        self.workflow = Workflow()
        self._normalise_ui()

    # -- whole document -------------------------------------------------------------------------
    def set_workflow(self, workflow: Workflow) -> None:
        self.workflow = workflow.copy()
        self.workflow.source = workflow.source
        self._normalise_ui()
        self.reset.emit()

    def snapshot(self) -> Workflow:
        """A deep copy of the document as it should be saved."""
        wf = self.workflow.copy()
        wf.source = self.workflow.source
        ui = wf.ui
        for key in LIST_FLAGS + ("groups",):
            if not ui.get(key):
                ui.pop(key, None)
        for key in ("sizes", "reroutes") + NODE_UI_KEYS:
            if not ui.get(key):
                ui.pop(key, None)
        return wf

    def _normalise_ui(self) -> None:
        ui = self.workflow.ui
        if not isinstance(ui.get("positions"), dict):
            ui["positions"] = {}
        if not isinstance(ui.get("sizes"), dict):
            ui["sizes"] = {}
        for key in LIST_FLAGS:
            if not isinstance(ui.get(key), list):
                ui[key] = []
        # Layout written by other tools may be malformed: keep what can be drawn, drop the rest.
        groups = ui.get("groups") if isinstance(ui.get("groups"), list) else []
        ui["groups"] = [g for g in groups if isinstance(g, dict) and _is_rect(g.get("bounding"))]
        reroutes = ui.get("reroutes") if isinstance(ui.get("reroutes"), dict) else {}
        ui["reroutes"] = {str(k): v for k, v in reroutes.items()
                          if isinstance(v, dict) and _is_point(v.get("pos")) and isinstance(v.get("links"), list)
                          and all(isinstance(x, (list, tuple)) and len(x) == 2 for x in v["links"])}
        for key in LIST_FLAGS:
            ui[key] = [str(x) for x in ui[key] if isinstance(x, (str, int))]
        for key in NODE_UI_KEYS:
            if not isinstance(ui.get(key), dict):
                ui[key] = {}
        # Lay out nodes that came without positions (headless files) in a simple grid.
        missing = [nid for nid in self.workflow.nodes if not _is_point(ui["positions"].get(nid))]
        for i, nid in enumerate(missing):
            ui["positions"][nid] = [float((i % 6) * 300), float((i // 6) * 260)]

    # -- reading ----------------------------------------------------------------------------------
    @property
    def nodes(self) -> dict[str, NodeRef]:
        return self.workflow.nodes

    def spec(self, node_id: str) -> NodeSpec | None:
        node = self.workflow.nodes.get(node_id)
        return self.registry.get(node.type) if node is not None else None

    def position(self, node_id: str) -> tuple[float, float]:
        x, y = self.workflow.ui["positions"].get(node_id, (0.0, 0.0))
        return float(x), float(y)

    def flag(self, node_id: str, name: str) -> bool:
        return node_id in self.workflow.ui[name]

    def title(self, node_id: str) -> str:
        node = self.workflow.nodes[node_id]
        if node.title:
            return node.title
        spec = self.registry.get(node.type)
        if spec is None and placeholder.is_placeholder(node):
            return placeholder.original_class(node)
        return spec.title if spec is not None else node.type

    def consumers(self, node_id: str) -> list[tuple[str, str, str]]:
        """(consumer id, input name, output name) for every link leaving `node_id`."""
        out = []
        for nid, node in self.workflow.nodes.items():
            for name, (src, output) in node.inputs.items():
                if src == node_id:
                    out.append((nid, name, output))
        return out

    def output_type(self, node_id: str, output: str) -> str:
        spec = self.spec(node_id)
        decl = spec.output(output) if spec else None
        return str(decl.type) if decl else "*"

    def input_type(self, node_id: str, name: str) -> str:
        spec = self.spec(node_id)
        decl = spec.input(name) if spec else None
        return str(decl.type) if decl else "*"

    @property
    def groups(self) -> list[dict[str, Any]]:
        return self.workflow.ui["groups"]

    @property
    def reroutes(self) -> dict[str, dict[str, Any]]:
        return self.workflow.ui["reroutes"]

    def reroute_of(self, node_id: str, input_name: str) -> str | None:
        for rid, data in self.reroutes.items():
            if [node_id, input_name] in [list(x) for x in data.get("links", [])]:
                return rid
        return None

    # -- node records for add/remove (used by commands and the clipboard) -----------------------
    def node_record(self, node_id: str) -> dict[str, Any]:
        """Everything about one node, enough to put it back exactly as it was."""
        ui = self.workflow.ui
        return {
            "id": node_id,
            "node": copy.deepcopy(self.workflow.nodes[node_id]),
            "position": list(ui["positions"].get(node_id, [0.0, 0.0])),
            "size": copy.deepcopy(ui["sizes"].get(node_id)),
            "flags": [f for f in LIST_FLAGS if node_id in ui[f]],
            "node_ui": {k: copy.deepcopy(ui[k][node_id]) for k in NODE_UI_KEYS if node_id in ui[k]},
        }

    # -- mutators (called by undo commands only) ----------------------------------------------------
    def insert_node(self, record: dict[str, Any]) -> None:
        nid = record["id"]
        ui = self.workflow.ui
        self.workflow.nodes[nid] = copy.deepcopy(record["node"])
        ui["positions"][nid] = list(record["position"])
        if record.get("size"):
            ui["sizes"][nid] = copy.deepcopy(record["size"])
        for flag in record.get("flags", ()):
            if nid not in ui[flag]:
                ui[flag].append(nid)
        for key, value in (record.get("node_ui") or {}).items():
            if key in NODE_UI_KEYS:
                ui[key][nid] = copy.deepcopy(value)
        self.nodeAdded.emit(nid)

    def remove_node(self, node_id: str) -> None:
        ui = self.workflow.ui
        del self.workflow.nodes[node_id]
        ui["positions"].pop(node_id, None)
        ui["sizes"].pop(node_id, None)
        for flag in LIST_FLAGS:
            if node_id in ui[flag]:
                ui[flag].remove(node_id)
        for key in NODE_UI_KEYS:
            ui[key].pop(node_id, None)
        self.nodeRemoved.emit(node_id)

    def set_input(self, node_id: str, name: str, link: tuple[str, str] | None) -> None:
        node = self.workflow.nodes[node_id]
        if link is None:
            node.inputs.pop(name, None)
        else:
            node.inputs[name] = (str(link[0]), str(link[1]))
        self.inputChanged.emit(node_id, name)

    def set_param(self, node_id: str, name: str, value: Any) -> None:
        self.workflow.nodes[node_id].params[name] = value
        self.workflow.origins.pop((node_id, name), None)   # typed by the user: no longer the shared file's
        self.paramChanged.emit(node_id, name)

    def unset_param(self, node_id: str, name: str) -> None:
        self.workflow.nodes[node_id].params.pop(name, None)
        self.paramChanged.emit(node_id, name)

    def set_title(self, node_id: str, title: str | None) -> None:
        self.workflow.nodes[node_id].title = title or None
        self.titleChanged.emit(node_id)

    def set_position(self, node_id: str, pos: tuple[float, float]) -> None:
        self.workflow.ui["positions"][node_id] = [float(pos[0]), float(pos[1])]
        self.positionChanged.emit(node_id)

    def set_size(self, node_id: str, size: tuple[float, float] | None) -> None:
        if size is None:
            self.workflow.ui["sizes"].pop(node_id, None)
        else:
            self.workflow.ui["sizes"][node_id] = [float(size[0]), float(size[1])]
        self.sizeChanged.emit(node_id)

    def size(self, node_id: str) -> tuple[float, float] | None:
        value = self.workflow.ui["sizes"].get(node_id)
        if _is_point(value):
            return float(value[0]), float(value[1])
        return None

    def set_flag(self, node_id: str, name: str, on: bool) -> None:
        flags = self.workflow.ui[name]
        if on and node_id not in flags:
            flags.append(node_id)
        elif not on and node_id in flags:
            flags.remove(node_id)
        self.flagChanged.emit(node_id, name)

    def node_ui(self, key: str, node_id: str, default: Any = None) -> Any:
        return self.workflow.ui[key].get(node_id, default)

    def set_node_ui(self, key: str, node_id: str, value: Any) -> None:
        if value is None:
            self.workflow.ui[key].pop(node_id, None)
        else:
            self.workflow.ui[key][node_id] = copy.deepcopy(value)
        self.nodeUiChanged.emit(node_id, key)

    def set_groups(self, groups: list[dict[str, Any]]) -> None:
        self.workflow.ui["groups"] = copy.deepcopy(groups)
        self.groupsChanged.emit()

    def set_reroutes(self, reroutes: dict[str, dict[str, Any]]) -> None:
        self.workflow.ui["reroutes"] = copy.deepcopy(reroutes)
        self.reroutesChanged.emit()

    def set_viewport(self, center: tuple[float, float], zoom: float) -> None:
        # Not an edit: the view remembers where it was, without touching the undo stack.
        self.workflow.ui["viewport"] = {"center": [round(center[0], 1), round(center[1], 1)],
                                        "zoom": round(zoom, 4)}


def _is_rect(value: Any) -> bool:
    return (isinstance(value, (list, tuple)) and len(value) == 4
            and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value))


def _is_point(value: Any) -> bool:
    return (isinstance(value, (list, tuple)) and len(value) == 2
            and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value))
