"""Textual-inversion embeddings: reading their files, and finding the ones a prompt names.

Formats: A1111 `.pt` (`string_to_param`, read with `torch.load(weights_only=True)` only),
`.safetensors` (`emb_params`; SDXL's `clip_l` + `clip_g`), and diffusers' `learned_embeds`
(`{"<token>": vectors}`, as a `.safetensors`/`.bin` file or the folder holding it). An embedding
has one or more vectors per text encoder width; each vector takes one token position. Nothing
is added to the tokenizer or the text encoder: prompt.py substitutes the vectors at their
positions while encoding.
Importing this module does not import torch (TextEncoder's is_changed reads the file list).
"""
from __future__ import annotations

import threading
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from nodeforge.core.errors import NodeError
from nodeforge.core.models import EXTENSIONS, ModelNotFound, ModelPaths, SUBFOLDERS, file_identity
from nodeforge.core.prompt_syntax import name_candidates
from nodeforge.core.types import FileKind

if TYPE_CHECKING:  # pragma: no cover
    import torch

_REGISTRY_KEY = "nodes.embeddings"
_lock = threading.Lock()


@dataclass(eq=False)
class Embedding:
    """An embedding's vectors, [n, width] per text encoder width (SDXL files hold two widths)."""

    name: str
    vectors: dict[int, torch.Tensor]

    def for_width(self, width: int, what: str) -> torch.Tensor:
        found = self.vectors.get(width)
        if found is None:
            widths = ", ".join(str(w) for w in self.vectors)
            raise NodeError(f"embedding {self.name!r} has vectors {widths} wide, but the {what} is {width} wide: "
                            "it was trained for another model family", field="text")
        return found

    def nodeforge_nbytes(self) -> int:
        return sum(v.nbytes for v in self.vectors.values())


def _as_rows(value: Any) -> torch.Tensor | None:
    import torch

    if not isinstance(value, torch.Tensor) or not value.is_floating_point() or value.ndim == 0:
        return None
    value = value.detach().float()
    if value.ndim == 1:
        value = value[None]
    while value.ndim > 2 and value.shape[0] == 1:
        value = value[0]
    # No rows (or no width): a token that would vanish from the prompt without a word said.
    return value if value.ndim == 2 and value.numel() else None


def vectors_of(data: Any, name: str) -> list[torch.Tensor]:
    """The [n, width] vector blocks of an embedding file's contents, whichever trainer wrote it."""
    if isinstance(data, dict):
        if isinstance(data.get("string_to_param"), dict):          # A1111 .pt
            data = data["string_to_param"]
        elif "emb_params" in data:                                 # A1111 .safetensors
            data = {"emb_params": data["emb_params"]}
        elif "clip_l" in data or "clip_g" in data:                 # SDXL
            data = {k: data[k] for k in ("clip_l", "clip_g") if k in data}
        blocks = [_as_rows(v) for v in data.values()]
    else:
        blocks = [_as_rows(data)]
    blocks = [b for b in blocks if b is not None]
    if not blocks:
        raise NodeError(f"embedding {name!r} holds no vectors (expected string_to_param, emb_params, "
                        "clip_l/clip_g or a learned_embeds token)", field="text")
    return blocks


def read_embedding(path: Path, name: str) -> Embedding:
    """An embedding from its file (or a diffusers folder holding learned_embeds)."""
    import torch

    from .loading import check_finite
    from .weight_files import load_pickle, read_safetensors

    if path.is_dir():
        inner = [path / f for f in ("learned_embeds.safetensors", "learned_embeds.bin") if (path / f).is_file()]
        if not inner:
            raise NodeError(f"embedding folder {path} has no learned_embeds.safetensors or .bin", field="text")
        path = inner[0]
    if path.suffix.lower() == ".safetensors":
        data: Any = read_safetensors(path, "text", what="embedding ")[0]
    else:
        data = load_pickle(path, "text", what="embedding ")
    blocks = vectors_of(data, name)
    check_finite(((f"vector block {i}", b) for i, b in enumerate(blocks)), f"embedding {path.name}", "text")
    vectors: dict[int, torch.Tensor] = {}
    for block in blocks:
        width = block.shape[-1]
        vectors[width] = torch.cat([vectors[width], block]) if width in vectors else block
    return Embedding(name, vectors)


def _stem(name: str) -> str:
    for ext in EXTENSIONS[FileKind.EMBEDDING]:
        if name.lower().endswith(ext):
            return name[:-len(ext)]
    return name


def bare_names(paths: ModelPaths) -> dict[str, str]:
    """lower-case stem -> file name of the embeddings in the dedicated embeddings folders (A1111
    finds them as bare words; the flat model roots hold checkpoints and LoRAs, so they do not count)."""
    found: dict[str, str] = {}
    dedicated = ModelPaths([], include_builtin=paths.include_builtin)
    folders = dedicated.folders(FileKind.EMBEDDING) + [r / SUBFOLDERS[FileKind.EMBEDDING] for r in paths.roots]
    for folder in folders:
        if folder.is_dir():
            for entry in sorted(folder.iterdir()):
                if entry.name.startswith(".") or entry.suffix == ".config":
                    continue
                if (entry.is_file() and entry.suffix.lower() in EXTENSIONS[FileKind.EMBEDDING]) or \
                        (entry.is_dir() and any((entry / f).is_file() for f in ("learned_embeds.safetensors",
                                                                               "learned_embeds.bin"))):
                    found.setdefault(_stem(entry.name).lower(), entry.name)
    return found


class EmbeddingLookup:
    """Finds and loads the embeddings a prompt names, for one TextEncoder run."""

    def __init__(self, resolve: Callable[[str], Path], bare: dict[str, str], shared: dict[str, Any] | None) -> None:
        self.resolve, self.bare, self.shared = resolve, bare, shared

    @classmethod
    def for_context(cls, ctx: Any) -> "EmbeddingLookup":
        return cls(lambda name: ctx.resolve_file(FileKind.EMBEDDING, name), bare_names(ctx.model_paths), ctx.shared)

    @property
    def bare_words(self) -> frozenset[str]:
        return frozenset(self.bare)

    def path(self, name: str) -> Path:
        """The file of a referenced name, trying it as written, then without trailing punctuation."""
        problem = None
        for candidate in name_candidates(name):
            try:
                return Path(self.resolve(self.bare.get(candidate.lower(), candidate)))
            except ModelNotFound as exc:
                problem = problem or exc
        raise NodeError(str(problem), field="text")

    def get(self, name: str) -> Embedding:
        path = self.path(name)
        key = file_identity(path)
        with _lock:
            registry = (self.shared if self.shared is not None else {}).setdefault(
                _REGISTRY_KEY, weakref.WeakValueDictionary())
            found = registry.get(key)
            if found is None:
                found = read_embedding(path, name)
                registry[key] = found
            return found


def referenced_files(ctx: Any, text: str) -> tuple:
    """What TextEncoder's cache key adds: the identity of every embedding file the prompt names
    (so a retrained embedding re-runs it), or None when it names none."""
    from nodeforge.core.prompt_syntax import embedding_references

    lookup = EmbeddingLookup.for_context(ctx)
    names = embedding_references(text, lookup.bare_words)
    if not names:
        return None
    found = []
    for name in names:
        try:
            found.append((name, file_identity(lookup.path(name))))
        except NodeError:
            found.append((name, None))   # reported when the node runs
    return tuple(found)
