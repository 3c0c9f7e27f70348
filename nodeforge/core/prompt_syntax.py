"""Prompt syntax, as in A1111 and ComfyUI: emphasis weights and `embedding:NAME`; pure text, no torch.

The one parser of both: the pack's TextEncoder (`nodes/prompt.py`, `nodes/embeddings.py`) reads
prompts with it, and interop (`nodeforge/interop/model_names.py`) finds the embeddings an imported
prompt names with the same function, so what an import reports missing is what a run would miss.

`(word)` multiplies the weight by 1.1, `[word]` divides it by 1.1, `(word:1.3)` sets 1.3 times,
nesting multiplies, and `\\(` `\\)` `\\[` `\\]` are literal brackets. Unbalanced brackets are
closed at the end of the text rather than refused, so any text is a valid prompt.
"""
from __future__ import annotations

import re
from typing import Callable

EMPHASIS = 1.1
_TOKEN = re.compile(r"\\[()\[\]\\]|\(|\[|:\s*([+-]?(?:\d+\.?\d*|\.\d+))\s*\)|\)|\]|[^\\()\[\]:]+|:|\\", re.S)


def parse_weights(text: str) -> list[tuple[str, float]]:
    """Split `text` into (fragment, weight) runs; neighbouring runs of equal weight are merged."""
    result: list[list] = []
    round_open: list[int] = []
    square_open: list[int] = []

    def scale(start: int, factor: float) -> None:
        for item in result[start:]:
            item[1] *= factor

    for match in _TOKEN.finditer(text):
        token, weight = match.group(0), match.group(1)
        if token.startswith("\\") and len(token) == 2:
            result.append([token[1], 1.0])
        elif token == "(":
            round_open.append(len(result))
        elif token == "[":
            square_open.append(len(result))
        elif weight is not None and round_open:
            scale(round_open.pop(), float(weight))
        elif token.startswith(")") and round_open:
            scale(round_open.pop(), EMPHASIS)
        elif token == "]" and square_open:
            scale(square_open.pop(), 1 / EMPHASIS)
        elif weight is not None:   # "word:1.2)" with no opening bracket: keep the text as written
            result.append([token, 1.0])
        else:
            result.append([token, 1.0])
    for start in round_open:
        scale(start, EMPHASIS)
    for start in square_open:
        scale(start, 1 / EMPHASIS)

    merged: list[tuple[str, float]] = []
    for fragment, weight in result:
        if merged and merged[-1][1] == weight:
            merged[-1] = (merged[-1][0] + fragment, weight)
        else:
            merged.append((fragment, weight))
    return [(f, w) for f, w in merged if f] or [("", 1.0)]


# -- textual-inversion embeddings in prompts ----------------------------------------------------------------
# ComfyUI's `embedding:NAME`: at the start of a word (or after `(`/`[`); the name runs to a space or a
# comma, and is looked up as written, then without trailing punctuation (`name_candidates`).
_EMBEDDING_REF = re.compile(r"(?:(?<=^)|(?<=[\s,(\[]))embedding:([^\s,]+)", re.I)
_STRIPPABLE = ".;:!?)]"


def split_embeddings(fragment: str, bare_names: frozenset[str] | set[str] = frozenset()) -> list[tuple[str, bool]]:
    """`fragment` as (text, False) and (embedding name, True) pieces, in order.

    `embedding:NAME` always names an embedding (ComfyUI); a whole word equal to one of
    `bare_names` (lower-case file stems of the embeddings folders) does too (A1111).
    """
    pieces: list[tuple[str, bool]] = []

    def bare(text: str) -> None:
        if not bare_names or not text:
            if text:
                pieces.append((text, False))
            return
        pattern = re.compile(r"(?<![\w-])(" + "|".join(re.escape(n) for n in sorted(bare_names, key=len, reverse=True))
                             + r")(?![\w-])", re.I)
        at = 0
        for match in pattern.finditer(text):
            if match.start() > at:
                pieces.append((text[at:match.start()], False))
            pieces.append((match.group(1), True))
            at = match.end()
        if at < len(text):
            pieces.append((text[at:], False))

    at = 0
    for match in _EMBEDDING_REF.finditer(fragment):
        bare(fragment[at:match.start()])
        pieces.append((match.group(1), True))
        at = match.end()
    bare(fragment[at:])
    return pieces


def name_candidates(name: str) -> list[str]:
    """The names to try for a reference: as written, then without trailing punctuation ("name.")."""
    stripped = name.rstrip(_STRIPPABLE)
    return [name] + ([stripped] if stripped and stripped != name else [])


def embedding_references(text: str, bare_names: frozenset[str] | set[str] = frozenset()) -> list[str]:
    """Every embedding name a prompt uses, in order, each once."""
    found: dict[str, None] = {}
    for fragment, _ in parse_weights(text):
        for piece, is_embedding in split_embeddings(fragment, bare_names):
            if is_embedding:
                found.setdefault(piece)
    return list(found)


_REF_START = re.compile(r"(?:(?<=^)|(?<=[\s,(\[]))embedding:", re.I)


def rename_embeddings(text: str, rename: Callable[[str], str | None]) -> str:
    """`text` with each `embedding:NAME` whose name `rename` maps to another name rewritten in place
    (weights, brackets and the rest kept as written). `rename` gets each name as the parser reads it
    (`embedding_references`) and returns the new name, or None to keep it."""
    names = sorted(embedding_references(text), key=len, reverse=True)
    if not names:
        return text
    out, at = [], 0
    for match in _REF_START.finditer(text):
        rest = text[match.end():]
        name = next((n for n in names if rest.startswith(n)), None)
        new = rename(name) if name is not None else None
        if new is not None and new != name:
            out.append(text[at:match.end()] + new)
            at = match.end() + len(name)
    return "".join(out) + text[at:]
