"""Helpers the torch-free node declarations share: run functions that import their module only
when a node first runs, model-name lists read when the editor asks for them, and the declaration of
a node that changes one value into another of its type (`operation`)."""
from __future__ import annotations

import importlib
from typing import Any, Callable

from nodeforge.core.spec import Input, NodeSpec, Output, Param
from nodeforge.core.types import FileKind, PortType

# Resampling methods of the scale nodes (ComfyUI's names; its "bislerp" is not offered), and their crops.
LATENT_METHODS = ("nearest-exact", "bilinear", "area", "bicubic")
IMAGE_METHODS = ("nearest-exact", "bilinear", "area", "bicubic", "lanczos")
CROPS = ("disabled", "center")


def lazy(module: str, function: str) -> Callable[..., Any]:
    """A run function that imports `module` (relative to this node pack, e.g. "families.sd3_nodes";
    and with it torch) only when the node first runs."""
    def run(ctx: Any, **kw: Any) -> Any:
        return getattr(importlib.import_module(f"{__package__}.{module}"), function)(ctx, **kw)

    run.__name__ = function
    run.lazy_target = (module, function)  # type: ignore[attr-defined]  # tests import every target
    return run


def model_names(kind: FileKind) -> Callable[[], list[str]]:
    """The choices of a model-file param: the names in the user's model folders for `kind`."""
    def list_names() -> list[str]:
        from nodeforge.core.models import ModelPaths

        return ModelPaths.default().names(kind)
    return list_names


# What an operation's one port of a type is when its declaration says nothing more particular:
# the port's name, the input it changes and the output it gives.
CHANGED: dict[str, tuple[str, str, str]] = {
    PortType.LATENT.value: ("latent", "the latent to change", "the resulting latent"),
    PortType.MASK.value: ("mask", "the mask to change (1: masked)", "the resulting mask, values in 0..1"),
    PortType.IMAGE.value: ("image", "the images to filter", "the filtered images"),
    PortType.MODEL.value: ("unet", "a UNet model (SD 1.x, 2.x, XL); it is not changed", "the same model, patched"),
}


def operation(name: str, function: str, params: tuple[Param, ...], description: str, display: str, *,
              category: str, module: str, port: str, takes: str = "", gives: str = "",
              inputs: tuple[Input, ...] | None = None, **more: Any) -> NodeSpec:
    """A node that changes one value of type `port` into another: its input and output are named for the
    type and say `takes` and `gives`, else the type's words in CHANGED; `inputs` replaces the one input,
    `more` goes to the NodeSpec as it is."""
    port_name, changed, result = CHANGED.get(port, (port.lower(), "", ""))
    if inputs is None:
        inputs = (Input(port_name, port, description=takes or changed),)
    return NodeSpec(name, category, lazy(module, function), inputs=inputs, params=params,
                    outputs=(Output(port_name, port, description=gives or result),), description=description,
                    display_name=display, **more)
