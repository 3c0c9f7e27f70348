"""Prompt emphasis syntax, as in A1111 and ComfyUI: pure text, no torch.

`(word)` multiplies the weight by 1.1, `[word]` divides it by 1.1, `(word:1.3)` sets 1.3 times,
nesting multiplies, and `\\(` `\\)` `\\[` `\\]` are literal brackets. Unbalanced brackets are
closed at the end of the text rather than refused, so any text is a valid prompt.
"""
from __future__ import annotations

import re

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
