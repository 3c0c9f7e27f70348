"""Files: save/load round trips, drops, bad files, placeholders for unknown types, autosave."""
from __future__ import annotations

import json

from PIL import Image
from PIL.PngImagePlugin import PngInfo
from PySide6.QtCore import QPointF

from nodeforge.core.workflow import load_workflow
from nodeforge.ui.files.autosave import Autosaver, find_recoverable, load_recoverable
from tests.ui.helpers import DATA, add


def test_save_and_load_round_trip_keeps_layout_titles_params_and_unknown_keys(window, tmp_path, engine, qtbot):
    src = json.loads((DATA / "txt2img.json").read_text())
    src["generator"] = {"by": "someone else"}                 # unknown top-level key
    src["nodes"]["5"]["note"] = "keep me"                      # unknown per-node key
    src["ui"]["custom_panel"] = {"open": True}                 # unknown ui key
    path = tmp_path / "in.json"
    path.write_text(json.dumps(src))
    assert window.open_path(path)
    window.controller.toggle_flag(["6"], "collapsed")
    window.controller.toggle_flag(["3"], "bypassed")
    window.controller.set_param("5", "seed", 7)
    out = tmp_path / "out.json"
    assert window.save_to(out)
    assert not window.isWindowModified()
    saved = json.loads(out.read_text())
    assert saved["generator"] == {"by": "someone else"}
    assert saved["nodes"]["5"]["note"] == "keep me"
    assert saved["nodes"]["5"]["params"]["seed"] == 7
    assert saved["nodes"]["2"]["title"] == "positive"
    assert saved["ui"]["positions"]["5"] == [720, 150]
    assert saved["ui"]["collapsed"] == ["6"] and saved["ui"]["bypassed"] == ["3"]
    assert saved["ui"]["custom_panel"] == {"open": True}
    assert saved["ui"]["groups"][0]["title"] == "Prompt"
    assert "viewport" in saved["ui"]
    # Loading what we saved gives the same document.
    from nodeforge.ui.main_window import MainWindow

    other = MainWindow(engine)
    qtbot.addWidget(other)
    assert other.open_path(out)
    assert other.model.snapshot().to_json() == window.model.snapshot().to_json()
    assert other.scene.nodes["6"].collapsed
    assert other.scene.nodes["5"].panel.editors["seed"].spin.value() == 7
    other.autosaver.discard()


def test_unknown_node_types_stay_as_placeholders_and_survive_save(window, tmp_path):
    src = {"nodeforge": 1, "nodes": {
        "1": {"type": "SolidImage", "params": {"color": "blue"}},
        "2": {"type": "FancyUpscaler", "params": {"scale": 4, "model": "4x.pth"},
              "inputs": {"image": ["1", "image"]}, "title": "upscale"},
        "3": {"type": "PreviewOut", "inputs": {"image": ["2", "upscaled"]}}}}
    path = tmp_path / "unknown.json"
    path.write_text(json.dumps(src))
    assert window.open_path(path)
    item = window.scene.nodes["2"]
    assert item.is_placeholder
    assert list(item.inputs) == ["image"] and list(item.outputs) == ["upscaled"]
    assert ("2", "image") in window.scene.edges and ("3", "image") in window.scene.edges
    assert "FancyUpscaler" in window.statusBar().currentMessage()
    window.controller.set_title("2", "big")
    out = tmp_path / "saved.json"
    window.save_to(out)
    node = json.loads(out.read_text())["nodes"]["2"]
    assert node == {"type": "FancyUpscaler", "params": {"scale": 4, "model": "4x.pth"},
                    "inputs": {"image": ["1", "image"]}, "title": "big"}


def test_a_file_that_will_not_load_gives_a_clear_message_and_keeps_the_graph(window, tmp_path):
    nid = add(window, "SolidImage")
    bad = tmp_path / "bad.json"
    bad.write_text('{"nodeforge": 1, "nodes": {"4": {"type": "Invert", "inputs": {"image": "1"}}}}')
    assert not window.open_path(bad)
    assert "node 4" in window.last_error and "image" in window.last_error
    assert list(window.model.nodes) == [nid]
    broken = tmp_path / "broken.json"
    broken.write_text('{"nodeforge": 1, "nodes": {')
    assert not window.open_path(broken)
    assert "not valid JSON" in window.last_error
    newer = tmp_path / "newer.json"
    newer.write_text('{"nodeforge": 99, "nodes": {}}')
    assert not window.open_path(newer)
    assert "newer NodeForge" in window.last_error
    assert not window.open_path(tmp_path / "missing.json")
    assert "no such file" in window.last_error


def test_dropping_a_json_on_an_empty_canvas_opens_it(window):
    window.drop_file(DATA / "txt2img.json", QPointF(0, 0))
    assert len(window.model.nodes) == 7
    assert window.path == DATA / "txt2img.json"
    assert len(window.scene.edges) == 9


def test_dropping_a_json_on_a_graph_adds_its_nodes_at_the_drop_point(window):
    add(window, "SolidImage")
    window.drop_file(DATA / "txt2img.json", QPointF(5000, 5000))
    assert len(window.model.nodes) == 8
    assert min(window.model.position(n)[0] for n in window.scene.selected_node_ids()) == 5000
    window.stack.undo()
    assert len(window.model.nodes) == 1


def test_dropping_a_nodeforge_png_restores_its_workflow(window, tmp_path):
    text = (DATA / "txt2img.json").read_text()
    info = PngInfo()
    info.add_text("workflow", text)
    png = tmp_path / "made.png"
    Image.new("RGB", (8, 8), "red").save(png, pnginfo=info)
    assert window.drop_file(png, QPointF(0, 0))
    assert window.model.nodes["2"].title == "positive"
    assert window.path is None                  # a PNG is not overwritten by Save


def test_dropping_a_plain_image_makes_an_image_node(window, tmp_path):
    png = tmp_path / "photo.png"
    Image.new("RGB", (8, 8), "red").save(png)
    assert window.drop_file(png, QPointF(10, 10))
    (node,) = window.model.nodes.values()
    assert node.params.get("path") == str(png)
    (item,) = window.scene.nodes.values()
    assert item.images and item.images[0].width() == 8        # the node shows the picture
    window.stack.undo()                                         # one step: node and path
    assert window.model.nodes == {}
    window.stack.redo()
    (item,) = window.scene.nodes.values()
    assert item.images


def test_autosave_writes_the_graph_and_a_clean_exit_removes_it(window):
    add(window, "SolidImage")
    assert window.autosave()
    path = window.autosaver.path
    assert path.exists()
    assert len(load_workflow(path).nodes) == 1
    assert not window.autosave()                # nothing changed since
    window.close()
    assert not path.exists()


def test_autosaves_of_a_crashed_process_are_offered_back(tmp_path, window):
    saver = Autosaver(tmp_path)
    wf = window.model.snapshot()
    wf.add("SolidImage", {"color": "green"})
    saver.save(wf)
    assert find_recoverable(tmp_path) == []     # our own live process: not a crash
    dead = tmp_path / "999999999-abcd.json"
    saver.path.rename(dead)
    (found,) = find_recoverable(tmp_path)
    assert found.path == dead
    assert load_recoverable(found).nodes["1"].params == {"color": "green"}


def test_recent_files_are_remembered(window, tmp_path):
    path = tmp_path / "a.json"
    path.write_text((DATA / "txt2img.json").read_text())
    window.open_path(path)
    assert window.document.recent_files()[0] == str(path.resolve())
    window.document.fill_recent(window.acts.recent_menu)
    assert str(path.resolve()) in [a.text() for a in window.acts.recent_menu.actions()]


def test_new_document_clears_the_graph(window):
    add(window, "SolidImage")
    window.document.new_document()
    assert window.model.nodes == {} and window.scene.nodes == {}
    assert not window.isWindowModified()


def test_a_real_drop_event_on_the_canvas_opens_the_file(window, qtbot):
    from PySide6.QtCore import QMimeData, QPoint, Qt, QUrl
    from PySide6.QtGui import QDragEnterEvent, QDropEvent
    from PySide6.QtWidgets import QApplication

    window.show()
    qtbot.waitExposed(window)
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(DATA / "txt2img.json"))])
    vp = window.view.viewport()
    pos = QPoint(200, 200)
    enter = QDragEnterEvent(pos, Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                            Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(vp, enter)
    assert enter.isAccepted()
    drop = QDropEvent(pos.toPointF(), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                      Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(vp, drop)
    assert len(window.model.nodes) == 7


def test_recovery_after_a_crash_restores_the_autosaved_graph(window, monkeypatch, tmp_path):
    from PySide6.QtWidgets import QMessageBox

    from nodeforge.ui import app as app_module

    folder = tmp_path / "autosave"
    saver = Autosaver(folder)
    wf = window.model.snapshot()
    wf.add("SolidImage", {"color": "blue"})
    saver.save(wf)
    saver.path.rename(folder / "999999998-dead.json")
    monkeypatch.setattr(app_module, "find_recoverable", lambda: find_recoverable(folder))
    monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: QMessageBox.StandardButton.Yes)
    app_module.offer_recovery(window)
    assert window.model.nodes["1"].params == {"color": "blue"}
    assert window.isWindowModified()              # recovered work is not saved work
    assert list(folder.glob("*.json")) == []      # offered once


def test_malformed_layout_and_params_never_crash_the_editor(window, tmp_path):
    wf = {"nodeforge": 1, "nodes": {
        "1": {"type": "SolidImage", "params": {"width": "wide", "color": 7, "height": None}},
        "2": {"type": "Mix", "params": {"strength": "lots", "seed": [1]}, "inputs": {"image": ["1", "nope"]}},
        "3": {"type": "PreviewOut", "inputs": {"image": ["99", "image"]}}},
        "ui": {"positions": {"1": "here", "2": [1, 2, 3]}, "sizes": {"1": "big"}, "collapsed": [None, "2"],
               "groups": [{"title": "ok", "bounding": [0, 0, 100, 100]}, {"bounding": "x"}, 5],
               "reroutes": {"r1": {"pos": [1, 1], "links": [["2", "image"]]}, "r2": "bad"},
               "viewport": {"center": "middle", "zoom": "far"}}}
    path = tmp_path / "odd.json"
    path.write_text(json.dumps(wf))
    assert window.open_path(path)
    assert set(window.scene.nodes) == {"1", "2", "3"}
    assert window.scene.nodes["2"].collapsed
    assert len(window.scene.group_items) == 1 and list(window.scene.reroute_items) == ["r1"]
    window.scene.nodes["1"].ensure_panel()
    window.scene.nodes["2"].ensure_panel()
    window.view.viewport().repaint()
    out = tmp_path / "odd-saved.json"
    assert window.save_to(out)
    saved = json.loads(out.read_text())
    assert saved["nodes"]["1"]["params"]["width"] == "wide"      # node data is kept as it was
    assert saved["nodes"]["3"]["inputs"] == {"image": ["99", "image"]}


def test_node_packs_that_fail_to_load_are_reported_at_start(tmp_path, qtbot):
    from nodeforge.core.engine import Engine
    from nodeforge.core.registry import load_registry
    from nodeforge.ui.main_window import MainWindow

    (tmp_path / "broken_pack.py").write_text("raise RuntimeError('needs a newer torch')\n")
    registry = load_registry(builtin=False, node_path=[tmp_path], entry_points=False)
    win = MainWindow(Engine(device="cpu", registry=registry))
    qtbot.addWidget(win)
    qtbot.waitUntil(lambda: win.last_error is not None, timeout=5000)
    assert "broken_pack" in win.last_error and "needs a newer torch" in win.last_error
    win.autosaver.discard()


def test_examples_open_as_new_unsaved_graphs(window, monkeypatch, tmp_path):
    example = tmp_path / "txt2img.json"
    example.write_text((DATA / "txt2img.json").read_text())
    monkeypatch.setattr(window.document, "example_files", lambda: [example])
    window.document.fill_examples(window.acts.examples_menu)
    (action,) = window.acts.examples_menu.actions()
    assert action.text() == "txt2img"
    action.trigger()
    assert len(window.model.nodes) == 7
    assert window.path is None and "txt2img.json (example)" in window.windowTitle()   # not "Untitled"
    assert window.document.suggested_path() == "txt2img.json"


def test_relative_image_paths_resolve_from_the_workflow_folder(window, tmp_path):
    (tmp_path / "inputs").mkdir()
    Image.new("RGB", (12, 10), "red").save(tmp_path / "inputs" / "start.png")
    wf = {"nodeforge": 1, "nodes": {"1": {"type": "LoadPicture", "params": {"path": "inputs/start.png"}}}}
    path = tmp_path / "flow.json"
    path.write_text(json.dumps(wf))
    window.open_path(path)
    item = window.scene.nodes["1"]
    assert item.images and item.images[0].width() == 12
    assert window.model.snapshot().source == path       # what the engine resolves against


def test_the_window_layout_is_remembered(window, engine, qtbot):
    from nodeforge.ui.main_window import MainWindow

    window.show()
    window.resize(900, 700)
    window.images.hide()
    window.close()
    again = MainWindow(engine)
    qtbot.addWidget(again)
    again.restore_layout()
    again.show()
    assert again.size().width() < 1000 and again.images.isHidden()    # not the default 1500
    again.images.show()
    again.save_layout()
    again.autosaver.discard()
