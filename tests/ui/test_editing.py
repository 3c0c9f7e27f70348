"""Editing the graph: every edit goes through the undo stack and the canvas follows the model."""
from __future__ import annotations

import json

from PySide6.QtCore import QPointF
from PySide6.QtGui import QGuiApplication

from nodeforge.core.workflow import FORMAT_VERSION
from nodeforge.ui.canvas.search import search
from tests.ui.helpers import add


def test_adding_a_node_draws_it_and_undo_removes_it(window):
    nid = add(window, "SolidImage", 10, 20)
    item = window.scene.nodes[nid]
    assert item.pos() == QPointF(10, 20)
    assert set(item.panel.editors) == {"color", "width", "height"}
    assert window.model.nodes[nid].params == {"color": "red", "width": 32, "height": 32}
    window.stack.undo()
    assert nid not in window.model.nodes and nid not in window.scene.nodes
    window.stack.redo()
    assert nid in window.scene.nodes


def test_connecting_compatible_ports_draws_a_wire_coloured_by_type(window):
    a = add(window, "SolidImage")
    b = add(window, "Invert", 300)
    assert window.controller.connect(a, "image", b, "image")
    assert window.model.nodes[b].inputs == {"image": (a, "image")}
    edge = window.scene.edges[(b, "image")]
    assert edge.port_type == "IMAGE"
    assert window.scene.nodes[b].inputs["image"].connected
    assert window.scene.nodes[a].outputs["image"].connected


def test_incompatible_ports_refuse_to_connect(window):
    a = add(window, "SolidImage")
    m = add(window, "Mix", 300)
    count = window.stack.count()
    assert not window.controller.connect(a, "image", m, "mask")       # IMAGE into MASK
    assert "mask" not in window.model.nodes[m].inputs
    assert (m, "mask") not in window.scene.edges
    assert window.stack.count() == count


def test_a_connection_that_would_make_a_loop_is_refused(window):
    a = add(window, "Invert")
    b = add(window, "Invert", 300)
    assert window.controller.connect(a, "image", b, "image")
    assert not window.controller.connect(b, "image", a, "image")


def test_a_second_wire_into_an_input_replaces_the_first(window):
    a = add(window, "SolidImage")
    b = add(window, "SolidImage", 0, 200)
    c = add(window, "Invert", 300)
    window.controller.connect(a, "image", c, "image")
    window.controller.connect(b, "image", c, "image")
    assert window.model.nodes[c].inputs["image"] == (b, "image")
    assert len([k for k in window.scene.edges if k[0] == c]) == 1
    assert not window.scene.nodes[a].outputs["image"].connected
    window.stack.undo()
    assert window.model.nodes[c].inputs["image"] == (a, "image")


def test_deleting_a_node_removes_its_wires_and_undo_restores_everything(window):
    a = add(window, "SolidImage")
    b = add(window, "Invert", 300)
    c = add(window, "PreviewOut", 600)
    window.controller.connect(a, "image", b, "image")
    window.controller.connect(b, "image", c, "image")
    window.scene.select_nodes([b])
    window.delete_selection()
    assert b not in window.model.nodes
    assert window.model.nodes[c].inputs == {}
    assert window.scene.edges == {}
    window.stack.undo()
    assert window.model.nodes[b].inputs == {"image": (a, "image")}
    assert window.model.nodes[c].inputs == {"image": (b, "image")}
    assert set(window.scene.edges) == {(b, "image"), (c, "image")}


def test_moving_several_nodes_is_one_undo_step(window):
    a = add(window, "SolidImage")
    b = add(window, "Invert", 300)
    window.controller.connect(a, "image", b, "image")
    for nid in (a, b):
        item = window.scene.nodes[nid]
        item.setPos(item.pos() + QPointF(50, 70))
    edge_before = window.scene.edges[(b, "image")].path().elementAt(0)
    window.scene.commit_moves()
    assert window.model.position(a) == (50, 70) and window.model.position(b) == (350, 70)
    out_port = window.scene.nodes[a].outputs["image"].scenePos()
    assert (edge_before.x, edge_before.y) == (out_port.x(), out_port.y())   # the wire followed
    window.stack.undo()
    assert window.model.position(a) == (0, 0) and window.model.position(b) == (300, 0)
    assert window.scene.nodes[a].pos() == QPointF(0, 0)


def test_param_edits_in_widgets_are_undoable(window):
    nid = add(window, "SolidImage")
    editor = window.scene.nodes[nid].panel.editors["width"]
    editor.spin.setValue(64)
    assert window.model.nodes[nid].params["width"] == 64
    combo = window.scene.nodes[nid].panel.editors["color"].combo
    combo.setCurrentText("blue")
    assert window.model.nodes[nid].params["color"] == "blue"
    window.stack.undo()
    assert window.model.nodes[nid].params["color"] == "red"
    assert combo.currentText() == "red"
    window.stack.undo()
    assert window.model.nodes[nid].params["width"] == 32
    assert editor.spin.value() == 32


def test_a_slider_drag_is_one_undo_step(window):
    nid = add(window, "Mix")
    editor = window.scene.nodes[nid].panel.editors["strength"]
    count = window.stack.count()
    editor.slider.setSliderDown(True)          # press
    for pos in (600, 700, 800, 900):
        editor.slider.setValue(pos)
    editor.slider.setSliderDown(False)         # release
    assert window.model.nodes[nid].params["strength"] == 0.9
    assert editor.spin.value() == 0.9
    assert window.stack.count() == count + 1
    window.stack.undo()
    assert window.model.nodes[nid].params["strength"] == 0.5
    assert editor.slider.value() == 500
    # A second drag is a second step.
    editor.slider.setSliderDown(True)
    editor.slider.setValue(100)
    editor.slider.setSliderDown(False)
    editor.slider.setSliderDown(True)
    editor.slider.setValue(200)
    editor.slider.setSliderDown(False)
    assert window.stack.count() == count + 2


def test_typing_a_prompt_is_one_step_per_focus(window):
    nid = add(window, "Prompt")
    edit = window.scene.nodes[nid].panel.editors["text"].edit
    count = window.stack.count()
    for text in ("a", "a c", "a cat"):
        edit.setPlainText(text)
    assert window.model.nodes[nid].params["text"] == "a cat"
    assert window.stack.count() == count + 1


def test_rename_collapse_bypass_mute_are_undoable(window):
    nid = add(window, "Invert")
    item = window.scene.nodes[nid]
    full_height = item.height
    window.controller.set_title(nid, "flip")
    assert window.model.title(nid) == "flip" and window.model.nodes[nid].title == "flip"
    window.controller.toggle_flag([nid], "collapsed")
    assert item.collapsed and item.height < full_height
    window.controller.toggle_flag([nid], "bypassed")
    window.controller.toggle_flag([nid], "muted")
    assert window.model.workflow.ui["bypassed"] == [nid] and window.model.workflow.ui["muted"] == [nid]
    assert item.opacity() < 1
    for _ in range(4):
        window.stack.undo()
    assert window.model.nodes[nid].title is None
    assert not item.collapsed and item.height == full_height
    assert window.model.workflow.ui["bypassed"] == [] and item.opacity() == 1


def test_copy_puts_workflow_json_on_the_clipboard_and_paste_makes_new_nodes(window):
    a = add(window, "SolidImage")
    b = add(window, "Invert", 300)
    window.controller.connect(a, "image", b, "image")
    window.controller.set_title(b, "flip")
    window.scene.select_nodes([a, b])
    assert window.copy()
    data = json.loads(QGuiApplication.clipboard().text())
    assert data["nodeforge"] == FORMAT_VERSION and set(data["nodes"]) == {a, b}
    ids = window.paste()
    assert len(ids) == 2 and not set(ids) & {a, b}
    new_a, new_b = ids
    assert window.model.nodes[new_b].inputs == {"image": (new_a, "image")}
    assert window.model.nodes[new_b].title == "flip"
    assert sorted(window.scene.selected_node_ids()) == sorted(ids)
    window.stack.undo()
    assert set(window.model.nodes) == {a, b}


def test_paste_works_between_windows(window, engine, qtbot):
    from nodeforge.ui.main_window import MainWindow

    a = add(window, "SolidImage")
    window.controller.set_param(a, "color", "green")
    window.scene.select_nodes([a])
    window.copy()
    other = MainWindow(engine)
    other.confirm_close = False
    qtbot.addWidget(other)
    ids = other.paste()
    assert len(ids) == 1 and other.model.nodes[ids[0]].params["color"] == "green"
    other.autosaver.discard()


def test_cut_removes_and_paste_brings_back(window):
    a = add(window, "SolidImage")
    window.scene.select_nodes([a])
    window.cut()
    assert a not in window.model.nodes
    assert len(window.paste()) == 1


def test_duplicate_copies_params_and_internal_links(window):
    a = add(window, "SolidImage")
    b = add(window, "Invert", 300)
    window.controller.connect(a, "image", b, "image")
    window.controller.set_param(a, "width", 128)
    window.scene.select_nodes([a, b])
    new_a, new_b = window.edits.duplicate()
    assert window.model.nodes[new_a].params["width"] == 128
    assert window.model.nodes[new_b].inputs == {"image": (new_a, "image")}
    assert window.model.position(new_a) == (40, 40)


def test_align_left_and_top(window):
    a = add(window, "SolidImage", 10, 10)
    b = add(window, "Invert", 300, 200)
    window.scene.select_nodes([a, b])
    window.edits.align("left")
    assert window.model.position(b)[0] == 10
    window.edits.align("top")
    assert window.model.position(b)[1] == 10
    window.stack.undo()
    window.stack.undo()
    assert window.model.position(b) == (300, 200)


def test_group_frames_the_selection_and_dragging_it_moves_its_nodes(window):
    a = add(window, "SolidImage", 0, 0)
    outside = add(window, "SolidImage", 2000, 2000)
    window.scene.select_nodes([a])
    window.edits.group_selection()
    assert len(window.model.groups) == 1
    group = window.scene.group_items[0]
    members = window.scene.items_in_group(group)
    assert [m.node_id for m in members] == [a]
    # Drag the title bar by (100, 50): what the group item does on mouse move, then release.
    group.setPos(group.pos() + QPointF(100, 50))
    for item in members:
        item.setPos(item.pos() + QPointF(100, 50))
    window.scene.group_dragged(group)
    assert window.model.position(a) == (100, 50)
    assert window.model.position(outside) == (2000, 2000)
    window.stack.undo()
    assert window.model.position(a) == (0, 0)
    assert window.model.groups[0]["bounding"][0] == group_rect_x(window)
    window.stack.undo()
    assert window.model.groups == []


def group_rect_x(window):
    return window.scene.group_items[0].bounding()[0]


def test_reroute_dot_sits_on_the_wire_and_is_undoable(window):
    a = add(window, "SolidImage")
    b = add(window, "Invert", 600)
    window.controller.connect(a, "image", b, "image")
    rid = window.controller.add_reroute(b, "image", (400, -100))
    assert rid in window.scene.reroute_items
    path = window.scene.edges[(b, "image")].path()
    assert path.contains(QPointF(400, -100)) or any(
        abs(path.elementAt(i).x - 400) < 0.01 and abs(path.elementAt(i).y + 100) < 0.01
        for i in range(path.elementCount()))
    # A second input wired from the dot shares its source.
    c = add(window, "Invert", 600, 300)
    assert window.controller.connect(*window.controller.reroute_source(rid), c, "image", via_reroute=rid)
    assert window.model.reroutes[rid]["links"] == [[b, "image"], [c, "image"]]
    window.stack.undo()
    window.stack.undo()
    window.stack.undo()
    assert window.model.reroutes == {} and window.scene.reroute_items == {}


def test_title_bar_shows_unsaved_state(window):
    assert not window.isWindowModified()
    assert "[*]" in window.windowTitle()
    add(window, "SolidImage")
    assert window.isWindowModified()
    window.stack.undo()
    assert not window.isWindowModified()


def test_dragging_a_wire_dims_incompatible_ports_and_connects_on_release(window):
    a = add(window, "SolidImage")
    b = add(window, "Mix", 400)
    scene = window.scene
    out = scene.nodes[a].outputs["image"]
    scene.wires.begin(out)
    assert scene.nodes[b].inputs["image"].opacity() == 1.0
    assert scene.nodes[b].inputs["mask"].opacity() < 0.5       # MASK cannot take an IMAGE
    target = scene.nodes[b].inputs["mask"].scenePos()
    scene.wires.move(target)
    scene.wires.finish(target)
    assert window.model.nodes[b].inputs == {}
    assert scene.nodes[b].inputs["mask"].opacity() == 1.0
    scene.wires.begin(out)
    scene.wires.finish(scene.nodes[b].inputs["image"].scenePos())
    assert window.model.nodes[b].inputs == {"image": (a, "image")}


def test_dragging_from_a_connected_input_detaches_the_wire(window):
    a = add(window, "SolidImage")
    b = add(window, "Invert", 400)
    window.controller.connect(a, "image", b, "image")
    scene = window.scene
    scene.wires.begin(scene.nodes[b].inputs["image"])
    scene.wires.finish(QPointF(900, 900))   # empty canvas
    assert window.model.nodes[b].inputs == {}


def test_a_wire_dropped_on_empty_canvas_opens_a_filtered_search_and_connects(window, qtbot):
    a = add(window, "SolidImage")
    scene = window.scene
    scene.wires.begin(scene.nodes[a].outputs["image"])
    scene.wires.finish(QPointF(600, 300))
    assert window.search.isVisible()
    results = window.search.results()
    assert "Invert" in results and "ToMask" in results
    assert "SolidImage" not in results and "Prompt" not in results   # they take no IMAGE
    window.search.edit.setText("mask")
    assert window.search.results()[0] == "ToMask"
    window.search.accept_current()
    new = [n for n in window.model.nodes if window.model.nodes[n].type == "ToMask"][0]
    assert window.model.nodes[new].inputs == {"image": (a, "image")}
    assert window.model.position(new) == (600, 300)
    window.stack.undo()     # adding and wiring is one step
    assert new not in window.model.nodes


def test_search_is_fuzzy_over_names_and_categories(registry):
    assert search(registry, "slimg")[0].type == "SolidImage"
    assert search(registry, "inv")[0].type == "Invert"
    assert {s.type for s in search(registry, "test/output")} >= {"PreviewOut", "SaveOut"}
    assert search(registry, "zzzz") == []


def test_tab_opens_the_search(window, qtbot):
    from PySide6.QtCore import Qt

    window.show()
    window.view.setFocus()
    qtbot.keyClick(window.view, Qt.Key.Key_Tab)
    assert window.search.isVisible()
    window.search.edit.setText("invert")
    window.search.accept_current()
    assert [n.type for n in window.model.nodes.values()] == ["Invert"]


def test_zoom_and_fit(window):
    window.show()
    add(window, "SolidImage", 0, 0)
    add(window, "SolidImage", 3000, 2000)
    window.view.fit()
    assert window.view.zoom() >= 0.6 and not window.scene.low_detail    # fit stays readable (issue 31)
    window.view.set_zoom(0.4)
    assert window.scene.low_detail          # editors are hidden when zoomed far out
    window.view.set_zoom(1.0)
    assert not window.scene.low_detail


def test_a_wire_dropped_on_a_node_body_takes_its_first_free_compatible_input(window):
    a = add(window, "SolidImage")
    b = add(window, "Mix", 400)
    scene = window.scene
    scene.wires.begin(scene.nodes[a].outputs["image"])
    body = scene.nodes[b].pos() + QPointF(scene.nodes[b].width / 2, 12)   # the title bar
    scene.wires.finish(body)
    assert window.model.nodes[b].inputs == {"image": (a, "image")}
    m = add(window, "Prompt", 0, 300)
    scene.wires.begin(scene.nodes[m].outputs["conditioning"])
    scene.wires.finish(body)                      # nothing there takes CONDITIONING
    assert window.model.nodes[b].inputs == {"image": (a, "image")}
    assert not window.search.isVisible()
    mask = add(window, "ToMask", 0, 600)
    c = add(window, "Mix", 400, 600)
    scene.wires.begin(scene.nodes[mask].outputs["mask"])
    scene.wires.finish(scene.nodes[c].pos() + QPointF(scene.nodes[c].width / 2, 12))
    assert window.model.nodes[c].inputs == {"mask": (mask, "mask")}   # past the free image input it cannot take


def test_a_64_bit_seed_is_shown_and_edited_exactly(window, qtbot):
    from PySide6.QtCore import Qt

    nid = add(window, "Mix")
    big = 2 ** 63 - 25                                     # doubles would round this
    window.controller.set_param(nid, "seed", big)
    spin = window.scene.nodes[nid].panel.editors["seed"].spin
    assert spin.value() == big and spin.text() == str(big)
    spin.stepBy(1)
    assert window.model.nodes[nid].params["seed"] == big + 1
    spin.lineEdit().setText("12345678901234567890")        # above the param's max: refused
    spin.lineEdit().editingFinished.emit()
    assert window.model.nodes[nid].params["seed"] <= 2 ** 63 - 1
    spin.lineEdit().setText("777")
    spin.editingFinished.emit()
    assert window.model.nodes[nid].params["seed"] == 777
    qtbot.keyClick(spin, Qt.Key.Key_Up)
    assert window.model.nodes[nid].params["seed"] == 778
