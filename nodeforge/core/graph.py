"""Graph queries over a workflow's links, written once for the engine, the editor and the pack.

Links point from a consumer's input to its source (`node.inputs[name] = (src, output)`), so
"upstream" follows inputs and "downstream" follows them backwards. Every walk is iterative
(10,000-node graphs), tolerates links to missing nodes (the validator reports those) and
terminates on cycles.

Bypass and mute, the editor's two ways of switching nodes off, are defined here too, so a
file with switched-off nodes runs the same from the command line as in the editor:
- a *bypassed* node is taken out and each consumer of one of its outputs is linked instead to
  the node's first input of the same type (a LoRA loader passes its model through); with no
  such input the consumer's link is dropped;
- a *muted* node does not run, nor does anything that needs one of its outputs through a
  required input (an optional input is just left unconnected).
The lists live in the workflow's `ui` as `bypassed` and `muted` (node ids).
"""
from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, Callable, Iterable, Iterator

from nodeforge.core import placeholder

if TYPE_CHECKING:  # pragma: no cover
    from nodeforge.core.registry import Registry
    from nodeforge.core.workflow import NodeRef, Workflow

BYPASSED = "bypassed"
MUTED = "muted"


def upstream(workflow: "Workflow", node_id: str) -> list[str]:
    """The nodes `node_id` takes inputs from, in input order, each once (missing ones left out)."""
    nodes = workflow.nodes
    seen: dict[str, None] = {}
    for src, _ in nodes[node_id].inputs.values():
        if src in nodes:
            seen.setdefault(src)
    return list(seen)


def downstream(workflow: "Workflow", node_id: str) -> list[str]:
    """The nodes that take an input from `node_id`, in workflow order."""
    return [nid for nid, node in workflow.nodes.items()
            if any(src == node_id for src, _ in node.inputs.values())]


def ancestors(workflow: "Workflow", targets: Iterable[str],
              stop: Callable[[str], bool] | None = None) -> set[str]:
    """The targets and every node they depend on, directly or not.

    `stop(node_id)` true keeps that node but not what lies behind it (the engine stops at a
    node whose value is cached); it is called once per node reached.
    """
    nodes = workflow.nodes
    found: set[str] = set()
    stack = [t for t in targets if t in nodes]
    while stack:
        nid = stack.pop()
        if nid in found:
            continue
        found.add(nid)
        if stop is not None and stop(nid):
            continue
        stack.extend(src for src, _ in nodes[nid].inputs.values() if src in nodes and src not in found)
    return found


def reaches(workflow: "Workflow", start: str, goal: str) -> bool:
    """Whether data flows from `start` to `goal` along one or more links (goal depends on start).

    The editor refuses a link goal -> start when this holds, because it would close a loop.
    """
    nodes = workflow.nodes
    if goal not in nodes:
        return False
    stack = [src for src, _ in nodes[goal].inputs.values()]
    seen: set[str] = set()
    while stack:
        nid = stack.pop()
        if nid == start:
            return True
        if nid in seen or nid not in nodes:
            continue
        seen.add(nid)
        stack.extend(src for src, _ in nodes[nid].inputs.values())
    return False


def descendants(workflow: "Workflow", sources: Iterable[str]) -> set[str]:
    """The downstream closure: every node that depends on one of `sources` (not the sources)."""
    consumers = _consumers(workflow)
    found: set[str] = set()
    stack = [c for s in sources for c in consumers.get(s, ())]
    while stack:
        nid = stack.pop()
        if nid in found:
            continue
        found.add(nid)
        stack.extend(consumers.get(nid, ()))
    return found


def _consumers(workflow: "Workflow") -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for nid, node in workflow.nodes.items():
        for src, _ in node.inputs.values():
            out.setdefault(src, []).append(nid)
    return out


def needed_for(workflow: "Workflow", outputs: Iterable[str], order: Iterable[str]) -> list[str]:
    """The nodes the outputs need, in the given (topological) order."""
    wanted = ancestors(workflow, outputs)
    return [nid for nid in order if nid in wanted]


def walk_upstream(workflow: "Workflow", start: str, *, via_input: str | None = None,
                  follow: Callable[[str, str], bool] | None = None) -> Iterator[str]:
    """The nodes upstream of `start`, nearest first (breadth first, inputs in order), each once.

    `via_input` starts the walk at that input's source (the prompt feeding "positive");
    `start` itself comes first only when no input is named. `follow(node_id, input_name)`
    false does not walk through that input (the metadata follows only MODEL wires to LoRAs).
    """
    nodes = workflow.nodes
    if start not in nodes:
        return
    if via_input is not None:
        link = nodes[start].inputs.get(via_input)
        queue = deque([link[0]] if link else [])
    else:
        queue = deque([start])
    seen: set[str] = set()
    while queue:
        nid = queue.popleft()
        if nid in seen or nid not in nodes:
            continue
        seen.add(nid)
        yield nid
        queue.extend(src for name, (src, _) in nodes[nid].inputs.items()
                     if follow is None or follow(nid, name))


def nearest_upstream(workflow: "Workflow", start: str, match: str | Callable[[str], bool], *,
                     via_input: str | None = None,
                     follow: Callable[[str, str], bool] | None = None) -> str | None:
    """The closest node upstream of `start` that is of type `match` (or for which `match(node_id)`
    holds), walked as `walk_upstream` does; None if there is none."""
    if isinstance(match, str):
        node_type = match
        match = lambda nid: workflow.nodes[nid].type == node_type  # noqa: E731
    return next((nid for nid in walk_upstream(workflow, start, via_input=via_input, follow=follow)
                 if match(nid)), None)


def switched_off(workflow: "Workflow", flag: str) -> set[str]:
    """The node ids the `ui` lists under `flag` ("bypassed" or "muted") that are in the graph."""
    listed = (workflow.ui or {}).get(flag) or ()
    if not isinstance(listed, (list, tuple)):
        return set()
    return {str(n) for n in listed} & set(workflow.nodes)


def apply_switches(workflow: "Workflow", registry: "Registry") -> "Workflow":
    """A copy of the workflow as it runs: bypassed nodes passed through, muted ones left out.

    The `ui` is kept as it is; applying this twice changes nothing more.
    """
    wf = workflow.copy()
    bypassed = switched_off(wf, BYPASSED)
    muted = switched_off(wf, MUTED) - bypassed
    if bypassed:
        _pass_through(wf, registry, bypassed)
    if muted:
        _leave_out(wf, registry, muted)
    return wf


def _pass_through(wf: "Workflow", registry: "Registry", bypassed: set[str]) -> None:
    def source(src: str, output: str) -> tuple[str, str] | None:
        seen: set[str] = set()
        while src in bypassed:
            if src in seen:
                return None
            seen.add(src)
            node = wf.nodes[src]
            ins, outs = port_types(node, registry)
            declared = outs.get(output)
            if declared is None:
                return None
            match = next(((up, up_out) for name, (up, up_out) in node.inputs.items()
                          if ins.get(name) == declared), None)
            if match is None:
                return None
            src, output = match
        return (src, output)

    for nid, node in wf.nodes.items():
        if nid not in bypassed:
            links = {name: source(*link) for name, link in node.inputs.items()}
            node.inputs = {name: link for name, link in links.items() if link is not None}
    for nid in bypassed:
        del wf.nodes[nid]


def port_types(node: "NodeRef", registry: "Registry") -> tuple[dict[str, str], dict[str, str]]:
    """Input and output port types of a node: from its spec, or as a placeholder recorded them."""
    spec = registry.get(node.type)
    if spec is not None:
        return ({i.name: str(i.type) for i in spec.inputs}, {o.name: str(o.type) for o in spec.outputs})
    if placeholder.is_placeholder(node):
        return placeholder.input_types(node), placeholder.output_types(node)
    return {}, {}


def _leave_out(wf: "Workflow", registry: "Registry", muted: set[str]) -> None:
    removed = set(muted)
    for nid in _topological(wf):
        if nid in removed:
            continue
        node = wf.nodes[nid]
        spec = registry.get(node.type)
        cut = [name for name, (src, _) in node.inputs.items() if src in removed]
        if any(spec is None or spec.input(name) is None or not spec.input(name).optional for name in cut):
            removed.add(nid)
        else:
            node.inputs = {k: v for k, v in node.inputs.items() if k not in cut}
    for nid in removed:
        wf.nodes.pop(nid, None)


def _topological(wf: "Workflow") -> list[str]:
    """Sources before consumers; nodes on a cycle come last, in file order."""
    from nodeforge.core.validate import topological_order

    order, _cycle = topological_order(wf)
    placed = set(order)
    return order + [nid for nid in wf.nodes if nid not in placed]
