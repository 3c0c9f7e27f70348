"""The user's files under hostile conditions: an autosave folder that cannot be written or that
vanished, a read-only workflow file. Nothing the user made is lost, and they hear of it once."""
from __future__ import annotations

import json

from tests.ui.helpers import add


def test_an_autosave_folder_that_cannot_be_made_is_shown_not_passed_over(window, tmp_path):
    from nodeforge.ui.files.autosave import Autosaver

    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the autosave folder should be")
    window.document.autosaver = Autosaver(blocker / "autosave")
    add(window, "SolidImage")
    assert not window.autosave()
    failure = window.document.autosave_failure
    assert failure is not None and str(blocker) in failure      # the path it could not write
    assert window.document.autosave_notice.isVisible()
    assert window.document.autosave_timer.isActive()             # and it keeps trying
    assert blocker.read_text() == "a file where the autosave folder should be"


def test_an_autosave_folder_that_vanished_is_made_again(window, tmp_path):
    from nodeforge.ui.files.autosave import Autosaver

    folder = tmp_path / "autosave"
    window.document.autosaver = Autosaver(folder)
    add(window, "SolidImage")
    assert window.autosave()
    window.document.autosaver.path.unlink()
    folder.rmdir()
    add(window, "SolidImage")
    assert window.autosave()
    saved = json.loads(window.document.autosaver.path.read_text(encoding="utf-8"))
    assert [n["type"] for n in saved["nodes"].values()] == ["SolidImage", "SolidImage"]
    assert window.document.autosave_failure is None


def test_saving_over_a_read_only_file_keeps_it_and_the_graph_unsaved(window, tmp_path):
    path = tmp_path / "shared.json"
    path.write_text('{"theirs": true}')
    path.chmod(0o444)
    add(window, "SolidImage")
    assert not window.document.save_to(path)
    assert "read-only" in window.last_error and str(path) in window.last_error
    assert path.read_text() == '{"theirs": true}'
    assert window.isWindowModified() and window.document.path != path    # the work is still the user's to save
    writable = tmp_path / "mine.json"
    assert window.document.save_to(writable)
    assert json.loads(writable.read_text())["nodes"]["1"]["type"] == "SolidImage"


def test_a_nodes_warning_reaches_the_status_bar_and_the_job(window, qtbot, monkeypatch):
    """A node that passes something over (a LoRA's unmatched modules) says so in the editor too,
    and the run's last status line keeps it (it used to go to the terminal only, if any)."""
    from nodeforge.core.spec import Input, NodeSpec, Output
    from tests.ui.helpers import chain

    def half_done(ctx, image):
        ctx.warn("2 of 9 modules matched no layer of this model; they are ignored")
        return {"image": image}

    spec = NodeSpec("HalfDone", "test", half_done, inputs=(Input("image", "IMAGE"),),
                    outputs=(Output("image", "IMAGE"),), output_node=True)
    monkeypatch.setitem(window.engine.registry._specs, "HalfDone", spec)
    _solid, warner = chain(window, "SolidImage", "HalfDone")
    heard = []
    window.runner.nodeWarning.connect(lambda nid, message: heard.append((nid, message)))
    with qtbot.waitSignal(window.runner.runFinished, timeout=30_000):
        window.run()
    assert heard == [(warner, "2 of 9 modules matched no layer of this model; they are ignored")]
    job = window.runner.jobs[-1]
    assert job.warnings == ["HalfDone: 2 of 9 modules matched no layer of this model; they are ignored"]
    status = window.statusBar().currentMessage()
    assert status.startswith("Done in ") and status.endswith(
        "; warning: HalfDone: 2 of 9 modules matched no layer of this model; they are ignored")
