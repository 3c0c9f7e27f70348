"""The Batch dialog: a grid or a list of `ID.param` values over the graph, run through the queue.

Axes come from the canvas (right-click a param: "Add to Batch Grid") or are typed, with values in
the batch spec syntax (`3,5,7`, `1..10`, `0..20..5`, `@prompts.txt`). The dialog only builds a
`nodeforge.batch` spec: the core expands it into numbered jobs (grouped by model) and applies each
job's values to a copy of the graph. Every job goes into the editor's queue; as jobs finish,
their images and manifest lines are written to the output folder exactly as `nodeforge batch`
writes them (so `nodeforge batch DIR/batch.json --out DIR --resume` can finish a stopped one), and
when the last one ends the contact sheet is drawn and shown here and in the Images panel.
"""
from __future__ import annotations

import random
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from PySide6.QtCore import QBuffer, QByteArray, QIODevice, Qt, QUrl, Signal
from PySide6.QtGui import QDesktopServices, QImage, QPixmap
from PySide6.QtWidgets import (
    QAbstractItemView, QComboBox, QDialog, QDialogButtonBox, QFileDialog, QFormLayout, QHBoxLayout, QHeaderView,
    QLabel, QLineEdit, QPushButton, QScrollArea, QSpinBox, QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget,
)

from nodeforge.batch.runner import BatchPlan, JobOutcome, open_batch, plan_batch, write_sheet
from nodeforge.batch.sheet import SheetLayout
from nodeforge.batch.spec import Axis, BatchSpec, Job, SeedPolicy, expand, parse_axis
from nodeforge.core.errors import WorkflowError
from nodeforge.core.png_text import PNG_WORKFLOW_KEY, version_chunks
from nodeforge.ui.run.runner import CANCELLED, FAILED, QueueJob, RunImage

if TYPE_CHECKING:
    from nodeforge.core.engine import Engine
    from nodeforge.ui.graph.model import GraphModel
    from nodeforge.ui.panels.image_panel import ImagePanel
    from nodeforge.ui.run.runner import RunController


class BatchHost(Protocol):
    """What the Batch dialog needs from its window (MainWindow provides it)."""

    def window(self) -> QWidget: ...                    # the dialog's parent
    def show_queue(self) -> None: ...
    def show_message(self, text: str, msecs: int = 0) -> None: ...

GRID, ZIP = "grid", "zip"


def value_text(value: Any) -> str:
    """A param value as one item of an axis's values text (commas in it escaped)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:g}"
    return "" if value is None else str(value).replace(",", "\\,")


def fresh_folder(path: Path) -> Path:
    """`path`, or `path-2`, `path-3`... when it already holds a batch."""
    candidate, n = path, 1
    while (candidate / "manifest.jsonl").exists():
        n += 1
        candidate = path.with_name(f"{path.name}-{n}")
    return candidate


def _png_bytes(image: QImage, workflow_text: str) -> bytes:
    """A preview image as PNG bytes, with the job's workflow embedded as SaveImage does."""
    image = QImage(image)
    image.setText(PNG_WORKFLOW_KEY, workflow_text)
    for key, version in version_chunks().items():
        image.setText(key, version)
    data = QByteArray()
    buffer = QBuffer(data)
    buffer.open(QIODevice.OpenModeFlag.WriteOnly)
    image.save(buffer, "PNG")
    buffer.close()
    return bytes(data.data())


class BatchRun:
    """One batch in flight: its plan, its queued jobs, and the writer of its folder."""

    def __init__(self, plan: BatchPlan, out_dir: Path) -> None:
        self.plan = plan
        self.out_dir = out_dir
        self.manifest, self.writer = open_batch(plan, out_dir)
        self.staging = Path(tempfile.mkdtemp(prefix="nodeforge-batch-"))
        self.queued: dict[int, Job] = {}            # queue job id -> batch job
        self.recorded: dict[int, dict[str, Any]] = {}
        self.handled: set[int] = set()              # queue job ids whose end was dealt with
        self.cancelled = 0
        self.done = False
        self.sheet: Path | None = None
        self.layout: SheetLayout | None = None

    def record(self, qjob: QueueJob, job: Job) -> bool:
        """Write a finished job's files and manifest line (a cancelled job is left out: it never ran);
        True when the job's images now name other files (the panel showing them must redraw)."""
        self.handled.add(qjob.id)
        if qjob.state == CANCELLED:
            self.cancelled += 1
            return False
        files: list[tuple[str, bytes]] = []
        staged = qjob.output_dir
        if staged is not None and staged.is_dir():
            files = [(p.relative_to(staged).as_posix(), p.read_bytes()) for p in sorted(staged.rglob("*")) if p.is_file()]
        if not files and qjob.images:      # only previews: keep the first, workflow embedded
            files = [("preview_00001.png", _png_bytes(qjob.images[0].image, qjob.workflow.dumps()))]
        error = (qjob.error or "failed") if qjob.state == FAILED else None
        self.recorded[job.number] = self.writer.record(job, JobOutcome(job.number, files, qjob.seconds, error))
        return self._point_at_batch_folder(qjob, staged, files, self.recorded[job.number]["outputs"])

    def _point_at_batch_folder(self, qjob: QueueJob, staged: Path | None, files: list[tuple[str, bytes]],
                               names: list[str]) -> bool:
        """The job's images name their file in the batch folder, not in the staging folder that
        finish() deletes (issue 31.2); True when one changed."""
        if staged is None:
            return False
        final = {str(staged / rel): str(self.out_dir / name) for (rel, _), name in zip(files, names)}
        moved = [image for image in qjob.images if image.path in final]
        for image in moved:
            image.path = final[image.path]
        return bool(moved)

    def finish(self) -> Path | None:
        """Draw the contact sheet of the jobs that ran; its path (None when none ran)."""
        self.done = True
        shutil.rmtree(self.staging, ignore_errors=True)
        written = write_sheet(self.plan, self.out_dir, self.manifest.latest())
        if written is None:
            return None
        self.sheet, self.layout = written
        return self.sheet


class BatchDialog(QDialog):
    """Non-modal: the canvas stays editable, and "Add to Batch Grid" on a param adds a row here."""

    batchQueued = Signal(int)           # how many jobs went into the queue
    batchFinished = Signal(object)      # the contact sheet's Path, or None when no job ran

    def __init__(self, host: BatchHost, engine: "Engine", model: "GraphModel", runner: "RunController",
                 images: "ImagePanel") -> None:
        super().__init__(host.window())
        self.host = host
        self.engine = engine
        self.model = model
        self.runner = runner
        self.images = images        # the contact sheet shows there when the batch is done
        self.setWindowTitle("Batch")
        self.setObjectName("batchDialog")
        self.setModal(False)
        self.random_seed = random.randrange(2 ** 31)
        self.current: BatchRun | None = None
        self.last: BatchRun | None = None

        axis_buttons, hint = self._build_axes()
        form = self._build_options()
        self._build_results()
        self._build_buttons()

        layout = QVBoxLayout(self)
        layout.addWidget(self.axes, 1)
        layout.addLayout(axis_buttons)
        layout.addWidget(hint)
        layout.addLayout(form)
        layout.addWidget(self.summary)
        layout.addWidget(self.progress)
        layout.addWidget(self.sheet_scroll, 2)
        layout.addWidget(self.buttons)
        self.resize(620, 460)
        runner.jobFinished.connect(self._job_finished)
        runner.queueChanged.connect(self._queue_changed)
        self.update_summary()

    # -- construction -----------------------------------------------------------------------------------
    def _build_axes(self) -> tuple[QHBoxLayout, QLabel]:
        """The axes table, its Add/Remove buttons and the hint on what values may be."""
        self.axes = QTableWidget(0, 2)
        self.axes.setObjectName("batchAxes")
        self.axes.setHorizontalHeaderLabels(["Param (ID.param)", "Values"])
        self.axes.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        self.axes.horizontalHeader().setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        self.axes.verticalHeader().setVisible(False)
        self.axes.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.axes.setMinimumHeight(120)
        self.axes.itemChanged.connect(self.update_summary)
        add = QPushButton("Add Axis")
        add.clicked.connect(lambda: self.add_axis("", ""))
        remove = QPushButton("Remove Axis")
        remove.clicked.connect(self.remove_selected_axis)
        axis_buttons = QHBoxLayout()
        axis_buttons.addWidget(add)
        axis_buttons.addWidget(remove)
        axis_buttons.addStretch(1)
        hint = QLabel("Right-click a param on a node: Add to Batch Grid. Values: 3,5,7 · 1..10 · 0..20..5 · "
                      "@prompts.txt (one a line); a comma inside a value: \\,")
        hint.setObjectName("panelCaption")
        hint.setWordWrap(True)
        return axis_buttons, hint

    def _build_options(self) -> QFormLayout:
        """Combine (grid or list), repeat count and seed policy, output folder."""
        self.mode = QComboBox()
        self.mode.addItem("Grid: every combination of the axes", GRID)
        self.mode.addItem("List: the axes' values taken together (zip)", ZIP)
        self.mode.currentIndexChanged.connect(self.update_summary)
        self.count = QSpinBox()
        self.count.setRange(1, 1000)
        self.count.setToolTip("Repeat every combination this many times")
        self.count.valueChanged.connect(self.update_summary)
        self.seed_policy = QComboBox()
        for policy, text in ((SeedPolicy.INCREMENT, "increment"), (SeedPolicy.RANDOM, "random"),
                             (SeedPolicy.FIXED, "fixed")):
            self.seed_policy.addItem(text, policy)
        self.seed_policy.setToolTip("How the repeats change the graph's seed")
        self.seed_policy.currentIndexChanged.connect(self.update_summary)
        repeat = QHBoxLayout()
        repeat.addWidget(self.count)
        repeat.addWidget(QLabel("times, seed"))
        repeat.addWidget(self.seed_policy)
        repeat.addStretch(1)
        self.folder = QLineEdit(str(Path(self.engine.output_dir) / "batch"))
        self.folder.setToolTip("Images, manifest.jsonl, batch.json and contact_sheet.png go here "
                               "(a folder that holds a batch already gets -2, -3...)")
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._browse)
        folder = QHBoxLayout()
        folder.addWidget(self.folder, 1)
        folder.addWidget(browse)
        form = QFormLayout()
        form.addRow("Combine", self.mode)
        form.addRow("Repeat", repeat)
        form.addRow("Output folder", folder)
        return form

    def _build_results(self) -> None:
        """The summary, progress line and contact sheet (hidden until a batch made one)."""
        self.summary = QLabel()
        self.summary.setObjectName("batchSummary")
        self.summary.setWordWrap(True)
        self.progress = QLabel()
        self.progress.setObjectName("panelCaption")
        self.progress.setWordWrap(True)
        self.sheet_label = QLabel()
        self.sheet_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.sheet_scroll = QScrollArea()
        self.sheet_scroll.setWidget(self.sheet_label)
        self.sheet_scroll.setWidgetResizable(True)
        self.sheet_scroll.setMinimumHeight(180)
        self.sheet_scroll.setStyleSheet("background: #111214;")
        self.sheet_scroll.hide()

    def _build_buttons(self) -> None:
        self.buttons = QDialogButtonBox()
        self.run_button = self.buttons.addButton("Run", QDialogButtonBox.ButtonRole.AcceptRole)
        self.run_button.setObjectName("batchRun")
        self.run_button.setDefault(True)
        self.run_button.clicked.connect(self.run_batch)
        self.open_folder = self.buttons.addButton("Open Folder", QDialogButtonBox.ButtonRole.ActionRole)
        self.open_folder.clicked.connect(self._open_folder)
        self.open_folder.setEnabled(False)
        close = self.buttons.addButton(QDialogButtonBox.StandardButton.Close)
        close.clicked.connect(self.hide)

    # -- axes -------------------------------------------------------------------------------------------
    def add_axis(self, target: str, values: str) -> int:
        """Add a row (or, for a target already there, select it and keep its values); its row."""
        for row, (existing, _) in enumerate(self.axis_rows()):
            if target and existing == target:
                self.axes.selectRow(row)
                return row
        row = self.axes.rowCount()
        self.axes.blockSignals(True)
        self.axes.insertRow(row)
        self.axes.setItem(row, 0, QTableWidgetItem(target))
        self.axes.setItem(row, 1, QTableWidgetItem(values))
        self.axes.blockSignals(False)
        self.axes.selectRow(row)
        self.update_summary()
        return row

    def set_values(self, row: int, values: str) -> None:
        self.axes.item(row, 1).setText(values)

    def remove_selected_axis(self) -> None:
        rows = sorted({index.row() for index in self.axes.selectedIndexes()}, reverse=True)
        for row in rows:
            self.axes.removeRow(row)
        self.update_summary()

    def axis_rows(self) -> list[tuple[str, str]]:
        rows = []
        for row in range(self.axes.rowCount()):
            cells = [self.axes.item(row, col) for col in (0, 1)]
            rows.append(tuple(c.text().strip() if c is not None else "" for c in cells))
        return rows

    # -- the spec, built by the core ---------------------------------------------------------------------
    def _base_dir(self) -> Path:
        source = self.model.workflow.source
        return source.parent if source is not None else Path.cwd()

    def build_spec(self) -> BatchSpec:
        """The batch spec of the current graph and the dialog's fields (BatchSpecError if wrong)."""
        axes: list[Axis] = []
        for target, values in self.axis_rows():
            if not target and not values:
                continue
            axes.append(parse_axis(f"{target}={values}", self._base_dir()))
        spec = BatchSpec(self.model.snapshot(), count=self.count.value(),
                         seed_policy=SeedPolicy(self.seed_policy.currentData()), random_seed=self.random_seed)
        if self.mode.currentData() == GRID:
            spec.grid = axes
        else:
            spec.zip = axes
        return spec

    def jobs(self) -> list[Job]:
        """The jobs the batch would run, numbered as `nodeforge batch` numbers them."""
        return expand(self.build_spec(), self.engine.registry)

    def update_summary(self, *_: Any) -> None:
        self.seed_policy.setEnabled(self.count.value() > 1)
        try:
            spec = self.build_spec()
            jobs = expand(spec, self.engine.registry)
        except WorkflowError as exc:
            self.summary.setText(f"⚠ {exc}")
            self.summary.setStyleSheet("color: #ff7b72;")
            self.run_button.setText("Run")
            self.run_button.setEnabled(False)
            return
        shape = " × ".join(str(len(a.values)) for a in spec.grid) if spec.grid else ""
        if spec.zip:
            shape = f"{len(spec.zip[0].values)} together"
        if spec.count > 1:
            shape = f"{shape} × {spec.count}" if shape else f"{spec.count} repeats"
        text = f"{len(jobs)} job{'s' if len(jobs) != 1 else ''}" + (f" ({shape})" if shape else "")
        if not spec.grid and not spec.zip:
            text += " · no axis yet: right-click a param on a node, Add to Batch Grid, or Add Axis"
        self.summary.setText(text)
        self.summary.setStyleSheet("")
        self.run_button.setText(f"Run {len(jobs)} Job{'s' if len(jobs) != 1 else ''}")
        self.run_button.setEnabled(bool(jobs))

    # -- running through the editor's queue -----------------------------------------------------------
    def run_batch(self) -> BatchRun | None:
        """Queue every job (the graph as it is now, with the job's values) and write its folder."""
        try:
            plan = plan_batch(self.build_spec(), self.engine.registry)
            out_dir = fresh_folder(Path(self.folder.text().strip() or "batch").expanduser())
            batch = BatchRun(plan, out_dir)
        except (WorkflowError, OSError) as exc:
            self.summary.setText(f"⚠ {exc}")
            self.summary.setStyleSheet("color: #ff7b72;")
            return None
        self.sheet_scroll.hide()
        self.open_folder.setEnabled(True)
        total = len(plan.jobs)
        for job in plan.jobs:
            shown = ", ".join(f"{k}={value_text(v)}" for k, v in job.overrides_json().items())
            label = f"Batch {job.number}/{total}" + (f": {shown}" if shown else "")
            qjob = self.runner.run(job.apply(plan.workflow), label=label,
                                       output_dir=batch.staging / f"job{job.number:05d}", tag=(batch, job))
            batch.queued[qjob.id] = job
        self.current = batch      # only now: the queue's signals while queuing must not end it
        self.host.show_queue()
        self._show_progress()
        self.batchQueued.emit(total)
        return batch

    def _job_finished(self, qjob: QueueJob) -> None:
        tag = qjob.tag
        if not (isinstance(tag, tuple) and len(tag) == 2 and isinstance(tag[0], BatchRun)):
            return
        batch, job = tag
        try:
            if batch.record(qjob, job):
                self.images.refresh()
        except OSError as exc:
            self.host.show_message(f"Batch: cannot write job {job.number} to {batch.out_dir} ({exc})", 10000)
        if batch is self.current:
            self._show_progress()
        self._maybe_finish(batch)

    def _queue_changed(self) -> None:
        if self.current is not None:
            self._show_progress()
            self._maybe_finish(self.current)

    def _left(self, batch: BatchRun) -> list[int]:
        """Queue ids of the batch's jobs not yet written (a pending job removed from the queue is not)."""
        runner = self.runner
        return [qid for qid in batch.queued if qid not in batch.handled and runner.job(qid) is not None]

    def _show_progress(self) -> None:
        batch = self.current
        if batch is None:
            return
        failed = sum(1 for r in batch.recorded.values() if r["status"] == "failed")
        done = len(batch.recorded) - failed
        left = len(self._left(batch))
        parts = [f"{done} done"] + ([f"{failed} failed"] if failed else []) + ([f"{left} to go"] if left else [])
        self.progress.setText(f"Batch in {batch.out_dir}: " + ", ".join(parts))

    def _maybe_finish(self, batch: BatchRun) -> None:
        if batch.done or self._left(batch):
            return
        if batch is self.current:
            self.current = None
        self.last = batch
        try:
            sheet = batch.finish()
        except OSError as exc:
            self.progress.setText(f"Cannot write the contact sheet in {batch.out_dir} ({exc})")
            self.batchFinished.emit(None)
            return
        if sheet is not None:
            self.show_sheet(sheet)
        self.batchFinished.emit(sheet)

    def show_sheet(self, path: Path) -> None:
        """The contact sheet here (scaled to fit) and, at full size, first in the Images panel."""
        image = QImage(str(path))
        if image.isNull():
            return
        self.sheet_label.setPixmap(QPixmap.fromImage(image))
        self.sheet_scroll.show()
        failed = sum(1 for r in self.last.recorded.values() if r["status"] == "failed") if self.last else 0
        self.progress.setText(f"Contact sheet: {path}" + (f" ({failed} failed: see the Queue panel)" if failed else ""))
        self.images.add_images([RunImage(image, str(path), "batch")])

    def discard(self) -> None:
        """The window closes: the running batch stops here (its folder keeps what finished, and
        `nodeforge batch DIR/batch.json --out DIR --resume` can complete it); staged files go."""
        if self.current is not None:
            shutil.rmtree(self.current.staging, ignore_errors=True)
            self.current = None

    # -- small things --------------------------------------------------------------------------------
    def _browse(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Batch output folder", self.folder.text())
        if folder:
            self.folder.setText(folder)

    def _open_folder(self) -> None:
        batch = self.current or self.last
        if batch is not None:
            QDesktopServices.openUrl(QUrl.fromLocalFile(str(batch.out_dir)))
