"""Before Qt starts: can its X11 (xcb) platform plugin load?

On a stock Debian/Ubuntu the plugin's libraries (libxcb-cursor0 first of all) are often missing,
and Qt then prints a page about plugins and aborts (exit status 134). This module finds the
missing libraries the way the dynamic loader would (`ldd` on the plugin; `ctypes.util.find_library`
where there is no ldd) and names the one command that installs them. Nothing here creates a
QApplication, so it runs before Qt could abort.
"""
from __future__ import annotations

import ctypes.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Mapping

# What Qt 6's xcb plugin links beyond libxcb itself, for machines without ldd.
XCB_LIBRARIES = ("xcb-cursor", "xcb-icccm", "xcb-keysyms", "xcb-image", "xcb-render-util", "xcb-shape",
                 "xcb-randr", "xcb-xkb", "xkbcommon-x11", "xcb-util")
# Debian/Ubuntu package names that do not follow the soname rule (libfoo.so.N -> libfooN).
_PACKAGE_EXCEPTIONS = {"libglib-2.0.so.0": "libglib2.0-0", "libgthread-2.0.so.0": "libglib2.0-0",
                       "libdbus-1.so.3": "libdbus-1-3"}


def platform_will_be_xcb(env: Mapping[str, str] = os.environ, platform: str = sys.platform) -> bool:
    """Whether Qt will try the xcb plugin first: QT_QPA_PLATFORM names it first, or it is unset on
    a Linux desktop that is not a Wayland session."""
    if not platform.startswith("linux"):
        return False
    chosen = env.get("QT_QPA_PLATFORM", "").strip()
    if chosen:
        return chosen.split(";")[0].split(":")[0].strip().lower() == "xcb"
    return not env.get("WAYLAND_DISPLAY") and env.get("XDG_SESSION_TYPE", "").lower() != "wayland"


def xcb_plugin() -> Path | None:
    try:
        from PySide6.QtCore import QLibraryInfo
    except ImportError:
        return None
    plugin = Path(QLibraryInfo.path(QLibraryInfo.LibraryPath.PluginsPath)) / "platforms" / "libqxcb.so"
    return plugin if plugin.exists() else None


def missing_libraries(plugin: Path, ldd: str | None = None) -> list[str]:
    """The shared libraries `plugin` needs that the loader cannot find (sonames, in ldd's order)."""
    ldd = ldd if ldd is not None else shutil.which("ldd")
    if ldd:
        try:
            out = subprocess.run([ldd, str(plugin)], capture_output=True, text=True, timeout=20).stdout
        except (OSError, subprocess.SubprocessError):
            out = None
        if out is not None:
            found = re.findall(r"^\s*(\S+)\s+=>\s+not found", out, re.M)
            return list(dict.fromkeys(found))
    return [f"lib{name}.so" for name in XCB_LIBRARIES if ctypes.util.find_library(name) is None]


def debian_package(soname: str) -> str:
    """The Debian/Ubuntu package that ships `soname`: libxcb-cursor.so.0 -> libxcb-cursor0,
    libxkbcommon-x11.so.0 -> libxkbcommon-x11-0, libX11-xcb.so.1 -> libx11-xcb1."""
    if soname in _PACKAGE_EXCEPTIONS:
        return _PACKAGE_EXCEPTIONS[soname]
    match = re.fullmatch(r"(lib.+?)\.so(?:\.(\d+))?(?:\.[\d.]+)?", soname)
    if not match:
        return soname
    base, version = match.group(1).lower(), match.group(2)
    if version is None:   # from find_library: the name without a version; Debian's current one
        version = {"libxcb-util": "1", "libxcb-icccm": "4", "libxcb-keysyms": "1"}.get(base, "0")
    return f"{base}-{version}" if base[-1].isdigit() else f"{base}{version}"


def xcb_problem(env: Mapping[str, str] = os.environ, plugin: Path | None = None,
                ldd: str | None = None) -> str | None:
    """One line that says what is missing and how to install it, or None when Qt can start."""
    if not platform_will_be_xcb(env):
        return None
    plugin = plugin if plugin is not None else xcb_plugin()
    if plugin is None:
        return None
    missing = missing_libraries(plugin, ldd)
    if not missing:
        return None
    packages = " ".join(dict.fromkeys(debian_package(s) for s in missing))
    return (f"error: the editor cannot start: Qt's X11 (xcb) plugin needs {', '.join(missing)}, which "
            f"{'is' if len(missing) == 1 else 'are'} not installed; fix: sudo apt-get install {packages}")
