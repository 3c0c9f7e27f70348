"""Node help in the editor (issue 31): quick-add says what the highlighted node does, and hovering a
node's title, a param's editor or a port shows its description from the node's declaration."""
from __future__ import annotations

from PySide6.QtCore import QEvent, Qt
from PySide6.QtGui import QHelpEvent
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication, QToolTip


def _hover_tooltip(qtbot, view, scene_point) -> str:
    """What Qt shows when the mouse rests at `scene_point` (the help event a real hover sends)."""
    QToolTip.hideText()
    pos = view.mapFromScene(scene_point)
    QTest.mouseMove(view.viewport(), pos)
    event = QHelpEvent(QEvent.Type.ToolTip, pos, view.viewport().mapToGlobal(pos))
    QApplication.sendEvent(view.viewport(), event)
    qtbot.waitUntil(QToolTip.isVisible, timeout=2000)
    return QToolTip.text()


def test_quick_add_shows_what_the_highlighted_node_does(studio, qtbot):
    studio.view.setFocus()
    QTest.keyClick(studio.view, Qt.Key.Key_Tab)
    popup = studio.search
    assert popup.isVisible()
    QTest.keyClicks(popup.edit, "unet denoise")
    spec = studio.engine.registry["UNetDenoise"]
    assert popup.results()[0] == "UNetDenoise"
    assert spec.description in popup.help.text() and "positive (CONDITIONING)" in popup.help.text()
    QTest.keyClicks(popup.edit, "zzz")
    assert popup.help.text() == "No node type matches."
    popup.hide()


def test_hovering_the_title_a_param_and_a_port_shows_their_descriptions(studio, qtbot):
    nid = studio.controller.add_node("UNetDenoise", (0, 0))
    studio.view.set_zoom(1.0)
    item = studio.scene.nodes[nid]
    studio.view.centerOn(item)
    spec = studio.engine.registry["UNetDenoise"]
    title = _hover_tooltip(qtbot, studio.view, item.mapToScene(60, 10))
    assert title.startswith("UNet Denoise: UNetDenoise") and spec.description in title
    port = item.inputs["positive"]
    assert _hover_tooltip(qtbot, studio.view, port.scenePos()) == \
        f"positive: CONDITIONING\n{spec.input('positive').description}"
    editor = item.panel.editors["steps"]
    assert editor.toolTip() == f"steps (whole number 1 to 1000, default 20)\n{spec.param('steps').description}"
    out = item.outputs["latent"]
    assert spec.output("latent").description in _hover_tooltip(qtbot, studio.view, out.scenePos())
