"""A NodeForge workflow as a ComfyUI API prompt (what ComfyUI's /prompt endpoint takes).

The graph as it runs is exported: bypassed nodes passed through, muted ones left out. Each node
keeps its id and title; placeholders go back as the ComfyUI node they came from. A node with no
ComfyUI equivalent is refused, every one named at once.
"""
from __future__ import annotations

from typing import Any

from nodeforge.core import graph
from nodeforge.core.errors import Problem, ProblemsError
from nodeforge.core.placeholder import PLACEHOLDER_TYPE, original_class, output_name, output_types
from nodeforge.core.workflow import NodeRef, Workflow
from nodeforge.core.types import ParamRole
from nodeforge.interop import comfy_table as table
from nodeforge.interop.comfy_import import COMFY_KEY


class ExportError(ProblemsError):
    """The workflow cannot be exported as it is; `problems` names every node at fault."""


def choose_row(nid: str, node: NodeRef, workflow: Workflow) -> table.ClassMap | None:
    """The ComfyUI class a node exports as: the one recorded at import if it can still stand for the
    node, else what the rows' `export_only_if` / `export_prefer_if` say (the first row by default)."""
    rows = table.rows_for(node.type)
    if len(rows) <= 1:
        return rows[0] if rows else None
    record = node.extra.get(COMFY_KEY)
    hint = record.get("class_type") if isinstance(record, dict) else None
    able = [row for row in rows if row.export_only_if is None or row.export_only_if(nid, node, workflow)]
    recorded = next((row for row in able if row.comfy == hint), None)
    if recorded is not None:
        return recorded
    preferred = (row for row in able if row.export_prefer_if is not None and row.export_prefer_if(nid, node, workflow))
    return next(preferred, able[0] if able else rows[0])


def exported_row(nid: str, node: NodeRef, workflow: Workflow, problems: list[Problem]) -> table.ClassMap | None:
    """choose_row, or None with the refusal added to `problems` for a node ComfyUI has no class for."""
    row = choose_row(nid, node, workflow)
    if row is None:
        problems.append(Problem("has no ComfyUI equivalent; remove it or replace it with a node ComfyUI has",
                                nid, node.type))
    return row


def in_comfy_classes(workflow: Workflow, warnings: list[str] | None = None) -> Workflow:
    """The workflow (a copy) with each node that no one ComfyUI class can stand for rewritten as the
    NodeForge nodes that run the same and that ComfyUI has classes for; both exports write this.

    So far one: Load IP-Adapter and Encoder whose files are not one IPAdapter_plus preset's (ComfyUI's
    IPAdapterUnifiedLoader has only the preset; it finds the files itself) becomes Load IP-Adapter (the
    node's id, as IPAdapterModelLoader) and Load CLIP Vision (`<id>.clip_vision`, linked to each Apply
    IP-Adapter it fed, unless one has its own encoder linked), its model's users linked to its model's source.
    """
    wf = workflow.copy()
    for nid, node in list(wf.nodes.items()):
        if node.type == "IPAdapterLoaderWithEncoder":
            _split_unified_loader(wf, nid, node, warnings)
    return wf


def _split_unified_loader(wf: Workflow, nid: str, node: NodeRef, warnings: list[str] | None) -> None:
    adapter, encoder = node.params.get("ipadapter", ""), node.params.get("clip_vision", "")
    if any(adapter in files[:2] and encoder == files[2] for files in table.IPADAPTER_PRESETS.values()):
        return
    users = [(uid, name) for uid, user in wf.nodes.items() for name, (src, out) in user.inputs.items()
             if src == nid and out == "ipadapter"]
    others = sorted({uid for uid, _ in users if wf.nodes[uid].type != "IPAdapterApply"})
    if others:
        if warnings is not None:
            warnings.append(f"node {nid} ({node.type}): exported as IPAdapterUnifiedLoader's preset, which finds its "
                            f"own encoder: clip_vision {str(encoder)[:60]!r} is lost, as node(s) {', '.join(others)} "
                            "cannot take an encoder of their own; link Load IP-Adapter and Load CLIP Vision instead")
        return
    model = node.inputs.get("unet")
    for user in wf.nodes.values():
        for name, (src, out) in list(user.inputs.items()):
            if src == nid and out == "unet":
                if model is None:
                    del user.inputs[name]
                else:
                    user.inputs[name] = model
    extra = {k: v for k, v in node.extra.items() if k != COMFY_KEY}
    wf.nodes[nid] = NodeRef("IPAdapterLoader", {"ipadapter": adapter}, title=node.title, extra=extra)
    loader = f"{nid}.clip_vision"
    wf.nodes[loader] = NodeRef("CLIPVisionLoader", {"clip_vision": encoder})
    for uid, _name in users:
        wf.nodes[uid].inputs.setdefault("clip_vision", (loader, "clip_vision"))
    ui = wf.ui
    position = (ui.get("positions") or {}).get(nid)
    if isinstance(position, list) and len(position) == 2:
        ui["positions"][loader] = [position[0], position[1] + 120.0]
    for key in ("muted", "bypassed", "collapsed"):
        if isinstance(ui.get(key), list) and nid in ui[key]:
            ui[key].append(loader)


def export_comfyui_api(workflow: Workflow, *, registry: Any | None = None,
                       warnings: list[str] | None = None) -> dict[str, Any]:
    """The workflow as a ComfyUI API prompt; ExportError names every node without an equivalent."""
    if registry is None:
        from nodeforge.core.registry import default_registry

        registry = default_registry()
    wf = graph.apply_switches(in_comfy_classes(workflow, warnings), registry)
    problems: list[Problem] = []
    rows: dict[str, table.ClassMap] = {}
    outputs: dict[str, list[str]] = {}
    for nid, node in wf.nodes.items():
        if node.type == PLACEHOLDER_TYPE:
            outputs[nid] = list(output_types(node)) or _outputs_used(nid, wf)
            continue
        row = exported_row(nid, node, wf, problems)
        if row is None:
            continue
        rows[nid] = row
        outputs[nid] = list(row.outputs)
    prompt: dict[str, Any] = {}
    for nid, node in wf.nodes.items():
        if node.type == PLACEHOLDER_TYPE:
            entry = _placeholder_entry(nid, node, problems)
        elif nid in rows:
            entry = _mapped_entry(nid, node, rows[nid], registry, problems, warnings)
        else:
            continue
        if entry is None:
            continue
        for name, (src, out) in node.inputs.items():
            comfy_name = _comfy_name(rows[nid], name) if nid in rows else name
            if comfy_name is None:
                continue       # LoraLoaderModelOnly takes no CLIP
            if src not in outputs:
                if src in wf.nodes and src not in rows:
                    continue   # reported at that node
                problems.append(Problem(f"linked to node {src!r}, which is not in the workflow", nid, node.type, name))
                continue
            if out not in outputs[src]:
                problems.append(Problem(f"linked to output {out!r} of node {src}, which has no such output",
                                        nid, node.type, name))
                continue
            entry["inputs"][comfy_name] = [src, outputs[src].index(out)]
        prompt[nid] = entry
    if problems:
        raise ExportError(problems)
    resolve_widget_links(prompt, outputs)
    return prompt


def _comfy_name(row: table.ClassMap, nf_name: str) -> str | None:
    """The ComfyUI input a NodeForge input goes to, or for a param a wire feeds, its widget (ComfyUI takes a
    link in a widget's place)."""
    name = row.comfy_input(nf_name)
    if name is None and row.widget_for(nf_name) is not None:
        return row.widget_for(nf_name).comfy
    return name


def _outputs_used(nid: str, workflow: Workflow) -> list[str]:
    """A placeholder's outputs when it recorded none: every `output_N` a consumer links to."""
    slots = [int(out.rsplit("_", 1)[1]) for node in workflow.nodes.values() for src, out in node.inputs.values()
             if src == nid and out.startswith("output_") and out.rsplit("_", 1)[1].isdigit()]
    return [output_name(i) for i in range(max(slots, default=-1) + 1)]


def _mapped_entry(nid: str, node: NodeRef, row: table.ClassMap, registry: Any, problems: list[Problem],
                  warnings: list[str] | None) -> dict[str, Any] | None:
    spec = registry.get(node.type) if registry is not None else None
    notes = table.Notes()
    inputs: dict[str, Any] = {}
    params = node.params
    for widget in row.widgets:
        target = widget.target
        if target is None:
            if widget.export_default is not None:
                inputs[widget.comfy] = widget.export_default
            continue
        if target in params:
            value = params[target]
        elif spec is not None and spec.param(target) is not None:
            value = spec.param(target).default
        else:
            continue
        inputs[widget.comfy] = widget.save(value, notes)
    _unmapped_params(node, row, spec, notes)
    painted = spec.param_with(ParamRole.PAINTED_MASK) if spec is not None else None
    if painted is not None and node.params.get(painted.name):
        notes.warn("its mask painted in the editor is not exported (ComfyUI reads a Load Image mask from the "
                   "picture's transparency): save the picture with the mask as transparent pixels, or mask it in ComfyUI")
    if row.comfy == "KSamplerAdvanced":
        denoise = node.params.get("denoise", 1.0)
        if isinstance(denoise, (int, float)) and denoise != 1.0:
            problems.append(Problem(f"denoise {denoise} with start/end steps has no ComfyUI equivalent "
                                    "(KSamplerAdvanced has no denoise); set denoise to 1 or the steps to the "
                                    "whole schedule", nid, node.type, "denoise"))
            return None
    links = (node.extra.get(COMFY_KEY) or {}).get("widget_links") if isinstance(node.extra.get(COMFY_KEY), dict) else None
    for name, link in (links or {}).items():
        if isinstance(link, (list, tuple)) and len(link) == 2:
            inputs[name] = ("widget-link", str(link[0]), str(link[1]))
    for message in notes.messages:
        if warnings is not None:
            warnings.append(f"node {nid} ({node.type}): {message}")
    return {"inputs": inputs, "class_type": row.comfy, "_meta": {"title": node.title or row.display}}


def _unmapped_params(node: NodeRef, row: table.ClassMap, spec: Any, notes: table.Notes) -> None:
    """Say each param set away from its default that the ComfyUI class has no widget for (it is lost there)."""
    if spec is None:
        return
    mapped = {w.target for w in row.widgets} | set(row.fixed)
    for param in spec.params:
        if param.name in mapped or param.name not in node.params or param.role == ParamRole.PAINTED_MASK:
            continue
        if node.params[param.name] != param.default:
            notes.warn(f"its {param.name} {node.params[param.name]!r} has no widget on ComfyUI's {row.comfy} and "
                       "is left out of the export")


def _placeholder_entry(nid: str, node: NodeRef, problems: list[Problem]) -> dict[str, Any] | None:
    params = node.params
    class_type = original_class(node)
    inputs: dict[str, Any] = {}
    if isinstance(params.get("widgets"), dict):
        inputs.update(params["widgets"])
    elif params.get("widgets_values"):
        problems.append(Problem("its widget values cannot be named from the ComfyUI workflow file it came from "
                                "(older ComfyUI versions save them by position only); export the workflow from "
                                "ComfyUI in API format and import that instead", nid, class_type))
        return None
    return {"inputs": inputs, "class_type": class_type, "_meta": {"title": node.title or class_type}}


def resolve_widget_links(prompt: dict[str, Any], outputs_of: dict[str, list[str]]) -> None:
    """Turn ("widget-link", src, output) markers into [src, slot] once every node's outputs are known."""
    for entry in prompt.values():
        for name, value in list(entry["inputs"].items()):
            if isinstance(value, tuple) and value and value[0] == "widget-link":
                src, out = value[1], value[2]
                names = outputs_of.get(src)
                if names is not None and out in names:
                    entry["inputs"][name] = [src, names.index(out)]
                else:
                    del entry["inputs"][name]
