"""Text operations of ComfyUI and its packs, worked out on import into the value they feed.

A text operation whose every text is a constant (a widget, a constant node, or another such operation)
folds into the prompt or name it feeds, computed as the class does, so the imported graph holds the
text itself; fed by a node that runs, it stays a placeholder (StringConcatenate: NodeForge's Join Text,
whose STRING output feeds the param it fed in ComfyUI). ComfyUI's StringConcatenate and WAS Node Suite's Text Concatenate (each of its three
widget layouts: linebreak_addition; linebreak_addition and delimiter; delimiter and
clean_whitespace), Text Find and Replace Input and Text Random Line (Python's random.choice after
random.seed(seed), as WAS does) are here.
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any, Callable

from nodeforge.interop.comfy_table import Notes

_SWITCH = ("false", "true")


@dataclass(frozen=True)
class TextOp:
    texts: tuple[str, ...]                             # its text inputs (linked, or widgets where it has them)
    widget_names: Callable[[list[Any]], tuple[str, ...]]   # a UI file's widget values -> their names
    work: Callable[[dict[str, Any], Notes], str | None]   # values by name -> the text (None: cannot be worked out)


def _join(values: dict[str, Any], notes: Notes) -> str | None:
    parts = [values.get(name, "") for name in ("string_a", "delimiter", "string_b")]
    return "".join(parts) if all(isinstance(part, str) for part in parts) else None


def _was_concat_names(widgets: list[Any]) -> tuple[str, ...]:
    """WAS's Text Concatenate saved its widgets three ways over its versions."""
    if widgets and widgets[0] in _SWITCH:
        return ("linebreak_addition", "delimiter")              # 2023: [linebreak_addition(, delimiter)]
    return ("delimiter", "clean_whitespace")                    # since 2024: [delimiter(, clean_whitespace)]


def _was_concat(values: dict[str, Any], notes: Notes) -> str | None:
    texts = {k: values.get(k) for k in ("text_a", "text_b", "text_c", "text_d") if k in values}
    if not all(isinstance(v, str) for v in texts.values()):
        return None
    if "linebreak_addition" in values:       # 2023: a and b always, c and d when not empty
        between = "\n" if values["linebreak_addition"] == "true" else str(values.get("delimiter") or "")
        out = texts.get("text_a", "") + between + texts.get("text_b", "")
        return out + "".join(between + texts[k] for k in ("text_c", "text_d") if texts.get(k))
    delimiter = str(values.get("delimiter", ", "))
    delimiter = "\n" if delimiter in ("\n", "\\n") else delimiter
    clean = values.get("clean_whitespace", "true") == "true"
    kept = [t.strip() if clean else t for _, t in sorted(texts.items())]
    return delimiter.join(t for t in kept if t != "")


_MAX_REPLACEMENTS = 10_000


def _was_replace(values: dict[str, Any], notes: Notes) -> str | None:
    """WAS's Text Find and Replace Input: the first occurrence replaced again and again while one is left
    (before 2024: as many times as there were at first; both agree unless the replacement makes new ones,
    and then it stays a placeholder). An empty find, or one the replacement contains, never ends in WAS."""
    text, find, replace = (values.get(k) for k in ("text", "find", "replace"))
    if not all(isinstance(v, str) for v in (text, find, replace)) or not find or find in replace:
        return None
    newer = older = text
    for _ in range(text.count(find)):
        older = older.replace(find, replace, 1)
    for _ in range(_MAX_REPLACEMENTS):
        if find not in newer:
            break
        newer = newer.replace(find, replace, 1)
    return newer if newer == older else None


def _was_random_line(values: dict[str, Any], notes: Notes) -> str | None:
    text, seed = values.get("text"), values.get("seed", 0)
    if not isinstance(text, str) or not isinstance(seed, int) or isinstance(seed, bool):
        return None
    chosen = random.Random(seed).choice(text.split("\n"))   # = WAS's random.seed(seed); random.choice(lines)
    control = values.get("control_after_generate")
    control = "randomize" if control is True else control     # older editors saved a switch: on = randomize
    if control in ("randomize", "increment", "decrement"):
        notes.warn(f"picks a line with its seed, which ComfyUI changes after each run ({control}); NodeForge "
                   f"keeps the line seed {seed} picks, {chosen[:60]!r}, in the prompt it feeds")
    return chosen


TEXT_OPS: dict[str, TextOp] = {
    "StringConcatenate": TextOp(("string_a", "string_b"), lambda w: ("string_a", "string_b", "delimiter"), _join),
    "Text Concatenate": TextOp(("text_a", "text_b", "text_c", "text_d"), _was_concat_names, _was_concat),
    "Text Find and Replace Input": TextOp(("text", "find", "replace"), lambda w: ("text", "find", "replace"),
                                          _was_replace),
    "Text Random Line": TextOp(("text",), lambda w: ("seed", "control_after_generate") if len(w) < 3
                               else ("text", "seed", "control_after_generate"), _was_random_line),
}
