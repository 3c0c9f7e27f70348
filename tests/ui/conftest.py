"""Fixtures for the editor's tests: offscreen Qt, a private data folder, and a fast node pack."""
from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pytest  # noqa: E402

from tests.ui.helpers import PACKS  # noqa: E402


@pytest.fixture(scope="session", autouse=True)
def private_home(tmp_path_factory):
    home = tmp_path_factory.mktemp("nodeforge-home")
    os.environ["NODEFORGE_HOME"] = str(home)
    from PySide6.QtCore import QSettings

    QSettings.setDefaultFormat(QSettings.Format.IniFormat)
    QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, str(home / "settings"))
    return home


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
    from nodeforge.ui.main_window import MainWindow

    win = MainWindow(engine)
    win.confirm_close = False
    qtbot.addWidget(win)
    win.resize(1200, 800)
    yield win
    from nodeforge_packs.uitest_nodes import GATE

    GATE.set()
    win.runner.cancel()
    win.runner.wait(10)
    win.autosaver.discard()


@pytest.fixture
def studio(qtbot, tmp_path):
    """The editor on the built-in node pack and the default model folders (the private home's
    models/ and the bundled ones), as a user starts it."""
    from nodeforge.core.engine import Engine
    from nodeforge.core.registry import load_registry
    from nodeforge.ui.main_window import MainWindow

    win = MainWindow(Engine(device="cpu", registry=load_registry(), output_dir=tmp_path / "out"))
    win.confirm_close = False
    qtbot.addWidget(win)
    win.resize(1200, 800)
    win.show()
    qtbot.waitExposed(win)
    yield win
    win.runner.cancel()
    win.runner.wait(10)
    win.autosaver.discard()

