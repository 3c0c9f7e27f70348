"""A tiny pure-Python node pack for core and CLI tests: numbers, text files, slow and failing nodes.

It counts its runs in RUNS so tests can see exactly which nodes executed.
"""
from __future__ import annotations

from collections import Counter
from pathlib import Path

from nodeforge.core.errors import NodeError
from nodeforge.core.spec import Input, NodeSpec, Output, Param
from nodeforge.core.types import FileKind

RUNS: Counter = Counter()


def _number(ctx, value):
    RUNS["Number"] += 1
    return {"value": value}


def _add(ctx, a, b, offset):
    RUNS["Add"] += 1
    return {"value": a + (b or 0.0) + offset}


def _scale(ctx, value, factor):
    RUNS["Scale"] += 1
    return {"value": value * factor}


def _slow(ctx, value, steps):
    RUNS["Slow"] += 1
    for step in range(1, steps + 1):
        ctx.progress(step, steps)
    return {"value": value}


def _fail(ctx, value, message):
    RUNS["Fail"] += 1
    if message == "user":
        raise NodeError("the value is not allowed here; pick another", field="value")
    raise RuntimeError(message)


def _write_text(ctx, value, prefix):
    RUNS["WriteText"] += 1
    ctx.output_dir.mkdir(parents=True, exist_ok=True)
    path = Path(ctx.output_dir) / f"{prefix}_{ctx.node_id}.txt"
    path.write_text(f"{value}\n")
    return [str(path)]


def _read_file(ctx, path):
    RUNS["ReadFile"] += 1
    return {"value": float(len(ctx.resolve_file(FileKind.IMAGE, path).read_bytes()))}


def _show(ctx, value, label):
    RUNS["Show"] += 1
    return {"label": label, "value": value}


def _mode_check(**params):
    return ["factor: must not be zero"] if params.get("factor") == 0 else []


NUM = "NUMBER"
NODES = [
    NodeSpec("Number", "math", _number, params=(Param.float("value", 1.0, min=-1e9, max=1e9),),
             outputs=(Output("value", NUM),)),
    NodeSpec("Add", "math", _add, inputs=(Input("a", NUM), Input("b", NUM, optional=True)),
             params=(Param.float("offset", 0.0),), outputs=(Output("value", NUM),)),
    NodeSpec("Scale", "math", _scale, inputs=(Input("value", NUM),),
             params=(Param.int("factor", 2, min=-100, max=100),), outputs=(Output("value", NUM),),
             validate=_mode_check),
    NodeSpec("Slow", "math", _slow, inputs=(Input("value", NUM),),
             params=(Param.int("steps", 10, min=1, max=10_000),), outputs=(Output("value", NUM),)),
    NodeSpec("Fail", "math", _fail, inputs=(Input("value", NUM),),
             params=(Param.string("message", "boom"),), outputs=(Output("value", NUM),)),
    NodeSpec("Label", "text", lambda ctx, text: {"text": text},
             params=(Param.string("text", "", multiline=True),), outputs=(Output("text", "TEXT"),)),
    NodeSpec("ReadFile", "io", _read_file, params=(Param.string("path", "", file=FileKind.IMAGE),),
             outputs=(Output("value", NUM),)),
    NodeSpec("Choose", "math", lambda ctx, value, mode: {"value": value if mode == "keep" else -value},
             inputs=(Input("value", NUM),), params=(Param.choice("mode", ["keep", "negate"]),),
             outputs=(Output("value", NUM),)),
    NodeSpec("Show", "io", _show, inputs=(Input("value", NUM),), params=(Param.string("label", "x"),),
             output_node=True),
    NodeSpec("WriteText", "io", _write_text, inputs=(Input("value", NUM),),
             params=(Param.string("prefix", "out"),), output_node=True, cacheable=False),
]
