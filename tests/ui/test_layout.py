"""Automatic layout: columns along the wires, and untangling files whose nodes overlap."""
from __future__ import annotations

import json

from nodeforge.ui.canvas.layout import arrange, overlapping
from tests.ui.helpers import add


def test_arrange_puts_each_node_right_of_its_sources_without_overlap():
    sizes = {n: (200.0, 100.0) for n in "abcd"}
    pos = arrange("abcd", [("a", "b"), ("a", "c"), ("b", "d"), ("c", "d")], sizes)
    assert pos["a"][0] < pos["b"][0] == pos["c"][0] < pos["d"][0]
    rects = {n: (*pos[n], *sizes[n]) for n in pos}
    assert not overlapping(rects, share=0.0)


def test_arrange_tolerates_cycles():
    pos = arrange("ab", [("a", "b"), ("b", "a")], {"a": (10, 10), "b": (10, 10)})
    assert set(pos) == {"a", "b"}


def test_a_file_with_stacked_nodes_is_arranged_as_one_undoable_step(window, tmp_path):
    wf = {"nodeforge": 1, "nodes": {
        "1": {"type": "SolidImage"}, "2": {"type": "Invert", "inputs": {"image": ["1", "image"]}},
        "3": {"type": "PreviewOut", "inputs": {"image": ["2", "image"]}}},
        "ui": {"positions": {"1": [0, 0], "2": [10, 10], "3": [20, 20]}}}
    path = tmp_path / "stacked.json"
    path.write_text(json.dumps(wf))
    window.open_path(path)
    xs = [window.model.position(n)[0] for n in "123"]
    assert xs[0] < xs[1] < xs[2]
    assert "arranged" in window.statusBar().currentMessage()
    assert window.stack.undoText() == "Arrange overlapping nodes (on opening)"   # a step the user sees
    assert not window.isWindowModified() and not window.document.is_modified()   # opening is not an edit
    window.stack.undo()
    assert window.model.position("2") == (10, 10)
    assert not window.isWindowModified()
    window.stack.redo()
    window.controller.set_title("2", "edited")
    assert window.isWindowModified() and window.document.is_modified()


def test_arrange_action_lays_out_the_selection(window):
    a = add(window, "SolidImage", 500, 500)
    b = add(window, "Invert", 500, 500)
    window.controller.connect(a, "image", b, "image")
    window.acts.arrange.trigger()
    assert window.model.position(a)[0] < window.model.position(b)[0]
