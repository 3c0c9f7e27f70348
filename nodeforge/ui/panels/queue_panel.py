"""The Queue panel: every run the editor queued, pending, running (with progress), done (with a
thumbnail of its first image) or failed (with the one-line reason).

Pending jobs move up and down and can be cancelled one by one; cancelling the running job stops
it and the next one starts. Double-click a done job to see its images in the Images panel. The
panel only shows `RunController.jobs` and calls its methods; the runner owns the queue.
"""
from __future__ import annotations

from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QColor, QPainter, QPixmap
from PySide6.QtWidgets import (
    QDockWidget, QHBoxLayout, QLabel, QListWidget, QListWidgetItem, QProgressBar, QToolButton, QVBoxLayout, QWidget,
)

from nodeforge.ui.run.runner import CANCELLED, DONE, FAILED, KEEP_IMAGES, PENDING, RUNNING, QueueJob, RunController

THUMB = 44
STATE_TEXT = {PENDING: "Pending", RUNNING: "Running", DONE: "Done", FAILED: "Failed", CANCELLED: "Cancelled"}
STATE_COLOR = {PENDING: "#9aa0a6", RUNNING: "#7fb3ff", DONE: "#7ccf8a", FAILED: "#ff7b72", CANCELLED: "#c9a86a"}


def running_text(job: QueueJob) -> str:
    """What a running job is doing, each number saying what it counts: "Running UNet Denoise ·
    step 7/20 · node 9 of 11" (a bare percentage beside a step count read as a contradiction:
    "76% · step 7/20"; the bar below shows the whole run)."""
    parts = [f"Running {job.running_node}" if job.running_node else "Running"]
    if job.total:
        parts.append(f"step {job.step}/{job.total}")
    if job.order:
        parts.append(f"node {min(len(job.nodes_done) + 1, len(job.order))} of {len(job.order)}")
    return " · ".join(parts)


class ElidedLabel(QLabel):
    """One line, cut with "…" to the room there is; the whole text in the tooltip."""

    def sizeHint(self) -> QSize:  # noqa: N802 - never widens the panel
        return QSize(40, super().sizeHint().height())

    def minimumSizeHint(self) -> QSize:  # noqa: N802
        return QSize(40, super().minimumSizeHint().height())

    def paintEvent(self, event) -> None:  # noqa: N802, ANN001
        painter = QPainter(self)
        painter.setPen(self.palette().color(self.foregroundRole()))
        line = " ".join(self.text().split())
        shown = self.fontMetrics().elidedText(line, Qt.TextElideMode.ElideRight, self.width())
        painter.drawText(self.rect(), int(Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignLeft), shown)
        painter.end()


class JobRow(QWidget):
    """One job: thumbnail (or a state swatch), its label, and its state, progress or reason."""

    def __init__(self, job: QueueJob) -> None:
        super().__init__()
        self.setObjectName("queueRow")
        self.setStyleSheet("QLabel { background: transparent; }")
        self.thumb = QLabel()
        self.thumb.setObjectName("queueThumb")
        self.thumb.setFixedSize(THUMB, THUMB)
        self.thumb.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.title = ElidedLabel()
        self.title.setObjectName("queueTitle")
        self.state = ElidedLabel()
        self.state.setObjectName("panelCaption")
        self.bar = QProgressBar()
        self.bar.setRange(0, 1000)
        self.bar.setTextVisible(False)
        self.bar.setFixedHeight(6)
        text = QVBoxLayout()
        text.setContentsMargins(0, 0, 0, 0)
        text.setSpacing(2)
        text.addWidget(self.title)
        text.addWidget(self.state)
        text.addWidget(self.bar)
        row = QHBoxLayout(self)
        row.setContentsMargins(4, 3, 6, 3)
        row.setSpacing(8)
        row.addWidget(self.thumb)
        row.addLayout(text, 1)
        self.job_id = job.id
        self._thumb_of: tuple | None = None
        self.update_job(job)

    def update_job(self, job: QueueJob) -> None:
        self.title.setText(f"#{job.id}  {job.label}")
        self.title.setToolTip(job.label)
        color = STATE_COLOR.get(job.state, "#9aa0a6")
        if job.state == RUNNING:
            line = running_text(job)
        elif job.state == DONE:
            count = len(job.images)
            line = f"Done in {job.seconds:.2f}s" if job.seconds < 1 else f"Done in {job.seconds:.1f}s"
            line = line + (f" · {count} image{'s' if count != 1 else ''}" if count else "")
        elif job.state == FAILED:
            line = f"Failed: {job.error or 'failed'}"
        else:
            line = STATE_TEXT.get(job.state, job.state)
        self.state.setText(line)
        self.state.setToolTip(line if job.state == FAILED else "")   # the whole reason
        self.state.setStyleSheet(f"color: {color}; background: transparent;")
        self.bar.setVisible(job.state == RUNNING)
        self.bar.setValue(round(job.progress * 1000))
        self.bar.setToolTip(f"The whole run: {round(job.progress * 100)}% of its nodes" if job.state == RUNNING else "")
        self._show_thumb(job, color)

    def _show_thumb(self, job: QueueJob, color: str) -> None:
        image = job.thumbnail
        key = (id(image) if image is not None else None, job.state)
        if key == self._thumb_of:
            return
        self._thumb_of = key
        if image is not None:
            pixmap = QPixmap.fromImage(image).scaled(THUMB, THUMB, Qt.AspectRatioMode.KeepAspectRatio,
                                                     Qt.TransformationMode.SmoothTransformation)
            self.thumb.setPixmap(pixmap)
            self.thumb.setStyleSheet("background: #111214; border-radius: 3px;")
            return
        swatch = QPixmap(THUMB, THUMB)
        swatch.fill(QColor("#1b1c20"))
        self.thumb.setPixmap(swatch)
        mark = {PENDING: "…", RUNNING: "▶", FAILED: "✕", CANCELLED: "–", DONE: "✓"}.get(job.state, "")
        self.thumb.setText(mark)
        self.thumb.setStyleSheet(f"background: #1b1c20; color: {color}; border-radius: 3px; font-size: 16px;")


class QueuePanel(QDockWidget):
    """The runner's queue, with reorder, cancel and clear."""

    imagesRequested = Signal(object)    # a done QueueJob whose images should be shown

    def __init__(self, runner: RunController, parent: QWidget | None = None) -> None:
        super().__init__("Queue", parent)
        self.setObjectName("queuePanel")
        self.runner = runner
        self.rows: dict[int, JobRow] = {}
        self.list = QListWidget()
        self.list.setObjectName("queueList")
        self.list.setSelectionMode(QListWidget.SelectionMode.SingleSelection)
        self.list.itemDoubleClicked.connect(self._activated)
        self.list.itemActivated.connect(self._activated)
        self.list.currentItemChanged.connect(self._update_buttons)
        self.empty = QLabel("Runs you start (Ctrl+Enter) and batch jobs wait here.")
        self.empty.setObjectName("panelCaption")
        self.empty.setWordWrap(True)
        self.up = self._button("Up", "Run this pending job sooner", lambda: self._move(-1))
        self.down = self._button("Down", "Run this pending job later", lambda: self._move(1))
        self.cancel = self._button("Cancel", "Cancel the selected job (a pending one leaves the queue)",
                                   self.cancel_selected)
        self.clear_done = self._button("Clear Finished", "Remove done, failed and cancelled jobs",
                                       self.runner.clear_finished)
        self.clear_pending = self._button("Clear Pending", "Remove every job that has not started",
                                          self.runner.clear_pending)
        buttons = QHBoxLayout()
        buttons.setContentsMargins(4, 4, 4, 0)
        buttons.setSpacing(4)
        for button in (self.up, self.down, self.cancel):
            buttons.addWidget(button)
        buttons.addStretch(1)
        buttons.addWidget(self.clear_done)
        buttons.addWidget(self.clear_pending)
        body = QWidget()
        layout = QVBoxLayout(body)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(4)
        layout.addLayout(buttons)
        layout.addWidget(self.empty)
        layout.addWidget(self.list, 1)
        self.setWidget(body)
        self.setMinimumWidth(280)
        runner.queueChanged.connect(self.refresh)
        runner.jobProgress.connect(self._progress)
        self.refresh()

    def _button(self, text: str, tip: str, slot) -> QToolButton:  # noqa: ANN001
        button = QToolButton()
        button.setText(text)
        button.setToolTip(tip)
        button.clicked.connect(lambda _=False: slot())
        return button

    # -- what the list shows --------------------------------------------------------------------------
    def refresh(self) -> None:
        """Rebuild the rows from the runner's jobs, keeping the selected job selected."""
        order = [job.id for job in self.runner.jobs]
        if order == [self._id(i) for i in range(self.list.count())]:
            for i, job in enumerate(self.runner.jobs):     # the same jobs in the same order: update in place
                row = self.rows[job.id]
                row.update_job(job)
            self._update_header()
            return
        selected = self.selected_id()
        self.list.clear()
        self.rows = {}
        for job in self.runner.jobs:
            item = QListWidgetItem()
            item.setData(Qt.ItemDataRole.UserRole, job.id)
            row = JobRow(job)
            self.list.addItem(item)
            item.setSizeHint(QSize(200, max(THUMB + 8, row.sizeHint().height())))
            self.list.setItemWidget(item, row)
            self.rows[job.id] = row
            if job.id == selected:
                self.list.setCurrentItem(item)
        self._update_header()

    def _update_header(self) -> None:
        pending = len(self.runner.pending_jobs())
        running = 1 if self.runner.active is not None else 0
        parts = ([f"{running} running"] if running else []) + ([f"{pending} pending"] if pending else [])
        self.setWindowTitle(f"Queue ({', '.join(parts)})" if parts else "Queue")
        self.empty.setVisible(not self.runner.jobs)
        self._update_buttons()

    def _progress(self, job: QueueJob) -> None:
        row = self.rows.get(job.id)
        if row is not None:
            row.update_job(job)

    def states(self) -> list[tuple[str, str]]:
        """(label, state) of every row, top to bottom (what a user reads)."""
        return [(self.runner.job(self._id(i)).label, self.runner.job(self._id(i)).state)
                for i in range(self.list.count())]

    def row(self, job_id: int) -> JobRow | None:
        return self.rows.get(job_id)

    # -- selection and actions ---------------------------------------------------------------------------
    def _id(self, index: int) -> int:
        return int(self.list.item(index).data(Qt.ItemDataRole.UserRole))

    def selected_id(self) -> int | None:
        item = self.list.currentItem()
        return int(item.data(Qt.ItemDataRole.UserRole)) if item is not None else None

    def select(self, job_id: int) -> None:
        for i in range(self.list.count()):
            if self._id(i) == job_id:
                self.list.setCurrentRow(i)
                return

    def _selected_job(self) -> QueueJob | None:
        job_id = self.selected_id()
        return self.runner.job(job_id) if job_id is not None else None

    def _update_buttons(self, *_: object) -> None:
        job = self._selected_job()
        waiting = self.runner.pending_jobs()
        pending = job is not None and job.state == PENDING
        self.up.setEnabled(pending and waiting.index(job) > 0)
        self.down.setEnabled(pending and waiting.index(job) < len(waiting) - 1)
        self.cancel.setEnabled(job is not None and job.state in (PENDING, RUNNING))
        self.clear_done.setEnabled(any(j.finished for j in self.runner.jobs))
        self.clear_pending.setEnabled(bool(waiting))

    def _move(self, delta: int) -> None:
        job_id = self.selected_id()
        if job_id is not None:
            self.runner.move_job(job_id, delta)

    def cancel_selected(self) -> None:
        job_id = self.selected_id()
        if job_id is not None:
            self.runner.cancel_job(job_id)

    def _activated(self, item: QListWidgetItem) -> None:
        job = self.runner.job(int(item.data(Qt.ItemDataRole.UserRole)))
        if job is not None and job.images:
            self.imagesRequested.emit(job)
        elif job is not None and job.thumbnail is not None:
            self.window().statusBar().showMessage(
                f"Job #{job.id}'s full-size images are no longer kept (only the newest "
                f"{KEEP_IMAGES} jobs keep theirs); its files are in the output folder", 6000)
