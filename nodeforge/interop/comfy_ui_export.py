"""A NodeForge workflow as a ComfyUI UI workflow (format 0.4): the file ComfyUI's editor saves and opens.

Unlike the API prompt (comfy_export), this is the whole canvas: every node with its ComfyUI class,
title, position and size, muted and bypassed nodes as such (mode 2 and 4), widget values in the
order ComfyUI lists them (from the node table the importer reads, with the seed's
control_after_generate after each seed), links by slot, groups, notes and reroute dots (as
ComfyUI Reroute nodes) and the view. Node ids stay where they are numbers; others get new ones.
A node with no ComfyUI equivalent is refused, every one named at once.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from nodeforge.core.errors import Problem
from nodeforge.core.placeholder import PLACEHOLDER_TYPE, original_class, output_types
from nodeforge.core.types import PARAM_PORTS
from nodeforge.core.workflow import NodeRef, Workflow
from nodeforge.interop import comfy_table as table
from nodeforge.interop.comfy_export import ExportError, _mapped_entry, _outputs_used, exported_row, in_comfy_classes
from nodeforge.interop.comfy_import import _VIEW_HALF, BYPASSED, COMFY_KEY, MUTED, drop_controls

# NodeForge port types ComfyUI spells otherwise.
_COMFY_TYPES = {"CONTROLNET": "CONTROL_NET", "SAMPLER_SETTING": "DICT"}
_WIDTH, _ROW, _WIDGET_ROW, _HEAD = 315.0, 22.0, 26.0, 30.0     # a node's size when the workflow has none
_COLUMN, _LINE = 360.0, 240.0                                   # the grid for nodes with no position
_REROUTE_SIZE = [75.0, 26.0]
_GROUP_COLOR = "#3f789e"
_DOT = "\0dot"                 # a source that is reroute dot number N: (_DOT, "N")


def comfy_type(port_type: Any) -> str:
    text = str(port_type) if port_type is not None else "*"
    return _COMFY_TYPES.get(text, text)


@dataclass
class _Node:
    """One node of the UI file before its links are numbered."""

    cid: int
    class_type: str
    title: str
    widgets: list[Any]
    inputs: list[dict[str, Any]]                   # {"name", "type", ("widget")}; links are added later
    sources: list[tuple[str, str] | None]          # per input slot: the NodeForge (node, output) feeding it
    outputs: list[dict[str, Any]]                  # {"name", "type"}
    out_names: list[str]                           # the NodeForge output behind each slot
    mode: int = 0
    collapsed: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


def export_comfyui_ui(workflow: Workflow, *, registry: Any | None = None,
                      warnings: list[str] | None = None) -> dict[str, Any]:
    """The workflow as a ComfyUI UI workflow (0.4); ExportError names every node without an equivalent."""
    if registry is None:
        from nodeforge.core.registry import default_registry

        registry = default_registry()
    workflow = in_comfy_classes(workflow, warnings)
    ids = _numbering(workflow)
    problems: list[Problem] = []
    made: dict[str, _Node] = {}
    for nid, node in workflow.nodes.items():
        if node.type == PLACEHOLDER_TYPE:
            made[nid] = _placeholder(nid, node, workflow, ids[nid])
            continue
        row = exported_row(nid, node, workflow, problems)
        if row is None:
            continue
        entry = _mapped(nid, node, row, workflow, registry, ids[nid], problems, warnings)
        if entry is not None:
            made[nid] = entry
    _check_sources(workflow, made, problems)
    if problems:
        raise ExportError(problems)
    _socket_constants(made, ids)
    _flags(workflow, made)
    reroutes = _reroutes(workflow, made, ids)
    links = _link(made, reroutes)
    nodes = [_node_json(workflow, nid, entry) for nid, entry in made.items()]
    nodes += [_reroute_json(r) for r in reroutes] + _notes(workflow, ids)
    _order(nodes, made, workflow)
    data: dict[str, Any] = {
        "last_node_id": max((n["id"] for n in nodes), default=0),
        "last_link_id": max((link[0] for link in links), default=0),
        "nodes": nodes, "links": links, "groups": _groups(workflow), "config": {}, "extra": _view(workflow),
        "version": 0.4}
    return data


# -- ids ------------------------------------------------------------------------------------------------------
def _number(text: Any) -> int | None:
    return int(text) if isinstance(text, str) and text.isdigit() and not (len(text) > 1 and text[0] == "0") \
        and int(text) > 0 else None


def _numbering(workflow: Workflow) -> dict[str, int]:
    """A ComfyUI id (a number) for every node, note (`note:ID`) and reroute dot (`dot:ID`): the node's
    own where it is a number not taken, else the next free one."""
    keys = list(workflow.nodes)
    keys += [f"note:{n.get('id')}" for n in workflow.ui.get("notes") or [] if isinstance(n, dict)]
    keys += [f"dot:{rid}" for rid in workflow.ui.get("reroutes") or {}]
    ids: dict[str, int] = {}
    taken: set[int] = set()
    for key in keys:
        own = key.split(":", 1)[1] if key.startswith(("note:", "dot:")) else key
        number = _number(own[1:] if key.startswith("dot:") and own.startswith("r") else own)
        if number is not None and number not in taken:
            ids[key] = number
            taken.add(number)
    top = max(taken, default=0)
    for key in keys:
        if key not in ids:
            top += 1
            ids[key] = top
    return ids


# -- nodes ----------------------------------------------------------------------------------------------------
def _mapped(nid: str, node: NodeRef, row: table.ClassMap, workflow: Workflow, registry: Any, cid: int,
            problems: list[Problem], warnings: list[str] | None) -> _Node | None:
    record = node.extra.get(COMFY_KEY)
    widget_links = dict(record.get("widget_links") or {}) if isinstance(record, dict) else {}
    if widget_links:   # the values themselves first; the links become widget inputs below
        kept = {k: v for k, v in record.items() if k != "widget_links"}
        node = dataclasses.replace(node, extra={**node.extra, COMFY_KEY: kept})
    entry = _mapped_entry(nid, node, row, registry, problems, warnings)
    if entry is None:
        return None
    spec = registry.get(node.type)
    values = entry["inputs"]
    seeds = workflow.ui.get("seed_control") or {}
    widgets: list[Any] = []
    for widget in row.widgets:
        if widget.socket is not None or (widget.ui_when is not None
                                          and values.get(widget.ui_when[0]) != widget.ui_when[1]):
            continue
        widgets.append(values[widget.comfy] if widget.comfy in values else widget.ui_value)
        if widget.seed:
            widgets.append(seeds.get(nid, "fixed") if isinstance(seeds, dict) else "fixed")
    inputs, sources = [], []
    for comfy_name, nf_name in row.inputs:
        port = spec.input(nf_name) if spec is not None else None
        kind = comfy_type(port.type if port is not None else None)
        inputs.append({"name": comfy_name, "type": row.any_type if kind == "*" and row.any_type else kind})
        if row.widget(comfy_name) is not None:    # a widget ComfyUI shows as an input (Display Int's input)
            inputs[-1]["widget"] = {"name": comfy_name}
        sources.append(node.inputs.get(nf_name))
    constants = _sockets(node, row, spec, inputs, sources)
    for name, link in widget_links.items():
        if isinstance(link, (list, tuple)) and len(link) == 2:
            inputs.append({"name": name, "type": "*", "widget": {"name": name}})
            sources.append((str(link[0]), str(link[1])))
    for widget in row.widgets:      # params a wire feeds: ComfyUI's widgets converted to inputs
        param = spec.param(widget.target) if spec is not None and widget.target is not None else None
        if param is not None and widget.target in node.inputs and row.comfy_input(widget.target) is None \
                and widget.socket is None:
            inputs.append({"name": widget.comfy, "type": PARAM_PORTS.get(param.kind, "*"),
                           "widget": {"name": widget.comfy}})
            sources.append(node.inputs[widget.target])
    outputs = []
    for name in row.outputs:
        port = spec.output(name) if spec is not None else None
        kind = comfy_type(port.type if port is not None else None)
        shown = kind if name.lower() in (kind.lower(), "unet") else name
        if kind == "*":    # a node whose output is its input's type (Resize Image/Mask): that type
            kind = _matched_type(node, spec, workflow, registry)
        outputs.append({"name": shown, "type": kind})
    made = _Node(cid, row.comfy, node.title or row.display, widgets, inputs, sources, outputs, list(row.outputs))
    if row.any_type == "*":     # ComfyUI declares these inputs as any type: they keep "*" when linked
        made.extra["any_slots"] = {i for i, port in enumerate(inputs) if port["type"] == "*" and "widget" not in port}
    if constants:
        made.extra["constants"] = constants
    return made


def _sockets(node: NodeRef, row: table.ClassMap, spec: Any, inputs: list[dict[str, Any]],
             sources: list[tuple[str, str] | None]) -> dict[int, tuple[str, Any]]:
    """The row's socket params as inputs (wired, or left open); {slot: (constant class, value)} for each that
    holds a value away from its default, which gets a constant node (`_socket_constants`)."""
    constants: dict[int, tuple[str, Any]] = {}
    for widget in row.widgets:
        if widget.socket is None:
            continue
        param = spec.param(widget.target) if spec is not None else None
        inputs.append({"name": widget.comfy, "type": PARAM_PORTS.get(param.kind, "*") if param else "*"})
        sources.append(node.inputs.get(widget.target))
        value = node.params.get(widget.target, param.default if param is not None else None)
        if widget.target not in node.inputs and param is not None and value != param.default:
            constants[len(inputs) - 1] = (widget.socket, value)
    return constants


def _socket_constants(made: dict[str, _Node], ids: dict[str, int]) -> None:
    """A constant node (PrimitiveFloat, PrimitiveInt) for each socket value a node holds, linked to the socket
    (numbered after every id the file has: nodes, notes, reroutes)."""
    top = max(ids.values(), default=0)
    for nid, entry in list(made.items()):
        for slot, (class_type, value) in sorted(entry.extra.pop("constants", {}).items()):
            top += 1
            kind = entry.inputs[slot]["type"]
            widgets = [value, "fixed"] if class_type == "PrimitiveInt" else [value]
            key = f"\0constant:{nid}:{slot}"
            made[key] = _Node(top, class_type, entry.inputs[slot]["name"].rpartition(".")[2], widgets, [], [],
                              [{"name": kind, "type": kind}], ["value"], mode=entry.mode)
            entry.sources[slot] = (key, "value")


def _matched_type(node: NodeRef, spec: Any, workflow: Workflow, registry: Any) -> str:
    """The ComfyUI type of what feeds the node's first linked any-type ("*") input, else "*"."""
    for port in spec.inputs if spec is not None else ():
        link = node.inputs.get(port.name)
        if port.type != "*" or link is None or link[0] not in workflow.nodes:
            continue
        source = workflow.nodes[link[0]]
        if source.type == PLACEHOLDER_TYPE:
            return comfy_type(output_types(source).get(link[1], "*"))
        out = registry.get(source.type).output(link[1]) if registry.get(source.type) is not None else None
        return comfy_type(out.type if out is not None else None)
    return "*"


def _placeholder(nid: str, node: NodeRef, workflow: Workflow, cid: int) -> _Node:
    """A ComfyUI node NodeForge kept as it came: its class, widgets, links and port types."""
    record = node.extra.get(COMFY_KEY) if isinstance(node.extra.get(COMFY_KEY), dict) else {}
    class_type = original_class(node)
    named = node.params.get("widgets")
    raw = record.get("widgets_values")
    if isinstance(named, dict):
        values = list(named.values())
        widgets = list(raw) if isinstance(raw, list) and drop_controls(raw) == values else values
    else:
        named = {}
        widgets = list(node.params.get("widgets_values") or [])
    types = record.get("inputs") if isinstance(record.get("inputs"), dict) else {}
    inputs, sources = [], []
    for name, link in node.inputs.items():
        if name not in named:
            inputs.append({"name": name, "type": str(types.get(name, "*"))})
            sources.append(link)
    # the widgets as inputs in the order of their values (how an importer names them), linked or not
    widget_types = record.get("widget_types") if isinstance(record.get("widget_types"), dict) else {}
    for name in named:
        kind = types.get(name, "*") if name in node.inputs else widget_types.get(name, "*")
        inputs.append({"name": name, "type": str(kind), "widget": {"name": name}})
        sources.append(node.inputs.get(name))
    out_names = list(output_types(node)) or _outputs_used(nid, workflow)
    kinds = list(output_types(node).values())
    outputs = [{"name": kinds[i] if i < len(kinds) else "*", "type": kinds[i] if i < len(kinds) else "*"}
               for i in range(len(out_names))]
    return _Node(cid, class_type, node.title or class_type, widgets, inputs, sources, outputs, out_names)


def _check_sources(workflow: Workflow, made: dict[str, _Node], problems: list[Problem]) -> None:
    for nid, entry in made.items():
        node = workflow.nodes[nid]
        for port, source in zip(entry.inputs, entry.sources):
            if source is None:
                continue
            src, out = source
            if src not in workflow.nodes:
                problems.append(Problem(f"linked to node {src!r}, which is not in the workflow", nid, node.type,
                                        port["name"]))
            elif src in made and out not in made[src].out_names:
                problems.append(Problem(f"linked to output {out!r} of node {src}, which has no such output",
                                        nid, node.type, port["name"]))
            elif src not in made:
                entry.sources[entry.sources.index(source)] = None     # refused itself: reported at that node


def _flags(workflow: Workflow, made: dict[str, _Node]) -> None:
    ui = workflow.ui
    for key, mode in (("muted", MUTED), ("bypassed", BYPASSED)):
        for nid in ui.get(key) or []:
            if nid in made:
                made[nid].mode = mode
    for nid in ui.get("collapsed") or []:
        if nid in made:
            made[nid].collapsed = True


# -- links and reroutes ----------------------------------------------------------------------------------------
@dataclass
class _Reroute:
    cid: int
    pos: list[float]
    source: tuple[str, str]
    kind: str = "*"
    input_link: int | None = None
    links: list[int] = field(default_factory=list)


def _reroutes(workflow: Workflow, made: dict[str, _Node], ids: dict[str, int]) -> list[_Reroute]:
    """Each reroute dot as a ComfyUI Reroute node on the wires it carries (those from one source)."""
    out = []
    dots = workflow.ui.get("reroutes") or {}
    for rid, dot in dots.items() if isinstance(dots, dict) else ():
        carried = []
        for item in dot.get("links") or [] if isinstance(dot, dict) else []:
            if isinstance(item, (list, tuple)) and len(item) == 2 and item[0] in made:
                entry = made[item[0]]
                slot = _slot_of(entry, workflow.nodes[item[0]], str(item[1]))
                if slot is not None and entry.sources[slot] is not None and entry.sources[slot][0] != _DOT:
                    carried.append((entry, slot))
        pos = dot.get("pos") if isinstance(dot, dict) else None
        if not carried or not isinstance(pos, list) or len(pos) != 2:
            continue
        source = carried[0][0].sources[carried[0][1]]
        reroute = _Reroute(ids[f"dot:{rid}"], [pos[0] - _REROUTE_SIZE[0] / 2, pos[1] - _REROUTE_SIZE[1] / 2], source)
        for entry, slot in carried:
            if entry.sources[slot] == source:
                entry.sources[slot] = (_DOT, str(len(out)))
        out.append(reroute)
    return out


def _slot_of(entry: _Node, node: NodeRef, nf_input: str) -> int | None:
    """The UI input slot a NodeForge input is wired to (mapped nodes name their inputs the ComfyUI way)."""
    if node.type == PLACEHOLDER_TYPE:
        names = [port["name"] for port in entry.inputs]
        return names.index(nf_input) if nf_input in names else None
    link = node.inputs.get(nf_input)
    matches = [i for i, source in enumerate(entry.sources) if source == link and "widget" not in entry.inputs[i]]
    return matches[0] if link is not None and matches else None


def _link(made: dict[str, _Node], reroutes: list[_Reroute]) -> list[list[Any]]:
    """Number every wire (ComfyUI's [id, from, from_slot, to, to_slot, type]) and note it on both ends."""
    links: list[list[Any]] = []
    for entry in made.values():
        entry.extra["out_links"] = [[] for _ in entry.outputs]

    def wire(source: tuple[str, str], to: int, to_slot: int) -> int:
        src, out = source
        if src == _DOT:
            reroute = reroutes[int(out)]
            lid = len(links) + 1
            links.append([lid, reroute.cid, 0, to, to_slot, reroute.kind])
            reroute.links.append(lid)
            return lid
        origin = made[src]
        slot = origin.out_names.index(out)
        lid = len(links) + 1
        links.append([lid, origin.cid, slot, to, to_slot, origin.outputs[slot]["type"]])
        origin.extra["out_links"][slot].append(lid)
        return lid

    for reroute in reroutes:
        reroute.kind = made[reroute.source[0]].outputs[made[reroute.source[0]].out_names.index(reroute.source[1])]["type"]
        reroute.input_link = wire(reroute.source, reroute.cid, 0)
    for entry in made.values():
        for slot, (port, source) in enumerate(zip(entry.inputs, entry.sources)):
            port["link"] = wire(source, entry.cid, slot) if source is not None else None
            if source is not None and port["type"] == "*" and slot not in entry.extra.get("any_slots", ()):
                port["type"] = links[-1][5]
    return links


# -- the file's parts -------------------------------------------------------------------------------------------
def _size(entry: _Node) -> list[float]:
    plain = [p for p in entry.inputs if "widget" not in p]
    return [_WIDTH, _HEAD + _ROW * max(len(plain), len(entry.outputs)) + _WIDGET_ROW * len(entry.widgets)]


def _node_json(workflow: Workflow, nid: str, entry: _Node) -> dict[str, Any]:
    ui = workflow.ui
    pos = (ui.get("positions") or {}).get(nid)
    size = (ui.get("sizes") or {}).get(nid)
    outputs = [dict(port, links=links, slot_index=slot)
               for slot, (port, links) in enumerate(zip(entry.outputs, entry.extra["out_links"]))]
    return {"id": entry.cid, "type": entry.class_type,
            "pos": [float(v) for v in pos[:2]] if isinstance(pos, (list, tuple)) and len(pos) >= 2 else None,
            "size": [float(v) for v in size[:2]] if isinstance(size, (list, tuple)) and len(size) >= 2
            else _size(entry),
            "flags": {"collapsed": True} if entry.collapsed else {}, "order": 0, "mode": entry.mode,
            "inputs": entry.inputs, "outputs": outputs, "title": entry.title,
            "properties": {"Node name for S&R": entry.class_type}, "widgets_values": entry.widgets}


def _reroute_json(reroute: _Reroute) -> dict[str, Any]:
    return {"id": reroute.cid, "type": table.REROUTE, "pos": reroute.pos, "size": list(_REROUTE_SIZE), "flags": {},
            "order": 0, "mode": 0, "inputs": [{"name": "", "type": "*", "link": reroute.input_link}],
            "outputs": [{"name": "", "type": reroute.kind, "links": reroute.links, "slot_index": 0}],
            "properties": {"showOutputText": False, "horizontal": False}}


def _notes(workflow: Workflow, ids: dict[str, int]) -> list[dict[str, Any]]:
    out = []
    for note in workflow.ui.get("notes") or []:
        if not isinstance(note, dict):
            continue
        class_type = "MarkdownNote" if note.get("markdown") else "Note"
        item: dict[str, Any] = {"id": ids[f"note:{note.get('id')}"], "type": class_type,
                                "pos": note.get("pos"), "size": note.get("size") or [300.0, 120.0], "flags": {},
                                "order": 0, "mode": 0, "inputs": [], "outputs": [],
                                "title": note.get("title") or class_type, "properties": {},
                                "widgets_values": [note.get("text") or ""]}
        if note.get("color"):
            item["color"] = note["color"]
        out.append(item)
    return out


def _order(nodes: list[dict[str, Any]], made: dict[str, _Node], workflow: Workflow) -> None:
    """ComfyUI's run order (`order`) and a grid place for every node the workflow gives no position."""
    from nodeforge.core.validate import topological_order

    order, cycle = topological_order(workflow, [nid for nid in workflow.nodes if nid in made])
    rank = {made[nid].cid: i for i, nid in enumerate(order + cycle)}
    depth: dict[str, int] = {}
    for nid in order + cycle:
        ups = [depth.get(src, 0) + 1 for src, _out in workflow.nodes[nid].inputs.values() if src in depth]
        depth[nid] = max(ups, default=0)
    column_of = {made[nid].cid: d for nid, d in depth.items()}
    per_column: dict[int, int] = {}
    for i, item in enumerate(nodes):
        item["order"] = rank.get(item["id"], len(rank) + i)
        if item["pos"] is None:
            column = column_of.get(item["id"], 0)
            line = per_column.get(column, 0)
            per_column[column] = line + 1
            item["pos"] = [column * _COLUMN, line * _LINE]


def _groups(workflow: Workflow) -> list[dict[str, Any]]:
    out = []
    for group in workflow.ui.get("groups") or []:
        box = group.get("bounding") if isinstance(group, dict) else None
        if not (isinstance(box, (list, tuple)) and len(box) == 4):
            continue
        out.append({"title": str(group.get("title") or "Group"), "bounding": [float(v) for v in box],
                    "color": group.get("color") or _GROUP_COLOR, "font_size": group.get("font_size") or 24,
                    "flags": {}})
    return out


def _view(workflow: Workflow) -> dict[str, Any]:
    view = workflow.ui.get("viewport")
    if not isinstance(view, dict):
        return {}
    center, zoom = view.get("center"), view.get("zoom")
    if not (isinstance(center, (list, tuple)) and len(center) == 2 and isinstance(zoom, (int, float)) and zoom > 0):
        return {}
    offset = [round(_VIEW_HALF[0] / zoom - center[0], 1), round(_VIEW_HALF[1] / zoom - center[1], 1)]
    return {"ds": {"scale": float(zoom), "offset": offset}}
