"""Helpers the torch-free node declarations share: run functions that import their module only
when a node first runs, and model-name lists read when the editor asks for them."""
from __future__ import annotations

import importlib
from typing import Any, Callable

from nodeforge.core.types import FileKind


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
