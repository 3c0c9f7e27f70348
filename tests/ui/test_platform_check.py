"""`nodeforge` names the system packages Qt's xcb plugin lacks instead of letting Qt abort (issue 18.3)."""
from __future__ import annotations

import stat

import pytest

from nodeforge.ui import platform_check as pc


def fake_ldd(tmp_path, *missing: str):
    lines = ["\tlibQt6Gui.so.6 => /opt/qt/libQt6Gui.so.6 (0x1)", "\tlibxcb.so.1 => /lib/libxcb.so.1 (0x2)"]
    lines += [f"\t{name} => not found" for name in missing]
    script = tmp_path / "ldd"
    script.write_text("#!/bin/sh\ncat <<'END'\n" + "\n".join(lines) + "\nEND\n")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return str(script)


def test_a_missing_xcb_cursor_is_named_with_the_package_that_fixes_it(tmp_path):
    plugin = tmp_path / "libqxcb.so"
    plugin.write_bytes(b"")
    ldd = fake_ldd(tmp_path, "libxcb-cursor.so.0", "libxkbcommon-x11.so.0", "libxcb-cursor.so.0")
    line = pc.xcb_problem({"QT_QPA_PLATFORM": "xcb"}, plugin, ldd)
    assert "\n" not in line
    assert "libxcb-cursor.so.0, libxkbcommon-x11.so.0" in line
    assert line.endswith("sudo apt-get install libxcb-cursor0 libxkbcommon-x11-0")
    assert pc.xcb_problem({"QT_QPA_PLATFORM": "xcb"}, plugin, fake_ldd(tmp_path)) is None


def test_the_check_runs_only_when_qt_will_use_xcb():
    assert pc.platform_will_be_xcb({"QT_QPA_PLATFORM": "xcb"}, "linux")
    assert pc.platform_will_be_xcb({"QT_QPA_PLATFORM": "xcb;offscreen"}, "linux")
    assert pc.platform_will_be_xcb({"DISPLAY": ":0"}, "linux")
    assert not pc.platform_will_be_xcb({"QT_QPA_PLATFORM": "offscreen"}, "linux")
    assert not pc.platform_will_be_xcb({"QT_QPA_PLATFORM": "wayland;xcb"}, "linux")
    assert not pc.platform_will_be_xcb({"WAYLAND_DISPLAY": "wayland-0"}, "linux")
    assert not pc.platform_will_be_xcb({"QT_QPA_PLATFORM": "xcb"}, "darwin")


@pytest.mark.parametrize("soname, package", [
    ("libxcb-cursor.so.0", "libxcb-cursor0"), ("libxcb-icccm.so.4", "libxcb-icccm4"),
    ("libxcb-keysyms.so.1", "libxcb-keysyms1"), ("libxkbcommon-x11.so.0", "libxkbcommon-x11-0"),
    ("libX11-xcb.so.1", "libx11-xcb1"), ("libxcb-render-util.so.0", "libxcb-render-util0"),
    ("libglib-2.0.so.0", "libglib2.0-0"), ("libxcb-icccm.so", "libxcb-icccm4")])
def test_debian_package_names(soname, package):
    assert pc.debian_package(soname) == package


def test_the_real_plugin_is_checked_with_the_real_loader():
    """On this machine's own Qt: every library ldd reports missing is named, none invented."""
    import shutil
    import subprocess

    plugin = pc.xcb_plugin()
    if plugin is None or shutil.which("ldd") is None:
        pytest.skip("no xcb plugin or no ldd here")
    out = subprocess.run(["ldd", str(plugin)], capture_output=True, text=True).stdout
    expected = {line.split()[0] for line in out.splitlines() if "not found" in line}
    assert set(pc.missing_libraries(plugin)) == expected


def test_nodeforge_prints_the_fix_and_exits_1_before_creating_the_application(tmp_path, monkeypatch, capsys):
    from nodeforge.ui import app

    plugin = tmp_path / "libqxcb.so"
    plugin.write_bytes(b"")
    monkeypatch.setenv("QT_QPA_PLATFORM", "xcb")
    monkeypatch.setattr(pc, "xcb_plugin", lambda: plugin)
    monkeypatch.setattr(pc.shutil, "which", lambda name: fake_ldd(tmp_path, "libxcb-cursor.so.0"))
    monkeypatch.setattr(app, "make_app", lambda *a: pytest.fail("QApplication must not be created"))
    assert app.main(None) == 1
    err = capsys.readouterr().err.strip()
    assert err.endswith("fix: sudo apt-get install libxcb-cursor0") and "\n" not in err
