"""Node help as the editor shows it: one text per node, param and port, read from the declaration.

The quick-add list, the canvas tooltips (node title, each param editor and each port) and the
CLI's `nodeforge nodes` all say what a node's declaration says; this module words it for the editor.
"""
from __future__ import annotations

from nodeforge.core.spec import Input, NodeSpec, Output, Param
from nodeforge.core.types import ParamKind

_KIND_WORDS = {ParamKind.INT: "whole number", ParamKind.FLOAT: "number", ParamKind.STRING: "text",
               ParamKind.BOOL: "on/off", ParamKind.CHOICE: "choice"}


def _number(value: object) -> str:
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return str(value)


def param_range(param: Param) -> str:
    """'whole number 1 to 1000, default 20', 'choice, default euler', 'a checkpoint name or path'."""
    if param.file is not None:
        return f"a {param.file.value} name or path"
    words = _KIND_WORDS.get(param.kind, param.kind.value)
    if param.min is not None and param.max is not None:
        words += f" {_number(param.min)} to {_number(param.max)}"
    elif param.min is not None:
        words += f" from {_number(param.min)}"
    if param.multiple_of:
        words += f", a multiple of {param.multiple_of}"
    if param.kind is ParamKind.STRING and not param.default:
        return words
    return words + f", default {_number(param.default)}"


def param_help(param: Param) -> str:
    """The tooltip of a param's editor: its name and range, then what it does."""
    head = f"{param.name.replace('_', ' ')} ({param_range(param)})"
    return head + (f"\n{param.description}" if param.description else "")


def port_help(name: str, port_type: str, optional: bool = False, description: str = "") -> str:
    """The tooltip of a port: its name and type, then what travels on it."""
    head = f"{name}: {port_type}" + (" (optional)" if optional else "")
    return head + (f"\n{description}" if description else "")


def node_help(spec: NodeSpec) -> str:
    """A node's description with its inputs and outputs, for the quick-add list and the title."""
    lines = [spec.description or spec.type]
    if spec.inputs:
        lines.append("Inputs: " + ", ".join(_port_words(port) for port in spec.inputs))
    if spec.outputs:
        lines.append("Outputs: " + ", ".join(_port_words(port) for port in spec.outputs))
    return "\n".join(lines)


def _port_words(port: Input | Output) -> str:
    return f"{port.name} ({port.type})"
