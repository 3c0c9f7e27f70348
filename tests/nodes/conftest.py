"""Fixtures for the diffusion pack: tiny models in a temporary models folder, engines on it."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))   # the helper module tiny_models (a conftest cannot be imported by name)


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory) -> Path:
    import torch

    import tiny_models as tm

    torch.set_num_threads(2)
    root = tmp_path_factory.mktemp("models")
    (root / "checkpoints").mkdir()
    (root / "loras").mkdir()
    parts = tm.make_components(0)
    folder = tm.save_diffusers(parts, root / "checkpoints" / "tiny-sd")
    tm.save_single_file(parts, folder, root / "checkpoints" / "tiny-sd-single.safetensors", "sd1")
    tm.kohya_lora(parts["unet"], parts["text_encoder"], root / "loras" / "kohya.safetensors")
    tm.kohya_lora(parts["unet"], parts["text_encoder"], root / "loras" / "kohya-ldm.safetensors", ldm_names=True)
    tm.kohya_lora(parts["unet"], parts["text_encoder"], root / "loras" / "kohya-b.safetensors", seed=7)
    tm.peft_lora(parts["unet"], parts["text_encoder"], root / "loras" / "peft.safetensors")
    tm.foreign_lora(root / "loras" / "foreign.safetensors")
    return root


@pytest.fixture(scope="session")
def flux_dir(tmp_path_factory) -> Path:
    """tiny-flux (dev), tiny-flux-schnell and LoRAs of tiny-flux in each layout (tests/nodes/tiny_flux.py),
    for the Flux and offload tests; read, never written."""
    import torch

    import tiny_flux as tf

    torch.set_num_threads(2)
    root = tmp_path_factory.mktemp("fluxmodels")
    (root / "checkpoints").mkdir()
    parts = tf.make_flux_components(0)
    tf.save_flux_folder(parts, root / "checkpoints" / "tiny-flux")
    tf.save_flux_folder(tf.make_flux_components(1, guidance=False), root / "checkpoints" / "tiny-flux-schnell")
    tf.flux_loras(parts["transformer"], root / "loras")
    return root


@pytest.fixture(scope="session")
def registry():
    from nodeforge.core.registry import load_registry

    reg = load_registry(entry_points=False)
    assert not reg.failures, reg.failures
    return reg


@pytest.fixture(scope="session")
def make_engine(models_dir, registry):
    """`make_engine(output_dir, *roots)`: a CPU engine over the tiny models and any more model folders."""
    from nodeforge import Engine
    from nodeforge.core.models import ModelPaths

    def make(output_dir, *roots):
        return Engine(device="cpu", output_dir=output_dir, registry=registry,
                      model_paths=ModelPaths(roots=[models_dir, *roots]))
    return make


@pytest.fixture(scope="session")
def engine(make_engine, tmp_path_factory):
    """One engine for the session (its cache and loaded models are shared across tests)."""
    return make_engine(tmp_path_factory.mktemp("out"))


@pytest.fixture
def fresh_engine(make_engine, tmp_path):
    return make_engine(tmp_path / "out")


@pytest.fixture
def make_txt2img():
    """Build a txt2img workflow (see tiny_models.txt2img)."""
    import tiny_models as tm

    return tm.txt2img
