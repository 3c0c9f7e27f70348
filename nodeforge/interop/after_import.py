"""What every imported workflow gets once its graph is built, found through declared roles.

ComfyUI lets any sampler follow any schedule, and other tools' files name models by their own
file names. Both fixes ask the node pack's declarations (`ParamRole.SAMPLER` / `SCHEDULE`, a
param's `file` kind, `ParamRole.PROMPT`) instead of knowing node type names, so a pack's new
sampler node or loader is fitted and resolved without a change here.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping

from nodeforge.core.models import reaches_outside
from nodeforge.core.spec import NodeSpec, Param
from nodeforge.core.types import ParamRole
from nodeforge.interop.model_names import ModelResolver, resolve_embeddings

if TYPE_CHECKING:  # pragma: no cover
    from nodeforge.interop.reader import Imported

# The schedule every sampler can follow (ComfyUI's default); where a pair does not run, it replaces one.
FALLBACK_SCHEDULE = "normal"


def _by_role(spec: NodeSpec, role: ParamRole) -> Param | None:
    return next((p for p in spec.params if p.role is role), None)


def fit_sampler_pairs(imported: "Imported", registry: Any) -> None:
    """NodeForge's ancestral, DDIM-like and LCM samplers cannot follow Karras, exponential or beta
    sigmas. A node whose own check refuses its imported pair, and accepts it on the fallback
    schedule, gets that schedule and a warning naming the node."""
    if registry is None or not imported.foreign:
        return
    for nid, node in imported.workflow.nodes.items():
        spec = registry.get(node.type)
        if spec is None or spec.validate is None or _by_role(spec, ParamRole.SAMPLER) is None:
            continue
        schedule = _by_role(spec, ParamRole.SCHEDULE)
        if schedule is None or not isinstance(node.params.get(schedule.name), str):
            continue
        values = {p.name: node.params.get(p.name, p.default) for p in spec.params}
        if values[schedule.name] == FALLBACK_SCHEDULE or not _refused(spec, values):
            continue
        if _refused(spec, {**values, schedule.name: FALLBACK_SCHEDULE}):
            continue   # something else is wrong too: the validator reports it as it is
        record = node.extra.get("comfyui")
        shown = record.get("class_type") if isinstance(record, dict) and record.get("class_type") else node.type
        sampler = values[_by_role(spec, ParamRole.SAMPLER).name]
        imported.warnings.append(f"node {nid} ({shown}): NodeForge's {sampler} cannot follow "
                                 f"{values[schedule.name]} sigmas; using the {FALLBACK_SCHEDULE!r} schedule")
        node.params[schedule.name] = FALLBACK_SCHEDULE


def _refused(spec: NodeSpec, values: dict[str, Any]) -> bool:
    try:
        return bool(spec.validate(**values))
    except Exception:  # the pack's own check failing is the validator's to report
        return False


def resolve_models(imported: "Imported", registry: Any, model_map: Mapping[str, str] | None,
                   model_paths: Any | None) -> None:
    """Each param declared as a file (`Param.file`) mapped through `model_map` and, for another
    tool's file, found in the model folders; the embeddings each prompt (`ParamRole.PROMPT`) names
    looked up too. What is still missing lands on `imported` once per file."""
    if not imported.foreign and not model_map:
        return
    workflow = imported.workflow
    base = workflow.source.parent if workflow.source is not None else None
    resolver = ModelResolver(model_paths, dict(model_map or {}), base)
    unresolved: dict[tuple[str, str], tuple[str, str]] = {}    # (node id, param) -> (kind, name)
    for nid, node in workflow.nodes.items():
        spec = registry.get(node.type) if registry is not None else None
        for param in spec.params if spec is not None else ():
            value = node.params.get(param.name)
            if not isinstance(value, str):
                continue
            if imported.foreign and (param.file is not None or param.role is ParamRole.PROMPT):
                workflow.origins[(nid, param.name)] = imported.format    # validate keeps it in the model folders
            if param.file is not None and imported.foreign:
                _resolve_file(imported, resolver, unresolved, nid, param, value)
            elif param.file is not None:
                node.params[param.name] = resolver.mapped_here(param.file, value)
            if param.role is ParamRole.PROMPT:     # `embedding:OLD` mapped too, found for another tool's file
                node.params[param.name] = resolve_embeddings(resolver, value, nid, find=imported.foreign)
    imported.missing_line_at = {place: resolver.missing_line(*model) for place, model in unresolved.items()}
    imported.missing_embeddings = {name: resolver.missing_line(kind, name) for kind, name in resolver.missing
                                   if kind == "embedding"}
    imported.missing = resolver.missing_lines()
    imported.warnings.extend(imported.missing)
    imported.warnings.extend(resolver.unused_map_lines())


def _resolve_file(imported: "Imported", resolver: ModelResolver, unresolved: dict[tuple[str, str], tuple[str, str]],
                  nid: str, param: Param, value: str) -> None:
    kind = param.file.value
    if resolver.mapped(value) != value:
        imported.workflow.origins.pop((nid, param.name), None)   # the user's --model-map chose it
    elif reaches_outside(value):
        if kind not in resolver.by_kind:
            return     # not looked for outside the model folders; validate refuses it with the fix
        value = resolver.spare(kind)     # never looked for: the user's `KIND:*` map stands in for it
        imported.workflow.origins.pop((nid, param.name), None)
    name = resolver.resolve(kind, value, nid)
    if resolver.stood_in:
        imported.workflow.origins.pop((nid, param.name), None)   # the user's `KIND:*` map chose it
    imported.workflow.nodes[nid].params[param.name] = name
    if (kind, name) in resolver.missing:
        unresolved[(nid, param.name)] = (kind, name)
        imported.missing_models.setdefault((kind, name), []).append((nid, param.name))
