"""Running graphs from the editor: a worker thread, engine events forwarded as Qt signals.

The UI thread never waits on the engine. Run takes a copy of the workflow, so edits made while a
run goes on cannot corrupt it; pressing Run during a run queues another behind it. Every run is a
`QueueJob` in `RunController.jobs` (pending, running with its progress, done with its images,
failed with its reason, cancelled), which the Queue panel shows: pending jobs can be reordered or
cancelled one by one, finished ones cleared.
Bypassed and muted nodes are kept in `ui`; what they mean is defined once in the core
(`nodeforge.core.graph`), so a file runs the same here and from the command line. Nodes no
output node needs are left out of the copy that runs.
"""
from __future__ import annotations

import hashlib
import itertools
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, Qt, QTimer, Signal
from PySide6.QtGui import QImage

from nodeforge.core import events as ev
from nodeforge.core import graph
from nodeforge.core.engine import Engine
from nodeforge.core.errors import Cancelled, Problem, ValidationError, WorkflowError
from nodeforge.core.metadata import GenerationInfo, generation_info, seed_params
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
    same_as: str | None = None      # an earlier image of this session with the same pixels (its file)
    saved_again: bool = True        # False: "skip unchanged saves" removed this run's copy of it


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
            thread = threading.get_native_id()
            if level > os.getpriority(os.PRIO_PROCESS, thread):   # only ever lower it (root could raise it)
                os.setpriority(os.PRIO_PROCESS, thread, level)
        except (OSError, AttributeError):
            pass


PENDING, RUNNING, DONE, FAILED, CANCELLED = "pending", "running", "done", "failed", "cancelled"
FINISHED = (DONE, FAILED, CANCELLED)
KEEP_FINISHED = 200       # finished jobs kept in the queue (the oldest go first)
KEEP_IMAGES = 24          # finished jobs that keep their full-size images; older ones keep a thumbnail
THUMB_SIDE = 128
_job_ids = itertools.count(1)


@dataclass(eq=False)
class QueueJob:
    """One run in the queue: the copy of the graph it runs, where it stands and what it made.

    `progress` is the whole run's, 0..1 (nodes finished plus the running node's steps);
    `error` is the one-line reason of a failed job; `tag` belongs to whoever queued it (the
    Batch dialog keeps its job there); `output_dir`, when set, is where its output nodes write.
    """

    id: int
    label: str
    workflow: Workflow
    state: str = PENDING
    progress: float = 0.0
    step: int = 0
    total: int = 0
    images: list["RunImage"] = field(default_factory=list)
    error: str | None = None
    seconds: float = 0.0
    output_dir: Path | None = None
    tag: Any = None
    order: list[str] = field(default_factory=list)
    nodes_done: set[str] = field(default_factory=set)
    started_at: float = 0.0
    thumbnail: QImage | None = None      # the first image, at most THUMB_SIDE px (kept when images go)
    running_node: str = ""               # the title of the node running now ("" between nodes)
    warnings: list[str] = field(default_factory=list)   # "Title: message" of each node's warning

    @property
    def finished(self) -> bool:
        return self.state in FINISHED

    def add_images(self, records: list["RunImage"]) -> None:
        if records and self.thumbnail is None:
            image = records[0].image
            if max(image.width(), image.height()) > THUMB_SIDE:
                image = image.scaled(THUMB_SIDE, THUMB_SIDE, Qt.AspectRatioMode.KeepAspectRatio,
                                     Qt.TransformationMode.SmoothTransformation)
            self.thumbnail = image
        self.images.extend(records)

    def _update_progress(self, node_fraction: float = 0.0) -> None:
        if self.order:
            self.progress = min(1.0, (len(self.nodes_done) + node_fraction) / len(self.order))


def describe(workflow: Workflow, registry: Registry) -> str:
    """A queue label for a run: "Run", with its seeds when the graph has any ("Run · seed 12")."""
    seeds = [workflow.nodes[nid].params.get(param) for nid, param in seed_params(workflow, registry)
             if nid in workflow.nodes]
    shown = [str(s) for s in seeds if s is not None][:2]
    return "Run" + (f" · seed {', '.join(shown)}" if shown else "")


class RunController(QObject):
    """Runs on a worker thread; all signals arrive on the UI thread."""

    _event = Signal(object)
    _done = Signal()

    runStarted = Signal(list)                   # node ids in run order
    nodeStarted = Signal(str)
    nodeProgress = Signal(str, int, int, object)  # node, step, total, QImage or None
    nodeFinished = Signal(str, bool, float, list)  # node, cached, seconds, [RunImage]
    nodeWarning = Signal(str, str)              # node, what it passed over (the run goes on)
    nodeShown = Signal(str, str)                # node, the text an output node shows (Show Value)
    runFinished = Signal(object)                # RunResult
    runFailed = Signal(object, str, list)       # node id or None, message, [Problem]
    runningChanged = Signal(bool)
    queuedChanged = Signal(int)                 # how many runs wait
    queueChanged = Signal()                     # jobs added, removed, reordered, or one changed state
    jobProgress = Signal(object)                # QueueJob whose progress moved
    jobFinished = Signal(object)                # QueueJob, done, failed or cancelled

    def __init__(self, engine: Engine, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.engine = engine
        self.running = False
        self.jobs: list[QueueJob] = []          # in queue order: finished, running, pending
        self.active: QueueJob | None = None     # the running job
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
        self.skip_unchanged_saves = False      # Run > Skip Unchanged Saves
        self._saved: dict[str, str] = {}       # pixel digest -> the first file of this session with them

    @property
    def pending(self) -> list[Workflow]:
        """The graphs waiting to run, in the order they will."""
        return [job.workflow for job in self.pending_jobs()]

    def pending_jobs(self) -> list[QueueJob]:
        return [job for job in self.jobs if job.state == PENDING]

    def job(self, job_id: int) -> QueueJob | None:
        return next((job for job in self.jobs if job.id == job_id), None)

    def run(self, workflow: Workflow, *, replace_last: bool = False, label: str | None = None,
            output_dir: Path | None = None, tag: Any = None) -> QueueJob:
        """Run a copy of `workflow`, or queue it behind the current run; returns its job.

        `replace_last` puts it in place of the last queued run instead (auto-queue: only the
        newest state of the graph is worth running); a batch's jobs are never replaced.
        """
        copy = runnable_copy(workflow, self.engine.registry)
        label = label or describe(copy, self.engine.registry)
        waiting = self.pending_jobs()
        if self.running and replace_last and waiting and waiting[-1].tag is None and tag is None:
            job = waiting[-1]
            job.workflow, job.label, job.output_dir = copy, label, output_dir
            self.queueChanged.emit()
            return job
        job = QueueJob(next(_job_ids), label, copy, output_dir=output_dir, tag=tag)
        self.jobs.append(job)
        self._trim()
        if self.running:
            self.queuedChanged.emit(len(self.pending_jobs()))
            self.queueChanged.emit()
        else:
            self._start(job)
        return job

    def cancel(self) -> None:
        """Stop the current run and drop the queued ones."""
        if self.pending_jobs():
            self.clear_pending()
        if self.running:
            self.engine.cancel()

    def cancel_job(self, job_id: int) -> bool:
        """A pending job leaves the queue; the running one is cancelled (the next one then starts)."""
        job = self.job(job_id)
        if job is None:
            return False
        if job.state == PENDING:
            self.jobs.remove(job)
            self.queuedChanged.emit(len(self.pending_jobs()))
            self.queueChanged.emit()
            return True
        if job.state == RUNNING and job is self.active:
            self.engine.cancel()
            return True
        return False

    def move_job(self, job_id: int, delta: int) -> bool:
        """Move a pending job `delta` places among the pending ones (negative: sooner)."""
        job = self.job(job_id)
        waiting = self.pending_jobs()
        if job is None or job not in waiting:
            return False
        index = waiting.index(job)
        target = max(0, min(len(waiting) - 1, index + delta))
        if target == index:
            return False
        slots = [i for i, j in enumerate(self.jobs) if j.state == PENDING]
        waiting.insert(target, waiting.pop(index))
        for slot, moved in zip(slots, waiting):
            self.jobs[slot] = moved
        self.queueChanged.emit()
        return True

    def clear_finished(self) -> int:
        """Remove the done, failed and cancelled jobs from the queue; how many went."""
        before = len(self.jobs)
        self.jobs = [job for job in self.jobs if not job.finished]
        if len(self.jobs) != before:
            self.queueChanged.emit()
        return before - len(self.jobs)

    def clear_pending(self) -> int:
        """Remove every job that has not started; how many went."""
        before = len(self.jobs)
        self.jobs = [job for job in self.jobs if job.state != PENDING]
        if len(self.jobs) != before:
            self.queuedChanged.emit(0)
            self.queueChanged.emit()
        return before - len(self.jobs)

    def _drop_old_images(self) -> None:
        """Full-size images only for the newest finished jobs: a long batch must not fill memory."""
        finished = [job for job in self.jobs if job.finished and job.images]
        for job in finished[:max(0, len(finished) - KEEP_IMAGES)]:
            job.images = []

    def _trim(self) -> None:
        finished = [job for job in self.jobs if job.finished]
        for job in finished[:max(0, len(finished) - KEEP_FINISHED)]:
            self.jobs.remove(job)

    def _start(self, job: QueueJob) -> None:
        self.running = True
        self.active = job
        self.current = job.workflow
        job.state = RUNNING
        job.started_at = time.perf_counter()
        self.runningChanged.emit(True)
        self.queueChanged.emit()
        self._thread = threading.Thread(target=self._work, args=(job.workflow, job.output_dir),
                                        name="nodeforge-run", daemon=True)
        self._thread.start()

    def _work(self, workflow: Workflow, output_dir: Path | None) -> None:
        _lower_thread_priority()
        previous = self.engine.output_dir
        if output_dir is not None:
            self.engine.output_dir = Path(output_dir)   # one run at a time: the engine is ours now
        try:
            if not self._refuse_invalid(workflow):
                self.engine.run(workflow, on_event=self._forward)
        except WorkflowError:
            pass   # the engine already sent RunFailed
        except BaseException as exc:  # a bug must reach the user, not kill the thread silently
            self._event.emit(("failed", None, f"{type(exc).__name__}: {exc}", []))
        finally:
            self.engine.output_dir = previous
            self._done.emit()

    def _refuse_invalid(self, workflow: Workflow) -> bool:
        """On the worker thread: the core's own validation (`Engine.validate`, what `nodeforge
        validate` prints and `nodeforge run` refuses) of the graph this job runs; any problem fails
        the job before a node runs, as a ValidationError would. The copy holds only what the output
        nodes need, so a half-built branch that feeds no output does not stop the run."""
        problems = self.engine.validate(workflow)
        if not problems:
            return False
        self._event.emit(("failed", problems[0].node_id, str(problems[0]), problems))
        return True

    def _forward(self, event: ev.Event) -> None:
        """On the worker thread: turn heavy payloads into QImages, then hand over to the UI."""
        if isinstance(event, ev.NodeProgress):
            preview = to_qimage(event.preview) if event.preview is not None else None
            self._event.emit(("progress", event.node_id, event.step, event.total, preview))
        elif isinstance(event, ev.NodeFinished):
            images = collect_images(event.output) if event.output is not None else []
            text = event.output.get("text") if isinstance(event.output, dict) else None
            self._event.emit(("finished", event.node_id, event.cached, event.seconds, images,
                              text if isinstance(text, str) else None))
        elif isinstance(event, ev.NodeStarted):
            self._event.emit(("started", event.node_id))
        elif isinstance(event, ev.NodeWarning):
            self._event.emit(("warning", event.node_id, event.message))
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
        job = self.active
        if pending and job is not None:
            step, total, _ = list(pending.values())[-1]
            job.step, job.total = step, total
            job._update_progress(step / total if total else 0.0)
            self.jobProgress.emit(job)

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
        job = self.active
        if kind == "run":
            if job is not None:
                job.order = list(payload[1])
            self.runStarted.emit(payload[1])
        elif kind == "started":
            if job is not None:
                job.running_node = self._title(job.workflow, payload[1])
            self.nodeStarted.emit(payload[1])
        elif kind == "warning":
            if job is not None:
                job.warnings.append(f"{self._title(job.workflow, payload[1])}: {payload[2]}")
            self.nodeWarning.emit(payload[1], payload[2])
        elif kind == "finished":
            _, nid, cached, seconds, images, text = payload
            records = self._records(nid, images)
            if job is not None:
                job.nodes_done.add(nid)
                job.step = job.total = 0
                job.running_node = ""
                job.add_images(records)
                job._update_progress()
                self.jobProgress.emit(job)
            self.nodeFinished.emit(nid, cached, seconds, records)
            if text is not None:
                self.nodeShown.emit(nid, text)
        elif kind == "done":
            if job is not None and job.state == RUNNING:
                job.state, job.progress, job.seconds = DONE, 1.0, float(payload[1].seconds)
            self.runFinished.emit(payload[1])
        elif kind == "cancelled":
            if job is not None:
                job.state, job.error = CANCELLED, "cancelled"
            self.runFailed.emit(payload[1], "cancelled", [])
        elif kind == "failed":
            if job is not None:
                job.state = FAILED
                job.error = self._reason(job.workflow, payload[2], payload[3])
            self.runFailed.emit(payload[1], payload[2], payload[3])

    def _reason(self, workflow: Workflow, message: str, problems: list[Problem]) -> str:
        """A failed job's reason in one line, naming the node by its title as the canvas does:
        "Load Checkpoint, checkpoint: ... not found" (+N more when several things are wrong)."""
        first = problems[0] if problems else None
        if first is None or first.node_id is None or first.node_id not in workflow.nodes:
            return _one_line(message)
        where = self._title(workflow, first.node_id)
        if first.field:
            where += f", {first.field}"
        more = f" (+{len(problems) - 1} more)" if len(problems) > 1 else ""
        return f"{where}: {_one_line(first.message)}{more}"

    def _title(self, workflow: Workflow, nid: str) -> str:
        """The node's title as the canvas shows it."""
        node = workflow.nodes.get(nid)
        if node is None:
            return nid
        spec = self.engine.registry.get(node.type)
        return node.title or (spec.title if spec is not None else node.type)

    def _records(self, nid: str, images: list[tuple[QImage, str | None]]) -> list[RunImage]:
        """The images of output `nid`, item i of a batch with its own seed (seed + i)."""
        if not images or self.current is None:
            return []
        made = generation_info(self.current, self.engine.registry, nid)
        prompts = titled_prompts(self.current, self.engine.registry, made)
        records = [RunImage(img, path, nid, made.for_item(i), prompts) for i, (img, path) in enumerate(images)]
        self._note_repeats(records)
        return records

    def _note_repeats(self, records: list[RunImage]) -> None:
        """An image with the pixels of one saved earlier this session (a re-run of an unchanged graph)
        says so (`same_as`); with `skip_unchanged_saves`, this run's copy of the file is removed and the
        record points at the earlier one (not for a batch's jobs, whose files the batch writer moves)."""
        skip = self.skip_unchanged_saves and self.active is not None and self.active.output_dir is None
        for record in records:
            if record.path is None:
                continue
            digest = image_digest(record.image)
            earlier = self._saved.get(digest)
            if earlier is None or earlier == record.path or not Path(earlier).is_file():
                self._saved[digest] = record.path
                continue
            record.same_as = earlier
            if skip:
                try:
                    Path(record.path).unlink()
                except OSError:
                    continue
                record.path, record.saved_again = earlier, False

    def _on_done(self) -> None:
        job, self.active = self.active, None
        self.running = False
        self._thread = None
        if job is not None:
            if job.state == RUNNING:     # ended without a word (cannot happen; never leave it running)
                job.state = DONE
            if not job.seconds:
                job.seconds = time.perf_counter() - job.started_at
        self.runningChanged.emit(False)
        self.queueChanged.emit()
        if job is not None:
            self.jobFinished.emit(job)
            self._drop_old_images()
        waiting = self.pending_jobs()
        if waiting and not self.running:    # a jobFinished listener may have started one
            self.queuedChanged.emit(len(waiting) - 1)
            self._start(waiting[0])

    def wait(self, timeout: float | None = None) -> None:
        """Block until the worker ends (for shutdown)."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout)


def image_digest(image: QImage) -> str:
    """A digest of an image's pixels (size and RGBA bytes), to tell a repeated image from a new one."""
    rgba = image.convertToFormat(QImage.Format.Format_RGBA8888)
    data = bytes(rgba.constBits())[:rgba.sizeInBytes()]
    return f"{rgba.width()}x{rgba.height()}:" + hashlib.sha1(data).hexdigest()


def _one_line(message: str) -> str:
    """The first line of an error, for a row that has room for one."""
    lines = [line.strip() for line in str(message).splitlines() if line.strip()]
    return lines[0] if lines else "failed"
