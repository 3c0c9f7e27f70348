"""Shows a run on the canvas: node states, progress, previews, result images and errors.

Listens to the RunController's signals (on the UI thread) and updates node items, the status
bar and the image panel. Knows nothing of how the run is done.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, Signal

from nodeforge.core.errors import Problem
from nodeforge.ui.panels.image_panel import ImagePanel
from nodeforge.ui.graph.model import GraphModel
from nodeforge.ui.run.runner import RunController, RunImage
from nodeforge.ui.canvas.scene import GraphScene
from nodeforge.ui.panels.status_bar import StatusBar


class RunPresenter(QObject):
    problemsChanged = Signal(list)      # [Problem] of the last failed run; [] once cleared

    def __init__(self, runner: RunController, model: GraphModel, scene: GraphScene, status: StatusBar,
                 images: ImagePanel, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.runner = runner
        self.model = model
        self.scene = scene
        self.status = status
        self.images = images
        self.problems: list[Problem] = []
        self._steps_from: tuple[str, int, float] = ("", 0, 0.0)
        runner.runningChanged.connect(self._running_changed)
        runner.queuedChanged.connect(self._queued_changed)
        runner.runStarted.connect(self._run_started)
        runner.nodeStarted.connect(self._node_started)
        runner.nodeProgress.connect(self._node_progress)
        runner.nodeFinished.connect(self._node_finished)
        runner.nodeWarning.connect(self._node_warning)
        runner.nodeShown.connect(self._node_shown)
        runner.runFinished.connect(self._run_finished)
        runner.runFailed.connect(self._run_failed)

    def _title(self, nid: str) -> str:
        return self.model.title(nid) if nid in self.model.nodes else nid

    def _running_changed(self, running: bool) -> None:
        self.status.set_busy(running)
        if running:
            self.status.showMessage("Running…")
        else:
            self.status.update_stats()

    def _queued_changed(self, count: int) -> None:
        self.status.set_queued(count)
        if count:
            self.status.showMessage(f"{count} run{'s' if count > 1 else ''} queued", 4000)

    def _run_started(self, order: list[str]) -> None:
        wanted = set(order)
        for nid, item in self.scene.nodes.items():
            item.set_state("queued" if nid in wanted else None)

    def _node_started(self, nid: str) -> None:
        item = self.scene.nodes.get(nid)
        if item is not None:
            item.set_state("running")
        self.status.showMessage(f"Running {self._title(nid)}…")

    def _node_progress(self, nid: str, step: int, total: int, preview: Any) -> None:
        item = self.scene.nodes.get(nid)
        if item is not None:
            item.set_progress(step, total)
            if preview is not None:
                item.set_images([preview])
        self.status.set_steps(step, total)
        # Speed and time left, as artists read them from samplers: it/s and seconds to go.
        now = time.perf_counter()
        if step <= 1 or self._steps_from[0] != nid:
            self._steps_from = (nid, step, now)
        _, first, since = self._steps_from
        if step > first and now > since:
            rate = (step - first) / (now - since)
            left = (total - step) / rate if rate > 0 else 0
            self.status.showMessage(f"{self._title(nid)}: step {step}/{total} · {rate:.2f} it/s · "
                                    f"{left:.0f}s left")

    def _node_finished(self, nid: str, cached: bool, seconds: float, images: list[RunImage]) -> None:
        item = self.scene.nodes.get(nid)
        if item is not None:
            item.set_state("cached" if cached else "done", seconds)
            if images:
                item.set_images([r.image for r in images])
        if images:
            self.images.add_images(images)

    def _node_shown(self, nid: str, text: str) -> None:
        item = self.scene.nodes.get(nid)
        if item is not None:
            item.set_shown_text(text)

    def _node_warning(self, nid: str, message: str) -> None:
        self.status.showMessage(f"Warning: {self._title(nid)}: {message}", 30000)

    def _run_finished(self, result: Any) -> None:
        done = f"Done in {result.seconds:.2f}s: {len(result.executed)} ran, {len(result.cached)} from cache"
        job = self.runner.active
        repeats = [record for record in (job.images if job is not None else []) if record.same_as]
        if repeats:
            first = repeats[0]
            done += (f"; the same image as {Path(first.same_as).name} (nothing that changes the picture changed"
                     + ("; not saved again)" if not first.saved_again else
                        "; Run > Skip Unchanged Saves keeps one file)"))
        warned = job.warnings if job is not None else []
        if warned:    # the last word of the run: a warning shown before it would be gone
            done += f"; warning: {warned[0]}" + (f" (+{len(warned) - 1} more)" if len(warned) > 1 else "")
        self.status.showMessage(done, 30000 if warned else 8000 if not repeats else 15000)

    def _run_failed(self, nid: Any, message: str, problems: list[Problem]) -> None:
        for item in self.scene.nodes.values():
            if item.state in ("running", "queued"):
                item.set_state(None)
        if message == "cancelled":
            self.status.showMessage("Run cancelled", 5000)
            return
        self.problems = problems
        self.problemsChanged.emit(list(problems))
        failed = {p.node_id for p in problems if p.node_id} | ({nid} if nid else set())
        for failed_id in failed:
            item = self.scene.nodes.get(failed_id)
            if item is not None:
                item.set_state("failed")   # not the green tick of an earlier run
        for problem in problems:
            item = self.scene.nodes.get(problem.node_id) if problem.node_id else None
            if item is not None:
                text = problem.message
                if problem.field and not text.startswith(problem.field):
                    text = f"{problem.field}: {text}"
                item.set_error(text if not item.error else f"{item.error}; {text}")
        more = f" (+{len(problems) - 1} more: click for the list)" if len(problems) > 1 else ""
        self.status.showMessage(f"Run failed: {self._where(problems, message)}{more}", 30000)

    def _where(self, problems: list[Problem], message: str) -> str:
        """The first problem as the canvas names it, "Load Checkpoint, checkpoint: ..." (not "node 1
        (CheckpointLoader), checkpoint: ..." again after the title)."""
        first = problems[0] if problems else None
        if first is None or first.node_id not in self.model.nodes:
            return message
        field = f", {first.field}" if first.field else ""
        return f"{self._title(first.node_id)}{field}: {first.message}"

    def clear_errors(self, *_: Any) -> None:
        for item in self.scene.nodes.values():
            if item.error:
                item.set_error(None)
        if self.problems:
            self.problems = []
            self.problemsChanged.emit([])
