"""What validation knows about a node's outputs without running it: model facts.

A loader declares `NodeSpec.facts(files, **params) -> {output: {fact: value}}`, read from its
resolved files only (a folder's config.json, a safetensors header; never the weights), e.g.
`{"unet": {"family": "sd3", "flow": True}}`. A node without `facts` hands each output the facts
of its one input of the same port type, so a LoRA loader's MODEL is still known as its input's
model. A node's `NodeSpec.check_inputs(facts, **params) -> list[str]` receives the facts of what
feeds each input and refuses what cannot work ("sampler: ... cannot follow a flow model's
sigmas") at validate, before anything loads. Unknown facts are empty dicts: nothing is refused
on a guess, and the run still checks what validation could not know.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from nodeforge.core.spec import NodeSpec
from nodeforge.core.workflow import NodeRef

Facts = dict[str, Any]


def input_facts(node: NodeRef, known: Mapping[str, Mapping[str, Facts]]) -> dict[str, Facts]:
    """The facts of what feeds each linked input (empty where the source says nothing)."""
    return {name: dict(known.get(src, {}).get(out, {})) for name, (src, out) in node.inputs.items()}


def output_facts(spec: NodeSpec, given: Mapping[str, Facts], files: Mapping[str, Path],
                 params: Mapping[str, Any]) -> dict[str, Facts]:
    """The node's own declaration, else each output takes its one same-typed input's facts."""
    if spec.facts is not None:
        declared = spec.facts(dict(files), **params) or {}
        return {str(k): dict(v) for k, v in declared.items() if isinstance(v, Mapping)}
    found: dict[str, Facts] = {}
    for output in spec.outputs:
        same = [i.name for i in spec.inputs if str(i.type) == str(output.type)]
        if len(same) == 1 and given.get(same[0]):
            found[output.name] = dict(given[same[0]])
    return found
