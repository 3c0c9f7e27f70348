"""The Linux download's install.sh / uninstall.sh, on a stand-in bundle in a fresh HOME.

The real bundle is built and smoke-checked by `packaging/build.sh` (minutes, not CI); these
check what the installer puts where, that the menu entry points at what it installs and claims
only NodeForge's own MIME type, and that uninstall leaves nothing behind.
"""
from __future__ import annotations

import configparser
import os
import shutil
import subprocess
from pathlib import Path

import pytest

PACKAGING = Path(__file__).resolve().parents[2] / "packaging"
pytestmark = pytest.mark.skipif(not PACKAGING.is_dir(), reason="packaging/ is not in an installed wheel")


def _unpacked(tmp_path: Path) -> Path:
    """What build.sh puts in the tarball, with a two-line stand-in for the PyInstaller app."""
    folder = tmp_path / "nodeforge-0.0.0"
    (folder / "NodeForge" / "_internal").mkdir(parents=True)
    app = folder / "NodeForge" / "nodeforge"
    app.write_text('#!/bin/sh\necho "nodeforge stand-in $*"\n')
    app.chmod(0o755)
    for name in ("install.sh", "uninstall.sh", "nodeforge.desktop", "nodeforge-mime.xml", "nodeforge.svg",
                 "nodeforge-256.png", "nodeforge-48.png"):
        shutil.copy(PACKAGING / name, folder / name)
    return folder


def _run(script: Path, home: Path) -> str:
    env = {"HOME": str(home), "PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    done = subprocess.run(["bash", str(script)], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_install_puts_the_app_launcher_menu_entry_icons_and_mime_type_in_the_users_folders(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    out = _run(_unpacked(tmp_path) / "install.sh", home)
    assert "installed" in out
    launcher = home / ".local" / "bin" / "nodeforge"
    assert launcher.is_symlink() and launcher.resolve() == home / ".local" / "opt" / "nodeforge" / "nodeforge"
    assert subprocess.run([str(launcher), "--version"], capture_output=True, text=True).stdout.startswith(
        "nodeforge stand-in")
    entry = home / ".local" / "share" / "applications" / "nodeforge.desktop"
    desktop = configparser.ConfigParser(interpolation=None)
    desktop.optionxform = str
    desktop.read(entry)
    section = desktop["Desktop Entry"]
    # The menu runs exactly what was installed, by full path (it works before ~/.local/bin is on PATH).
    assert section["TryExec"] == str(launcher)
    assert section["Exec"].split()[0] == str(launcher) and section["Exec"].endswith("%f")
    # Only NodeForge's own files: never every JSON or PNG.
    assert section["MimeType"].strip(";").split(";") == ["application/x-nodeforge-workflow"]
    mime = (home / ".local" / "share" / "mime" / "packages" / "nodeforge.xml").read_text()
    assert 'glob pattern="*.nfworkflow.json"' in mime and "*.json\"" not in mime and "png" not in mime
    for size in ("256x256", "48x48"):
        assert (home / ".local" / "share" / "icons" / "hicolor" / size / "apps" / "nodeforge.png").is_file()
    validator = shutil.which("desktop-file-validate")
    if validator:
        checked = subprocess.run([validator, str(entry)], capture_output=True, text=True)
        assert checked.returncode == 0 and not checked.stdout.strip(), checked.stdout


def test_uninstall_removes_everything_install_put_there_and_keeps_the_users_files(tmp_path):
    home = tmp_path / "home"
    (home / ".local" / "share" / "nodeforge").mkdir(parents=True)
    settings = home / ".local" / "share" / "nodeforge" / "my-workflow.json"
    settings.write_text("{}")
    _run(_unpacked(tmp_path) / "install.sh", home)
    _run(home / ".local" / "opt" / "nodeforge" / "uninstall.sh", home)
    leftovers = [p for p in home.rglob("*") if "nodeforge" in p.name.lower() and p.is_file() and p != settings]
    assert leftovers == []
    assert not (home / ".local" / "opt" / "nodeforge").exists() and not (home / ".local" / "bin" / "nodeforge").exists()
    assert settings.read_text() == "{}"


def test_the_bundle_spec_copies_the_metadata_diffusers_checks_at_import():
    spec = (PACKAGING / "nodeforge.spec").read_text()
    assert "copy_metadata" in spec and "recursive=True" in spec
    for package in ("diffusers", "transformers", "torch"):
        assert f'"{package}"' in spec
