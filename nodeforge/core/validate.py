"""Whole-graph validation: every problem at once, each naming the node and the field.

Checks unknown node types, unknown or missing inputs, links to missing nodes or outputs, type
mismatches, params of the wrong type or out of range, unknown choices, missing model files and
cycles. Produces the coerced params of every node so the engine does not check them twice.
"""
from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from nodeforge.core.errors import Problem, short_repr
from nodeforge.core.facts import input_facts, output_facts
from nodeforge.core.models import (EXTENSIONS, FOLDER_MARKERS, KIND_NAMES, ModelNotFound, ModelPaths, is_model_folder,
                                   reaches_outside)
from nodeforge.core.placeholder import is_placeholder, original_class, placeholder_message
from nodeforge.core.prompt_syntax import embedding_references, name_candidates
from nodeforge.core.registry import Registry
from nodeforge.core.spec import NodeSpec, Param
from nodeforge.core.types import PARAM_PORTS, FileKind, ParamKind, ParamRole, feeds_param, ports_compatible
from nodeforge.core.workflow import MAX_INT_DIGITS, Workflow, text_problems


@dataclass
class Checked:
    """The outcome of validation: problems, plus what running needs when there are none."""

    problems: list[Problem] = field(default_factory=list)
    specs: dict[str, NodeSpec] = field(default_factory=dict)
    params: dict[str, dict[str, Any]] = field(default_factory=dict)
    files: dict[str, dict[str, Any]] = field(default_factory=dict)   # node -> param -> Path
    order: list[str] = field(default_factory=list)                  # topological, whole graph

    @property
    def ok(self) -> bool:
        return not self.problems


def check_workflow(workflow: Workflow, registry: Registry, model_paths: ModelPaths | None = None,
                   *, check_files: bool = True) -> Checked:
    result = Checked()
    problems = result.problems
    problems.extend(text_problems(workflow))   # `run` would fail only when SaveImage writes the PNG
    nodes = workflow.nodes
    base = workflow.source.parent if workflow.source is not None else None
    for nid, node in nodes.items():
        spec = registry.get(node.type)
        if spec is None and is_placeholder(node):
            problems.append(Problem(placeholder_message(node), nid, original_class(node)))
            continue
        if spec is None:
            problems.append(Problem(_unknown_type_message(node.type, registry), nid, node.type, "type"))
            continue
        result.specs[nid] = spec
        _check_params(nid, node.params, spec, model_paths if check_files else None, result, base, workflow.origins,
                      wired=set(node.inputs))
        _check_shared_names(nid, node.params, spec, workflow.origins, model_paths if check_files else None, result,
                            base)

    for nid, node in nodes.items():
        spec = result.specs.get(nid)
        if spec is None:
            continue
        for name, (src, out) in node.inputs.items():
            _check_link(nid, spec, name, src, out, workflow, result)
        for declared in spec.inputs:
            if not declared.optional and declared.name not in node.inputs:
                problems.append(Problem(f"required input is not connected; link {_a(str(declared.type))} output to it",
                                        nid, spec.type, declared.name))

    order, cycle = topological_order(workflow)
    if cycle:
        problems.append(Problem("the graph has a cycle through nodes " + " -> ".join(cycle + cycle[:1]) +
                                "; remove one of these links", cycle[0], nodes[cycle[0]].type, None))
    result.order = order
    if not cycle:
        _check_facts(workflow, result)
    return result


def _check_link(nid: str, spec: NodeSpec, name: str, src: str, out: str, workflow: Workflow, result: Checked) -> None:
    """One wire into node `nid`: to an input of its type, or to a param a plain value (INT, FLOAT, STRING,
    BOOLEAN) may feed (the wire's value replaces the param's when the graph runs)."""
    problems = result.problems
    declared, param = spec.input(name), spec.param(name)
    if declared is None and param is None:
        known = ", ".join([i.name for i in spec.inputs] + [p.name for p in spec.params]) or "none"
        problems.append(Problem(f"{spec.type} has no input or param {name!r} (inputs and params: {known})", nid,
                                spec.type, name))
        return
    if src not in workflow.nodes:
        problems.append(Problem(f"linked to node {src!r}, which is not in the workflow; "
                                "reconnect the input", nid, spec.type, name))
        return
    src_spec = result.specs.get(src)
    if src_spec is None:
        return  # already reported as an unknown type
    out_decl = src_spec.output(out)
    if out_decl is None:
        outs = ", ".join(o.name for o in src_spec.outputs) or "none"
        problems.append(Problem(f"linked to output {out!r} of node {src} ({src_spec.type}), which has no "
                                f"such output (outputs: {outs})", nid, spec.type, name))
    elif declared is not None and not ports_compatible(str(out_decl.type), str(declared.type)):
        problems.append(Problem(f"expects {declared.type} but is linked to {src}.{out}, which gives "
                                f"{out_decl.type}", nid, spec.type, name))
    elif declared is None and param.file is not None:
        problems.append(Problem(f"names a file, which NodeForge reads from the node's own setting, not from a wire: "
                                f"remove the link from {src}.{out} and choose the file on the node", nid, spec.type,
                                name))
    elif declared is None and not feeds_param(str(out_decl.type), param.kind):
        port = PARAM_PORTS.get(param.kind, str(param.kind))
        problems.append(Problem(f"{_a(port)} setting cannot take {src}.{out}, which gives {out_decl.type}; link "
                                f"{_a(port)} output to it or remove the link", nid, spec.type, name))


def _check_facts(workflow: Workflow, result: Checked) -> None:
    """Each node's `check_inputs` against what feeds it, as far as files alone tell (core/facts.py)."""
    known: dict[str, dict[str, dict[str, Any]]] = {}
    for nid in result.order:
        spec, params = result.specs.get(nid), result.params.get(nid, {})
        if spec is None or len(params) != len(spec.params):
            continue
        given = input_facts(workflow.nodes[nid], known)
        try:
            known[nid] = output_facts(spec, given, result.files.get(nid, {}), params)
            checks = spec.check_inputs
            messages = list(checks(given, **params) or []) if checks is not None and any(given.values()) else []
        except Exception as exc:
            result.problems.append(Problem(_pack_bug(spec, "reading what its inputs are", exc), nid, spec.type, None))
            continue
        _add_messages(nid, spec, messages, result)


def _a(port_type: str) -> str:
    """'an IMAGE', 'a LATENT': the port type with the article it is read with."""
    return f"{'an' if port_type[:1] in 'AEIO' else 'a'} {port_type}"


def _check_params(nid: str, given: dict[str, Any], spec: NodeSpec, model_paths: ModelPaths | None,
                  result: Checked, base: Path | None, origins: dict[tuple[str, str], str],
                  wired: set[str] | None = None) -> None:
    """Each param's value coerced (a param a wire feeds keeps its saved value here, or its default where that
    one is no longer valid: the wire's value replaces it when the graph runs)."""
    values: dict[str, Any] = {}
    for name in given:
        if spec.param(name) is None and spec.input(name) is not None:
            result.problems.append(Problem(f"{name!r} is an input of {spec.type}, not a param: link "
                                           f"{_a(str(spec.input(name).type))} output to it and remove {name!r} from the "
                                           "node's params", nid, spec.type, name))
        elif spec.param(name) is None:
            known = ", ".join(p.name for p in spec.params) or "none"
            result.problems.append(Problem(f"{spec.type} has no param {name!r} (params: {known})", nid, spec.type, name))
    for param in spec.params:
        raw = given.get(param.name, param.default)
        message, value = _coerce(param, raw, spec)
        if message is not None and param.name in (wired or ()):
            message, value = None, param.default
        if message is not None:
            result.problems.append(Problem(message, nid, spec.type, param.name))
            continue
        values[param.name] = value
        if param.file is not None and model_paths is not None:
            if (nid, param.name) in origins and isinstance(value, str) and reaches_outside(value):
                continue     # never looked up: _check_shared_names says why
            try:
                path = model_paths.resolve(param.file, value, base)
            except ModelNotFound as exc:
                result.problems.append(Problem(str(exc), nid, spec.type, param.name))
                continue
            wrong = file_problem(param.file, path)
            if wrong is not None:
                result.problems.append(Problem(wrong, nid, spec.type, param.name))
            else:
                result.files.setdefault(nid, {})[param.name] = path
    if spec.validate is not None and len(values) == len(spec.params):
        _cross_check(nid, spec, values, result)
    result.params[nid] = values


def _check_shared_names(nid: str, given: dict[str, Any], spec: NodeSpec, origins: dict[tuple[str, str], str],
                        model_paths: ModelPaths | None, result: Checked, base: Path | None = None) -> None:
    """Model names in another tool's file stay inside the model folders; an embedding a prompt
    names must exist and be an embedding file (as a checkpoint param must be a model file)."""
    for param in spec.params:
        value = given.get(param.name)
        origin = origins.get((nid, param.name))
        if not isinstance(value, str):
            continue
        if param.file is not None and origin and reaches_outside(value):
            result.problems.append(Problem(_outside_message(KIND_NAMES[param.file], value, origin, nid, param.name),
                                           nid, spec.type, param.name))
        if param.role is not ParamRole.PROMPT:
            continue
        for name in embedding_references(value):
            if origin and reaches_outside(name):
                result.problems.append(Problem(_outside_message("embedding", name, origin, nid, param.name),
                                               nid, spec.type, param.name))
            elif model_paths is not None:
                wrong = _embedding_problem(model_paths, name, base)
                if wrong is not None:
                    result.problems.append(Problem(wrong, nid, spec.type, param.name))


def _outside_message(kind: str, name: str, origin: str, nid: str, param: str) -> str:
    shown = short_repr(name, 80).replace("\\\\", "\\")     # a Windows path's backslashes shown once, as written
    return (f"{kind} {shown} from the imported {origin} reaches outside the model folders (an absolute "
            f"path or '..'), which a shared file may not do; choose one of your models, or if you trust the path "
            f"type it in the editor or give --set {nid}.{param}=...")


def _embedding_problem(model_paths: ModelPaths, name: str, base: Path | None = None) -> str | None:
    """Why `embedding:NAME` cannot be read: no file found as TextEncoder looks (as written, then
    without trailing punctuation), or a file that is not an embedding; None when it can."""
    missing = f"embedding:{name}: not found"
    for candidate in name_candidates(name):
        try:
            path = model_paths.resolve(FileKind.EMBEDDING, candidate, base)
        except ModelNotFound as exc:
            missing = f"embedding:{name}: {exc}"
            continue
        except (OSError, ValueError):
            continue
        wrong = file_problem(FileKind.EMBEDDING, path)
        return f"embedding:{name}: {wrong}" if wrong is not None else None
    return missing


def _coerce(param: Param, raw: Any, spec: NodeSpec) -> tuple[str | None, Any]:
    """(problem, None) or (None, value). Long values are shortened; a pack's own bug is named."""
    if param.kind in (ParamKind.INT, ParamKind.FLOAT) and isinstance(raw, (str, int)) and not isinstance(raw, bool):
        digits = _digit_count(raw)
        if digits > MAX_INT_DIGITS:
            bound = f"; the maximum is {param.max}" if param.max is not None else ""
            return f"a {digits}-digit number is far out of range{bound}", None
    try:
        return None, param.coerce(raw)
    except ValueError as exc:
        message = str(exc)
        if len(message) > 200:
            message = message.replace(repr(raw), short_repr(raw)).replace(str(raw), short_repr(raw))
        return message, None
    except Exception as exc:  # a choices callable of the pack raised
        return _pack_bug(spec, f"listing the choices of {param.name!r}", exc), None


def _digit_count(raw: str | int) -> int:
    if isinstance(raw, int):
        return len(str(abs(raw))) if raw.bit_length() < 13_000 else int(raw.bit_length() * 0.30103) + 1
    text = raw.strip().lstrip("+-")
    return len(text) if text.isdigit() else 0


def _pack_bug(spec: NodeSpec, doing: str, exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    detail = f"{type(exc).__name__}: {short_repr(text, 120)[1:-1] if len(text) > 120 else text}".rstrip(": ")
    return f"the node pack {spec.pack or '?'!r} failed while {doing} ({detail}); this is a bug in that pack"


def _cross_check(nid: str, spec: NodeSpec, values: dict[str, Any], result: Checked) -> None:
    """The node's own `validate(**params)` messages, each at its field when it names one."""
    try:
        messages = list(spec.validate(**values) or [])  # type: ignore[misc]
    except Exception as exc:
        result.problems.append(Problem(_pack_bug(spec, "checking the params", exc), nid, spec.type, None))
        return
    _add_messages(nid, spec, messages, result)


def _add_messages(nid: str, spec: NodeSpec, messages: list[Any], result: Checked) -> None:
    """A node's "field: text" messages as problems at that param or input (the node's otherwise)."""
    for message in messages:
        message = str(message)
        field_name, sep, text = message.partition(": ")
        if sep and (spec.param(field_name) is not None or spec.input(field_name) is not None):
            result.problems.append(Problem(text, nid, spec.type, field_name))
        else:
            result.problems.append(Problem(message, nid, spec.type, None))


def file_problem(kind: FileKind, path: Path) -> str | None:
    """Why `path` cannot be the file a param names, or None. Looks at the path only, never below it.

    A checkpoint may be a diffusers folder (model_index.json or unet/ inside) or a weights file;
    anything else a node reads must be a regular file: "/" or "/usr" is not a model (and must
    not be walked for its cache key), a FIFO or /dev/zero is not an image.
    """
    try:
        mode = os.stat(path).st_mode
    except OSError as exc:
        return f"{path} cannot be read ({exc.strerror or exc})"
    if stat.S_ISDIR(mode):
        if kind is FileKind.CHECKPOINT:
            if (path / "model_index.json").is_file() or (path / "unet").is_dir():
                return None
            return (f"{path} is a folder but not a model (no model_index.json or unet/ in it); choose a "
                    "diffusers model folder or a .safetensors file")
        if kind in FOLDER_MARKERS and kind is not FileKind.CHECKPOINT:
            if is_model_folder(kind, path):
                return None
            return (f"{path} is a folder but not a {kind.value} (none of {', '.join(FOLDER_MARKERS[kind])} "
                    "in it); choose a diffusers-layout folder or a weights file")
        what = {FileKind.LORA: "a LoRA file", FileKind.IMAGE: "an image file"}.get(kind, "a model file")
        return f"{path} is a folder, not {what}"
    if not stat.S_ISREG(mode):
        return f"{path} is not a regular file (a pipe or a device); choose a {kind.value} file"
    if kind is not FileKind.IMAGE and not EXTENSIONS[kind]:
        return (f"{path.name} is a single file; a {KIND_NAMES[kind]} is a folder (its Hugging Face repository's "
                f"files: {', '.join(FOLDER_MARKERS[kind])}, the weights, ...); choose or copy in such a folder")
    if kind is not FileKind.IMAGE and path.suffix.lower() not in EXTENSIONS[kind]:
        folder = ", or a diffusers folder" if kind in FOLDER_MARKERS else ""
        what = ("an " if KIND_NAMES[kind][0] in "aeiou" else "a ") + KIND_NAMES[kind]
        return (f"{path.name} is not {what} file (NodeForge reads {', '.join(EXTENSIONS[kind])}{folder}); "
                f"choose {what} file")
    return None


def _unknown_type_message(type_name: str, registry: Registry) -> str:
    message = f"unknown node type {type_name!r}"
    if registry.failures:
        failed = ", ".join(f.pack for f in registry.failures)
        message += f"; the node packs {failed} failed to load and may provide it"
    else:
        close = [t for t in registry.types() if t.lower() == type_name.lower()]
        if close:
            message += f"; did you mean {close[0]!r}?"
        else:
            message += "; install the node pack that provides it (NODEFORGE_NODE_PATH or pip)"
    return message


def topological_order(workflow: Workflow, subset: Iterable[str] | None = None) -> tuple[list[str], list[str]]:
    """Kahn's algorithm (no recursion, fine for 10,000+ nodes). Returns (order, cycle or [])."""
    nodes = workflow.nodes
    wanted = set(nodes) if subset is None else set(subset)
    indegree = {nid: 0 for nid in wanted}
    consumers: dict[str, list[str]] = {nid: [] for nid in wanted}
    for nid in (n for n in nodes if n in wanted):   # file order: a set's order changes with PYTHONHASHSEED
        for src, _out in nodes[nid].inputs.values():
            if src in wanted:
                indegree[nid] += 1
                consumers[src].append(nid)
    ready = [nid for nid in nodes if nid in wanted and indegree[nid] == 0]
    ready.reverse()
    order: list[str] = []
    while ready:
        nid = ready.pop()
        order.append(nid)
        for consumer in consumers[nid]:
            indegree[consumer] -= 1
            if indegree[consumer] == 0:
                ready.append(consumer)
    if len(order) == len(wanted):
        return order, []
    return order, _find_cycle(workflow, {n for n in wanted if indegree[n] > 0})


def _find_cycle(workflow: Workflow, remaining: set[str]) -> list[str]:
    """One cycle among the nodes Kahn could not order: walk inputs until a node repeats."""
    start = min(remaining, key=lambda n: (len(n), n))
    seen: dict[str, int] = {}
    path: list[str] = []
    nid = start
    while nid not in seen:
        seen[nid] = len(path)
        path.append(nid)
        nxt = next((src for src, _ in workflow.nodes[nid].inputs.values() if src in remaining), None)
        if nxt is None:  # pragma: no cover - every remaining node has a remaining input
            return path
        nid = nxt
    cycle = path[seen[nid]:]
    cycle.reverse()  # show it in data-flow direction
    return cycle
