"""Shared fixtures: the pure-Python test pack and engines built on it."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

TESTS = Path(__file__).resolve().parent
ARITH_PACK = TESTS / "packs" / "arith"


@pytest.fixture(autouse=True)
def _isolated_user_dir(tmp_path_factory, monkeypatch):
    """Never touch the real user data folder (models, autosave, settings)."""
    home = tmp_path_factory.mktemp("nodeforge-home")
    monkeypatch.setenv("NODEFORGE_HOME", str(home))
    yield home


@pytest.fixture
def packs_on_node_path(monkeypatch):
    """The default registry (what `nodeforge` commands load) with tests/packs on NODEFORGE_NODE_PATH."""
    from nodeforge.core import registry

    monkeypatch.setenv("NODEFORGE_NODE_PATH", str(TESTS / "packs"))
    registry.reset_default_registry()
    yield
    registry.reset_default_registry()


@pytest.fixture
def arith_registry():
    from nodeforge.core.registry import load_registry

    registry = load_registry(builtin=False, node_path=[ARITH_PACK], entry_points=False)
    assert not registry.failures, registry.failures
    return registry


@pytest.fixture
def arith():
    """The test pack's module, with its run counter reset."""
    from nodeforge.core.registry import load_registry

    load_registry(builtin=False, node_path=[ARITH_PACK], entry_points=False)
    import sys

    module = sys.modules["nodeforge_packs.arith"]
    module.RUNS.clear()
    return module


@pytest.fixture
def engine(arith_registry, tmp_path):
    from nodeforge import Engine
    from nodeforge.core.models import ModelPaths

    return Engine(device="cpu", output_dir=tmp_path / "out", registry=arith_registry,
                  model_paths=ModelPaths(roots=[tmp_path / "models"], include_builtin=False))


@pytest.fixture(scope="session")
def tiny_base(tmp_path_factory):
    """A random diffusers folder with the demo model's layout but tiny sizes, for the trainers' tests and
    the Train dialog's (tests/ui cannot see tests/training/conftest.py); read, never written."""
    torch = pytest.importorskip("torch")
    diffusers = pytest.importorskip("diffusers")
    from nodeforge.training import models
    from nodeforge.training.vocab import build_tokenizer

    folder = tmp_path_factory.mktemp("tiny-base")
    torch.manual_seed(0)
    tokenizer = build_tokenizer()
    pipe = diffusers.StableDiffusionPipeline(
        vae=models.make_vae((8, 8, 8)),
        text_encoder=models.make_text_encoder(len(tokenizer), tokenizer.bos_token_id, tokenizer.eos_token_id, 1),
        tokenizer=tokenizer, unet=models.make_unet((16, 16, 16)), scheduler=models.make_scheduler(),
        safety_checker=None, feature_extractor=None, requires_safety_checker=False,
    )
    pipe.save_pretrained(folder)
    return folder
