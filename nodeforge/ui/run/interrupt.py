"""Ctrl+C in the terminal that started the editor: cancel the run, then close as the window's
close does (asking only about a modified graph).

Qt's event loop runs in C++, where Python never sees a signal until some Python code runs. The
C-level handler Python installs writes the signal's number to a wakeup socket
(`signal.set_wakeup_fd`); a QSocketNotifier on the other end turns that into a Qt event, so the
interrupt is handled at once and on the UI thread, even inside a dialog's nested loop.
"""
from __future__ import annotations

import signal
import socket
import sys
from typing import Any, Callable

from PySide6.QtCore import QObject, QSocketNotifier, Signal
from PySide6.QtWidgets import QApplication


class TerminalInterrupt(QObject):
    """Owns SIGINT while the editor runs; `uninstall()` gives it back as it was."""

    interrupted = Signal(int)      # how many Ctrl+C so far (1: closing, 2: quit now)

    def __init__(self, app: QApplication, windows: Callable[[], list[Any]], *,
                 out: Any = None) -> None:
        super().__init__(app)
        self.app = app
        self.windows = windows
        self.out = out if out is not None else sys.stderr
        self.count = 0
        self._read, self._write = socket.socketpair()
        self._read.setblocking(False)
        self._write.setblocking(False)
        self._old_fd = signal.set_wakeup_fd(self._write.fileno(), warn_on_full_buffer=False)
        # A Python-level handler must exist for the C handler (and so the wakeup write) to be
        # installed; the work is done from the notifier, never inside the handler.
        self._old_handler = signal.signal(signal.SIGINT, _ignore)
        self._notifier = QSocketNotifier(self._read.fileno(), QSocketNotifier.Type.Read, self)
        self._notifier.activated.connect(self._drain)

    def uninstall(self) -> None:
        self._notifier.setEnabled(False)
        signal.set_wakeup_fd(self._old_fd)
        signal.signal(signal.SIGINT, self._old_handler)
        self._read.close()
        self._write.close()

    def _drain(self, *_: Any) -> None:
        try:
            data = self._read.recv(512)
        except (BlockingIOError, InterruptedError):
            return
        for _ in range(data.count(bytes([signal.SIGINT]))):
            self.interrupt()

    def interrupt(self) -> None:
        """What Ctrl+C does: the first cancels every run and closes the windows as their close
        does; one more while a window still asks about unsaved changes quits at once, keeping
        the unsaved graph as the recovery copy offered at the next start."""
        self.count += 1
        self.interrupted.emit(self.count)
        windows = list(self.windows())
        if self.count == 1:
            self._say("interrupted: cancelling the run and closing NodeForge"
                      + (" (the window asks about unsaved changes; Ctrl+C again quits, keeping them "
                         "for recovery)" if any(w.document.is_modified() for w in windows) else ""))
            for win in windows:
                win.runner.cancel()
            for win in windows:
                if not win.close():
                    self.count = 0     # the user kept the window: the next Ctrl+C starts over
                    return
            return
        self._say("interrupted again: quitting; unsaved graphs are kept for recovery at the next start")
        for win in windows:
            win.runner.cancel()
            if win.document.is_modified():
                win.document.autosave()
            win.document.autosave_timer.stop()
            win.runner.wait(5)
        self.app.exit(130)

    def _say(self, text: str) -> None:
        try:
            # The terminal's ^C echo is on the current line: start a new one.
            print(f"\n{text}", file=self.out, flush=True)
        except (OSError, ValueError):
            pass


def _ignore(*_: Any) -> None:
    pass
