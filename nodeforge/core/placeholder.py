"""Placeholder nodes: another tool's node that NodeForge cannot run, kept so nothing is lost.

An imported ComfyUI node with no NodeForge equivalent becomes a node of the reserved type
PLACEHOLDER_TYPE. Its params hold what re-export needs (the original `class_type` and its
widget values by name, or by position where the file did not name them); its outputs are named
by slot (`output_0`, ...). The node's `comfyui` record keeps its port types, so bypassing one
passes an input of the same type through, as in ComfyUI. Validation reports each placeholder by
its original class; nothing here runs it.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from nodeforge.core.workflow import NodeRef

PLACEHOLDER_TYPE = "comfyui.Placeholder"
RECORD_KEY = "comfyui"           # per-node record (NodeRef.extra) of what only ComfyUI needs


def output_name(slot: int) -> str:
    return f"output_{slot}"


def is_placeholder(node: "NodeRef") -> bool:
    return node.type == PLACEHOLDER_TYPE


def original_class(node: "NodeRef") -> str:
    name = node.params.get("class_type")
    return name if isinstance(name, str) and name else "unknown ComfyUI node"


def placeholder_message(node: "NodeRef") -> str:
    """Why the node cannot run and what to do, from what the import recorded of its class
    (`nodeforge.interop.comfy_packs`): a core ComfyUI node, a well-known pack's, and NodeForge's
    equivalent node where there is one."""
    record = _record(node)
    pack, equivalent = record.get("pack"), record.get("equivalent")
    if record.get("group"):
        return ("a ComfyUI group node, which NodeForge does not expand yet; open the file in ComfyUI, convert it "
                "to nodes (right-click > Convert to nodes) and save, or replace or bypass it here (its widgets and "
                "links are kept, so exporting back to ComfyUI keeps it)")
    if record.get("core"):
        what = "a ComfyUI core node NodeForge does not support yet"
    elif isinstance(pack, str):
        what = f"from the custom node pack {pack}, which NodeForge cannot run"
    else:
        what = "a ComfyUI node with no NodeForge equivalent (NodeForge cannot run other tools' node packs)"
    fix = (f"replace it with NodeForge's {equivalent}, which does the same, or bypass it" if isinstance(equivalent, str)
           else "replace or bypass it")
    return f"{what}; {fix} (its widgets and links are kept, so exporting back to ComfyUI keeps it)"


def _record(node: "NodeRef") -> dict[str, Any]:
    record = node.extra.get(RECORD_KEY)
    return record if isinstance(record, dict) else {}


def output_types(node: "NodeRef") -> dict[str, str]:
    """Output name -> port type, as the placeholder recorded them ("*" where unknown)."""
    types = _record(node).get("outputs")
    return {output_name(i): str(t) for i, t in enumerate(types)} if isinstance(types, list) else {}


def input_types(node: "NodeRef") -> dict[str, str]:
    types = _record(node).get("inputs")
    return {str(k): str(v) for k, v in types.items()} if isinstance(types, dict) else {}
