"""The workflow file (format version 1): load, save, migrate. Opening a file never runs code.

A workflow is UTF-8 JSON: `{"nodeforge": 1, "nodes": {...}, "ui": {...}}`. Unknown top-level keys
are kept on save, layout lives in `ui`, a newer version is refused and older ones are migrated.
Saving writes a temporary file beside the target and renames it, so a crash never leaves a
half-written workflow. PNGs saved by NodeForge carry the workflow in a text chunk.
"""
from __future__ import annotations

import copy
import json
import os
import struct
import tempfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from nodeforge.core.errors import WorkflowFileError

FORMAT_VERSION = 1
PNG_WORKFLOW_KEY = "workflow"          # text chunk holding the workflow JSON
PNG_PARAMETERS_KEY = "parameters"      # text chunk with A1111-style generation parameters
MAX_FILE_BYTES = 64 * 1024 * 1024
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


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

    def copy(self) -> "Workflow":
        return copy.deepcopy(self)

    # -- (de)serialising ----------------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"nodeforge": FORMAT_VERSION,
                                "nodes": {nid: node.to_json() for nid, node in self.nodes.items()}}
        if self.ui:
            data["ui"] = self.ui
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
            nodes[str(nid)] = _node_from_json(str(nid), raw, where)
        ui = data.get("ui") or {}
        if not isinstance(ui, dict):
            raise WorkflowFileError(f"{where}\"ui\" must be an object")
        extra = {k: v for k, v in data.items() if k not in ("nodeforge", "nodes", "ui")}
        return cls(nodes=nodes, ui=ui, extra=extra, source=source)

    @classmethod
    def loads(cls, text: str, *, source: Path | None = None) -> "Workflow":
        return cls.from_json(parse_json(text, source), source=source)


def _json_kind(value: Any) -> str:
    return {list: "list", str: "string", int: "number", float: "number", bool: "boolean",
            type(None): "null"}.get(type(value), type(value).__name__)


def _node_from_json(nid: str, raw: Any, where: str) -> NodeRef:
    if not isinstance(raw, dict):
        raise WorkflowFileError(f"{where}node {nid}: must be an object with a \"type\"", node_id=nid)
    node_type = raw.get("type")
    if not isinstance(node_type, str) or not node_type:
        raise WorkflowFileError(f"{where}node {nid}: \"type\" must be a node type name", node_id=nid, field="type")
    params = raw.get("params") or {}
    if not isinstance(params, dict):
        raise WorkflowFileError(f"{where}node {nid}: \"params\" must be an object", node_id=nid, field="params")
    raw_inputs = raw.get("inputs") or {}
    if not isinstance(raw_inputs, dict):
        raise WorkflowFileError(f"{where}node {nid}: \"inputs\" must be an object", node_id=nid, field="inputs")
    inputs: dict[str, tuple[str, str]] = {}
    for name, link in raw_inputs.items():
        if (not isinstance(link, (list, tuple)) or len(link) != 2
                or not isinstance(link[1], str) or not isinstance(link[0], (str, int))):
            raise WorkflowFileError(
                f"{where}node {nid}, input {name}: a link must be [source_node_id, output_name], got {link!r}",
                node_id=nid, field=name)
        inputs[str(name)] = (str(link[0]), link[1])
    title = raw.get("title")
    if title is not None and not isinstance(title, str):
        raise WorkflowFileError(f"{where}node {nid}: \"title\" must be text", node_id=nid, field="title")
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
    data["nodeforge"] = FORMAT_VERSION
    return data


def parse_json(text: str, source: Path | None = None) -> Any:
    where = f"{source}: " if source else ""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise WorkflowFileError(f"{where}not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})") from None
    except RecursionError:
        raise WorkflowFileError(f"{where}the JSON is nested too deeply to be a workflow") from None


def load_workflow(path: str | os.PathLike[str]) -> Workflow:
    """Read a workflow from a .json file or a PNG saved by NodeForge."""
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise WorkflowFileError(f"{path}: {size // (1024 * 1024)} MB is too large for a workflow")
        raw = path.read_bytes()
    except FileNotFoundError:
        raise WorkflowFileError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise WorkflowFileError(f"{path}: is a folder, not a workflow file") from None
    except PermissionError:
        raise WorkflowFileError(f"{path}: permission denied") from None
    if raw.startswith(_PNG_SIGNATURE):
        chunks = read_png_text(raw)
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


def save_workflow(workflow: Workflow, path: str | os.PathLike[str]) -> Path:
    """Write atomically: a temporary file in the same folder, flushed, then renamed over `path`."""
    path = Path(path)
    text = workflow.dumps()
    atomic_write_bytes(path, (text + "\n").encode("utf-8"))
    return path


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def read_png_text(data: bytes) -> dict[str, str]:
    """The tEXt/zTXt/iTXt chunks of a PNG, without decoding pixels (and without Pillow)."""
    out: dict[str, str] = {}
    pos = len(_PNG_SIGNATURE)
    while pos + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        pos += 12 + length
        try:
            if kind == b"tEXt":
                key, _, value = body.partition(b"\0")
                out[key.decode("latin-1")] = value.decode("latin-1")
            elif kind == b"zTXt":
                key, _, rest = body.partition(b"\0")
                out[key.decode("latin-1")] = zlib.decompress(rest[1:]).decode("latin-1")
            elif kind == b"iTXt":
                key, _, rest = body.partition(b"\0")
                compressed, _method = rest[0], rest[1]
                _lang, _, rest = rest[2:].partition(b"\0")
                _tkey, _, text = rest.partition(b"\0")
                out[key.decode("latin-1")] = (zlib.decompress(text) if compressed else text).decode("utf-8")
            elif kind == b"IEND":
                break
        except (zlib.error, UnicodeDecodeError, IndexError):
            continue
    return out
