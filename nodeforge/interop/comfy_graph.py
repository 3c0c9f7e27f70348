"""Reading ComfyUI files into one plain graph: UI workflows (0.4 and 1, subgraphs expanded) and API prompts.

The result, a ComfyGraph, has every node with its class, widget values (positional from a UI
file, named from an API prompt), its linked inputs by name and its layout, whatever file it came
from. Converting it into a NodeForge workflow is `comfy_import`'s job. Every malformed part of a
file (these come from strangers) ends in a WorkflowFileError naming the node and field.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from nodeforge.core.errors import WorkflowFileError
from nodeforge.interop.comfy_everywhere import EVERYWHERE

MAX_SUBGRAPH_DEPTH = 16
# Nested instances multiply (a 14 KB file can ask for 10^9 nodes); no real workflow comes near this.
MAX_EXPANDED_NODES = 20_000
SUBGRAPH_INPUT, SUBGRAPH_OUTPUT = "-10", "-20"     # the ids of a subgraph's own input and output nodes


@dataclass
class ComfyNode:
    id: str
    class_type: str
    widgets: list[Any] | dict[str, Any] | None = None   # a UI file's widgets_values, as saved
    values: dict[str, Any] | None = None                # an API prompt's non-link inputs
    links: dict[str, tuple[str, int]] = field(default_factory=dict)   # input -> (source id, output slot)
    input_order: list[str] = field(default_factory=list)               # UI: input names by slot
    input_types: dict[str, str] = field(default_factory=dict)
    widget_inputs: set[str] = field(default_factory=set)               # UI: inputs standing for widgets
    outputs: list[tuple[str, str]] = field(default_factory=list)       # UI: (name, type) by slot
    title: str | None = None
    pos: list[float] | None = None
    size: list[float] | None = None
    mode: int = 0
    collapsed: bool = False
    color: str | None = None
    subgraph: str | None = None                          # the subgraph name it was expanded from
    # UI: the pack the editor recorded the node's class from (properties.cnr_id, the Comfy registry's id,
    # "comfy-core" for ComfyUI's own classes; properties.aux_id, the pack's GitHub owner/name)
    cnr_id: str | None = None
    aux_id: str | None = None


@dataclass
class ComfyGraph:
    kind: str                                            # "ComfyUI workflow" or "ComfyUI API prompt"
    nodes: dict[str, ComfyNode] = field(default_factory=dict)
    groups: list[dict[str, Any]] = field(default_factory=list)
    reroutes: dict[str, list[float]] = field(default_factory=dict)      # native reroute id -> position
    via: dict[tuple[str, str], str] = field(default_factory=dict)       # (node, input) -> nearest reroute
    viewport: dict[str, Any] | None = None
    warnings: list[str] = field(default_factory=list)     # what reading dropped (a link not in the file)


def _fail(message: str, node: str | None = None, node_type: str | None = None, field_name: str | None = None,
          source: object | None = None) -> WorkflowFileError:
    return WorkflowFileError(message, node_id=node, node_type=node_type, field=field_name, source=source)


def _node_id(value: Any, what: str, source: object) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, str)) or (isinstance(value, str) and not value):
        raise _fail(f"{what} must be a node id (a number or text), got {_kind(value)}", source=source)
    return str(value)


def _slot(value: Any, what: str, source: object) -> int:
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not -1 <= value < 10_000:
        raise _fail(f"{what} must be a slot number, got {_kind(value)}", source=source)
    return value


def _kind(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:30] + "..."


def _point(value: Any) -> list[float] | None:
    if isinstance(value, dict) and "0" in value and "1" in value:   # old files: {"0": x, "1": y}
        value = [value["0"], value["1"]]
    if (isinstance(value, (list, tuple)) and len(value) >= 2
            and all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in value[:2])):
        return [float(value[0]), float(value[1])]
    return None


# -- UI workflows ------------------------------------------------------------------------------------------
@dataclass
class _Link:
    id: str
    origin: str
    origin_slot: int
    target: str
    target_slot: int
    parent: str | None


def _links(raw: Any, source: object, where: str) -> list[_Link]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise _fail(f"{where}\"links\" must be a list", source=source)
    out: list[_Link] = []
    for item in raw:
        if item is None:
            continue
        if isinstance(item, (list, tuple)):          # 0.4: [id, from, from_slot, to, to_slot, type]
            if len(item) < 5:
                raise _fail(f"{where}a link must be [id, from_node, from_slot, to_node, to_slot, type], "
                            f"got {_kind(item)}", source=source)
            lid, origin, oslot, target, tslot = item[:5]
            parent = None
        elif isinstance(item, dict):                 # 1: {id, origin_id, origin_slot, target_id, target_slot}
            try:
                lid, origin, oslot = item["id"], item["origin_id"], item["origin_slot"]
                target, tslot = item["target_id"], item["target_slot"]
            except KeyError as exc:
                raise _fail(f"{where}a link has no {exc.args[0]!r}", source=source) from None
            parent = item.get("parentId")
        else:
            raise _fail(f"{where}a link must be a list or an object, got {_kind(item)}", source=source)
        if target is None or tslot is None:
            continue     # a link saved half-drawn (no target node): dangling, dropped as ComfyUI's editor does
        out.append(_Link(_node_id(lid, "a link id", source), _node_id(origin, "a link's source", source),
                         _slot(oslot, "a link's source slot", source), _node_id(target, "a link's target", source),
                         _slot(tslot, "a link's target slot", source),
                         None if parent is None or isinstance(parent, bool) else str(parent)))
    return out


def _ui_node(raw: Any, source: object) -> ComfyNode:
    if not isinstance(raw, dict):
        raise _fail(f"a node must be an object, got {_kind(raw)}", source=source)
    nid = _node_id(raw.get("id"), "a node's \"id\"", source)
    class_type = raw.get("type")
    if not isinstance(class_type, str) or not class_type:
        raise _fail("\"type\" must be the ComfyUI node class", nid, field_name="type", source=source)
    node = ComfyNode(nid, class_type)
    widgets = raw.get("widgets_values")
    if widgets is not None and not isinstance(widgets, (list, dict)):
        raise _fail(f"\"widgets_values\" must be a list, got {_kind(widgets)}", nid, class_type,
                    "widgets_values", source)
    node.widgets = widgets
    for key, target in (("inputs", node.input_order), ("outputs", node.outputs)):
        ports = raw.get(key) or []
        if not isinstance(ports, list):
            raise _fail(f"\"{key}\" must be a list", nid, class_type, key, source)
        for slot, port in enumerate(ports):
            if not isinstance(port, dict):
                raise _fail(f"{key} slot {slot} must be an object", nid, class_type, key, source)
            name = port.get("name")
            name = name if isinstance(name, str) else str(slot)
            port_type = port.get("type")
            port_type = port_type if isinstance(port_type, str) else "*"
            if key == "inputs":
                node.input_order.append(name)
                node.input_types[name] = port_type
                if isinstance(port.get("widget"), dict):
                    node.widget_inputs.add(name)
            else:
                node.outputs.append((name, port_type))
    title = raw.get("title")
    node.title = title if isinstance(title, str) and title.strip() else None
    node.pos = _point(raw.get("pos"))
    node.size = _point(raw.get("size"))
    mode = raw.get("mode")
    node.mode = mode if isinstance(mode, int) and not isinstance(mode, bool) else 0
    flags = raw.get("flags")
    node.collapsed = isinstance(flags, dict) and flags.get("collapsed") is True
    color = raw.get("color")
    node.color = color if isinstance(color, str) else None
    properties = raw.get("properties")
    if isinstance(properties, dict):
        for key in ("cnr_id", "aux_id"):
            value = properties.get(key)
            setattr(node, key, value.strip()[:100] if isinstance(value, str) and value.strip() else None)
    return node


def _input_link_ids(raw_nodes: list[Any]) -> dict[tuple[str, int], Any]:
    """(node, input slot) -> the link id the node itself records there (to skip stale links)."""
    out: dict[tuple[str, int], Any] = {}
    for raw in raw_nodes:
        if isinstance(raw, dict) and isinstance(raw.get("inputs"), list):
            for slot, port in enumerate(raw["inputs"]):
                if isinstance(port, dict) and "link" in port:
                    out[(str(raw.get("id")), slot)] = port["link"]
    return out


class _Level:
    """One graph level (the top level or a subgraph definition) read into nodes and links."""

    def __init__(self, raw: dict[str, Any], source: object, where: str) -> None:
        raw_nodes = raw.get("nodes")
        if not isinstance(raw_nodes, list):
            raise _fail(f"{where}\"nodes\" must be a list", source=source)
        self.nodes: dict[str, ComfyNode] = {}
        for item in raw_nodes:
            node = _ui_node(item, source)
            if node.id in self.nodes:
                raise _fail(f"{where}node id {node.id} is used twice", node.id, source=source)
            self.nodes[node.id] = node
        recorded = _input_link_ids(raw_nodes)
        self.parents: dict[tuple[str, str], str] = {}
        self.warnings: list[str] = []
        links = _links(raw.get("links"), source, where)
        for link in links:
            node = self.nodes.get(link.target)
            if link.target == SUBGRAPH_OUTPUT:
                continue
            if node is None or not 0 <= link.target_slot < len(node.input_order):
                continue  # a dangling link: ComfyUI's editor drops these too
            if link.origin != SUBGRAPH_INPUT and link.origin not in self.nodes:
                mark = recorded.get((link.target, link.target_slot), link.id)
                if mark is None or str(mark) == link.id:
                    self._warn(where, node, link.target_slot, f"linked to node {link.origin}, which is not in the file")
                continue
            mark = recorded.get((link.target, link.target_slot), link.id)
            if mark is not None and str(mark) != link.id:
                continue  # stale: the node says another link feeds this input
            name = node.input_order[link.target_slot]
            node.links[name] = (link.origin, link.origin_slot)
            if link.parent is not None:
                self.parents[(link.target, name)] = link.parent
        self.outputs: dict[int, tuple[str, int]] = {}
        for link in links:
            if link.target == SUBGRAPH_OUTPUT:
                self.outputs[link.target_slot] = (link.origin, link.origin_slot)
        self._unlisted_links(where, recorded, {link.id for link in links})

    def _warn(self, where: str, node: ComfyNode, slot: int, why: str) -> None:
        self.warnings.append(f"{where}node {node.id} ({node.class_type}), {node.input_order[slot]}: {why}; "
                             "the input is left unconnected")

    def _unlisted_links(self, where: str, recorded: dict[tuple[str, int], Any], known: set[str]) -> None:
        """An input that names a link the file's "links" does not hold is said, as for an API prompt."""
        for (nid, slot), mark in recorded.items():
            node = self.nodes.get(nid)
            if mark is None or isinstance(mark, (bool, dict, list)) or node is None or str(mark) in known:
                continue
            if 0 <= slot < len(node.input_order) and node.input_order[slot] not in node.links:
                self._warn(where, node, slot, f"its link {_kind(mark)} is not in the file's \"links\"")


def read_ui_workflow(data: dict[str, Any], source: object = None) -> ComfyGraph:
    from nodeforge.interop.comfy_everywhere import wire_everywhere
    from nodeforge.interop.comfy_groups import expand_group_nodes

    data = expand_group_nodes(data)      # old group nodes become the nodes they hold
    data, wired = wire_everywhere(data)  # cg-use-everywhere's senders become the links they make
    graph = ComfyGraph("ComfyUI workflow")
    definitions = _subgraph_definitions(data, source)
    top = _Level(data, source, "")
    graph.groups = _groups(data.get("groups"))
    tally = _Tally()
    graph.nodes = _expand(top, definitions, source, [], graph, tally)
    graph.warnings = list(tally.warnings) + wired
    extra = data.get("extra") if isinstance(data.get("extra"), dict) else {}
    ds = extra.get("ds")
    if isinstance(ds, dict):
        graph.viewport = ds
    reroutes = data.get("reroutes")
    if not isinstance(reroutes, list):
        reroutes = extra.get("reroutes")
    for item in reroutes if isinstance(reroutes, list) else []:
        if isinstance(item, dict) and _point(item.get("pos")) is not None and not isinstance(item.get("id"), bool):
            graph.reroutes[str(item.get("id"))] = _point(item.get("pos"))  # type: ignore[assignment]
    parents = dict(top.parents)
    # 0.4 files keep a link's reroute in extra.linkExtensions rather than on the link.
    if isinstance(extra.get("linkExtensions"), list) and isinstance(data.get("links"), list):
        by_link = {str(e.get("id")): str(e.get("parentId")) for e in extra["linkExtensions"]
                   if isinstance(e, dict) and e.get("parentId") is not None}
        for item in data["links"]:
            if isinstance(item, (list, tuple)) and len(item) >= 5 and str(item[0]) in by_link:
                target = top.nodes.get(str(item[3]))
                if target is not None and isinstance(item[4], int) and 0 <= item[4] < len(target.input_order):
                    parents[(target.id, target.input_order[item[4]])] = by_link[str(item[0])]
    graph.via = {key: rid for key, rid in parents.items() if rid in graph.reroutes}
    return graph


def _groups(raw: Any) -> list[dict[str, Any]]:
    out = []
    for item in raw if isinstance(raw, list) else []:
        if not isinstance(item, dict):
            continue
        box = item.get("bounding")
        if not (isinstance(box, list) and len(box) == 4
                and all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in box)):
            continue
        group: dict[str, Any] = {"title": str(item.get("title") or "Group"), "bounding": [float(v) for v in box]}
        if isinstance(item.get("color"), str):
            group["color"] = item["color"]
        if isinstance(item.get("font_size"), (int, float)) and not isinstance(item.get("font_size"), bool):
            group["font_size"] = item["font_size"]
        out.append(group)
    return out


def _subgraph_definitions(data: dict[str, Any], source: object) -> dict[str, dict[str, Any]]:
    definitions = data.get("definitions")
    if definitions is None:
        return {}
    raw = definitions.get("subgraphs") if isinstance(definitions, dict) else None
    if not isinstance(raw, list):
        raise _fail("\"definitions\" must hold a list of \"subgraphs\"", source=source)
    out: dict[str, dict[str, Any]] = {}
    for item in raw:
        if not isinstance(item, dict) or not isinstance(item.get("id"), str):
            raise _fail("each subgraph definition must be an object with an \"id\"", source=source)
        out[item["id"]] = item
    return out


@dataclass
class _Tally:
    """What an expansion has placed so far (refused before it multiplies past the cap) and dropped."""
    nodes: int = 0
    warnings: dict[str, None] = field(default_factory=dict)     # ordered, each line once


def _count(tally: _Tally, level: _Level, source: object) -> None:
    tally.nodes += len(level.nodes)      # instances too: empty subgraphs nested 16 deep still cost time
    tally.warnings.update(dict.fromkeys(level.warnings))
    if tally.nodes > MAX_EXPANDED_NODES:
        raise _fail(f"the workflow expands to more than {MAX_EXPANDED_NODES} nodes once its subgraph instances "
                    "are placed (nested subgraphs multiply); NodeForge imports at most that many - unpack or "
                    "split the subgraphs in ComfyUI", field_name="subgraph", source=source)


def _expand(level: _Level, definitions: dict[str, dict[str, Any]], source: object, stack: list[str],
            graph: ComfyGraph | None, tally: _Tally) -> dict[str, ComfyNode]:
    """The level's nodes with every subgraph instance replaced by its (prefixed) inner nodes."""
    nodes = level.nodes
    _count(tally, level, source)
    if not any(n.class_type in definitions for n in nodes.values()):
        return nodes
    out: dict[str, ComfyNode] = {}
    outputs_of: dict[str, dict[int, tuple[str, int] | None]] = {}
    for node in nodes.values():
        definition = definitions.get(node.class_type)
        if definition is None:
            out[node.id] = node
            continue
        if node.class_type in stack or len(stack) >= MAX_SUBGRAPH_DEPTH:
            raise _fail(f"subgraph {str(definition.get('name') or node.class_type)[:60]!r} contains itself "
                        f"(or subgraphs nest deeper than {MAX_SUBGRAPH_DEPTH})", node.id, "subgraph", source=source)
        name = str(definition.get("name") or "subgraph")
        inner = _Level(definition, source, f"subgraph {name[:60]!r}: ")
        inner_nodes = _expand(inner, definitions, source, stack + [node.class_type], None, tally)
        prefix = f"{node.id}:"

        def outer(src: str, slot: int) -> tuple[str, int] | None:
            if src == SUBGRAPH_INPUT:
                return _instance_input(node, slot, out)
            return (prefix + src, slot)

        placed = _place(inner_nodes, node.pos)
        for inner_node in inner_nodes.values():
            links = {}
            for input_name, (src, slot) in inner_node.links.items():
                mapped = outer(src, slot)
                if mapped is not None:
                    links[input_name] = mapped
            inner_node.links = links
            inner_node.id = prefix + inner_node.id
            inner_node.subgraph = name
            if node.mode in (2, 4) and inner_node.mode == 0:
                inner_node.mode = node.mode
            out[inner_node.id] = inner_node
        outputs_of[node.id] = {slot: outer(src, s) for slot, (src, s) in inner.outputs.items()}
        if graph is not None and placed is not None:
            graph.groups.append({"title": name, "bounding": placed})
    # Consumers of an instance's outputs now read the inner node behind each.
    for node in out.values():
        for input_name, (src, slot) in list(node.links.items()):
            if src in outputs_of:
                mapped = outputs_of[src].get(slot)
                if mapped is None:
                    del node.links[input_name]
                else:
                    node.links[input_name] = mapped
    return out


def _instance_input(instance: ComfyNode, slot: int, out: dict[str, ComfyNode]) -> tuple[str, int] | None:
    """What feeds a subgraph instance's input `slot`: its link, or its widget value as a constant."""
    if not 0 <= slot < len(instance.input_order):
        return None
    name = instance.input_order[slot]
    if name in instance.links:
        return instance.links[name]
    widget_names = [n for n in instance.input_order if n in instance.widget_inputs]
    if name in instance.widget_inputs and isinstance(instance.widgets, list) \
            and len(instance.widgets) == len(widget_names):
        constant = ComfyNode(f"{instance.id}:input{slot}", "PrimitiveNode", widgets=[
            instance.widgets[widget_names.index(name)]])
        out[constant.id] = constant
        return (constant.id, 0)
    return None


def _place(nodes: dict[str, ComfyNode], at: list[float] | None) -> list[float] | None:
    """Move a subgraph's nodes so their top left is where the instance was; their frame."""
    points = [n.pos for n in nodes.values() if n.pos is not None]
    if at is None or not points:
        return None
    left, top = min(p[0] for p in points), min(p[1] for p in points)
    dx, dy = at[0] - left, at[1] - top
    right = bottom = -math.inf
    for node in nodes.values():
        if node.pos is not None:
            node.pos = [node.pos[0] + dx, node.pos[1] + dy]
            w, h = node.size or [200.0, 100.0]
            right, bottom = max(right, node.pos[0] + w), max(bottom, node.pos[1] + h)
    return [at[0] - 20.0, at[1] - 60.0, right - at[0] + 40.0, bottom - at[1] + 80.0]


# -- API prompts -------------------------------------------------------------------------------------------
def is_link(value: Any) -> bool:
    return (isinstance(value, list) and len(value) == 2 and isinstance(value[0], (str, int))
            and not isinstance(value[0], bool) and isinstance(value[1], int) and not isinstance(value[1], bool))


def read_api_prompt(data: dict[str, Any], source: object = None) -> ComfyGraph:
    graph = ComfyGraph("ComfyUI API prompt")
    for raw_id, raw in data.items():
        nid = str(raw_id)
        if not isinstance(raw, dict):
            raise _fail("must be an object with \"class_type\" and \"inputs\"", nid, source=source)
        class_type = raw.get("class_type")
        if not isinstance(class_type, str) or not class_type:
            raise _fail("\"class_type\" must be the ComfyUI node class", nid, field_name="class_type", source=source)
        inputs = raw.get("inputs")
        inputs = {} if inputs is None else inputs
        if not isinstance(inputs, dict):
            raise _fail("\"inputs\" must be an object", nid, class_type, "inputs", source)
        if class_type in EVERYWHERE:    # the prompt already holds the links it made (queued through the editor)
            graph.warnings.append(f"node {nid} ({class_type}): left out; in an API prompt the inputs it fed are "
                                  "already linked")
            continue
        node = ComfyNode(nid, class_type, values={})
        for name, value in inputs.items():
            if is_link(value):
                node.links[str(name)] = (str(value[0]), _slot(value[1], f"node {nid}'s input {name!r}", source))
            else:
                node.values[str(name)] = value  # type: ignore[index]
        meta = raw.get("_meta")
        title = meta.get("title") if isinstance(meta, dict) else None
        node.title = title if isinstance(title, str) and title.strip() else None
        graph.nodes[nid] = node
    return graph
