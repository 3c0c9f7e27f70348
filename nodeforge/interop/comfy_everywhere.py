"""cg-use-everywhere's "Anything Everywhere" nodes turned into the links they stand for.

The pack's node takes a value (a model, a VAE, ...) and, in ComfyUI's editor, feeds it to every
unconnected input of that type, within the restrictions set on it (`properties.ue_properties`:
title, input and group regular expressions, same or other group, same or other colour). Files saved
by recent versions list the links it made in `extra.ue_links` ({downstream, downstream_slot,
upstream, upstream_slot, controller, type}); those are used as they are. For a file without them
the links are worked out here the same way, the regular expressions and group and colour rules
applied, and each node's import says what it wired. Either way the node itself is left out: the
graph holds the links, so the file runs without the pack (and exports back without it).
"""
from __future__ import annotations

import copy
import re
from typing import Any

EVERYWHERE = ("Anything Everywhere", "Anything Everywhere?", "Anything Everywhere3")


def wire_everywhere(data: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The UI workflow with each top-level Anything Everywhere node replaced by its links (a new dict),
    and one warning line per node saying what it fed."""
    nodes, links = data.get("nodes"), data.get("links")
    if not isinstance(nodes, list) or not isinstance(links, list):
        return data, []
    senders = [n for n in nodes if isinstance(n, dict) and n.get("type") in EVERYWHERE]
    if not senders:
        return data, []
    out = copy.deepcopy(data)
    try:
        return out, _Wiring(out, {str(n.get("id")) for n in senders}).apply()
    except (TypeError, KeyError, IndexError, AttributeError, ValueError, re.error):
        return data, []      # malformed: the nodes stay placeholders that say what they are


class _Wiring:
    def __init__(self, data: dict[str, Any], senders: set[str]) -> None:
        self.data, self.senders = data, senders
        self.by_id = {str(n.get("id")): n for n in data["nodes"] if isinstance(n, dict)}
        self.dict_links = any(isinstance(link, dict) for link in data["links"])
        ids = [int(link["id"] if isinstance(link, dict) else link[0]) for link in data["links"] if link is not None]
        self.next_id = max(ids + [int(data.get("last_link_id") or 0)]) + 1
        self.fed: dict[str, list[str]] = {sid: [] for sid in senders}

    def apply(self) -> list[str]:
        extra = self.data.get("extra")
        recorded = extra.get("ue_links") if isinstance(extra, dict) else None
        notes: list[str] = []
        if isinstance(recorded, list) and recorded:
            for item in recorded:
                if isinstance(item, dict) and str(item.get("controller")) in self.senders:
                    self._link(str(item["upstream"]), int(item["upstream_slot"]), str(item["downstream"]),
                               int(item["downstream_slot"]), str(item.get("controller")))
            how = "as cg-use-everywhere recorded when the file was saved"
        else:
            notes += self._work_out()
            how = "to every unconnected input of that type, as cg-use-everywhere does"
        self._drop_senders()
        for sid in sorted(self.senders, key=_numeric):
            node = self.by_id[sid]
            fed = ", ".join(self.fed[sid]) or "no input"
            notes.append(f"node {sid} ({node.get('type')}): its values now feed {fed} directly ({how}); the node "
                         "itself is left out")
        return notes

    def _link(self, origin: str, oslot: int, target: str, tslot: int, sender: str) -> None:
        node = self.by_id.get(target)
        if node is None or target in self.senders or origin not in self.by_id:
            return
        inputs = node.get("inputs") if isinstance(node.get("inputs"), list) else []
        port = inputs[tslot] if 0 <= tslot < len(inputs) else None
        if not isinstance(port, dict) or port.get("link") is not None:
            return                     # a slot the node lacks (a stale record) or an input already linked
        lid, kind = self.next_id, str(port.get("type", "*"))
        self.next_id += 1
        port["link"] = lid
        self.data["links"].append({"id": lid, "origin_id": _id(origin), "origin_slot": oslot, "target_id": _id(target),
                                   "target_slot": tslot, "type": kind} if self.dict_links
                                  else [lid, _id(origin), oslot, _id(target), tslot, kind])
        self.data["last_link_id"] = max(int(self.data.get("last_link_id") or 0), lid)
        self.fed[sender].append(f"node {target}'s {port.get('name')}")

    def _work_out(self) -> list[str]:
        """The links for a file that does not record them: each sent type to every free input of that type."""
        offers: dict[str, list[tuple[str, str, int]]] = {}
        for sid in sorted(self.senders, key=_numeric):
            for port in self.by_id[sid].get("inputs") or []:
                source = self._source(port.get("link"))
                if source is not None and port.get("type") not in (None, "*"):
                    offers.setdefault(port["type"], []).append((sid, *source))
        notes = []
        for kind, senders in offers.items():
            if len(senders) > 1:
                notes.append(f"nodes {', '.join(s[0] for s in senders)} (Anything Everywhere) all send {kind}: which "
                             "one feeds an input is the pack's choice; link those inputs yourself")
                continue
            sid, origin, oslot = senders[0]
            for target, tslot in self._free_inputs(kind, self.by_id[sid]):
                self._link(origin, oslot, target, tslot, sid)
        return notes

    def _source(self, link_id: Any) -> tuple[str, int] | None:
        for link in self.data["links"]:
            if isinstance(link, dict) and link.get("id") == link_id:
                return str(link["origin_id"]), int(link["origin_slot"])
            if isinstance(link, list) and link and link[0] == link_id:
                return str(link[1]), int(link[2])
        return None

    def _free_inputs(self, kind: str, sender: dict[str, Any]) -> list[tuple[str, int]]:
        rules = _Rules(sender, self.data.get("groups"))
        found = []
        for nid, node in self.by_id.items():
            if nid in self.senders or not rules.node_allowed(node):
                continue
            refused = ((node.get("properties") or {}).get("ue_properties") or {}).get("input_ue_unconnectable") or {}
            for slot, port in enumerate(node.get("inputs") or []):
                if (isinstance(port, dict) and port.get("type") == kind and port.get("link") is None
                        and "widget" not in port and not refused.get(port.get("name"))
                        and rules.input_allowed(str(port.get("label") or port.get("name")))):
                    found.append((nid, slot))
        return found

    def _drop_senders(self) -> None:
        data = self.data
        data["nodes"] = [n for n in data["nodes"] if not (isinstance(n, dict) and str(n.get("id")) in self.senders)]
        data["links"] = [link for link in data["links"] if link is None or str(
            link["target_id"] if isinstance(link, dict) else link[3]) not in self.senders]


class _Rules:
    """A sender's restrictions (ue_properties): regular expressions on the target's title, input and group,
    and same (1) or other (2) group and colour."""

    def __init__(self, sender: dict[str, Any], groups: Any) -> None:
        props = (sender.get("properties") or {}).get("ue_properties") or {}
        widgets = sender.get("widgets_values") if sender.get("type") == "Anything Everywhere?" else None
        older = list(widgets) + [None] * 3 if isinstance(widgets, list) else [None] * 3
        self.title, self.input, self.group = (_pattern(props.get(f"{k}_regex") or older[i], props.get(f"{k}_regex_invert"))
                                              for i, k in enumerate(("title", "input", "group")))
        self.group_rule, self.colour_rule = int(props.get("group_restricted") or 0), int(props.get("color_restricted") or 0)
        self.groups = [g for g in groups or [] if isinstance(g, dict) and isinstance(g.get("bounding"), list)]
        self.sender_groups, self.colour = self._groups_of(sender), sender.get("color")

    def _groups_of(self, node: dict[str, Any]) -> set[str]:
        pos = node.get("pos")
        x, y = (pos.get("0"), pos.get("1")) if isinstance(pos, dict) else (pos[:2] if isinstance(pos, list) else (None, None))
        if not all(isinstance(v, (int, float)) for v in (x, y)):
            return set()
        return {str(g.get("title")) for g in self.groups
                if g["bounding"][0] <= x <= g["bounding"][0] + g["bounding"][2]
                and g["bounding"][1] <= y <= g["bounding"][1] + g["bounding"][3]}

    def node_allowed(self, node: dict[str, Any]) -> bool:
        mine = self._groups_of(node)
        if self.group_rule and bool(mine & self.sender_groups) != (self.group_rule == 1):
            return False
        if self.colour_rule and (node.get("color") == self.colour) != (self.colour_rule == 1):
            return False
        if self.group is not None and not any(self.group(g) for g in mine):
            return False
        return self.title is None or self.title(str(node.get("title") or node.get("type")))

    def input_allowed(self, name: str) -> bool:
        return self.input is None or self.input(name)


def _pattern(text: Any, invert: Any) -> Any:
    if not isinstance(text, str) or not text:
        return None
    compiled = re.compile(text)
    return lambda value: bool(compiled.search(value)) != bool(invert)


def _id(value: str) -> Any:
    return int(value) if value.lstrip("-").isdigit() else value


def _numeric(value: str) -> tuple[int, str]:
    return (int(value), "") if value.isdigit() else (1 << 62, value)
