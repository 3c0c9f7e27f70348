"""The workflow file (format version 2): load, save, migrate. Opening a file never runs code.

A workflow is UTF-8 JSON: `{"nodeforge": 2, "nodes": {...}, "ui": {...}}`. Unknown top-level keys
are kept on save, layout lives in `ui`, a newer version is refused and older ones are migrated.
Saving goes through `nodeforge.core.files.atomic_write_bytes`, so a crash never leaves a
half-written workflow. PNGs saved by NodeForge carry the workflow in a text chunk
(`nodeforge.core.png_text`).
"""
from __future__ import annotations

import copy
import json
import math
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from nodeforge.core.errors import Problem, WorkflowFileError, WorkflowSaveError, short_repr
from nodeforge.core.files import atomic_write_bytes, refuse_read_only
from nodeforge.core.png_text import PNG_SIGNATURE, PNG_WORKFLOW_KEY, read_png_text

FORMAT_VERSION = 2
# Format 2 split UNetDenoise's `scheduler` (format 1) into `sampler` and `schedule` (ComfyUI's
# sampler_name and scheduler). Each old name and the pair that gives the same pixels (a fixed fact
# of format 1; tests/nodes/test_sampler_names.py checks the pack still runs every pair):
V1_SCHEDULERS: dict[str, tuple[str, str]] = {
    "euler": ("euler", "default"), "euler_ancestral": ("euler_ancestral", "default"),
    "heun": ("heun", "default"), "lms": ("lms", "default"), "ddim": ("ddim", "default"),
    "ddpm": ("ddpm", "default"), "pndm": ("pndm", "default"), "dpmpp_2m": ("dpmpp_2m", "default"),
    "dpmpp_2m_karras": ("dpmpp_2m", "karras"), "dpmpp_sde": ("dpmpp_sde", "karras"),
    "unipc": ("uni_pc_bh2", "default"), "lcm": ("lcm", "default"),
}
MAX_FILE_BYTES = 64 * 1024 * 1024
MAX_INT_DIGITS = 100                   # a seed has 20 digits; Python refuses over 4,300


@dataclass
class NodeRef:
    """One node in a workflow: its type, widget values, incoming links and optional title."""

    type: str
    params: dict[str, Any] = field(default_factory=dict)
    inputs: dict[str, tuple[str, str]] = field(default_factory=dict)
    title: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)   # unknown per-node keys, kept on save

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"type": self.type}
        if self.params:
            data["params"] = dict(self.params)
        if self.inputs:
            data["inputs"] = {name: [src, out] for name, (src, out) in self.inputs.items()}
        if self.title:
            data["title"] = self.title
        data.update(self.extra)
        return data


@dataclass
class Workflow:
    """A graph of nodes by id, plus layout (`ui`) and any unknown top-level keys (`extra`)."""

    nodes: dict[str, NodeRef] = field(default_factory=dict)
    ui: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    source: Path | None = field(default=None, compare=False)
    # Params whose value came from another tool's file, (node id, param) -> that file's format: a
    # model name there must stay inside the model folders (validate). What the user sets in the
    # editor or with --set drops its entry; never saved, so a NodeForge file is the user's own.
    origins: dict[tuple[str, str], str] = field(default_factory=dict, compare=False)

    # -- building ---------------------------------------------------------------------------------
    def add(self, node_type: str, params: Mapping[str, Any] | None = None,
            inputs: Mapping[str, tuple[str, str] | list[str]] | None = None, *,
            node_id: str | None = None, title: str | None = None) -> str:
        """Add a node and return its id (the next free integer id unless one is given)."""
        if node_id is None:
            node_id = self.next_id()
        if node_id in self.nodes:
            raise ValueError(f"node id {node_id!r} is already used")
        self.nodes[node_id] = NodeRef(node_type, dict(params or {}),
                                      {k: (str(v[0]), str(v[1])) for k, v in (inputs or {}).items()}, title)
        return node_id

    def next_id(self) -> str:
        numeric = [int(k) for k in self.nodes if k.isdigit()]
        return str(max(numeric, default=0) + 1)

    def connect(self, src: str, output: str, dst: str, input_name: str) -> None:
        self.nodes[dst].inputs[input_name] = (src, output)

    def find(self, id_or_title: str) -> str | None:
        """A node id from an id or a unique title (for `--set positive.text=...`)."""
        if id_or_title in self.nodes:
            return id_or_title
        matches = [nid for nid, node in self.nodes.items() if node.title == id_or_title]
        return matches[0] if len(matches) == 1 else None

    def find_param(self, id_or_title: str, param: str, registry: Any) -> tuple[str, Any]:
        """The node id `id_or_title` names and the Param `param` of its type (None for a type the
        registry does not know), for `--set ID.param=...` and batch axes; LookupError saying
        which of the two is wrong and what there is instead."""
        nid = self.find(id_or_title)
        if nid is None:
            titles = sorted({n.title for n in self.nodes.values() if n.title})
            hint = f"; titles: {', '.join(titles)}" if titles else ""
            raise LookupError(f"no node with id or unique title {id_or_title!r}{hint}")
        node_type = self.nodes[nid].type
        spec = registry.get(node_type)
        declared = spec.param(param) if spec is not None else None
        if spec is not None and declared is None:
            known = ", ".join(p.name for p in spec.params) or "none"
            raise LookupError(f"node {nid} ({node_type}) has no param {param!r} (params: {known})")
        return nid, declared

    def copy(self) -> "Workflow":
        return copy.deepcopy(self)

    # -- (de)serialising ----------------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"nodeforge": FORMAT_VERSION,
                                "nodes": {nid: node.to_json() for nid, node in self.nodes.items()}}
        if self.ui:
            data["ui"] = finite_layout(self.ui)
        for key, value in self.extra.items():
            data.setdefault(key, value)
        return data

    def dumps(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_json(), indent=indent, ensure_ascii=False)

    @classmethod
    def from_json(cls, data: Any, *, source: Path | None = None) -> "Workflow":
        """Build from parsed JSON, migrating older versions; raise WorkflowFileError if not one."""
        where = f"{source}: " if source else ""
        if not isinstance(data, dict):
            raise WorkflowFileError(f"{where}not a NodeForge workflow (the top level is a "
                                    f"{_json_kind(data)}, expected an object with \"nodeforge\" and \"nodes\")")
        data = migrate(data, source)
        raw_nodes = data.get("nodes")
        if not isinstance(raw_nodes, dict):
            raise WorkflowFileError(f"{where}\"nodes\" must be an object mapping node ids to nodes")
        nodes: dict[str, NodeRef] = {}
        for nid, raw in raw_nodes.items():
            nodes[str(nid)] = _node_from_json(str(nid), raw, source)
        ui = data.get("ui") or {}
        if not isinstance(ui, dict):
            raise WorkflowFileError(f"{where}\"ui\" must be an object")
        extra = {k: v for k, v in data.items() if k not in ("nodeforge", "nodes", "ui")}
        # NaN in the layout is a glitch of whatever wrote it: drop it rather than refuse the file.
        workflow = cls(nodes=nodes, ui=finite_layout(ui), extra=extra, source=source)
        bad = text_problems(workflow)
        if bad:
            first = bad[0]
            raise WorkflowFileError(first.message, node_id=first.node_id, node_type=first.node_type,
                                    field=first.field, source=source or "workflow")
        return workflow

    @classmethod
    def loads(cls, text: str, *, source: Path | None = None) -> "Workflow":
        return cls.from_json(parse_json(text, source), source=source)


def _json_kind(value: Any) -> str:
    return {list: "list", str: "string", int: "number", float: "number", bool: "boolean",
            type(None): "null"}.get(type(value), type(value).__name__)


def _node_from_json(nid: str, raw: Any, source: Path | None) -> NodeRef:
    if not isinstance(raw, dict):
        raise WorkflowFileError("must be an object with a \"type\"", node_id=nid, source=source)
    node_type = raw.get("type")
    if not isinstance(node_type, str) or not node_type:
        raise WorkflowFileError("\"type\" must be a node type name", node_id=nid, field="type", source=source)
    params = raw.get("params") or {}
    if not isinstance(params, dict):
        raise WorkflowFileError("\"params\" must be an object", node_id=nid, node_type=node_type,
                                field="params", source=source)
    raw_inputs = raw.get("inputs") or {}
    if not isinstance(raw_inputs, dict):
        raise WorkflowFileError("\"inputs\" must be an object", node_id=nid, node_type=node_type,
                                field="inputs", source=source)
    inputs: dict[str, tuple[str, str]] = {}
    for name, link in raw_inputs.items():
        if (not isinstance(link, (list, tuple)) or len(link) != 2
                or not isinstance(link[1], str) or not isinstance(link[0], (str, int))):
            raise WorkflowFileError(f"a link must be [source_node_id, output_name], got {short_repr(link)}",
                                    node_id=nid, node_type=node_type, field=name, source=source)
        inputs[str(name)] = (str(link[0]), link[1])
    title = raw.get("title")
    if title is not None and not isinstance(title, str):
        raise WorkflowFileError("\"title\" must be text", node_id=nid, node_type=node_type, field="title",
                                source=source)
    extra = {k: v for k, v in raw.items() if k not in ("type", "params", "inputs", "title")}
    return NodeRef(node_type, dict(params), inputs, title or None, extra)


def migrate(data: dict[str, Any], source: Path | None = None) -> dict[str, Any]:
    """Bring an older file up to FORMAT_VERSION; refuse a newer one with a clear message."""
    where = f"{source}: " if source else ""
    version = data.get("nodeforge")
    if version is None:
        if "nodes" in data and isinstance(data["nodes"], dict):
            version = 0  # a pre-release file without the version key
        else:
            keys = ", ".join(list(map(str, data))[:5]) or "nothing"
            raise WorkflowFileError(f"{where}not a NodeForge workflow (no \"nodeforge\" version key; "
                                    f"found {keys})")
    if isinstance(version, bool) or not isinstance(version, int):
        raise WorkflowFileError(f"{where}\"nodeforge\" must be the format version number, got {version!r}")
    if version > FORMAT_VERSION:
        raise WorkflowFileError(f"{where}this workflow was saved by a newer NodeForge (format "
                                f"{version}; this version reads up to {FORMAT_VERSION}). Update NodeForge to open it.")
    if version < 0:
        raise WorkflowFileError(f"{where}unknown format version {version}")
    data = dict(data)
    if version == 0:
        # Version 0 kept widget values under "widgets" and positions on each node.
        positions = {}
        nodes = {}
        for nid, node in (data.get("nodes") or {}).items():
            if isinstance(node, dict):
                node = dict(node)
                if "widgets" in node and "params" not in node:
                    node["params"] = node.pop("widgets")
                if "pos" in node:
                    positions[str(nid)] = node.pop("pos")
            nodes[nid] = node
        data["nodes"] = nodes
        if positions:
            ui = dict(data.get("ui") or {})
            ui.setdefault("positions", {}).update(positions)
            data["ui"] = ui
    if version < 2:
        data["nodes"] = _split_schedulers(data.get("nodes"))
    data["nodeforge"] = FORMAT_VERSION
    return data


def _split_schedulers(nodes: Any) -> Any:
    """Format 1 -> 2: UNetDenoise's `scheduler` becomes `sampler` + `schedule`."""
    if not isinstance(nodes, dict):
        return nodes   # the node checks report it
    out = {}
    for nid, node in nodes.items():
        params = node.get("params") if isinstance(node, dict) else None
        if isinstance(params, dict) and node.get("type") == "UNetDenoise" and "scheduler" in params:
            new: dict[str, Any] = {}
            for key, value in params.items():   # in place of `scheduler`, keeping the order
                if key == "scheduler":
                    # An unknown old name stays as the sampler, so validate names it.
                    pair = V1_SCHEDULERS.get(value) if isinstance(value, str) else None
                    new["sampler"], new["schedule"] = pair or (value, "default")
                else:
                    new[key] = value
            node = {**node, "params": new}
        out[nid] = node
    return out


class _DuplicateKey(ValueError):
    def __init__(self, key: str, node_like: bool) -> None:
        super().__init__(key)
        self.key = key
        self.node_like = node_like


class _LongNumber(ValueError):
    def __init__(self, digits: int) -> None:
        super().__init__(digits)
        self.digits = digits


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """json's object_pairs_hook: a key given twice is an error (plain json keeps the last)."""
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _DuplicateKey(key, isinstance(value, dict) and "type" in value)
        out[key] = value
    return out


def _bounded_int(text: str) -> int:
    digits = len(text.lstrip("-"))
    if digits > MAX_INT_DIGITS:
        raise _LongNumber(digits)
    return int(text)


def parse_json(text: str, source: Path | None = None) -> Any:
    """Parse workflow JSON; duplicate keys and absurdly long numbers are errors, not silent."""
    where = f"{source}: " if source else ""
    try:
        return json.loads(text, object_pairs_hook=_unique_keys, parse_int=_bounded_int)
    except json.JSONDecodeError as exc:
        raise WorkflowFileError(f"{where}not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})") from None
    except _DuplicateKey as exc:
        if exc.node_like:
            raise WorkflowFileError(f"its id {short_repr(exc.key)} is used by two nodes; give each node its own id "
                                    "(only the last would be kept)", node_id=exc.key, source=source) from None
        raise WorkflowFileError(f"{where}the key {short_repr(exc.key)} appears twice in one object; keep one "
                                "(only the last would be kept)") from None
    except _LongNumber as exc:
        raise WorkflowFileError(f"{where}a number in the file has {exc.digits} digits; no workflow value "
                                f"needs more than {MAX_INT_DIGITS}") from None
    except RecursionError:
        raise WorkflowFileError(f"{where}the JSON is nested too deeply to be a workflow") from None


def read_regular_file(path: Path, limit: int = MAX_FILE_BYTES, what: str = "a workflow") -> bytes:
    """The bytes of a regular file of at most `limit` bytes; anything else is refused at once.

    Opened without blocking and checked with fstat, so a FIFO, /dev/zero, a device, a folder or
    a symlink loop is an error now instead of a hang or a read until memory runs out.
    """
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise WorkflowFileError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise WorkflowFileError(f"{path}: is a folder, not {what} file") from None
    except PermissionError:
        raise WorkflowFileError(f"{path}: permission denied") from None
    except OSError as exc:
        raise WorkflowFileError(f"{path}: cannot open it ({exc.strerror or exc})") from None
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            raise WorkflowFileError(f"{path}: is a folder, not {what} file")
        if not stat.S_ISREG(mode):
            raise WorkflowFileError(f"{path}: is {_file_type(mode)}, not a regular file; save {what} to a file "
                                    "and open that")
    except BaseException:
        os.close(fd)
        raise
    with os.fdopen(fd, "rb") as handle:
        data = handle.read(limit + 1)
    if len(data) > limit:
        raise WorkflowFileError(f"{path}: more than {limit // (1024 * 1024)} MB is too large for {what}")
    return data


def _file_type(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a pipe (FIFO)"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "a special file"


def load_workflow(path: str | os.PathLike[str]) -> Workflow:
    """Read a workflow from a .json file or a PNG saved by NodeForge."""
    path = Path(path)
    raw = read_regular_file(path)
    if raw.startswith(PNG_SIGNATURE):
        chunks = read_png_text(raw, source=path)
        text = chunks.get(PNG_WORKFLOW_KEY)
        if text is None:
            raise WorkflowFileError(f"{path}: this PNG holds no NodeForge workflow (it was not saved by NodeForge "
                                    "or its metadata was stripped)")
        return Workflow.loads(text, source=path)
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise WorkflowFileError(f"{path}: not a text file (a workflow is UTF-8 JSON)") from None
    return Workflow.loads(text, source=path)


# -- what standard UTF-8 JSON cannot hold ------------------------------------------------------------
_DROP = object()


def finite_layout(value: Any) -> Any:
    """`ui` without the NaN and infinities JSON cannot store (`[NaN, 0]` as a whole goes)."""
    cleaned = _finite(value)
    return {} if cleaned is _DROP else cleaned


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return _DROP
    if isinstance(value, dict):
        out = {k: _finite(v) for k, v in value.items()}
        return {k: v for k, v in out.items() if v is not _DROP}
    if isinstance(value, (list, tuple)):
        items = [_finite(v) for v in value]
        if _DROP in items and all(isinstance(v, (int, float)) for v in value):
            return _DROP  # a point or rectangle with a NaN is no point at all
        return [v for v in items if v is not _DROP]
    return value


def _bad_text(value: Any) -> str | None:
    """Where the first string UTF-8 cannot encode (a lone surrogate) is in `value`, keys included."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError as exc:
                return (f"text that cannot be saved as UTF-8 ({item[exc.start]!a} at character {exc.start} "
                        "is a lone surrogate); retype this text")
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, (list, tuple)):
            stack.extend(item)
    return None


def _not_finite(value: Any) -> bool:
    if isinstance(value, float):
        return not math.isfinite(value)
    if isinstance(value, dict):
        return any(_not_finite(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return any(_not_finite(v) for v in value)
    return False


def text_problems(workflow: Workflow) -> list[Problem]:
    """Every string in the workflow that UTF-8 cannot store, naming its node and field."""
    problems: list[Problem] = []
    for nid, node in workflow.nodes.items():
        fields: list[tuple[str | None, Any]] = [(None, nid), ("type", node.type), ("title", node.title)]
        fields += [(name, (name, value)) for name, value in node.params.items()]
        fields += [(name, (name, link)) for name, link in node.inputs.items()]
        fields += [(key, (key, value)) for key, value in node.extra.items()]
        for field_name, value in fields:
            message = _bad_text(value)
            if message is not None:
                problems.append(Problem(message if field_name else "the node id holds " + message,
                                        _printable(nid), _printable(node.type), _printable(field_name)))
    for where, value in (("ui (the layout)", workflow.ui), ("top-level keys", workflow.extra)):
        message = _bad_text(value)
        if message is not None:
            problems.append(Problem(f"{where}: {message}"))
    return problems


def _printable(text: str | None) -> str | None:
    """`text` with unencodable characters as escapes, so the message itself can be shown."""
    return None if text is None else text.encode("utf-8", "backslashreplace").decode("utf-8")


def unsaveable_problems(workflow: Workflow) -> list[Problem]:
    """What `save_workflow` refuses: unencodable text and NaN or infinite params."""
    problems = text_problems(workflow)
    for nid, node in workflow.nodes.items():
        for name, value in list(node.params.items()) + list(node.extra.items()):
            if _not_finite(value):
                problems.append(Problem(f"{value!r} is not a number JSON can store; enter a finite number",
                                        nid, node.type, name))
    if _not_finite(workflow.extra):
        problems.append(Problem("top-level keys hold NaN or infinity, which JSON cannot store"))
    return problems


def save_workflow(workflow: Workflow, path: str | os.PathLike[str]) -> Path:
    """Write standard UTF-8 JSON atomically: a temporary file beside the target, then a rename.

    Raises WorkflowSaveError (nothing written) for content JSON or UTF-8 cannot hold, naming the
    node and field; disk failures and a read-only file raise OSError. The file keeps its permissions, and a symlink
    is written through to its target (`nodeforge.core.files.atomic_write`).
    """
    path = Path(path)
    problems = unsaveable_problems(workflow)
    if problems:
        raise WorkflowSaveError(problems, source=path)
    try:
        text = json.dumps(workflow.to_json(), indent=2, ensure_ascii=False, allow_nan=False)
        data = (text + "\n").encode("utf-8")
    except (ValueError, TypeError) as exc:  # anything the checks above missed
        raise WorkflowSaveError([Problem(f"cannot be written as JSON ({exc})")], source=path) from None
    refuse_read_only(path)
    atomic_write_bytes(path, data)
    return path
