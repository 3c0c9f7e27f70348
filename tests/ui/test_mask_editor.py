"""The mask editor (issue 31): paint and erase a mask on a Load Image node's picture with real
mouse events; brush size, feather, invert, clear and undo; OK stores it in the workflow as one undo
step, the node shows it, and it survives saving and opening the file."""
from __future__ import annotations

import pytest
from PySide6.QtCore import QEvent, QPointF, Qt
from PySide6.QtGui import QColor, QImage, QMouseEvent
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication

from nodeforge.core import painted_mask
from nodeforge.ui.dialogs.mask_editor import MaskEditorDialog


@pytest.fixture
def picture(tmp_path):
    image = QImage(64, 48, QImage.Format.Format_RGB32)
    image.fill(QColor(40, 90, 200))
    path = tmp_path / "photo.png"
    assert image.save(str(path))
    return path


@pytest.fixture
def editor(studio, qtbot, picture):
    nid = studio.controller.add_node("LoadImage", (0, 0))
    studio.controller.set_param(nid, "path", str(picture))
    button = studio.scene.nodes[nid].panel.editors["mask"].button
    qtbot.mouseClick(button, Qt.MouseButton.LeftButton)
    dialog = studio.findChild(MaskEditorDialog)
    assert dialog is not None and dialog.isVisible()
    qtbot.waitExposed(dialog)
    return nid, dialog


def _alpha(dialog, x, y) -> int:
    return dialog.canvas.mask.pixelColor(x, y).alpha()


def _stroke(canvas, points, button=Qt.MouseButton.LeftButton) -> None:
    """Press at the first point, move with the button held through the rest, release (picture pixels)."""
    at = [canvas.to_widget(QPointF(*p)).toPoint() for p in points]
    QTest.mousePress(canvas, button, Qt.KeyboardModifier.NoModifier, at[0])
    for p in at[1:]:
        QApplication.sendEvent(canvas, QMouseEvent(QEvent.Type.MouseMove, QPointF(p), canvas.mapToGlobal(QPointF(p)),
                                                   Qt.MouseButton.NoButton, button, Qt.KeyboardModifier.NoModifier))
    QTest.mouseRelease(canvas, button, Qt.KeyboardModifier.NoModifier, at[-1])


def test_dragging_paints_a_line_the_brush_wide_and_the_right_button_erases(editor):
    nid, dialog = editor
    dialog.feather_slider.setValue(0)
    dialog.size_spin.setValue(8)
    _stroke(dialog.canvas, [(8, 24), (30, 24), (56, 24)])
    assert all(_alpha(dialog, x, 24) == 255 for x in range(10, 55))
    assert _alpha(dialog, 30, 21) == 255 and _alpha(dialog, 30, 30) == 0 and _alpha(dialog, 30, 5) == 0
    _stroke(dialog.canvas, [(30, 24)], Qt.MouseButton.RightButton)
    assert _alpha(dialog, 30, 24) == 0 and _alpha(dialog, 12, 24) == 255
    assert "to repaint" in dialog.status.text()


def test_erase_mode_and_a_bigger_brush(editor, qtbot):
    nid, dialog = editor
    dialog.feather_slider.setValue(0)
    dialog.size_spin.setValue(30)
    _stroke(dialog.canvas, [(32, 24)])
    assert _alpha(dialog, 32 + 13, 24) == 255 and _alpha(dialog, 32 + 17, 24) == 0
    qtbot.mouseClick(dialog.erase_button, Qt.MouseButton.LeftButton)
    dialog.size_spin.setValue(6)
    _stroke(dialog.canvas, [(32, 24)])
    assert _alpha(dialog, 32, 24) == 0 and _alpha(dialog, 32 + 10, 24) == 255


def test_feather_fades_the_brush_edge(editor):
    nid, dialog = editor
    dialog.size_spin.setValue(30)
    dialog.feather_slider.setValue(100)
    _stroke(dialog.canvas, [(32, 24)])
    centre, middle, rim = _alpha(dialog, 32, 24), _alpha(dialog, 32 + 8, 24), _alpha(dialog, 32 + 14, 24)
    assert centre > 230 and 40 < middle < 220 and rim < 40


def test_invert_clear_and_undo(editor, qtbot):
    nid, dialog = editor
    dialog.feather_slider.setValue(0)
    dialog.size_spin.setValue(10)
    _stroke(dialog.canvas, [(10, 10)])
    qtbot.mouseClick(dialog.invert_button, Qt.MouseButton.LeftButton)
    assert _alpha(dialog, 10, 10) == 0 and _alpha(dialog, 50, 40) == 255
    qtbot.mouseClick(dialog.clear_button, Qt.MouseButton.LeftButton)
    assert _alpha(dialog, 50, 40) == 0 and dialog.value() == ""
    qtbot.mouseClick(dialog.undo_button, Qt.MouseButton.LeftButton)
    assert _alpha(dialog, 50, 40) == 255
    QTest.keyClick(dialog, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert _alpha(dialog, 10, 10) == 255 and _alpha(dialog, 50, 40) == 0


def test_ok_stores_the_mask_in_the_workflow_as_one_undo_step_and_it_survives_a_save(editor, studio, tmp_path):
    nid, dialog = editor
    dialog.feather_slider.setValue(0)
    dialog.size_spin.setValue(12)
    _stroke(dialog.canvas, [(20, 20), (40, 20)])
    dialog.accept()
    value = studio.model.nodes[nid].params["mask"]
    grey = QImage.fromData(painted_mask.decode(value))
    assert (grey.width(), grey.height()) == (64, 48)
    assert QColor(grey.pixel(30, 20)).red() == 255 and QColor(grey.pixel(30, 40)).red() == 0
    editor_widget = studio.scene.nodes[nid].panel.editors["mask"]
    assert editor_widget.state.text().startswith("painted (")
    shown = studio.scene.nodes[nid].images[0]       # the node's picture shows the mask in red
    assert shown.pixelColor(30, 20).red() > shown.pixelColor(30, 40).red() + 60
    assert studio.save_to(tmp_path / "masked.json")
    studio.stack.undo()
    assert studio.model.nodes[nid].params.get("mask", "") == ""
    assert studio.open_path(tmp_path / "masked.json")
    (loaded,) = [n for n in studio.model.nodes.values() if n.type == "LoadImage"]
    assert loaded.params["mask"] == value


def test_edit_mask_without_a_picture_says_what_to_do(studio):
    nid = studio.controller.add_node("LoadImage", (0, 0))
    assert studio.edit_mask(nid, "mask") is None
    assert studio.last_error == "Load Image: choose a picture first; the mask is painted on the picture."


def test_an_unpainted_picture_with_transparency_starts_from_the_mask_the_node_gives_now(studio, qtbot, tmp_path):
    image = QImage(32, 32, QImage.Format.Format_ARGB32)
    image.fill(QColor(200, 200, 200, 255))
    for y in range(32):
        for x in range(16, 32):
            image.setPixelColor(x, y, QColor(0, 0, 0, 0))      # the right half transparent: repaint
    image.save(str(tmp_path / "half.png"))
    nid = studio.controller.add_node("LoadImage", (0, 0))
    studio.controller.set_param(nid, "path", str(tmp_path / "half.png"))
    dialog = studio.edit_mask(nid, "mask")
    qtbot.waitExposed(dialog)
    assert _alpha(dialog, 24, 10) == 255 and _alpha(dialog, 8, 10) == 0
    assert "50% to repaint" in dialog.status.text()
    dialog.reject()
    assert studio.model.nodes[nid].params.get("mask", "") == ""      # Cancel changes nothing


def test_the_node_menu_offers_edit_mask(studio, qtbot, picture):
    from nodeforge.ui.actions import context_menu

    nid = studio.controller.add_node("LoadImage", (0, 0))
    studio.controller.set_param(nid, "path", str(picture))
    item = studio.scene.nodes[nid]
    menu = context_menu(studio, studio.acts, item, item.mapToScene(10, 5))
    action = next(a for a in menu.actions() if a.objectName() == "editMask")
    action.trigger()
    dialog = studio.findChild(MaskEditorDialog)
    assert dialog is not None and dialog.isVisible() and dialog.canvas.picture.width() == 64
    dialog.reject()
    other = studio.controller.add_node("SaveImage", (300, 0))
    menu = context_menu(studio, studio.acts, studio.scene.nodes[other], studio.scene.nodes[other].mapToScene(10, 5))
    assert not any(a.objectName() == "editMask" for a in menu.actions())
