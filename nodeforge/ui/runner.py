"""Running graphs from the editor: a worker thread, engine events forwarded as Qt signals.

The UI thread never waits on the engine. Run takes a copy of the workflow, so edits made while a
run goes on cannot corrupt it; pressing Run during a run queues another behind it.
Bypassed and muted nodes are kept in `ui`; what they mean is defined once in the core
(`nodeforge.core.graph`), so a file runs the same here and from the command line. Nodes no
output node needs are left out of the copy that runs.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, QTimer, Signal
from PySide6.QtGui import QImage

from nodeforge.core import events as ev
from nodeforge.core import graph
from nodeforge.core.engine import Engine
from nodeforge.core.errors import Cancelled, Problem, ValidationError, WorkflowError
from nodeforge.core.metadata import GenerationInfo, generation_info
from nodeforge.core.registry import Registry
from nodeforge.core.workflow import Workflow


def runnable_copy(workflow: Workflow, registry: Registry) -> Workflow:
    """The workflow the engine should run: bypass and mute applied as the core defines them
    (`graph.apply_switches`), and only what the output nodes need.

    Only what the output nodes need is kept, so a half-built branch elsewhere on the canvas
    does not stop the finished part from running; the engine also skips outputs whose own
    ancestry is invalid and reports them (`RunResult.skipped`), as ComfyUI does.
    """
    wf = graph.apply_switches(workflow, registry)
    outputs = [nid for nid, node in wf.nodes.items()
               if registry.get(node.type) is not None and registry.get(node.type).output_node]
    if outputs:
        needed = graph.ancestors(wf, outputs)
        for nid in [n for n in wf.nodes if n not in needed]:
            del wf.nodes[nid]
    return wf


def to_qimage(value: Any) -> QImage | None:
    """A QImage from a PIL image, an HxWxC uint8 array or a path to an image file."""
    if isinstance(value, QImage):
        return value
    if isinstance(value, (str, Path)):
        img = QImage(str(value))
        return None if img.isNull() else img
    if hasattr(value, "mode") and hasattr(value, "tobytes") and hasattr(value, "size"):
        img = value.convert("RGBA")
        w, h = img.size
        data = img.tobytes("raw", "RGBA")
        return QImage(data, w, h, 4 * w, QImage.Format.Format_RGBA8888).copy()
    shape = getattr(value, "shape", None)
    if shape is not None and len(shape) == 3 and shape[2] in (3, 4):
        try:
            import numpy as np

            arr = np.ascontiguousarray(value)
            if arr.dtype != np.uint8:
                arr = (np.clip(arr, 0, 1) * 255).astype(np.uint8)
            h, w, c = arr.shape
            fmt = QImage.Format.Format_RGB888 if c == 3 else QImage.Format.Format_RGBA8888
            return QImage(arr.tobytes(), w, h, c * w, fmt).copy()
        except Exception:
            return None
    return None


def collect_images(output: Any) -> list[tuple[QImage, str | None]]:
    """Every image an output node returned, with its file path when it was saved."""
    found: list[tuple[QImage, str | None]] = []

    def walk(value: Any, depth: int = 0) -> None:
        if depth > 4 or value is None:
            return
        if isinstance(value, (list, tuple)):
            for v in value:
                walk(v, depth + 1)
            return
        if isinstance(value, dict):
            for v in value.values():
                walk(v, depth + 1)
            return
        if isinstance(value, (str, Path)) and str(value).lower().endswith((".png", ".jpg", ".jpeg", ".webp")):
            img = to_qimage(value)
            if img is not None:
                found.append((img, str(value)))
            return
        img = to_qimage(value) if not isinstance(value, (str, bytes)) else None
        if img is not None:
            found.append((img, None))

    walk(output)
    return found


@dataclass
class RunImage:
    """One result image, with what made it (`nodeforge.core.metadata`) and its prompts titled."""

    image: QImage
    path: str | None
    node_id: str
    info: GenerationInfo = field(default_factory=GenerationInfo)
    prompts: list[tuple[str, str]] = field(default_factory=list)   # (node title, text)


def titled_prompts(workflow: Workflow, registry: Registry, info: GenerationInfo) -> list[tuple[str, str]]:
    """The prompt and the negative prompt of `info`, each with the title of the node holding it."""
    found = []
    for nid, text in ((info.prompt_node, info.prompt), (info.negative_node, info.negative)):
        if nid is not None and text and nid in workflow.nodes:
            node = workflow.nodes[nid]
            spec = registry.get(node.type)
            found.append((node.title or (spec.title if spec else node.type), text))
    return found


def _lower_thread_priority() -> None:
    """Lower the run's priority on Linux when NODEFORGE_RUN_NICE asks for it (default 0: none).

    Niceness is per thread there and inherited by the threads the worker creates (torch's and
    OpenBLAS's pools). A default of 5 made a run in the editor take twice as long as `nodeforge
    run` on a loaded machine (61 s against 29 s: every other process won the cores from it),
    while the UI thread, idle between events, does not need it to stay smooth (issue 18.9;
    benchmarks/bench_editor_run.py measures both).
    """
    import os
    import sys

    try:
        level = int(os.environ.get("NODEFORGE_RUN_NICE", "0"))
    except ValueError:
        level = 0
    if sys.platform.startswith("linux") and level > 0:
        try:
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), level)
        except (OSError, AttributeError):
            pass


class RunController(QObject):
    """Runs on a worker thread; all signals arrive on the UI thread."""

    _event = Signal(object)
    _done = Signal()

    runStarted = Signal(list)                   # node ids in run order
    nodeStarted = Signal(str)
    nodeProgress = Signal(str, int, int, object)  # node, step, total, QImage or None
    nodeFinished = Signal(str, bool, float, list)  # node, cached, seconds, [RunImage]
    runFinished = Signal(object)                # RunResult
    runFailed = Signal(object, str, list)       # node id or None, message, [Problem]
    runningChanged = Signal(bool)
    queuedChanged = Signal(int)                 # how many runs wait

    def __init__(self, engine: Engine, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.engine = engine
        self.running = False
        self.pending: list[Workflow] = []
        self.current: Workflow | None = None
        self._thread: threading.Thread | None = None
        # Step events can arrive faster than the screen refreshes: only the latest per node is shown.
        self._progress: dict[str, tuple] = {}
        self._flush = QTimer(self)
        self._flush.setSingleShot(True)
        self._flush.setInterval(0)
        self._flush.timeout.connect(self._flush_progress)
        self._event.connect(self._on_event)
        self._done.connect(self._on_done)

    def run(self, workflow: Workflow, *, replace_last: bool = False) -> None:
        """Run a copy of `workflow`, or queue it behind the current run.

        `replace_last` puts it in place of the last queued run instead (auto-queue: only the
        newest state of the graph is worth running).
        """
        copy = runnable_copy(workflow, self.engine.registry)
        if self.running:
            if replace_last and self.pending:
                self.pending[-1] = copy
            else:
                self.pending.append(copy)
            self.queuedChanged.emit(len(self.pending))
            return
        self._start(copy)

    def cancel(self) -> None:
        """Stop the current run and drop the queued ones."""
        if self.pending:
            self.pending = []
            self.queuedChanged.emit(0)
        if self.running:
            self.engine.cancel()

    def _start(self, workflow: Workflow) -> None:
        self.running = True
        self.current = workflow
        self.runningChanged.emit(True)
        self._thread = threading.Thread(target=self._work, args=(workflow,), name="nodeforge-run", daemon=True)
        self._thread.start()

    def _work(self, workflow: Workflow) -> None:
        _lower_thread_priority()
        try:
            self.engine.run(workflow, on_event=self._forward)
        except WorkflowError:
            pass   # the engine already sent RunFailed
        except BaseException as exc:  # a bug must reach the user, not kill the thread silently
            self._event.emit(("failed", None, f"{type(exc).__name__}: {exc}", []))
        finally:
            self._done.emit()

    def _forward(self, event: ev.Event) -> None:
        """On the worker thread: turn heavy payloads into QImages, then hand over to the UI."""
        if isinstance(event, ev.NodeProgress):
            preview = to_qimage(event.preview) if event.preview is not None else None
            self._event.emit(("progress", event.node_id, event.step, event.total, preview))
        elif isinstance(event, ev.NodeFinished):
            images = collect_images(event.output) if event.output is not None else []
            self._event.emit(("finished", event.node_id, event.cached, event.seconds, images))
        elif isinstance(event, ev.NodeStarted):
            self._event.emit(("started", event.node_id))
        elif isinstance(event, ev.RunStarted):
            self._event.emit(("run", list(event.order)))
        elif isinstance(event, ev.RunFinished):
            self._event.emit(("done", event.result))
            skipped = getattr(event.result, "skipped", None)
            if skipped:   # the outputs that could not run, with their reasons
                problems = [p for found in skipped.values() for p in found]
                names = ", ".join(skipped)
                self._event.emit(("failed", problems[0].node_id, f"output {names} not run: {problems[0]}",
                                  problems))
        elif isinstance(event, ev.RunFailed):
            error = event.error
            if isinstance(error, ValidationError):
                problems = list(error.problems)
            elif isinstance(error, Cancelled):
                problems = []
            else:
                problems = [error.problem] if getattr(error, "problem", None) else [Problem(event.message, event.node_id)]
            kind = "cancelled" if isinstance(error, Cancelled) else "failed"
            self._event.emit((kind, event.node_id, event.message, problems))

    def _flush_progress(self) -> None:
        pending, self._progress = self._progress, {}
        for nid, (step, total, preview) in pending.items():
            self.nodeProgress.emit(nid, step, total, preview)

    def _on_event(self, payload: tuple) -> None:
        kind = payload[0]
        if kind == "progress":
            _, nid, step, total, preview = payload
            if preview is None and nid in self._progress:
                preview = self._progress[nid][2]   # keep the newest preview of the batch
            self._progress[nid] = (step, total, preview)
            if not self._flush.isActive():
                self._flush.start()
            return
        self._flush.stop()
        self._flush_progress()
        if kind == "run":
            self.runStarted.emit(payload[1])
        elif kind == "started":
            self.nodeStarted.emit(payload[1])
        elif kind == "finished":
            _, nid, cached, seconds, images = payload
            records = self._records(nid, images)
            self.nodeFinished.emit(nid, cached, seconds, records)
        elif kind == "done":
            self.runFinished.emit(payload[1])
        elif kind == "cancelled":
            self.runFailed.emit(payload[1], "cancelled", [])
        elif kind == "failed":
            self.runFailed.emit(payload[1], payload[2], payload[3])

    def _records(self, nid: str, images: list[tuple[QImage, str | None]]) -> list[RunImage]:
        """The images of output `nid`, item i of a batch with its own seed (seed + i)."""
        if not images or self.current is None:
            return []
        made = generation_info(self.current, self.engine.registry, nid)
        prompts = titled_prompts(self.current, self.engine.registry, made)
        return [RunImage(img, path, nid, made.for_item(i), prompts) for i, (img, path) in enumerate(images)]

    def _on_done(self) -> None:
        self.running = False
        self._thread = None
        self.runningChanged.emit(False)
        if self.pending:
            nxt = self.pending.pop(0)
            self.queuedChanged.emit(len(self.pending))
            self._start(nxt)

    def wait(self, timeout: float | None = None) -> None:
        """Block until the worker ends (for shutdown)."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
