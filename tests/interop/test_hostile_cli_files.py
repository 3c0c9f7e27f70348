"""`nodeforge import -o` and `export -o` where the file cannot be written: one `error:` line naming
the path (no traceback), exit status 1, and whatever was there left as it was."""
from __future__ import annotations

import pytest

from nodeforge.cli import main
from nodeforge.paths import builtin_dir

DEMO = builtin_dir("workflows") / "txt2img.json"


def commands(out):
    return {"import": ["import", str(DEMO), "-o", str(out)],
            "export": ["export", str(DEMO), "--to", "comfyui", "-o", str(out)]}


@pytest.mark.parametrize("command", ["import", "export"])
def test_a_folder_that_is_a_file_is_one_line(tmp_path, capsys, command):
    blocker = tmp_path / "notes.txt"
    blocker.write_text("mine")
    out = blocker / "out.json"
    assert main(commands(out)[command]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    (line,) = [e for e in err.splitlines() if e.startswith("error: ")]
    assert line.startswith(f"error: -o {out}: cannot write it (") and "a folder you can write to" in line
    assert blocker.read_text() == "mine"


@pytest.mark.parametrize("command", ["import", "export"])
def test_a_read_only_file_is_not_replaced(tmp_path, capsys, command):
    out = tmp_path / "kept.json"
    out.write_text('{"mine": true}')
    out.chmod(0o444)
    assert main(commands(out)[command]) == 1
    err = capsys.readouterr().err
    assert f"error: -o {out}: cannot write it (the file is read-only; save under another name, or make it " \
           "writable first)" in err.splitlines()
    assert out.read_text() == '{"mine": true}' and out.stat().st_mode & 0o777 == 0o444
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kept.json"]     # no temporary file left


def test_import_never_replaces_an_earlier_import_unless_told(tmp_path, capsys):
    source = tmp_path / "params.txt"
    source.write_text("a cat\nSteps: 2, Seed: 1, Size: 64x64, Model: nodeforge-shapes")
    assert main(["import", str(source)]) == 0
    target = tmp_path / "params.nodeforge.json"
    target.write_text('{"edited": true}')
    capsys.readouterr()
    assert main(["import", str(source)]) == 1
    assert capsys.readouterr().err.strip().splitlines() == [
        f"error: {target} already exists (an earlier import, perhaps edited since); give -o NEW.json, or -o {target} "
        "to replace it"]
    assert target.read_text() == '{"edited": true}'
    assert main(["import", str(source), "-o", str(target)]) == 0 and '"nodeforge"' in target.read_text()
