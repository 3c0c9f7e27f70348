"""ComfyUI's old group nodes (before subgraphs) expanded into the nodes they hold.

A group node is a node of type "workflow/NAME" (or "workflow>NAME") whose nodes, inner links and
exposed outputs are defined once in the file's `extra.groupNodes[NAME]`. Its inputs are the inner
nodes' inputs that no inner link feeds (a converted widget's only when fed from outside), in
inner-node order; its outputs are the inner outputs that no inner link takes, plus those the
definition lists as `external`; its widget values are the inner nodes' values one after another. Each instance becomes its inner nodes (ids "INSTANCE:INDEX",
as subgraph nodes are named) wired as the definition says, before the rest of the import sees the
file. An instance whose ports do not add up to its definition is left as it is (a placeholder that
says what it is).
"""
from __future__ import annotations

import copy
from typing import Any

GROUP_PREFIXES = ("workflow/", "workflow>")


def expand_group_nodes(data: dict[str, Any]) -> dict[str, Any]:
    """The UI workflow with each group-node instance replaced by its inner nodes (a new dict)."""
    extra = data.get("extra")
    groups = extra.get("groupNodes") if isinstance(extra, dict) else None
    nodes, links = data.get("nodes"), data.get("links")
    if not isinstance(groups, dict) or not groups or not isinstance(nodes, list) or not isinstance(links, list) \
            or not all(isinstance(link, list) and len(link) >= 6 for link in links):
        return data
    out = dict(data)
    out["nodes"], out["links"] = list(nodes), [list(link) for link in links]
    next_id = [max([link[0] for link in links if _is_int(link[0])] or [0]) + 1]
    for instance in nodes:
        definition = groups.get(_group_name(instance))
        if not isinstance(definition, dict) or not _fits(instance, definition):
            continue
        before = (list(out["nodes"]), [list(link) for link in out["links"]])
        try:
            _expand_one(out, instance, definition, next_id)
        except (TypeError, KeyError, IndexError, AttributeError, ValueError):
            out["nodes"], out["links"] = before     # a malformed definition: the instance stays a placeholder
    return out


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _group_name(node: Any) -> str | None:
    kind = node.get("type") if isinstance(node, dict) else None
    if isinstance(kind, str) and kind.startswith(GROUP_PREFIXES):
        return kind[len("workflow/"):]
    return None


def _inner_links(definition: dict[str, Any]) -> list[list[Any]]:
    """[from index, from slot, to index, to slot, ...] between inner nodes (a None origin marks an input)."""
    count = len(definition.get("nodes") or [])
    return [link for link in definition.get("links") or [] if isinstance(link, list) and len(link) >= 4
            and all(_is_int(v) for v in link[:4]) and 0 <= link[0] < count and 0 <= link[2] < count]


def _ports(definition: dict[str, Any]) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """The (inner index, slot) of each of the group's inputs and of each of its outputs, in order."""
    inner = _inner_links(definition)
    fed = {(link[2], link[3]) for link in inner}
    taken = {(link[0], link[1]) for link in inner}
    external = {(e[0], e[1]) for e in definition.get("external") or []
                if isinstance(e, list) and len(e) >= 2 and _is_int(e[0]) and _is_int(e[1])}
    # a None origin marks an input fed from outside the group; a widget's input not so fed stays a widget
    outside = {(link[2], link[3]) for link in definition.get("links") or [] if isinstance(link, list)
               and len(link) >= 4 and link[0] is None}
    inputs, outputs = [], []
    for index, node in enumerate(definition.get("nodes") or []):
        inputs += [(index, slot) for slot, port in enumerate(node.get("inputs") or []) if (index, slot) not in fed
                   and ("widget" not in port or (index, slot) in outside)]
        outputs += [(index, slot) for slot in range(len(node.get("outputs") or []))
                    if (index, slot) not in taken or (index, slot) in external]
    return inputs, outputs


def _fits(instance: dict[str, Any], definition: dict[str, Any]) -> bool:
    inner = definition.get("nodes")
    if not isinstance(inner, list) or not inner or not all(
            isinstance(n, dict) and isinstance(n.get("type"), str) and n["type"]
            and all(isinstance(n.get(k) or [], list) for k in ("inputs", "outputs", "widgets_values"))
            and all(isinstance(p, dict) for p in (n.get("inputs") or []) + (n.get("outputs") or [])) for n in inner):
        return False
    inputs, outputs = _ports(definition)
    values = instance.get("widgets_values")
    widths = sum(len(n.get("widgets_values") or []) for n in inner)
    return (len(instance.get("inputs") or []) == len(inputs) and len(instance.get("outputs") or []) <= len(outputs)
            and (not values or (isinstance(values, list) and len(values) == widths)))


def _expand_one(data: dict[str, Any], instance: dict[str, Any], definition: dict[str, Any], next_id: list[int]) -> None:
    gid = instance["id"]
    inner_ids = []
    values = list(instance.get("widgets_values") or [])
    for index, raw in enumerate(definition["nodes"]):
        node = copy.deepcopy(raw)
        node.pop("index", None)
        node["id"] = f"{gid}:{index}"
        node["mode"] = instance.get("mode", 0)
        for port in node.get("inputs") or []:
            port["link"] = None
        for port in node.get("outputs") or []:
            port["links"] = []
        width = len(node.get("widgets_values") or [])
        if values and width:
            node["widgets_values"], values = values[:width], values[width:]
        inner_ids.append(node["id"])
        data["nodes"].append(node)
    nodes = {n["id"]: n for n in data["nodes"] if isinstance(n, dict)}
    for link in _inner_links(definition):
        _add_link(data, nodes, next_id, inner_ids[link[0]], link[1], inner_ids[link[2]], link[3],
                  link[5] if len(link) > 5 else "*")
    _rewire(data, nodes, instance, inner_ids, _ports(definition))
    data["nodes"].remove(instance)


def _add_link(data: dict[str, Any], nodes: dict[Any, Any], next_id: list[int], origin: str, oslot: int,
              target: str, tslot: int, kind: Any) -> None:
    lid = next_id[0]
    next_id[0] += 1
    data["links"].append([lid, origin, oslot, target, tslot, kind])
    nodes[target]["inputs"][tslot]["link"] = lid
    nodes[origin]["outputs"][oslot]["links"].append(lid)


def _rewire(data: dict[str, Any], nodes: dict[Any, Any], instance: dict[str, Any], inner_ids: list[str],
            ports: tuple[list[tuple[int, int]], list[tuple[int, int]]]) -> None:
    """The instance's links moved onto the inner ports they stand for."""
    inputs, outputs = ports
    gid = instance["id"]
    for link in data["links"]:
        if link[3] == gid and isinstance(link[4], int) and 0 <= link[4] < len(inputs):
            index, slot = inputs[link[4]]
            link[3], link[4] = inner_ids[index], slot
            nodes[inner_ids[index]]["inputs"][slot]["link"] = link[0]
        elif link[1] == gid and isinstance(link[2], int) and 0 <= link[2] < len(outputs):
            index, slot = outputs[link[2]]
            link[1], link[2] = inner_ids[index], slot
            nodes[inner_ids[index]]["outputs"][slot]["links"].append(link[0])
