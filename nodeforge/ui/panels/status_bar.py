"""The status bar: run progress, the device, the process's memory and the engine's cache."""
from __future__ import annotations

import re
import sys

from PySide6.QtCore import QSize, Qt, QTimer, Signal
from PySide6.QtGui import QFontMetrics, QPainter
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


ASIDE = re.compile(r"\([^()]{12,}\)")     # a long aside in brackets: "(searched /a/models, /b/models)"


def shorten_paths(line: str, metrics: QFontMetrics, room: int) -> str:
    """`line` with its path-like words (a / or \\ in them) elided in the middle, longest first, until
    it fits in `room` pixels or every path is down to about 10 characters at each end."""
    words = line.split(" ")
    paths = sorted((i for i, w in enumerate(words) if ("/" in w or "\\" in w) and len(w) > 12),
                   key=lambda i: -len(words[i]))
    for i in paths:
        over = metrics.horizontalAdvance(" ".join(words)) - room
        if over <= 0:
            break
        word = words[i]
        least = 2 * metrics.horizontalAdvance(word[-10:])   # the middle goes: both ends keep 10 characters
        words[i] = metrics.elidedText(word, Qt.TextElideMode.ElideMiddle,
                                      max(least, metrics.horizontalAdvance(word) - over))
    return " ".join(words)


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
        """The message in the room there is: long asides in brackets ("(searched ...)") go first, then
        long paths are shortened in their middle (so "put it in /home/…/checkpoints, add its folder to
        ..." still shows the fix), the end cut only if that is not enough. The tooltip has it in full."""
        line = " ".join(self.full_text.split())
        room = max(0, self.width() - 8)
        metrics = self.fontMetrics()
        while metrics.horizontalAdvance(line) > room and ASIDE.search(line):   # "(searched ...)" goes first
            longest = max(ASIDE.finditer(line), key=lambda m: len(m.group()))
            line = line[:longest.start()] + "(…)" + line[longest.end():]
        if metrics.horizontalAdvance(line) > room:
            line = shorten_paths(line, metrics, room)
        return metrics.elidedText(line, Qt.TextElideMode.ElideRight, room)

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
        from nodeforge.devices import describe_before_torch

        device = describe_before_torch(self.engine.device)    # not "auto" until the first run ends
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
