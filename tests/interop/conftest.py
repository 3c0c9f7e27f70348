"""Fixtures for the interop tests: the real node pack's declarations, empty model folders."""
from __future__ import annotations

from pathlib import Path

import pytest

DATA = Path(__file__).resolve().parent / "data"


@pytest.fixture(scope="session")
def registry():
    from nodeforge.core.registry import load_registry

    reg = load_registry(entry_points=False)
    assert not reg.failures, reg.failures
    return reg


@pytest.fixture
def no_models(tmp_path):
    """Model folders with nothing in them (and not the bundled ones)."""
    from nodeforge.core.models import ModelPaths

    root = tmp_path / "models"
    root.mkdir()
    return ModelPaths(roots=[root], include_builtin=False)


@pytest.fixture
def read(registry, no_models):
    """import_workflow on a fixture file, against the real pack and empty model folders."""
    from nodeforge.interop import read_workflow

    def go(name, **kw):
        kw.setdefault("model_paths", no_models)
        source = DATA / name if isinstance(name, str) else name
        return read_workflow(source, registry=registry, **kw)
    return go


@pytest.fixture
def validate(registry):
    """The problems Engine.validate finds in a workflow (files not checked), on the real pack with no
    model folders: what an imported graph must pass before it can run."""
    from nodeforge import Engine
    from nodeforge.core.models import ModelPaths

    engine = Engine(device="cpu", registry=registry, model_paths=ModelPaths(roots=[], include_builtin=False))
    return lambda workflow: engine.validate(workflow, check_files=False)
