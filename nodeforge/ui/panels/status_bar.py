"""The status bar: run progress, the device, the process's memory and the engine's cache."""
from __future__ import annotations

import sys

from PySide6.QtCore import QSize, Qt, QTimer, Signal
from PySide6.QtGui import QPainter
from PySide6.QtWidgets import QLabel, QProgressBar, QStatusBar, QWidget

from nodeforge.core.engine import Engine


def human_size(nbytes: float) -> str:
    """4 MB, 512 KB, 9.4 GB."""
    if nbytes >= 1024 ** 3:
        return f"{nbytes / 1024 ** 3:.1f} GB"
    if nbytes >= 1024 ** 2:
        return f"{nbytes / 1024 ** 2:.0f} MB"
    if nbytes >= 1024:
        return f"{nbytes / 1024:.0f} KB"
    return f"{nbytes:.0f} B"


class ClickableLabel(QLabel):
    """A label that says when the left button presses it (`clicked`)."""

    clicked = Signal()

    def mousePressEvent(self, event) -> None:  # noqa: N802
        if event.button() == Qt.MouseButton.LeftButton:
            self.clicked.emit()
        super().mousePressEvent(event)


class MessageLabel(ClickableLabel):
    """The status message: elided to the room there is, in full in its tooltip, clickable."""

    def __init__(self) -> None:
        super().__init__()
        self.full_text = ""
        self.setCursor(Qt.CursorShape.PointingHandCursor)
        self.setMinimumWidth(40)

    def set_message(self, text: str) -> None:
        self.full_text = text
        self.setToolTip(text if text else "")
        self.update()

    def elided(self) -> str:
        line = " ".join(self.full_text.split())
        return self.fontMetrics().elidedText(line, Qt.TextElideMode.ElideRight, max(0, self.width() - 8))

    def sizeHint(self) -> QSize:  # noqa: N802 - grows with the window, never pushes the stats out
        return QSize(40, super().sizeHint().height())

    def minimumSizeHint(self) -> QSize:  # noqa: N802
        return QSize(40, super().minimumSizeHint().height())

    def paintEvent(self, event) -> None:  # noqa: N802
        painter = QPainter(self)
        painter.setPen(self.palette().color(self.foregroundRole()))
        painter.drawText(self.rect().adjusted(4, 0, -4, 0), int(Qt.AlignmentFlag.AlignVCenter
                                                               | Qt.AlignmentFlag.AlignLeft), self.elided())
        painter.end()


class StatusBar(QStatusBar):
    messageClicked = Signal()
    queueClicked = Signal()

    def __init__(self, engine: Engine, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.engine = engine
        # Qt's own message area neither elides nor can be clicked: ours replaces it.
        self.message = MessageLabel()
        self.message.clicked.connect(self.messageClicked)
        self.addWidget(self.message, 1)
        self._expire = QTimer(self)
        self._expire.setSingleShot(True)
        self._expire.timeout.connect(self.clearMessage)
        self.progress = QProgressBar()
        self.progress.setMaximumWidth(220)
        self.progress.setMaximumHeight(16)
        self.progress.setVisible(False)
        self.device_label = QLabel()
        self.memory_label = QLabel()
        self.cache_label = QLabel()
        self.queue_label = ClickableLabel()
        self.queue_label.setCursor(Qt.CursorShape.PointingHandCursor)
        self.queue_label.setToolTip("Runs waiting: click to see the Queue panel")
        self.queue_label.clicked.connect(self.queueClicked)
        self.queue_label.setVisible(False)
        for widget in (self.queue_label, self.progress, self.device_label, self.memory_label, self.cache_label):
            self.addPermanentWidget(widget)

    def showMessage(self, text: str, timeout: int = 0) -> None:  # noqa: N802 - Qt's name
        self.message.set_message(text)
        if timeout > 0:
            self._expire.start(timeout)
        else:
            self._expire.stop()

    def clearMessage(self) -> None:  # noqa: N802
        self.message.set_message("")

    def currentMessage(self) -> str:  # noqa: N802
        return self.message.full_text

    def set_busy(self, busy: bool) -> None:
        if busy:
            self.progress.setRange(0, 0)
        self.progress.setVisible(busy)

    def set_queued(self, count: int) -> None:
        self.queue_label.setText(f"Queue: {count}")
        self.queue_label.setVisible(count > 0)

    def set_steps(self, step: int, total: int) -> None:
        self.progress.setRange(0, max(1, total))
        self.progress.setValue(step)
        self.progress.setFormat(f"{step}/{total}")

    def update_stats(self, running: bool = False) -> None:
        device = self.engine.device
        if "torch" in sys.modules and not running:
            # torch is loaded once a graph has run; before that, naming the device would load it.
            try:
                from nodeforge.devices import describe_device

                device = describe_device(self.engine.resolved_device())
            except Exception:
                pass
        self.device_label.setText(f"Device: {device}")
        try:
            import psutil

            self.memory_label.setText(f"Memory: {human_size(psutil.Process().memory_info().rss)}")
        except Exception:
            self.memory_label.setText("")
        stats = self.engine.cache.stats()
        self.cache_label.setText(f"Cache: {stats.entries} items, {human_size(stats.nbytes)} "
                                 f"of {human_size(stats.budget)}")
