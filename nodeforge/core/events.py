"""Events the engine emits while it runs. The editor and the CLI both listen to these.

Threading contract: listeners are called on the thread that runs the engine (a worker thread in
the editor). A listener must be quick and must not call back into the engine except `cancel()`;
a GUI forwards each event to its own thread (a queued Qt signal, `loop.call_soon_threadsafe`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:  # pragma: no cover
    from nodeforge.core.engine import RunResult
    from nodeforge.core.errors import WorkflowError


@dataclass(frozen=True)
class RunStarted:
    run_id: int
    order: tuple[str, ...]          # the nodes that will run or be served from cache, in order


@dataclass(frozen=True)
class NodeStarted:
    run_id: int
    node_id: str
    node_type: str


@dataclass(frozen=True)
class NodeProgress:
    run_id: int
    node_id: str
    step: int
    total: int
    preview: Any = None             # optional small PIL image of the current state


@dataclass(frozen=True)
class NodeFinished:
    run_id: int
    node_id: str
    node_type: str
    seconds: float
    cached: bool
    output: Any = None              # what the node returned (images and paths for output nodes)


@dataclass(frozen=True)
class NodeWarning:
    """A running node's note that something was passed over (`NodeContext.warn`): the run goes
    on, and the user hears of it (the CLI's `warning:` line, the editor's status bar)."""
    run_id: int
    node_id: str
    node_type: str
    message: str


@dataclass(frozen=True)
class RunFinished:
    run_id: int
    result: "RunResult"


@dataclass(frozen=True)
class RunFailed:
    run_id: int
    node_id: str | None
    message: str
    error: "WorkflowError"


Event = RunStarted | NodeStarted | NodeProgress | NodeWarning | NodeFinished | RunFinished | RunFailed
Listener = Callable[[Event], None]
