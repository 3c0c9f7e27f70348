"""ComfyUI's Flux graphs as users share them (UNETLoader + DualCLIPLoader + VAELoader; dev with
FluxGuidance, ModelSamplingFlux and custom sampling; schnell with KSampler in 4 steps), imported with a
model map onto tiny Flux files in ComfyUI's folders (tests/nodes/tiny_flux.py) and run."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

import tiny_flux as tf

DATA = Path(__file__).resolve().parents[1] / "interop" / "data"


@pytest.fixture(scope="module")
def flux_root(tmp_path_factory) -> Path:
    torch.set_num_threads(2)
    root = tmp_path_factory.mktemp("fluxcustom")
    parts = tf.make_flux_components(0)
    tf.save_separate_files(parts, tf.save_flux_folder(parts, root / "folders" / "tiny-flux"), root)
    schnell = tf.make_flux_components(1, guidance=False)
    other = root / "schnell"
    files = tf.save_separate_files(schnell, tf.save_flux_folder(schnell, root / "folders" / "tiny-schnell"), other)
    shutil.move(str(files["transformer"]), str(root / "diffusion_models" / "schnell-tiny.safetensors"))
    shutil.move(str(files["transformer"].with_name("flux-tiny.config")),
                str(root / "diffusion_models" / "schnell-tiny.config"))
    return root


@pytest.fixture(scope="module")
def flux_engine(make_engine, flux_root, tmp_path_factory):
    return make_engine(tmp_path_factory.mktemp("fluxcustomout"), flux_root)


def _imported(name: str, flux_engine, model_map: dict[str, str]):
    from nodeforge.interop import read_workflow

    imported = read_workflow(DATA / name, registry=flux_engine.registry, model_map=model_map,
                             model_paths=flux_engine.model_paths)
    assert imported.missing == [], imported.missing
    assert all(n.type != "comfyui.Placeholder" for n in imported.workflow.nodes.values())
    return imported.workflow


@pytest.mark.parametrize("form", ["0.4", "api"])
def test_flux_dev_custom_graph_runs_and_equals_the_ksampler_graph(flux_engine, form):
    wf = _imported(f"comfy-flux-dev-{form}.json", flux_engine, {"flux1-dev.safetensors": "flux-tiny"})
    nodes = wf.nodes
    assert (nodes["12"].type, nodes["11"].type, nodes["10"].type) == \
        ("DiffusionModelLoader", "DualTextEncoderLoader", "VAELoader")
    assert nodes["11"].params["text_encoder_1"].startswith("t5xxl_fp16")
    nodes["27"].params.update(width=32, height=32)
    nodes["17"].params["steps"] = 4
    wf.add("UNetDenoise", {"seed": 219670278747233, "steps": 4, "cfg": 1.0, "sampler": "euler", "schedule": "simple",
                           "denoise": 1.0},
           {"unet": ("30", "unet"), "positive": ("26", "conditioning"), "negative": ("26", "conditioning"),
            "latent": ("27", "latent")}, node_id="ks")
    out = flux_engine.run(wf, outputs=["13", "ks", "9"]).outputs
    got = out["13"]["output"]["samples"]
    assert got.shape == (1, 16, 16, 16) and torch.isfinite(got).all()
    assert torch.equal(got, out["ks"]["latent"]["samples"])


def test_flux_guidance_reaches_the_transformer(flux_engine):
    wf = _imported("comfy-flux-dev-api.json", flux_engine, {"flux1-dev.safetensors": "flux-tiny"})
    wf.nodes["27"].params.update(width=32, height=32)
    wf.nodes["17"].params["steps"] = 2
    first = flux_engine.run(wf, outputs=["13"]).outputs["13"]["output"]["samples"]
    wf.nodes["26"].params["guidance"] = 8.0
    second = flux_engine.run(wf, outputs=["13"]).outputs["13"]["output"]["samples"]
    assert not torch.allclose(first, second)


@pytest.mark.parametrize("form", ["0.4", "api"])
def test_flux_schnell_four_step_graph_runs_on_the_separate_files(flux_engine, form):
    wf = _imported(f"comfy-flux-schnell-{form}.json", flux_engine,
                   {"flux1-schnell.safetensors": "schnell-tiny", "t5xxl_fp8_e4m3fn.safetensors": "t5xxl_fp16"})
    assert wf.nodes["3"].params["steps"] == 4 and wf.nodes["3"].params["cfg"] == 1.0
    wf.nodes["5"].params.update(width=32, height=32)
    latent = flux_engine.run(wf, outputs=["3", "9"]).outputs["3"]["latent"]["samples"]
    assert latent.shape == (1, 16, 16, 16) and torch.isfinite(latent).all()
