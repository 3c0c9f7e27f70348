"""Keys typed into a node's text fields belong to the field, not to the canvas shortcuts."""
from __future__ import annotations

from PySide6.QtCore import QEvent, QPoint, QPointF, Qt
from PySide6.QtGui import QMouseEvent
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication

from tests.ui.helpers import add


def mouse_drag(widget, start: QPoint, end: QPoint, steps: int = 4) -> None:
    """Press, move with the button held (QTest.mouseMove cannot hold a button), release."""
    QTest.mousePress(widget, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, start)
    for i in range(1, steps + 1):
        p = QPointF(start + (end - start) * (i / steps))
        QApplication.sendEvent(widget, QMouseEvent(QEvent.Type.MouseMove, p, widget.mapToGlobal(p),
                                                   Qt.MouseButton.NoButton, Qt.MouseButton.LeftButton,
                                                   Qt.KeyboardModifier.NoModifier))
    QTest.mouseRelease(widget, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, end)


def test_typing_in_a_prompt_does_not_trigger_canvas_shortcuts(window, qtbot):
    window.show()
    qtbot.waitExposed(window)
    nid = add(window, "Prompt", 0, 0)
    window.view.centerOn(window.scene.nodes[nid])
    edit = window.scene.nodes[nid].panel.editors["text"].edit
    proxy = window.scene.nodes[nid].proxy
    window.view.setFocus()
    window.scene.setFocusItem(proxy)
    edit.setFocus()
    zoom = window.view.zoom()
    QTest.keyClicks(window.view, "fat cat")
    QTest.keyClick(window.view, Qt.Key.Key_Backspace)
    QTest.keyClick(window.view, Qt.Key.Key_Delete)
    assert window.model.nodes[nid].params["text"] == "fat ca"
    assert nid in window.model.nodes            # Delete/Backspace did not delete the node
    assert window.view.zoom() == zoom          # "f" did not fit the view


def test_real_mouse_drag_from_port_to_port_connects(window, qtbot):
    window.show()
    qtbot.waitExposed(window)
    a = add(window, "SolidImage", 0, 0)
    b = add(window, "Invert", 400, 0)
    view = window.view
    view.centerOn(350, 60)
    start = view.mapFromScene(window.scene.nodes[a].outputs["image"].scenePos())
    end = view.mapFromScene(window.scene.nodes[b].inputs["image"].scenePos())
    mouse_drag(view.viewport(), start, end)
    assert window.model.nodes[b].inputs == {"image": (a, "image")}


def test_real_mouse_drag_of_a_node_moves_it_in_one_undo_step(window, qtbot):
    window.show()
    qtbot.waitExposed(window)
    a = add(window, "Invert", 0, 0)
    view = window.view
    view.centerOn(100, 50)
    vp = view.viewport()
    start = view.mapFromScene(60, 12)             # on the title bar
    end = start + QPoint(80, 40)
    count = window.stack.count()
    mouse_drag(vp, start, end)
    x, y = window.model.position(a)
    assert abs(x - 80 / view.zoom()) < 2 and abs(y - 40 / view.zoom()) < 2
    assert window.stack.count() == count + 1


def test_a_node_can_be_dragged_by_a_param_label(window, qtbot):
    window.show()
    qtbot.waitExposed(window)
    a = add(window, "SolidImage", 0, 0)
    item = window.scene.nodes[a]
    view = window.view
    view.set_zoom(1.0)
    view.centerOn(130, 80)
    item.ensure_panel()
    label_y = item.proxy.pos().y() + 12          # the "color" label, left column
    start = view.mapFromScene(item.pos() + QPointF(20, label_y))
    mouse_drag(view.viewport(), start, start + QPoint(60, 30))
    x, y = window.model.position(a)
    assert abs(x - 60) < 2 and abs(y - 30) < 2


def test_dragging_the_corner_grip_resizes_a_node_in_one_undo_step(window, qtbot):
    window.show()
    qtbot.waitExposed(window)
    a = add(window, "Mix", 0, 0)
    item = window.scene.nodes[a]
    view = window.view
    view.set_zoom(1.0)
    view.centerOn(item.width, item.height)
    start = view.mapFromScene(item.pos() + QPointF(item.width - 4, item.height - 4))
    count = window.stack.count()
    old_width = item.width
    mouse_drag(view.viewport(), start, start + QPoint(100, 0))
    assert abs(item.width - (old_width + 100)) < 2
    assert item.panel.width() == int(item.width)
    assert item.outputs["image"].pos().x() == item.width
    assert window.model.size(a)[0] == round(item.width, 1)
    assert window.stack.count() == count + 1
    assert window.model.position(a) == (0, 0)      # resizing did not move it
    window.stack.undo()
    assert item.width == old_width and window.model.size(a) is None


def test_clipboard_and_select_all_keys_in_a_text_field_act_on_the_text(window, qtbot):
    from PySide6.QtGui import QGuiApplication

    window.show()
    qtbot.waitExposed(window)
    nid = add(window, "Prompt", 0, 0)
    window.view.centerOn(window.scene.nodes[nid])
    edit = window.scene.nodes[nid].panel.editors["text"].edit
    window.view.setFocus()
    window.scene.setFocusItem(window.scene.nodes[nid].proxy)
    edit.setFocus()
    QTest.keyClicks(window.view, "red fox")
    QTest.keyClick(window.view, Qt.Key.Key_A, Qt.KeyboardModifier.ControlModifier)
    QTest.keyClick(window.view, Qt.Key.Key_C, Qt.KeyboardModifier.ControlModifier)
    assert QGuiApplication.clipboard().text() == "red fox"
    assert window.scene.selected_node_ids() == []          # Ctrl+A selected text, not nodes
    QTest.keyClick(window.view, Qt.Key.Key_End)
    QTest.keyClick(window.view, Qt.Key.Key_V, Qt.KeyboardModifier.ControlModifier)
    assert window.model.nodes[nid].params["text"] == "red foxred fox"
    assert len(window.model.nodes) == 1                     # Ctrl+V pasted text, not nodes


def test_the_wheel_zooms_at_the_cursor_and_middle_drag_pans(window, qtbot):
    from PySide6.QtGui import QWheelEvent

    window.show()
    qtbot.waitExposed(window)
    add(window, "SolidImage", 0, 0)
    view = window.view
    vp = view.viewport()
    at = QPointF(300, 200)
    before = view.mapToScene(at.toPoint())
    wheel = QWheelEvent(at, vp.mapToGlobal(at), QPoint(0, 0), QPoint(0, 240), Qt.MouseButton.NoButton,
                        Qt.KeyboardModifier.NoModifier, Qt.ScrollPhase.NoScrollPhase, False)
    QApplication.sendEvent(vp, wheel)
    assert abs(view.zoom() - 1.1 ** 2) < 1e-3   # two notches, 10% each
    after = view.mapToScene(at.toPoint())
    assert abs(after.x() - before.x()) < 2 and abs(after.y() - before.y()) < 2
    center = view.center()
    QTest.mousePress(vp, Qt.MouseButton.MiddleButton, Qt.KeyboardModifier.NoModifier, QPoint(400, 300))
    QApplication.sendEvent(vp, QMouseEvent(QEvent.Type.MouseMove, QPointF(300, 250), vp.mapToGlobal(QPointF(300, 250)),
                                           Qt.MouseButton.NoButton, Qt.MouseButton.MiddleButton,
                                           Qt.KeyboardModifier.NoModifier))
    QTest.mouseRelease(vp, Qt.MouseButton.MiddleButton, Qt.KeyboardModifier.NoModifier, QPoint(300, 250))
    moved = view.center() - center
    assert moved.x() > 50 and moved.y() > 20
    assert window.stack.count() == 1           # panning and zooming are not edits


def test_box_select_and_space_drag(window, qtbot):
    window.show()
    qtbot.waitExposed(window)
    a = add(window, "Invert", 0, 0)
    b = add(window, "Invert", 400, 0)
    view = window.view
    view.set_zoom(1.0)
    view.centerOn(300, 60)
    vp = view.viewport()
    # A rubber band from empty canvas around the first node only.
    start = view.mapFromScene(-30, -30)
    end = view.mapFromScene(window.scene.nodes[a].width + 20, window.scene.nodes[a].height + 20)
    mouse_drag(vp, start, end)
    assert window.scene.selected_node_ids() == [a]
    assert window.model.position(a) == (0, 0)
    # Space held: a left drag pans instead of selecting or moving.
    center = view.center()
    QTest.keyPress(view, Qt.Key.Key_Space)
    mouse_drag(vp, view.mapFromScene(420, 10), view.mapFromScene(420, 10) + QPoint(-100, 0))
    QTest.keyRelease(view, Qt.Key.Key_Space)
    assert view.center().x() - center.x() > 80
    assert window.model.position(b) == (400, 0)


def test_dragging_a_group_by_its_title_moves_its_nodes_in_one_step(window, qtbot):
    window.show()
    qtbot.waitExposed(window)
    a = add(window, "Invert", 0, 0)
    outside = add(window, "Invert", 0, 600)
    window.scene.select_nodes([a])
    window.edits.group_selection()
    view = window.view
    view.set_zoom(1.0)
    view.centerOn(150, 100)
    x, y, w, h = window.model.groups[0]["bounding"]
    start = view.mapFromScene(x + 60, y + 12)              # the group's title bar
    count = window.stack.count()
    mouse_drag(view.viewport(), start, start + QPoint(50, 40))
    assert window.model.position(a) == (50, 40)
    assert window.model.position(outside) == (0, 600)
    assert window.model.groups[0]["bounding"][:2] == [x + 50, y + 40]
    assert window.stack.count() == count + 1
    # Resize from the corner grip.
    corner = view.mapFromScene(x + 50 + w - 3, y + 40 + h - 3)
    mouse_drag(view.viewport(), corner, corner + QPoint(100, 0))
    assert abs(window.model.groups[0]["bounding"][2] - (w + 100)) < 2
    window.stack.undo()
    window.stack.undo()
    assert window.model.position(a) == (0, 0) and window.model.groups[0]["bounding"] == [x, y, w, h]


def test_tab_opens_the_search_even_when_nodes_have_focusable_widgets(window, qtbot):
    # QGraphicsView gives Tab to the scene, which would move focus into a node's editors.
    window.show()
    qtbot.waitExposed(window)
    nid = add(window, "Prompt", 0, 0)
    window.scene.nodes[nid].ensure_panel()
    window.view.set_zoom(1.0)
    window.view.setFocus()
    QTest.keyClick(window.view, Qt.Key.Key_Tab)
    assert window.search.isVisible()
    window.search.hide()


def test_delete_acts_on_the_canvas_once_the_search_popup_is_hidden(window, qtbot):
    """A hidden popup can keep the application's focus (it did on the offscreen platform, into the
    next test's window): a widget nobody sees is no panel being typed in, so Delete deletes."""
    window.show()
    qtbot.waitExposed(window)
    nid = add(window, "Prompt", 0, 0)
    window.view.setFocus()
    QTest.keyClick(window.view, Qt.Key.Key_Tab)
    assert window.search.isVisible()
    window.search.hide()
    window.scene.select_nodes([nid])
    window.delete_selection()
    assert nid not in window.model.nodes
