"""What a running node may ask of the engine: progress, cancellation, device, output folder."""
from __future__ import annotations

import contextvars
import threading
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from nodeforge.core.errors import Cancelled

if TYPE_CHECKING:  # pragma: no cover
    from nodeforge.core.models import ModelPaths
    from nodeforge.core.registry import Registry
    from nodeforge.core.workflow import Workflow


@dataclass
class NodeContext:
    """Handed to `NodeSpec.run` as its first argument.

    `progress()` is the cancellation point: call it once per step of long work (a denoising
    step); it raises `Cancelled` when the user has cancelled, so the node stops within one step.
    """

    node_id: str
    node_type: str
    workflow: "Workflow"
    output_dir: Path
    model_paths: "ModelPaths"
    settings: dict[str, Any]
    _device: str
    _resolve_device: Callable[[str], str]
    _cancel: threading.Event
    _emit_progress: Callable[[int, int, Any], None]
    title: str | None = None
    shared: dict[str, Any] = field(default_factory=dict)
    registry: "Registry | None" = None   # the node types of the run (to read declared roles)
    _emit_warning: Callable[[str], None] | None = None
    _warned: set[str] = field(default_factory=set)   # each note once a run, however often a loop meets it

    @property
    def device(self) -> str:
        """The concrete torch device name ("cpu", "cuda", "mps"); "auto" is resolved lazily."""
        return self._resolve_device(self._device)

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def check_cancelled(self) -> None:
        if self._cancel.is_set():
            raise Cancelled("run cancelled", node_id=self.node_id, node_type=self.node_type)

    def progress(self, step: int, total: int, preview: Any = None) -> None:
        """Report `step` of `total` (optionally with a small preview image); raise if cancelled."""
        self.check_cancelled()
        self._emit_progress(step, total, preview)
        self.check_cancelled()

    def warn(self, message: str) -> None:
        """Tell the user of something this node passed over (a LoRA's modules that matched no
        layer) while the run goes on; outside an engine, a Python warning. The same note twice is said once."""
        if message in self._warned:
            return
        self._warned.add(message)
        if self._emit_warning is not None:
            self._emit_warning(message)
        else:
            warnings.warn(message, stacklevel=2)

    def resolve_file(self, kind: str, name: str) -> Path:
        """The path a file param names (a model name from the search paths, or a path)."""
        source = self.workflow.source
        return self.model_paths.resolve(kind, name, source.parent if source is not None else None)


_CURRENT: contextvars.ContextVar["NodeContext | None"] = contextvars.ContextVar("nodeforge_node", default=None)


def current_context() -> NodeContext | None:
    """The context of the node running in this thread (the engine sets it around `NodeSpec.run`),
    for code deep in a node pack that needs the run's settings; None outside a run."""
    return _CURRENT.get()


def running(ctx: NodeContext) -> contextvars.Token:
    return _CURRENT.set(ctx)


def finished(token: contextvars.Token) -> None:
    _CURRENT.reset(token)
