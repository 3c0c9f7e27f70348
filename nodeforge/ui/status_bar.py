"""The status bar: run progress, the device, the process's memory and the engine's cache."""
from __future__ import annotations

import sys

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


class StatusBar(QStatusBar):
    def __init__(self, engine: Engine, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.engine = engine
        self.progress = QProgressBar()
        self.progress.setMaximumWidth(220)
        self.progress.setMaximumHeight(16)
        self.progress.setVisible(False)
        self.device_label = QLabel()
        self.memory_label = QLabel()
        self.cache_label = QLabel()
        self.queue_label = QLabel()
        self.queue_label.setVisible(False)
        for widget in (self.queue_label, self.progress, self.device_label, self.memory_label, self.cache_label):
            self.addPermanentWidget(widget)

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
