"""Fixtures for the diffusion pack: tiny models in a temporary models folder, engines on it."""
from __future__ import annotations

from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory) -> Path:
    import sys

    import torch

    sys.path.insert(0, str(HERE))
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
def registry():
    from nodeforge.core.registry import load_registry

    reg = load_registry(entry_points=False)
    assert not reg.failures, reg.failures
    return reg


@pytest.fixture(scope="session")
def engine(models_dir, registry, tmp_path_factory):
    """One engine for the session (its cache and loaded models are shared across tests)."""
    from nodeforge import Engine
    from nodeforge.core.models import ModelPaths

    return Engine(device="cpu", output_dir=tmp_path_factory.mktemp("out"), registry=registry,
                  model_paths=ModelPaths(roots=[models_dir]))


@pytest.fixture
def fresh_engine(models_dir, registry, tmp_path):
    from nodeforge import Engine
    from nodeforge.core.models import ModelPaths

    return Engine(device="cpu", output_dir=tmp_path / "out", registry=registry,
                  model_paths=ModelPaths(roots=[models_dir]))


def txt2img(checkpoint: str = "tiny-sd", text: str = "a red circle", *, seed: int = 42, steps: int = 3,
            cfg: float = 5.0, scheduler: str = "euler", width: int = 32, height: int = 32, lora=None,
            save: bool = False, batch_size: int = 1):
    """A txt2img workflow; `lora` is a list of (name, strength_unet, strength_clip)."""
    from nodeforge import Workflow

    wf = Workflow()
    wf.add("CheckpointLoader", {"checkpoint": checkpoint}, node_id="ckpt")
    unet, clip = ("ckpt", "unet"), ("ckpt", "clip")
    for i, (name, su, sc) in enumerate(lora or []):
        nid = wf.add("LoRALoader", {"lora": name, "strength_unet": su, "strength_clip": sc},
                     {"unet": unet, "clip": clip}, node_id=f"lora{i}")
        unet, clip = (nid, "unet"), (nid, "clip")
    wf.add("TextEncoder", {"text": text}, {"clip": clip}, node_id="pos", title="positive")
    wf.add("TextEncoder", {"text": ""}, {"clip": clip}, node_id="neg", title="negative")
    wf.add("EmptyLatent", {"width": width, "height": height, "batch_size": batch_size}, node_id="empty")
    wf.add("UNetDenoise", {"seed": seed, "steps": steps, "cfg": cfg, "scheduler": scheduler, "denoise": 1.0},
           {"unet": unet, "positive": ("pos", "conditioning"), "negative": ("neg", "conditioning"),
            "latent": ("empty", "latent")}, node_id="denoise")
    wf.add("VAEDecode", {}, {"vae": ("ckpt", "vae"), "latent": ("denoise", "latent")}, node_id="decode")
    if save:
        wf.add("SaveImage", {"prefix": "test"}, {"image": ("decode", "image")}, node_id="save")
    else:
        wf.add("Preview", {}, {"image": ("decode", "image")}, node_id="preview")
    return wf


@pytest.fixture
def make_txt2img():
    return txt2img
