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
