"""Other tools' workflow files: ComfyUI (UI workflows, API prompts, PNGs) and A1111/Forge parameters.

    from nodeforge.interop import import_workflow, export_comfyui_api
    workflow, warnings = import_workflow("shared.json")      # or a PNG, or a dict
    prompt = export_comfyui_api(workflow)                     # what ComfyUI's /prompt takes

Like `core`, this package imports neither Qt nor torch: opening a file never needs a model.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from nodeforge.core.errors import WorkflowFileError
from nodeforge.core.png_text import PNG_PARAMETERS_KEY, PNG_SIGNATURE, read_png_text, version_note
from nodeforge.core.workflow import Workflow, parse_json, read_regular_file, unsaveable_problems
from nodeforge.interop import a1111, comfy_graph, comfy_import
from nodeforge.interop.comfy_export import ExportError, export_api
from nodeforge.interop.comfy_table import ROWS
from nodeforge.interop.model_names import ModelResolver, parse_model_map, resolve_embeddings

__all__ = ["A1111", "COMFY_API", "COMFY_WORKFLOW", "NODEFORGE", "ExportError", "Imported", "detect_format", "export_comfyui_api", "import_workflow",
           "parse_model_map", "read_workflow"]

NODEFORGE = "NodeForge workflow"
COMFY_WORKFLOW = "ComfyUI workflow"
COMFY_API = "ComfyUI API prompt"
A1111 = "A1111 parameters"

# NodeForge params that name a model, and its kind (from the table, so a new row counts too).
MODEL_PARAMS: dict[tuple[str, str], str] = {(row.nodeforge, w.target): w.model for row in ROWS for w in row.widgets
                                            if w.model and w.target}


@dataclass
class Imported:
    workflow: Workflow
    warnings: list[str] = field(default_factory=list)
    format: str = NODEFORGE
    # The model files the import could not find: their lines (also in `warnings`), and for each
    # (node id, param) it leaves unresolved its line, so `run`/`validate` say it once, not twice.
    missing: list[str] = field(default_factory=list)
    missing_params: dict[tuple[str, str], str] = field(default_factory=dict)
    # Each missing model file, (kind, name), and the (node id, param) places that name it: what
    # the editor's Missing models dialog offers to replace.
    missing_models: dict[tuple[str, str], list[tuple[str, str]]] = field(default_factory=dict)

    @property
    def foreign(self) -> bool:
        return self.format != NODEFORGE


def detect_format(data: Any) -> str:
    """Which kind of workflow a parsed JSON value is; WorkflowFileError if none."""
    if isinstance(data, dict):
        if "nodeforge" in data or isinstance(data.get("nodes"), dict):
            return NODEFORGE
        if isinstance(data.get("nodes"), list) or ("nodes" in data and ("links" in data or "version" in data)):
            return COMFY_WORKFLOW
        if data and any(isinstance(v, dict) and "class_type" in v for v in data.values()):
            return COMFY_API
    kind = {list: "a list", str: "text", int: "a number", float: "a number", bool: "a boolean",
            type(None): "null"}.get(type(data), "an object")
    found = ", ".join(map(str, list(data)[:5])) if isinstance(data, dict) else kind
    raise WorkflowFileError(f"not a workflow NodeForge knows (found {found or 'an empty object'}; expected a NodeForge "
                            "workflow, a ComfyUI workflow or API prompt, or A1111 parameters)")


def _unwrap(data: Any) -> Any:
    """ComfyUI's /prompt request body: {"prompt": {...}, "extra_data": {"extra_pnginfo": {"workflow": ...}}}."""
    if isinstance(data, dict) and isinstance(data.get("prompt"), dict) and "nodes" not in data \
            and "class_type" not in data.get("prompt", {}):
        extra = data.get("extra_data")
        workflow = extra.get("extra_pnginfo", {}).get("workflow") if isinstance(extra, dict) \
            and isinstance(extra.get("extra_pnginfo"), dict) else None
        return workflow if isinstance(workflow, dict) else data["prompt"]
    return data


def _from_json(data: Any, source: Path | None, registry: Any) -> Imported:
    data = _unwrap(data)
    kind = detect_format(data)
    if kind == NODEFORGE:
        return Imported(Workflow.from_json(data, source=source), [], NODEFORGE)
    if kind == COMFY_WORKFLOW:
        graph = comfy_graph.read_ui_workflow(data, source)
    else:
        graph = comfy_graph.read_api_prompt(data, source)
    workflow, warnings = comfy_import.to_workflow(graph, registry)
    workflow.source = source
    return Imported(workflow, warnings, kind)


def _from_png(raw: bytes, source: Path | None, registry: Any) -> Imported:
    chunks = read_png_text(raw, source=source)
    where = f"{source}: " if source else ""
    # ComfyUI writes both; `workflow` has the layout. NodeForge's own PNGs use `workflow` too.
    for key in ("workflow", "prompt"):
        text = chunks.get(key)
        if text is None:
            continue
        try:
            data = parse_json(text, source)
        except WorkflowFileError as exc:
            if key == "workflow" and "prompt" in chunks:
                continue
            raise WorkflowFileError(f"{where}the PNG's {key!r} text is not a workflow: "
                                    f"{str(exc).removeprefix(where)}") from None
        imported = _from_json(data, source, registry)
        note = version_note(chunks, source) if imported.format == NODEFORGE else None
        if note:   # made by another NodeForge, torch or diffusers: the seed may draw another picture
            imported.warnings.insert(0, note)
        return imported
    if PNG_PARAMETERS_KEY in chunks:
        workflow, warnings = a1111.to_workflow(chunks[PNG_PARAMETERS_KEY], source)
        workflow.source = source
        return Imported(workflow, warnings, A1111)
    raise WorkflowFileError(f"{where}this PNG holds no workflow (no NodeForge, ComfyUI or A1111 metadata; it may "
                            "have been stripped)")


def read_workflow(source: str | os.PathLike[str] | Mapping[str, Any], *, registry: Any | None = None,
                  model_map: Mapping[str, str] | None = None, model_paths: Any | None = None) -> Imported:
    """Any supported file (or parsed JSON) as a NodeForge workflow, with warnings and its format.

    Model names are mapped (`model_map`) and, for other tools' files, resolved against the model
    folders; what is still missing becomes one warning per file.
    """
    if registry is None:
        from nodeforge.core.registry import default_registry

        registry = default_registry()
    try:
        if isinstance(source, Mapping):
            imported = _from_json(dict(source), None, registry)
        else:
            path = Path(source)
            raw = read_regular_file(path)
            if raw.startswith(PNG_SIGNATURE):
                imported = _from_png(raw, path, registry)
            else:
                imported = _from_text(raw, path, registry)
    except RecursionError:
        raise WorkflowFileError("the file nests too deeply to be a workflow") from None
    _fit_sampler_pairs(imported, registry)
    _resolve_models(imported, model_map, model_paths)
    bad = unsaveable_problems(imported.workflow)
    if bad:
        first = bad[0]
        raise WorkflowFileError(first.message, node_id=first.node_id, node_type=first.node_type, field=first.field,
                                source=imported.workflow.source or "workflow")
    return imported


def _from_text(raw: bytes, path: Path, registry: Any) -> Imported:
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise WorkflowFileError(f"{path}: not a text file or a PNG (a workflow is UTF-8 JSON)") from None
    if not text.lstrip().startswith(("{", "[")) and a1111.looks_like_parameters(text):
        workflow, warnings = a1111.to_workflow(text, path)
        workflow.source = path
        return Imported(workflow, warnings, A1111)
    try:
        return _from_json(parse_json(text, path), path, registry)
    except WorkflowFileError as exc:
        if exc.source is None and not str(exc).startswith(str(path)):
            raise WorkflowFileError(str(exc), source=path) from None
        raise


def import_workflow(source: str | os.PathLike[str] | Mapping[str, Any], *, model_map: Mapping[str, str] | None = None,
                    model_paths: Any | None = None, registry: Any | None = None) -> tuple[Workflow, list[str]]:
    """(workflow, warnings) from a NodeForge, ComfyUI (JSON or PNG) or A1111 file, or a parsed dict."""
    imported = read_workflow(source, registry=registry, model_map=model_map, model_paths=model_paths)
    return imported.workflow, imported.warnings


def export_comfyui_api(workflow: Workflow, *, registry: Any | None = None,
                       warnings: list[str] | None = None) -> dict[str, Any]:
    """The workflow as a ComfyUI API prompt; ExportError names every node without an equivalent."""
    return export_api(workflow, registry, warnings)


def _fit_sampler_pairs(imported: Imported, registry: Any) -> None:
    """ComfyUI lets any sampler follow any schedule; NodeForge's ancestral, DDIM-like and LCM samplers
    cannot follow Karras, exponential or beta sigmas. Those keep the sampler on the 'normal' schedule."""
    spec = registry.get("UNetDenoise") if registry is not None else None
    if spec is None or spec.validate is None or spec.param("schedule") is None or not imported.foreign:
        return
    for nid, node in imported.workflow.nodes.items():
        if node.type != "UNetDenoise" or not isinstance(node.params.get("schedule"), str):
            continue
        values = {p.name: node.params.get(p.name, p.default) for p in spec.params}
        try:
            messages = [str(m) for m in spec.validate(**values) or []]
        except Exception:  # the pack's own check failing is the validator's to report
            continue
        if any(m.startswith("schedule: ") for m in messages):
            record = node.extra.get("comfyui")
            shown = record.get("class_type") if isinstance(record, dict) and record.get("class_type") else node.type
            imported.warnings.append(f"node {nid} ({shown}): NodeForge's {values['sampler']} cannot follow "
                                     f"{values['schedule']} sigmas; using the 'normal' schedule")
            node.params["schedule"] = "normal"


def _resolve_models(imported: Imported, model_map: Mapping[str, str] | None, model_paths: Any | None) -> None:
    if not imported.foreign and not model_map:
        return
    workflow = imported.workflow
    base = workflow.source.parent if workflow.source is not None else None
    resolver = ModelResolver(model_paths, dict(model_map or {}), base)
    for nid, node in workflow.nodes.items():
        for (node_type, param), kind in MODEL_PARAMS.items():
            if node.type != node_type or not isinstance(node.params.get(param), str):
                continue
            if imported.foreign:
                node.params[param] = resolver.resolve(kind, node.params[param], nid)
                if (kind, node.params[param]) in resolver.missing:
                    imported.missing_params[(nid, param)] = (kind, node.params[param])
                    imported.missing_models.setdefault((kind, node.params[param]), []).append((nid, param))
            else:
                node.params[param] = resolver.mapped(node.params[param])
        if imported.foreign and node.type == "TextEncoder" and isinstance(node.params.get("text"), str):
            resolve_embeddings(resolver, node.params["text"], nid)
    imported.missing_params = {key: resolver.missing_line(*item) for key, item in imported.missing_params.items()}
    imported.missing = resolver.missing_lines()
    imported.warnings.extend(imported.missing)
    imported.warnings.extend(resolver.unused_map_lines())
