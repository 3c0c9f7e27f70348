"""File > Export to ComfyUI… (issue 30 item 4): the graph on screen as a ComfyUI workflow or API
prompt, the export's notes shown to the user, failures as one message."""
from __future__ import annotations

import json

import pytest
from PySide6.QtWidgets import QFileDialog

from nodeforge.core.workflow import load_workflow
from nodeforge.interop import COMFY_API, COMFY_WORKFLOW, detect_format, import_workflow
from nodeforge.paths import builtin_dir
from nodeforge.ui.files.comfy_export import API_FILTER, WORKFLOW_FILTER

TXT2IMG = builtin_dir("workflows") / "txt2img.json"


def _export(win, monkeypatch, target, chosen_filter):
    """Trigger File > Export to ComfyUI… with the dialog answering `target` and `chosen_filter`."""
    asked = []

    def dialog(parent, caption, suggested, filters, selected=""):
        asked.append((suggested, filters))
        return str(target), chosen_filter

    monkeypatch.setattr(QFileDialog, "getSaveFileName", dialog)
    action = next(a for a in win.menuBar().actions()[0].menu().actions() if a.text() == "&Export to ComfyUI…")
    action.trigger()
    return asked


@pytest.mark.parametrize("chosen, fmt", [(WORKFLOW_FILTER, COMFY_WORKFLOW), (API_FILTER, COMFY_API)])
def test_export_writes_a_comfyui_file_that_imports_back_to_the_same_graph(studio, monkeypatch, tmp_path,
                                                                          chosen, fmt):
    win = studio
    assert win.document.open_path(TXT2IMG)
    target = tmp_path / "shared"                      # no suffix typed: .json is added
    asked = _export(win, monkeypatch, target, chosen)
    assert asked and asked[0][0].endswith("txt2img.comfyui.json")
    assert WORKFLOW_FILTER in asked[0][1] and API_FILTER in asked[0][1]
    written = tmp_path / "shared.json"
    data = json.loads(written.read_text(encoding="utf-8"))
    assert detect_format(data) == fmt
    back, _notes = import_workflow(written, registry=win.engine.registry)
    original = load_workflow(TXT2IMG)
    assert {nid: n.type for nid, n in back.nodes.items()} == {nid: n.type for nid, n in original.nodes.items()}
    expected = {nid: dict(n.params) for nid, n in original.nodes.items()}
    expected["5"]["schedule"] = "simple"              # ComfyUI has no 'default': the note below says so
    assert {nid: dict(n.params) for nid, n in back.nodes.items()} == expected
    notice = win.document.exporter.notice
    assert notice is not None and notice.isVisible()
    assert "schedule 'default'" in notice.text() and "exported as 'simple'" in notice.text()
    message = win.statusBar().currentMessage()
    assert message.startswith("Exported shared.json:") and "with 7 nodes, 1 note" in message
    # An export is not a save: the document keeps its own file and is not marked modified.
    assert win.document.path == TXT2IMG and not win.document.is_modified()


def test_export_to_an_unwritable_path_says_so_in_one_message(studio, monkeypatch, tmp_path):
    win = studio
    assert win.document.open_path(TXT2IMG)
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    target = blocker / "shared.json"
    _export(win, monkeypatch, target, API_FILTER)
    assert not target.exists()
    assert win.last_error.startswith(f"{target}:") and "Traceback" not in win.last_error
    assert len(win.last_error.splitlines()) == 2 and win.document.exporter.notice is None


def test_export_never_writes_over_the_graphs_own_file(studio, monkeypatch, tmp_path):
    win = studio
    assert win.document.open_path(TXT2IMG)
    mine = tmp_path / "mine.json"
    assert win.document.save_to(mine)
    before = mine.read_bytes()
    _export(win, monkeypatch, mine, WORKFLOW_FILTER)
    assert mine.read_bytes() == before
    assert "this graph's own NodeForge file" in win.last_error and "Choose another name" in win.last_error
