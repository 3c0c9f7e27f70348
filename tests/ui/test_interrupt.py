"""Ctrl+C in the terminal that started the editor (issue 18.10): the run is cancelled first, then
the window closes as its own close does, asking only about a modified graph."""
from __future__ import annotations

import io
import json
import os
import signal

import pytest
from PySide6.QtWidgets import QApplication, QMessageBox

from nodeforge.ui.run.interrupt import TerminalInterrupt
from tests.ui.helpers import add

TIMEOUT = 30_000


@pytest.fixture
def interrupt(window):
    out = io.StringIO()
    handler = TerminalInterrupt(QApplication.instance(), lambda: [w for w in [window] if w.isVisible()], out=out)
    handler.out_text = out
    yield handler
    handler.uninstall()


def held_run(win, qtbot):
    """A run held inside the Slow node (the gate is closed), as a long denoise would be."""
    ids = [add(win, t, 300 * i, 0) for i, t in enumerate(("SolidImage", "Slow", "PreviewOut"))]
    for a, b in zip(ids, ids[1:]):
        win.controller.connect(a, "image", b, "image")
    win.controller.set_param(ids[1], "hold", True)
    with qtbot.waitSignal(win.runner.nodeProgress, timeout=TIMEOUT):
        win.run()
    return ids


def press_ctrl_c() -> None:
    os.kill(os.getpid(), signal.SIGINT)


def test_ctrl_c_cancels_the_run_before_asking_about_the_modified_graph(window, qtbot, gate, interrupt,
                                                                      monkeypatch):
    window.confirm_close = True
    window.show()
    held_run(window, qtbot)
    order = []
    real_cancel = window.engine.cancel
    monkeypatch.setattr(window.engine, "cancel", lambda: (order.append("cancel"), real_cancel()))

    def question(*_args, **_kw):
        order.append("ask")
        return QMessageBox.StandardButton.Discard

    monkeypatch.setattr(QMessageBox, "question", question)
    press_ctrl_c()
    qtbot.waitUntil(lambda: not window.isVisible(), timeout=TIMEOUT)
    assert order[:2] == ["cancel", "ask"]      # never a save prompt with the run going on behind it
    qtbot.waitUntil(lambda: not window.runner.running, timeout=TIMEOUT)
    text = interrupt.out_text.getvalue()
    assert text.startswith("\ninterrupted: cancelling the run")   # on its own line, after the ^C echo
    assert "unsaved changes" in text


def test_ctrl_c_closes_an_unmodified_graph_without_asking(window, qtbot, interrupt, monkeypatch, tmp_path):
    path = tmp_path / "g.json"
    add(window, "SolidImage")
    assert window.save_to(path)
    window.confirm_close = True
    window.show()
    monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: pytest.fail("asked about an unmodified graph"))
    press_ctrl_c()
    qtbot.waitUntil(lambda: not window.isVisible(), timeout=TIMEOUT)
    assert "unsaved" not in interrupt.out_text.getvalue()


def test_keeping_the_window_at_the_prompt_keeps_the_editor_and_the_next_ctrl_c_asks_again(
        window, qtbot, gate, interrupt, monkeypatch):
    window.confirm_close = True
    window.show()
    held_run(window, qtbot)
    asked = []
    monkeypatch.setattr(QMessageBox, "question",
                        lambda *a, **k: asked.append(1) or QMessageBox.StandardButton.Cancel)
    press_ctrl_c()
    qtbot.waitUntil(lambda: len(asked) == 1, timeout=TIMEOUT)
    qtbot.waitUntil(lambda: not window.runner.running, timeout=TIMEOUT)   # the run was cancelled anyway
    assert window.isVisible() and interrupt.count == 0
    monkeypatch.setattr(QMessageBox, "question",
                        lambda *a, **k: asked.append(2) or QMessageBox.StandardButton.Discard)
    press_ctrl_c()
    qtbot.waitUntil(lambda: not window.isVisible(), timeout=TIMEOUT)
    assert asked == [1, 2]


def test_a_second_ctrl_c_at_the_prompt_quits_keeping_the_graph_for_recovery(window, qtbot, interrupt,
                                                                            monkeypatch):
    nid = add(window, "SolidImage")
    window.controller.set_param(nid, "color", "green")
    window.confirm_close = True
    window.show()
    exits = []
    monkeypatch.setattr(interrupt, "app", type("App", (), {"exit": staticmethod(exits.append)})())

    def question(*_args, **_kw):
        press_ctrl_c()                                   # pressed again while the prompt shows
        qtbot.waitUntil(lambda: exits == [130], timeout=TIMEOUT)
        return QMessageBox.StandardButton.Cancel         # what an exited dialog loop gives back

    monkeypatch.setattr(QMessageBox, "question", question)
    press_ctrl_c()
    qtbot.waitUntil(lambda: exits == [130], timeout=TIMEOUT)
    saved = json.loads(window.autosaver.path.read_text(encoding="utf-8"))
    assert saved["nodes"][nid]["params"]["color"] == "green"
    assert "kept for recovery" in interrupt.out_text.getvalue()


def test_sigint_to_the_editor_process_closes_it(tmp_path):
    """The real `nodeforge` main loop: SIGINT reaches it while Qt waits for events."""
    import selectors
    import subprocess
    import sys

    script = ("import nodeforge.ui.app as app\n"
              "class Ready(app.TerminalInterrupt):\n"
              "    def __init__(self, *a, **k):\n"
              "        super().__init__(*a, **k)\n"
              "        print('ready', flush=True)\n"
              "app.TerminalInterrupt = Ready\n"
              "raise SystemExit(app.main())\n")
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "NODEFORGE_HOME": str(tmp_path / "home"),
           "XDG_CONFIG_HOME": str(tmp_path / "config"), "NODEFORGE_OUTPUT": str(tmp_path / "out")}
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=env, text=True)
    try:
        sel = selectors.DefaultSelector()
        sel.register(proc.stdout, selectors.EVENT_READ)
        assert sel.select(timeout=120), "the editor did not start"
        assert proc.stdout.readline().strip() == "ready"
        proc.send_signal(signal.SIGINT)
        _out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "interrupted: cancelling the run and closing NodeForge" in err
