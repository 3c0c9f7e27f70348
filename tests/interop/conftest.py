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


class ExportedBack:
    """A fixture file imported and exported again as an API prompt (`prompt`), beside the API prompt it
    was made from (`original`); `workflow`: the imported graph."""

    def __init__(self, workflow, prompt: dict, original: dict) -> None:
        self.workflow, self.prompt, self.original = workflow, prompt, original

    def assert_kept(self, nids, class_type: str | None = None) -> None:
        """Each node of `nids` went back as its original class (or `class_type`) with the original's inputs."""
        for nid in nids:
            assert self.prompt[nid]["class_type"] == (class_type or self.original[nid]["class_type"]), nid
            assert self.prompt[nid]["inputs"] == self.original[nid]["inputs"], (nid, self.original[nid]["class_type"])


@pytest.fixture
def exported_back(read, registry, validate):
    """`exported_back(name, original)`: the fixture `name` (UI 0.4 or API) imported and exported as an API
    prompt, beside the API prompt `original` in data/; with `valid=True` the imported graph must validate."""
    import json

    from nodeforge.interop import export_comfyui_api

    def go(name, original: str, valid: bool = False) -> ExportedBack:
        workflow = read(name).workflow
        if valid:
            assert validate(workflow) == []
        prompt = export_comfyui_api(workflow, registry=registry)
        return ExportedBack(workflow, prompt, json.loads((DATA / original).read_text()))
    return go
