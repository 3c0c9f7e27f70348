"""Keyboard focus in a real, active window (offscreen Qt cannot activate windows).

    xvfb-run -s "-screen 0 1600x1000x24" python tests/ui/xvfb_focus_check.py

Checks that typing in a prompt stays in the prompt (F, Backspace, Delete, Ctrl+A, Ctrl+C) and
that Tab opens the node search once a click on the canvas ends the typing.
"""
import sys, os
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
os.environ["NODEFORGE_HOME"] = "/tmp/nfh2"
from pathlib import Path
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication
from nodeforge.ui.app import make_app
from nodeforge.ui.main_window import MainWindow
from nodeforge.core.registry import load_registry
from nodeforge.core.engine import Engine
app = make_app(['x'])
reg = load_registry(builtin=False, node_path=[Path(__file__).parent / 'packs'], entry_points=False)


def open_window(settle=30):
    """A shown, active editor window on the test packs."""
    w = MainWindow(Engine(device='cpu', registry=reg)); w.confirm_close = False; w.resize(1200, 800)
    w.show(); w.activateWindow()
    for _ in range(settle): app.processEvents(); QTest.qWait(10)
    return w


def click_into_new_prompt(w):
    """Add a Prompt node at 100% zoom and click into its text field: (node id, view, text edit)."""
    nid = w.controller.add_node("Prompt", (0, 0))
    view = w.view; view.set_zoom(1.0); view.centerOn(w.scene.nodes[nid])
    item = w.scene.nodes[nid]; item.ensure_panel()
    for _ in range(10): app.processEvents()
    edit = item.panel.editors["text"].edit
    pos = view.mapFromScene(item.proxy.scenePos() + edit.geometry().center().toPointF())
    QTest.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, pos)
    return nid, view, edit


win = open_window(settle=50)
nid, view, edit = click_into_new_prompt(win)
assert win.isActiveWindow() and edit.hasFocus(), "the window did not activate (is this a real display?)"
QTest.keyClicks(view, "abc f")
assert win.model.nodes[nid].params.get("text") == "abc f" and view.zoom() == 1.0, "typing reached the canvas"
QTest.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, view.mapFromScene(-400, -300))
assert not edit.hasFocus()
QTest.keyClick(view, Qt.Key.Key_Tab)
assert win.search.isVisible(), "Tab did not open the search"
win.close()
# second round in a fresh window: keys inside a field
win2 = open_window()
nid, v, _ = click_into_new_prompt(win2)
QTest.keyClicks(v, "cat dog")
QTest.keyClick(v, Qt.Key.Key_Backspace)
QTest.keyClick(v, Qt.Key.Key_Delete)
QTest.keyClick(v, Qt.Key.Key_A, Qt.KeyboardModifier.ControlModifier)
QTest.keyClick(v, Qt.Key.Key_C, Qt.KeyboardModifier.ControlModifier)
assert win2.model.nodes[nid].params.get("text") == "cat do", "Backspace/Delete did not edit the text"
assert QApplication.clipboard().text() == "cat do" and win2.scene.selected_node_ids() == []
QTest.keyClick(v, Qt.Key.Key_Escape)
assert nid in win2.model.nodes
win2.close()

# Third: drop a wire on the canvas, pick a node in the popup by typing, Enter connects it.
from PySide6.QtCore import QEvent, QPointF
from PySide6.QtGui import QMouseEvent
win3 = open_window()
src = win3.controller.add_node("SolidImage", (0, 0))
v = win3.view; v.set_zoom(1.0); v.centerOn(300, 100)
for _ in range(10): app.processEvents()
vp = v.viewport()
start = v.mapFromScene(win3.scene.nodes[src].outputs["image"].scenePos())
end = v.mapFromScene(500, 150)
QTest.mousePress(vp, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, start)
for t in (0.5, 1.0):
    p = QPointF(start + (end - start) * t)
    QApplication.sendEvent(vp, QMouseEvent(QEvent.Type.MouseMove, p, vp.mapToGlobal(p), Qt.MouseButton.NoButton,
                                           Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier))
QTest.mouseRelease(vp, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, end)
for _ in range(10): app.processEvents(); QTest.qWait(10)
assert win3.search.isVisible() and win3.search.edit.hasFocus(), "the search did not open with the keyboard in it"
QTest.keyClicks(win3.search.edit, "tomask")
QTest.keyClick(win3.search.edit, Qt.Key.Key_Return)
new = [n for n, node in win3.model.nodes.items() if node.type == "ToMask"]
assert new and win3.model.nodes[new[0]].inputs == {"image": (src, "image")}, "the new node is not connected"
win3.close()
print("real-window focus checks passed")
