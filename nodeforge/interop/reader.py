"""Reading any workflow file NodeForge knows: its format told from the content, then one reader.

NodeForge JSON, a ComfyUI UI workflow or API prompt (JSON, or a PNG's text chunks), or A1111
parameters (a PNG's `parameters` chunk or plain text) all become an `Imported`: the workflow, its
warnings, its format and the model files it names that are missing. Another tool's workflow then
gets its sampler pairs fitted and its model names resolved (`nodeforge.interop.after_import`).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from nodeforge.core.errors import WorkflowFileError
from nodeforge.core.png_text import PNG_PARAMETERS_KEY, PNG_SIGNATURE, read_png_text, version_note
from nodeforge.core.prompt_syntax import name_candidates
from nodeforge.core.workflow import Workflow, parse_json, read_regular_file, unsaveable_problems
from nodeforge.interop import a1111, comfy_graph, comfy_import
from nodeforge.interop.after_import import fit_sampler_pairs, resolve_models

NODEFORGE = "NodeForge workflow"
COMFY_WORKFLOW = "ComfyUI workflow"
COMFY_API = "ComfyUI API prompt"
A1111 = "A1111 parameters"

@dataclass
class Imported:
    workflow: Workflow
    warnings: list[str] = field(default_factory=list)
    format: str = NODEFORGE
    # The model files the import could not find: their lines (also in `warnings`), and for each
    # (node id, param) it leaves unresolved its line, so `run`/`validate` say it once, not twice.
    missing: list[str] = field(default_factory=list)
    missing_line_at: dict[tuple[str, str], str] = field(default_factory=dict)
    # Each missing model file, (kind, name), and the (node id, param) places that name it: what
    # the editor's Missing models dialog offers to replace.
    missing_models: dict[tuple[str, str], list[tuple[str, str]]] = field(default_factory=dict)
    # Each embedding a prompt names that the import could not find: its line, by the name validate
    # reports (`embedding:NAME: ...`, without trailing punctuation).
    missing_embeddings: dict[str, str] = field(default_factory=dict)

    @property
    def foreign(self) -> bool:
        return self.format != NODEFORGE

    def line_for(self, problem: Any) -> str:
        """What to print for a validation problem: the import's own line for a model it could not
        find (with where to put it and the --model-map fix), else the problem."""
        line = self.missing_line_at.get((problem.node_id, problem.field))
        if line is None and problem.message.startswith("embedding:"):
            name = problem.message[len("embedding:"):].split(": ", 1)[0]
            line = self.missing_embeddings.get(name_candidates(name)[-1])
        return line or str(problem)


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
        try:
            imported = _from_json(data, source, registry)
        except WorkflowFileError as exc:
            if exc.source is not None or str(exc).startswith(where or "\0"):
                raise
            raise WorkflowFileError(f"{where}the PNG's {key!r} text is not a workflow: {exc}") from None
        note = version_note(chunks, source) if imported.format == NODEFORGE else None
        if note:   # made by another NodeForge, torch or diffusers: the seed may draw another picture
            imported.warnings.insert(0, note)
        if "\ufffd" in text:   # read_png_text replaces bytes that are not UTF-8 rather than drop the chunk
            imported.warnings.insert(0, f"the PNG's {key!r} text has bytes that are not UTF-8, shown as '\ufffd'; "
                                        "check the prompts and file names")
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
    fit_sampler_pairs(imported, registry)
    resolve_models(imported, registry, model_map, model_paths)
    bad = unsaveable_problems(imported.workflow)
    if bad:
        first = bad[0]
        raise WorkflowFileError(first.message, node_id=first.node_id, node_type=first.node_type, field=first.field,
                                source=imported.workflow.source or "workflow")
    return imported


# Images that carry no workflow NodeForge reads, by their first bytes: said as what they are.
_IMAGE_MAGIC = ((b"\xff\xd8\xff", "a JPEG image"), (b"GIF87a", "a GIF image"), (b"GIF89a", "a GIF image"),
                (b"BM", "a BMP image"), (b"II*\0", "a TIFF image"), (b"MM\0*", "a TIFF image"))


def _not_a_workflow(raw: bytes, path: Path) -> str | None:
    """What a file plainly is when it cannot be a workflow (empty, another image, a damaged
    PNG), to say instead of "not valid JSON"; None for anything that may be text."""
    if not raw.strip():
        return f"{path}: the file is empty" + (" (nothing was saved in it)" if not raw else " (only spaces)")
    image = next((name for magic, name in _IMAGE_MAGIC if raw.startswith(magic)), None)
    if image is None and raw[:4] == b"RIFF" and raw[8:12] == b"WEBP":
        image = "a WebP image"
    if image is not None:
        return (f"{path}: is {image}, not a PNG; a workflow is read from a PNG's text chunks (NodeForge, ComfyUI "
                "or A1111 metadata) or a JSON file: open the PNG the image was saved as")
    if path.suffix.lower() == ".png" and not raw.lstrip().startswith((b"{", b"[")):
        return (f"{path}: named .png but is not a PNG image (it does not start with the PNG signature); the "
                "file is damaged or not what its name says")
    if b"\0" in raw[:4096] and raw[:2] not in (b"\xff\xfe", b"\xfe\xff"):    # UTF-16 text has NULs too
        return (f"{path}: holds binary data, not text; a workflow is a JSON file or a PNG with NodeForge, ComfyUI "
                "or A1111 metadata (the file may be damaged or another kind of file)")
    return None


def _from_text(raw: bytes, path: Path, registry: Any) -> Imported:
    plainly = _not_a_workflow(raw, path)
    if plainly:
        raise WorkflowFileError(plainly)
    # UTF-16 with its byte-order mark: what Windows PowerShell's `>` and Notepad's "Unicode" write
    encoding = "utf-16" if raw[:2] in (b"\xff\xfe", b"\xfe\xff") else "utf-8-sig"
    try:
        text = raw.decode(encoding)
    except UnicodeDecodeError:
        encoding = "cp1252"      # A1111 text saved by a Windows editor
        text = raw.decode(encoding, errors="replace")
        if text.lstrip().startswith(("{", "[")) or not a1111.looks_like_parameters(text):
            raise WorkflowFileError(f"{path}: not a text file or a PNG (a workflow is UTF-8 JSON)") from None
    if not text.lstrip().startswith(("{", "[")) and a1111.looks_like_parameters(text):
        workflow, warnings = a1111.to_workflow(text, path)
        if encoding == "cp1252":
            warnings.insert(0, "A1111 parameters: the file is not UTF-8 text; read as Windows-1252 (check accented "
                               "letters in the prompts)")
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
