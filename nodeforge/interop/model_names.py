"""The sender's model names against the receiver's model folders.

Each model a shared file names (checkpoint, LoRA, VAE, ControlNet, upscaler, embedding, input
image) is looked up in the user's folders: the exact name or relative path, then a file of the
same name in any sub-folder, then the same stem with another extension (or a diffusers folder of
that name). `--model-map OLD=NEW` substitutes names first; `--model-map KIND:*=NEW` (say
`checkpoint:*=nodeforge-shapes`) stands in for every model of that kind that is still missing, so a
shared graph can be tried on the models one has in one step. What is still missing is listed once
per file, with its kind and the folder it belongs in.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Iterable

from nodeforge.core.models import (EXTENSIONS, FOLDER_MARKERS, KIND_NAMES, SUBFOLDERS, ModelNotFound, ModelPaths,
                                   is_model_folder, quoted)
from nodeforge.core.prompt_syntax import name_candidates, rename_embeddings
from nodeforge.core.types import FileKind

MAX_WALK_ENTRIES = 50_000      # a models folder of a few thousand files is normal; stop well past that
MAX_WALK_DEPTH = 6
KIND_WILDCARD = "*"       # `KIND:*` as a --model-map key: every missing model of that kind


def kind_spelling(kind: FileKind | str) -> str:
    """How a kind is written before `:*` (checkpoint, lora, vae, controlnet, upscale_model, ...)."""
    return FileKind(kind).value


def map_key_kind(key: str) -> FileKind | None:
    """The kind a `KIND:*` map key names (its value or display name, any case), None for a model
    name; ValueError for `NAME:*` naming no kind."""
    head, colon, tail = key.rpartition(":")
    if not colon or tail.strip() != KIND_WILDCARD:
        return None
    wanted = head.strip().lower().replace(" ", "_")
    for kind in FileKind:
        if wanted in (kind.value, KIND_NAMES[kind].lower().replace(" ", "_")):
            return kind
    kinds = ", ".join(f"{kind_spelling(k)}:*" for k in FileKind)
    raise ValueError(f"--model-map {key}=...: {head.strip()!r} is not a kind of model; use one of {kinds}")


def parse_model_map(items: Iterable[str]) -> dict[str, str]:
    """`OLD=NEW` strings as a dict (OLD may be `KIND:*`); ValueError naming the bad one."""
    out: dict[str, str] = {}
    for item in items:
        old, eq, new = item.partition("=")
        if not eq or not old.strip() or not new.strip():
            raise ValueError(f"--model-map {item!r}: expected OLD=NEW, e.g. --model-map "
                             "sd_xl_base_1.0.safetensors=nodeforge-shapes (or 'checkpoint:*=nodeforge-shapes' "
                             "for every missing checkpoint)")
        map_key_kind(old.strip())
        out[old.strip()] = new.strip()
    return out


def _variants(name: str) -> list[str]:
    """A name as written, with forward slashes, its file name and its stem (for --model-map keys)."""
    slashed = name.replace("\\", "/")
    base = slashed.rsplit("/", 1)[-1]
    stem = base.rsplit(".", 1)[0] if "." in base else base
    out: list[str] = []
    for item in (name, slashed, base, stem):
        if item and item not in out:
            out.append(item)
    return out


@dataclass
class Missing:
    kind: str
    name: str
    nodes: list[str] = field(default_factory=list)


class ModelResolver:
    """Resolves names for one import; remembers what is missing (each file once)."""

    def __init__(self, model_paths: ModelPaths | None = None, model_map: dict[str, str] | None = None,
                 base: Path | None = None) -> None:
        self.paths = model_paths if model_paths is not None else ModelPaths.default()
        given = dict(model_map or {})
        kinds = {key: map_key_kind(key) for key in given}
        self.model_map = {key: new for key, new in given.items() if kinds[key] is None}
        self.by_kind = {kinds[key].value: new for key, new in given.items() if kinds[key] is not None}
        self.base = base
        self.missing: dict[tuple[str, str], Missing] = {}
        self.used_map: set[str] = set()
        self.stood_in = False      # whether the last resolve() took the kind's `KIND:*` stand-in
        self._index: dict[str, tuple[dict[str, str], dict[str, str]]] = {}

    # -- folders ----------------------------------------------------------------------------------------
    def folders(self, kind: FileKind | str) -> list[Path]:
        return self.paths.folders(kind)

    def target_folder(self, kind: FileKind | str) -> str:
        subfolder = SUBFOLDERS[FileKind(kind)]
        if self.paths.roots:
            return str(self.paths.roots[0] / subfolder)
        return f"a models folder's {subfolder}/ (set NODEFORGE_MODELS)"

    # -- looking up ------------------------------------------------------------------------------------------
    def mapped(self, name: str) -> str:
        for variant in _variants(name):
            if variant in self.model_map:
                self.used_map.add(variant)
                return self.model_map[variant]
        return name

    def spare(self, kind: FileKind | str) -> str | None:
        """The model a `KIND:*` map puts in place of a missing one of that kind, or None."""
        return self.by_kind.get(FileKind(kind).value)

    def mapped_here(self, kind: FileKind | str, name: str) -> str:
        """A NodeForge file's name: mapped by name, or by kind where no model of that name is here."""
        new = self.mapped(name)
        if new == name and FileKind(kind).value in self.by_kind and not self._exists(kind, name):
            return self.spare(kind) or name
        return new

    def resolve(self, kind: FileKind | str, name: str, node_id: str | None = None) -> str:
        """The name to store: mapped, then found as is, in a sub-folder, or by stem; else the model
        the kind's `KIND:*` map names; else the name (missing)."""
        if not isinstance(name, str) or not name.strip():
            return name
        kind = FileKind(kind).value
        name = self.mapped(name)
        hit = self.find(kind, name)
        self.stood_in = hit is None and self.spare(kind) is not None
        if self.stood_in:
            name = self.spare(kind)
            hit = self.find(kind, name)
        if hit is not None:
            return hit
        entry = self.missing.setdefault((kind, name), Missing(kind, name))
        if node_id is not None and node_id not in entry.nodes:
            entry.nodes.append(node_id)
        return name

    def find(self, kind: FileKind | str, name: str) -> str | None:
        """The stored name of the model `name` means (as is, in a sub-folder, or by stem), or None."""
        if self._exists(kind, name):
            return name
        base = name.replace("\\", "/").rsplit("/", 1)[-1]
        names, stems = self._files(kind)
        hit = names.get(base.lower())
        if hit is None:
            stem = base.rsplit(".", 1)[0] if "." in base else base
            hit = stems.get(stem.lower())
        return hit

    def _exists(self, kind: FileKind | str, name: str) -> bool:
        try:
            self.paths.resolve(kind, name, self.base)
            return True
        except (ModelNotFound, OSError, ValueError):
            return False

    def _files(self, kind: FileKind | str) -> tuple[dict[str, str], dict[str, str]]:
        """{file name: stored name} and {stem: stored name} of every model of a kind, walked once."""
        kind = FileKind(kind)
        if kind in self._index:
            return self._index[kind]
        names: dict[str, str] = {}
        stems: dict[str, str] = {}
        budget = [MAX_WALK_ENTRIES]
        for folder in self.folders(kind):
            if folder.is_dir():
                self._walk(folder, folder, kind, names, stems, 0, budget)
        self._index[kind] = (names, stems)
        return names, stems

    def _walk(self, root: Path, folder: Path, kind: FileKind, names: dict[str, str], stems: dict[str, str],
              depth: int, budget: list[int]) -> None:
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError:
            return
        subfolders = []
        for entry in entries:
            budget[0] -= 1
            if budget[0] < 0:
                return
            if entry.name.startswith("."):
                continue
            stored = str(PurePosixPath(Path(entry.path).relative_to(root)))
            try:
                is_dir = entry.is_dir(follow_symlinks=False)
            except OSError:
                continue
            if is_dir:
                if kind in FOLDER_MARKERS and is_model_folder(kind, Path(entry.path)):
                    stems.setdefault(entry.name.lower(), stored)
                    continue
                if depth < MAX_WALK_DEPTH:
                    subfolders.append(entry)
                continue
            suffix = os.path.splitext(entry.name)[1].lower()
            if suffix in EXTENSIONS[kind]:
                names.setdefault(entry.name.lower(), stored)
                stems.setdefault(os.path.splitext(entry.name)[0].lower(), stored)
        for entry in subfolders:
            self._walk(root, Path(entry.path), kind, names, stems, depth + 1, budget)

    # -- what to tell the user -----------------------------------------------------------------------------
    def missing_lines(self) -> list[str]:
        return [self.missing_line(kind, name) for kind, name in self.missing]

    def missing_line(self, kind: str, name: str) -> str:
        """The one line that says a missing file, the nodes using it and where it should go."""
        item = self.missing[(kind, name)]
        shown = KIND_NAMES[FileKind(item.kind)]
        nodes = ", ".join(item.nodes[:5]) + (" ..." if len(item.nodes) > 5 else "")
        used = f" (node{'s' if len(item.nodes) > 1 else ''} {nodes})" if item.nodes else ""
        if item.kind == "image":
            return (f"missing image {quoted(item.name)}{used}: put it beside the workflow file or in "
                    f"{self.target_folder(item.kind)}")
        wildcard = f"{kind_spelling(item.kind)}:{KIND_WILDCARD}"
        if item.kind in self.by_kind:    # the kind's stand-in is what is missing: say so, not the map again
            return (f"missing {shown} {quoted(item.name)}{used}, given by --model-map {wildcard}: put it in "
                    f"{self.target_folder(item.kind)}, or map {wildcard} to a {shown} you have")
        return (f"missing {shown} {quoted(item.name)}{used}: put it in {self.target_folder(item.kind)}, "
                f"or map it to one you have with --model-map {_quote(item.name)}=NAME (every missing "
                f"{shown}: --model-map '{wildcard}=NAME')")

    def unused_map_lines(self) -> list[str]:
        """A name map that matched nothing (a typo, most likely). A kind map with nothing to do is
        not said: the same set of kind maps is meant for any file."""
        return [f"--model-map {old}: no model in the file is named {quoted(old)}" for old in self.model_map
                if old not in self.used_map]


def _quote(name: str) -> str:
    return name if re.fullmatch(r"[\w.\-/]+", name) else f'"{name}"'


def resolve_embeddings(resolver: ModelResolver, text: str, node_id: str | None = None, *, find: bool = True) -> str:
    """The prompt with each `embedding:NAME` the user's --model-map names rewritten to the new name
    (as NodeForge finds it), looking names up as TextEncoder will (one parser,
    `nodeforge.core.prompt_syntax`): as written, then without trailing punctuation. An embedding
    found neither way takes the `embedding:*` map's stand-in where one is given. With `find`
    (another tool's file) a name found neither way is recorded missing (without the punctuation)."""
    def rename(name: str) -> str | None:
        candidates = name_candidates(name)
        for candidate in reversed(candidates):     # "old." maps by "old", and keeps its "."
            new = resolver.mapped(candidate)
            if new != candidate:
                return _found_as(resolver, new, node_id, find) + name[len(candidate):]
        by_kind = "embedding" in resolver.by_kind
        if (find or by_kind) and not any(resolver.find("embedding", candidate) for candidate in candidates):
            if by_kind:
                return _found_as(resolver, resolver.spare("embedding") or "", node_id, True) + name[len(candidates[-1]):]
            resolver.resolve("embedding", candidates[-1], node_id)
        return None
    return rename_embeddings(text or "", rename)


def _found_as(resolver: ModelResolver, new: str, node_id: str | None, find: bool) -> str:
    """How a mapped embedding is written in the prompt: the stored name where it stays one word of
    the prompt, else the name the user gave; recorded missing (with `find`) where it is not here."""
    found = resolver.find("embedding", new) if find else None
    if find and found is None:
        resolver.resolve("embedding", new, node_id)
    return found if found is not None and not re.search(r"[\s,()\[\]]", found) else new


def local_models(kind: FileKind | str, model_paths: ModelPaths | None = None) -> list[str]:
    """The user's models of a kind, by the names a workflow stores (for choosing a replacement)."""
    resolver = ModelResolver(model_paths)
    found = set(resolver._files(kind)[0].values())    # files in sub-folders too, as resolution finds them
    found.update(resolver.paths.names(kind))          # what the editor lists (diffusers folders included)
    return sorted(found, key=str.lower)
