"""Fixtures for the editor's tests: offscreen Qt, a private data folder, and a fast node pack."""
from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pytest  # noqa: E402

from tests.ui.helpers import PACKS, close_window, new_window  # noqa: E402


@pytest.fixture(scope="session", autouse=True)
def private_home(tmp_path_factory):
    home = tmp_path_factory.mktemp("nodeforge-home")
    os.environ["NODEFORGE_HOME"] = str(home)
    from PySide6.QtCore import QSettings

    QSettings.setDefaultFormat(QSettings.Format.IniFormat)
    QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, str(home / "settings"))
    return home


@pytest.fixture(scope="session", autouse=True)
def clipboard_emptied_at_the_end(qapp):
    """Copy and paste tests leave the workflow on the clipboard; Qt crashed at exit (signal 11, after
    every test passed) when the session ended with it there."""
    yield
    qapp.clipboard().clear()


@pytest.fixture(autouse=True)
def no_window_outlives_its_test(qapp):
    """Close what a test left open: pytest-qt closes the main windows, but their non-modal dialogs
    (notes boxes, error boxes, Compare) stay shown with the application's focus, and the next test's
    window (not shown, never active) then read that focus as a panel being typed in."""
    yield
    from PySide6.QtWidgets import QApplication, QDialog

    for widget in QApplication.topLevelWidgets():
        if isinstance(widget, QDialog) and widget.isVisible():
            widget.close()


@pytest.fixture(scope="session")
def registry():
    from nodeforge.core.registry import load_registry

    reg = load_registry(builtin=False, node_path=[PACKS], entry_points=False)
    assert not reg.failures, reg.failures
    return reg


@pytest.fixture
def engine(registry, tmp_path):
    from nodeforge.core.engine import Engine
    from nodeforge.core.models import ModelPaths

    return Engine(device="cpu", output_dir=tmp_path / "out", registry=registry,
                  model_paths=ModelPaths(roots=[tmp_path / "models"], include_builtin=False))


@pytest.fixture
def gate():
    from nodeforge_packs.uitest_nodes import GATE

    GATE.clear()
    yield GATE
    GATE.set()


@pytest.fixture
def window(qtbot, engine):
    win = new_window(qtbot, engine)
    yield win
    from nodeforge_packs.uitest_nodes import GATE

    GATE.set()
    close_window(win)


@pytest.fixture
def studio(qtbot, tmp_path):
    """The editor on the built-in node pack and the default model folders (the private home's
    models/ and the bundled ones), as a user starts it."""
    from nodeforge.core.engine import Engine
    from nodeforge.core.registry import load_registry

    win = new_window(qtbot, Engine(device="cpu", registry=load_registry(), output_dir=tmp_path / "out"))
    win.show()
    qtbot.waitExposed(win)
    yield win
    close_window(win)


@pytest.fixture(scope="session")
def real_registry():
    """The built-in pack's declarations (importing it loads no torch), so node sizes are the real ones."""
    from nodeforge.core.registry import load_registry

    return load_registry(entry_points=False)


@pytest.fixture
def big_window(qtbot, real_registry, tmp_path):
    """1600x1000 with the default docks and the Queue panel docked beside Images, as after a run."""
    from nodeforge.core.engine import Engine

    win = new_window(qtbot, Engine(device="cpu", output_dir=tmp_path / "out", registry=real_registry), (1600, 1000))
    win.show()
    win.show_queue()
    qtbot.waitExposed(win)
    yield win
    close_window(win)

