"""The edit controller: the one place that turns user intentions into undo commands.

Views call these methods; each pushes one command (or one macro) on the undo stack, checks
what the model cannot (port types, one wire per input) and never touches scene items.
"""
from __future__ import annotations

import copy
import json
import random
from typing import Any, Callable, Iterable

from PySide6.QtGui import QUndoStack

from nodeforge.core import graph
from nodeforge.core.errors import WorkflowFileError
from nodeforge.core.types import ParamRole, feeds_param, ports_compatible
from nodeforge.core.workflow import NodeRef, Workflow
from nodeforge.ui.graph import commands as cmd
from nodeforge.ui.graph.model import LIST_FLAGS, NODE_UI_KEYS, GraphModel

CLIPBOARD_MIME = "application/x-nodeforge-workflow"


def cannot_encode(text: str) -> str | None:
    """Why `text` cannot be written as UTF-8 (a lone surrogate such as U+D800), or None."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        return f"holds a character that cannot be saved (U+{ord(text[exc.start]):04X} at position {exc.start})"
    return None


def unencodable_text(workflow: Workflow) -> str | None:
    """The first title or string param that cannot be saved, named by node and field."""
    for nid, node in workflow.nodes.items():
        fields = [("title", node.title)] + list(node.params.items())
        for field, value in fields:
            why = cannot_encode(value) if isinstance(value, str) else None
            if why:
                return f"node {nid} ({node.type}), {field}: the text {why}; remove it or retype the text"
    return None


class GraphController:
    def __init__(self, model: GraphModel, stack: QUndoStack) -> None:
        self.model = model
        self.stack = stack
        # Told (with a message naming the node and field) when an edit is refused.
        self.refused: Callable[[str], None] | None = None

    def _refuse_unencodable(self, node_id: str, field: str, value: Any) -> bool:
        why = cannot_encode(value) if isinstance(value, str) else None
        if why is None:
            return False
        node = self.model.nodes[node_id]
        message = f"node {node_id} ({node.type}), {field}: the text {why}, so it was not applied"
        if self.refused is not None:
            self.refused(message)
        return True

    # -- nodes -------------------------------------------------------------------------------------
    def new_node_record(self, node_type: str, pos: tuple[float, float], node_id: str | None = None) -> dict[str, Any]:
        spec = self.model.registry.get(node_type)
        params = spec.default_params() if spec else {}
        return {"id": node_id or self.model.workflow.next_id(), "node": NodeRef(node_type, params),
                "position": [float(pos[0]), float(pos[1])], "size": None, "flags": []}

    def add_node(self, node_type: str, pos: tuple[float, float], *,
                 connect_from: tuple[str, str] | None = None,
                 connect_to: tuple[str, str] | None = None, via_reroute: str | None = None) -> str:
        """Add a node; optionally wire a dragged output into its first compatible input (or the
        reverse), all as one undo step."""
        record = self.new_node_record(node_type, pos)
        nid = record["id"]
        spec = self.model.registry.get(node_type)
        self.stack.beginMacro(f"Add {spec.title if spec else node_type}")
        self.stack.push(cmd.AddNodesCommand(self.model, [record]))
        if spec is not None and connect_from is not None:
            out_type = self.model.output_type(*connect_from)
            target = next((i.name for i in spec.inputs if ports_compatible(out_type, str(i.type))), None)
            if target:
                self.stack.push(cmd.SetInputCommand(self.model, nid, target, connect_from, via_reroute=via_reroute))
        if spec is not None and connect_to is not None:
            in_type = self.model.input_type(*connect_to)
            source = next((o.name for o in spec.outputs if ports_compatible(str(o.type), in_type)), None)
            if source:
                self.stack.push(cmd.SetInputCommand(self.model, connect_to[0], connect_to[1], (nid, source)))
        self.stack.endMacro()
        return nid

    def remove_nodes(self, node_ids: Iterable[str]) -> None:
        ids = [nid for nid in node_ids if nid in self.model.nodes]
        if ids:
            self.stack.push(cmd.RemoveNodesCommand(self.model, ids,
                                                   "Delete node" if len(ids) == 1 else f"Delete {len(ids)} nodes"))

    # -- wires -------------------------------------------------------------------------------------
    def can_connect(self, src: str, output: str, dst: str, input_name: str) -> bool:
        if src == dst or src not in self.model.nodes or dst not in self.model.nodes:
            return False
        if self._reaches(dst, src):
            return False   # would make a cycle
        spec = self.model.spec(dst)
        param = spec.param(input_name) if spec is not None and spec.input(input_name) is None else None
        if param is not None:     # a plain value (an INT output) into a param of its kind; never a file param
            return param.file is None and feeds_param(self.model.output_type(src, output), param.kind)
        return ports_compatible(self.model.output_type(src, output), self.model.input_type(dst, input_name))

    def _reaches(self, start: str, goal: str) -> bool:
        """Whether `goal` depends on `start` already (so start <- goal would close a loop)."""
        return start == goal or graph.reaches(self.model.workflow, start, goal)

    def connect(self, src: str, output: str, dst: str, input_name: str, via_reroute: str | None = None) -> bool:
        """Wire an output to an input, replacing the input's old wire. False if the types differ."""
        if not self.can_connect(src, output, dst, input_name):
            return False
        if self.model.nodes[dst].inputs.get(input_name) == (src, output) and \
                self.model.reroute_of(dst, input_name) == via_reroute:
            return True
        self.stack.push(cmd.SetInputCommand(self.model, dst, input_name, (src, output), via_reroute=via_reroute))
        return True

    def disconnect(self, dst: str, input_name: str) -> None:
        if input_name in self.model.nodes[dst].inputs:
            self.stack.push(cmd.SetInputCommand(self.model, dst, input_name, None))

    # -- params, titles, flags -----------------------------------------------------------------------
    def set_param(self, node_id: str, name: str, value: Any, merge_key: Any = None) -> None:
        if self._refuse_unencodable(node_id, name, value):
            self.model.paramChanged.emit(node_id, name)   # the editor shows the value kept
            return
        if self.model.nodes[node_id].params.get(name) == value and name in self.model.nodes[node_id].params:
            return
        self.stack.push(cmd.SetParamCommand(self.model, node_id, name, value, merge_key))

    def resize(self, node_id: str, size: tuple[float, float] | None) -> None:
        if size != self.model.size(node_id):
            self.stack.push(cmd.SetSizeCommand(self.model, node_id, size))

    def set_seed_control(self, node_id: str, mode: str) -> None:
        """"fixed", "increment" or "randomize": what happens to the node's seed after each run."""
        value = None if mode == "fixed" else mode
        if value != self.model.node_ui("seed_control", node_id):
            self.stack.push(cmd.SetNodeUiCommand(self.model, "seed_control", node_id, value, "Seed after run"))

    def advance_seeds(self) -> list[str]:
        """Apply every node's seed control (after a run was queued, as ComfyUI does)."""
        changed = []
        for nid, mode in list(self.model.workflow.ui["seed_control"].items()):
            spec = self.model.spec(nid)
            param = spec.param_with(ParamRole.SEED) if spec else None
            if param is None or mode not in ("increment", "randomize"):
                continue
            seed = self.model.nodes[nid].params.get(param.name, param.default)
            low = int(param.min) if param.min is not None else 0
            high = min(int(param.max) if param.max is not None else 2 ** 32 - 1, 2 ** 53)
            try:
                seed = int(seed)
            except (TypeError, ValueError):
                seed = low
            new = seed + 1 if mode == "increment" else random.randint(low, min(high, 2 ** 32 - 1))
            if new > high:
                new = low
            self.stack.push(cmd.SetParamCommand(self.model, nid, param.name, new))
            changed.append(nid)
        return changed

    def set_title(self, node_id: str, title: str | None) -> None:
        spec = self.model.spec(node_id)
        if spec is not None and title == spec.title:
            title = None
        if self._refuse_unencodable(node_id, "title", title):
            return
        if (title or None) != self.model.nodes[node_id].title:
            self.stack.push(cmd.SetTitleCommand(self.model, node_id, title))

    def toggle_flag(self, node_ids: Iterable[str], flag: str) -> None:
        ids = [n for n in node_ids if n in self.model.nodes]
        if not ids:
            return
        on = not all(self.model.flag(n, flag) for n in ids)
        self.stack.push(cmd.SetFlagCommand(self.model, ids, flag, on))

    # -- moving ----------------------------------------------------------------------------------
    def move(self, moves: dict[str, tuple[tuple[float, float], tuple[float, float]]],
             groups_after: list[dict[str, Any]] | None = None,
             reroutes_after: dict[str, dict[str, Any]] | None = None) -> None:
        moves = {k: v for k, v in moves.items() if tuple(v[0]) != tuple(v[1])}
        if moves or groups_after is not None or reroutes_after is not None:
            self.stack.push(cmd.MoveCommand(self.model, moves, groups_after, reroutes_after))

    def align(self, node_ids: list[str], mode: str, sizes: dict[str, tuple[float, float]]) -> None:
        """Align to the left, right, top or bottom edge, or centre on a row/column, of the selection."""
        if len(node_ids) < 2:
            return
        pos = {n: self.model.position(n) for n in node_ids}
        moves = {}
        if mode == "left":
            x = min(p[0] for p in pos.values())
            moves = {n: (p, (x, p[1])) for n, p in pos.items()}
        elif mode == "right":
            right = max(p[0] + sizes[n][0] for n, p in pos.items())
            moves = {n: (p, (right - sizes[n][0], p[1])) for n, p in pos.items()}
        elif mode == "top":
            y = min(p[1] for p in pos.values())
            moves = {n: (p, (p[0], y)) for n, p in pos.items()}
        elif mode == "bottom":
            bottom = max(p[1] + sizes[n][1] for n, p in pos.items())
            moves = {n: (p, (p[0], bottom - sizes[n][1])) for n, p in pos.items()}
        elif mode in ("hdistribute", "vdistribute"):
            axis = 0 if mode == "hdistribute" else 1
            order = sorted(node_ids, key=lambda n: pos[n][axis])
            gap = 40.0
            cursor = pos[order[0]][axis]
            for n in order:
                new = list(pos[n])
                new[axis] = cursor
                moves[n] = (pos[n], tuple(new))
                cursor += sizes[n][axis] + gap
        self.move(moves)

    # -- groups ------------------------------------------------------------------------------------
    def add_group(self, rect: tuple[float, float, float, float], title: str = "Group") -> None:
        groups = copy.deepcopy(self.model.groups)
        groups.append({"title": title, "bounding": [round(v, 1) for v in rect], "color": "#3f5a7a"})
        self.stack.push(cmd.SetGroupsCommand(self.model, groups, "Add group"))

    def edit_group(self, index: int, **changes: Any) -> None:
        groups = copy.deepcopy(self.model.groups)
        groups[index].update(changes)
        self.stack.push(cmd.SetGroupsCommand(self.model, groups, "Edit group"))

    def remove_group(self, index: int) -> None:
        groups = copy.deepcopy(self.model.groups)
        del groups[index]
        self.stack.push(cmd.SetGroupsCommand(self.model, groups, "Remove group"))

    # -- reroute dots -----------------------------------------------------------------------------
    def add_reroute(self, dst: str, input_name: str, pos: tuple[float, float]) -> str | None:
        if input_name not in self.model.nodes[dst].inputs:
            return None
        reroutes = copy.deepcopy(self.model.reroutes)
        for data in reroutes.values():
            data["links"] = [x for x in data["links"] if list(x) != [dst, input_name]]
        reroutes = {k: v for k, v in reroutes.items() if v["links"]}
        rid = next(f"r{i}" for i in range(1, 10_000) if f"r{i}" not in reroutes)
        reroutes[rid] = {"pos": [round(pos[0], 1), round(pos[1], 1)], "links": [[dst, input_name]]}
        self.stack.push(cmd.SetReroutesCommand(self.model, reroutes, "Add reroute"))
        return rid

    def remove_reroutes(self, rids: Iterable[str]) -> None:
        rids = set(rids)
        reroutes = {k: v for k, v in copy.deepcopy(self.model.reroutes).items() if k not in rids}
        self.stack.push(cmd.SetReroutesCommand(self.model, reroutes, "Remove reroute"))

    def reroute_source(self, rid: str) -> tuple[str, str] | None:
        data = self.model.reroutes.get(rid)
        if not data:
            return None
        for dst, name in data["links"]:
            link = self.model.nodes.get(dst, NodeRef("?")).inputs.get(name)
            if link:
                return link
        return None

    # -- clipboard -------------------------------------------------------------------------------
    def copy_text(self, node_ids: Iterable[str]) -> str:
        """The selection as workflow JSON: nodes, the links among them, positions and flags."""
        wanted = set(node_ids)
        ids = [n for n in self.model.nodes if n in wanted]   # document order, whatever the selection order
        wf = Workflow()
        ui_src = self.model.workflow.ui
        wf.ui = {"positions": {}, "sizes": {}}
        for nid in ids:
            node = copy.deepcopy(self.model.nodes[nid])
            node.inputs = {k: v for k, v in node.inputs.items() if v[0] in ids}
            wf.nodes[nid] = node
            wf.ui["positions"][nid] = list(ui_src["positions"].get(nid, [0, 0]))
            if nid in ui_src["sizes"]:
                wf.ui["sizes"][nid] = list(ui_src["sizes"][nid])
        for flag in LIST_FLAGS:
            wf.ui[flag] = [n for n in ui_src[flag] if n in ids]
        for key in NODE_UI_KEYS:
            wf.ui[key] = {n: v for n, v in ui_src[key].items() if n in ids}
        return wf.dumps()

    def paste_text(self, text: str, at: tuple[float, float] | None = None, text_label: str = "Paste") -> list[str]:
        """Paste workflow JSON with fresh ids; raises WorkflowFileError if it is not a workflow."""
        wf = Workflow.loads(text)
        if not wf.nodes:
            return []
        positions = wf.ui.get("positions") or {}
        pts = [positions.get(n) for n in wf.nodes if isinstance(positions.get(n), (list, tuple))]
        left = min((p[0] for p in pts), default=0.0)
        top = min((p[1] for p in pts), default=0.0)
        dx, dy = ((at[0] - left, at[1] - top) if at is not None else (40.0, 40.0))
        next_num = int(self.model.workflow.next_id())
        mapping: dict[str, str] = {}
        for old in wf.nodes:
            mapping[old] = str(next_num)
            next_num += 1
        records = []
        for i, (old, node) in enumerate(wf.nodes.items()):
            node = copy.deepcopy(node)
            node.inputs = {k: (mapping[s], o) for k, (s, o) in node.inputs.items() if s in mapping}
            p = positions.get(old)
            if not isinstance(p, (list, tuple)) or len(p) != 2:
                p = [left + (i % 4) * 300, top + (i // 4) * 250]
            flags = [f for f in LIST_FLAGS if old in (wf.ui.get(f) or [])]
            size = (wf.ui.get("sizes") or {}).get(old)
            node_ui = {k: (wf.ui.get(k) or {})[old] for k in NODE_UI_KEYS
                       if isinstance(wf.ui.get(k), dict) and old in wf.ui[k]}
            records.append({"id": mapping[old], "node": node, "position": [p[0] + dx, p[1] + dy],
                            "size": size, "flags": flags, "node_ui": node_ui})
        self.stack.push(cmd.AddNodesCommand(self.model, records, text_label))
        return [r["id"] for r in records]

    def duplicate(self, node_ids: Iterable[str]) -> list[str]:
        return self.paste_text(self.copy_text(node_ids), None, "Duplicate")


def looks_like_workflow(text: str) -> bool:
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):
        return False
    return isinstance(data, dict) and isinstance(data.get("nodes"), dict)


__all__ = ["CLIPBOARD_MIME", "GraphController", "WorkflowFileError", "looks_like_workflow"]
