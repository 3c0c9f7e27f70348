"""The Linux download's install.sh / uninstall.sh, on a stand-in bundle in a fresh HOME.

The real bundle is built and smoke-checked by `packaging/build.sh` (minutes, not CI); these
check what the installer puts where, that the menu entry points at what it installs and claims
only NodeForge's own MIME type, and that uninstall leaves nothing behind.
"""
from __future__ import annotations

import configparser
import importlib.util
import os
import platform
import re
import shutil
import subprocess
import sys
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


def _bundle_data():
    """packaging/bundle_data.py, the rule nodeforge.spec collects data files and metadata by."""
    spec = importlib.util.spec_from_file_location("bundle_data", PACKAGING / "bundle_data.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_spec_collects_by_the_derived_rule_not_a_fixed_list():
    spec = (PACKAGING / "nodeforge.spec").read_text()
    assert "bundle_data.runtime_closure()" in spec and "bundle_data.bundle_datas(" in spec
    assert "bundle_data.bundle_metadata(" in spec and "copy_metadata(package)" in spec


def test_the_rule_covers_the_data_file_kernels_opens_at_import_and_every_packages_metadata():
    """transformers 5.25 imports kernels, which opens _internals/python_depends.json next to its
    code; without it every CheckpointLoader in the bundle failed ("Cannot load dependency data")."""
    pytest.importorskip("kernels")
    rule = _bundle_data()
    closure = rule.runtime_closure()
    # kernels is reached through transformers' requirements, not named anywhere in packaging/.
    assert {"transformers", "kernels", "diffusers", "torch", "huggingface-hub", "requests"} <= set(closure)
    datas = rule.bundle_datas(closure, excludes=("setuptools",))
    kernels_dir = Path(importlib.util.find_spec("kernels").origin).parent
    assert (str(kernels_dir / "_internals" / "python_depends.json"), "kernels/_internals") in datas
    # A file directly in a top-level package counts too (requests' CA bundle, certifi/cacert.pem).
    certifi = importlib.util.find_spec("certifi")
    if certifi:
        assert (str(Path(certifi.origin).parent / "cacert.pem"), "certifi") in datas
    # Each entry lands where the package looks for it: same path relative to site-packages.
    for source, folder in datas:
        assert Path(source).is_file() and Path(source).parent.as_posix().endswith("/" + folder)
    # Every distribution in the closure carries its metadata (importlib.metadata.version at import).
    names = {name.lower().replace("_", "-") for name in rule.bundle_metadata(closure)}
    assert {"kernels", "transformers", "tokenizers", "safetensors", "requests"} <= names


def test_the_rule_leaves_out_code_programs_headers_tests_and_excluded_modules():
    rule = _bundle_data()
    closure = rule.runtime_closure()
    datas = rule.bundle_datas(closure, excludes=("setuptools",))
    suffixes = {Path(source).suffix for source, _ in datas}
    assert not suffixes & {".py", ".pyc", ".so", ".h", ".hpp", ".pyi", ".pyx", ".a"}
    assert not [folder for _, folder in datas if {"tests", "bin", "include", "__pycache__"} & set(folder.split("/"))]
    assert not [folder for _, folder in datas if folder.split("/")[0] == "setuptools"]
    for source, _ in datas:
        with open(source, "rb") as f:
            assert f.read(4) != b"\x7fELF", source
    # What the rule keeps stays small: torch's test programs and Qt's tools are not data.
    assert sum(Path(source).stat().st_size for source, _ in datas) < 30e6


def test_the_rule_reads_extras_and_markers_as_pip_does(tmp_path):
    """An extra's or another platform's requirement is not part of the app; an unknown one is skipped."""
    rule = _bundle_data()
    closure = rule.runtime_closure(["packaging", 'pytest; extra == "dev"', 'psutil; sys_platform == "nowhere"',
                                    "no-such-distribution-nodeforge"])
    assert set(closure) == {"packaging"}


def test_the_release_pins_every_distribution_the_bundle_carries_and_the_build_tools():
    """A fresh release environment installs what the last passing bundle was built with: a
    dependency the app gains without a re-pin (a new transformers requirement) fails here first."""
    text = (PACKAGING / "constraints.txt").read_text()
    built_with = re.search(r"^# python (\d+\.\d+) (\S+) (\S+)$", text, re.M).groups()
    if built_with != ("%d.%d" % sys.version_info[:2], platform.system(), platform.machine()):
        pytest.skip(f"the pins are for Python {built_with[0]} on {built_with[1]} {built_with[2]}")
    pins = {}
    for line in text.splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, version = line.partition("==")
            assert version and "+" not in version, line   # exact, and no +cpu label: CPU and CUDA wheels fit
            pins[name.strip().lower().replace("_", "-")] = version
    closure = _bundle_data().runtime_closure()
    assert set(closure) - set(pins) == set(), "re-pin with packaging/release.sh --repin"
    assert {"pyinstaller", "pyinstaller-hooks-contrib", "kernels", "transformers", "torch"} <= set(pins)


def test_the_release_step_starts_from_a_fresh_venv_and_ends_with_the_smoke_check_of_every_example():
    release = (PACKAGING / "release.sh").read_text()
    steps = [release.index(step) for step in ('rm -rf "$venv"', '-m venv "$venv"', '"torch==$torch_version"',
                                              '"${pin[@]}" . pyinstaller', "run=(nice -n 10 packaging/build.sh)")]
    assert steps == sorted(steps)
    build = (PACKAGING / "build.sh").read_text()
    assert build.rstrip().splitlines()[-2].startswith("packaging/smoke.sh dist/NodeForge/nodeforge")
    smoke = (PACKAGING / "smoke.sh").read_text()
    assert '[ "$count" -eq "$total" ]' in smoke and "is not shipped with" in smoke
