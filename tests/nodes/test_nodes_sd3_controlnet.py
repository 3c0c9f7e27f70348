"""SD3 ControlNets (diffusers' SD3ControlNetModel) through ControlNetLoader + ControlNetApply, checked
against StableDiffusion3ControlNetPipeline on tiny random models (tests/nodes/tiny_sd3.py)."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

import tiny_models as tm
import tiny_sd3 as ts
from nodeforge.core.errors import NodeError
from tiny_models import latent_of
PROMPT = "a red circle on a blue background"


def make_sd3_controlnet(seed: int, force_zeros: bool):
    from diffusers import SD3ControlNetModel

    torch.manual_seed(seed)
    net = SD3ControlNetModel(sample_size=32, patch_size=1, in_channels=16, num_layers=1, attention_head_dim=8,
                             num_attention_heads=4, joint_attention_dim=32, caption_projection_dim=32,
                             pooled_projection_dim=64, out_channels=16, force_zeros_for_pooled_projection=force_zeros)
    return tm.trained_looking(net)


@pytest.fixture(scope="module")
def cn_dir(tmp_path_factory) -> Path:
    from PIL import Image

    torch.set_num_threads(2)
    root = tmp_path_factory.mktemp("sd3cn")
    for sub in ("checkpoints", "controlnet"):
        (root / sub).mkdir()
    ts.save_sd3_folder(ts.make_sd3_components(0), root / "checkpoints" / "tiny-sd3")
    for force in (True, False):
        make_sd3_controlnet(5, force).save_pretrained(str(root / "controlnet" / f"sd3-cn-{force}"))
    tm.save_controlnet_file(make_sd3_controlnet(6, True), root / "controlnet" / "sd3-cn.safetensors")
    rgb = np.zeros((32, 32, 3), dtype=np.uint8)
    rgb[8:24, 8:24] = 255
    Image.fromarray(rgb).save(root / "edges.png")
    return root


@pytest.fixture(scope="module")
def cn_engine(make_engine, cn_dir, tmp_path_factory):
    return make_engine(tmp_path_factory.mktemp("sd3cnout"), cn_dir)


def controlled(root: Path, controlnet: str, strength: float = 0.8, vae: bool = True):
    """workflows/txt2img.json on tiny-sd3 with one ControlNetApply ("apply0")."""
    return tm.with_controlnets(tm.shipped_txt2img("tiny-sd3", seed=2, steps=3), root / "edges.png", [controlnet],
                               strength, vae)


def pipeline_latents(root: Path, controlnet: Path, strength: float, monkeypatch) -> torch.Tensor:
    from diffusers import SD3ControlNetModel, StableDiffusion3ControlNetPipeline
    from diffusers.models.autoencoders.vae import DiagonalGaussianDistribution
    from PIL import Image

    # The pipeline samples the control image's latent distribution with the global RNG; NodeForge
    # takes its mean (as VAEEncode): compare on the mean.
    monkeypatch.setattr(DiagonalGaussianDistribution, "sample", lambda self, generator=None: self.mean)
    net = SD3ControlNetModel.from_pretrained(str(controlnet))
    pipe = StableDiffusion3ControlNetPipeline.from_pretrained(str(root / "checkpoints" / "tiny-sd3"), controlnet=net)
    pipe.set_progress_bar_config(disable=True)
    return pipe(PROMPT, negative_prompt="", control_image=Image.open(root / "edges.png").convert("RGB"),
                controlnet_conditioning_scale=strength, num_inference_steps=3, guidance_scale=5.0, height=32,
                width=32, generator=torch.Generator().manual_seed(2), output_type="latent").images


@pytest.mark.parametrize("force_zeros", [True, False])
def test_an_sd3_controlnet_steers_as_the_sd3_controlnet_pipeline(cn_engine, cn_dir, force_zeros, monkeypatch):
    ours = latent_of(cn_engine, controlled(cn_dir, f"sd3-cn-{force_zeros}"))
    theirs = pipeline_latents(cn_dir, cn_dir / "controlnet" / f"sd3-cn-{force_zeros}", 0.8, monkeypatch)
    torch.testing.assert_close(ours, theirs, atol=1e-4, rtol=1e-4)
    plain = latent_of(cn_engine, controlled(cn_dir, f"sd3-cn-{force_zeros}", strength=0.0))
    assert (ours - plain).abs().mean() > 1e-2


def test_a_single_file_sd3_controlnet_with_its_config_beside_it_loads(cn_dir):
    from nodes.controlnet import load_controlnet

    loaded = load_controlnet(cn_dir / "controlnet" / "sd3-cn.safetensors", "cpu")
    assert loaded.flow and type(loaded.model).__name__ == "SD3ControlNetModel"
    expected = make_sd3_controlnet(6, True).state_dict()
    assert all(torch.equal(v, expected[k]) for k, v in loaded.model.state_dict().items())
    bare = cn_dir / "bare.safetensors"
    shutil.copy(cn_dir / "controlnet" / "sd3-cn.safetensors", bare)
    with pytest.raises(NodeError) as info:
        load_controlnet(bare, "cpu")
    assert "bare.safetensors" in str(info.value) and "bare.config" in str(info.value)


@pytest.mark.parametrize("controlnet", ["sd3-cn-True", "sd3-cn.safetensors"])
def test_an_sd3_controlnet_without_the_vae_is_refused_at_validate_naming_the_input(cn_engine, cn_dir, controlnet):
    problems = [(p.node_id, p.field, p.message) for p in cn_engine.validate(controlled(cn_dir, controlnet, vae=False))]
    assert len(problems) == 1 and problems[0][:2] == ("apply0", "vae") and "SD3 ControlNet" in problems[0][2]
    assert cn_engine.validate(controlled(cn_dir, controlnet)) == []


def test_without_the_vae_the_run_names_the_input_too(cn_dir):
    from nodes.controlnet import load_controlnet, run_controlnet_apply

    net = load_controlnet(cn_dir / "controlnet" / "sd3-cn-True", "cpu")
    with pytest.raises(NodeError) as info:
        run_controlnet_apply(None, [], [], net, torch.zeros(1, 32, 32, 3), 1.0, 0.0, 1.0)
    assert info.value.field == "vae" and "SD3 ControlNet" in str(info.value)


def test_an_sd3_controlnet_on_a_unet_model_is_refused(engine, cn_dir, tmp_path):
    from nodeforge import Engine
    from nodeforge.core.models import ModelPaths

    wf = controlled(cn_dir, "sd3-cn-True")
    wf.nodes["1"].params["checkpoint"] = "tiny-sd"
    wf.nodes["4"].params.update(width=64, height=64)
    both = Engine(device="cpu", output_dir=tmp_path, registry=engine.registry,
                  model_paths=ModelPaths(roots=[*engine.model_paths.roots, cn_dir]))
    with pytest.raises(Exception) as info:
        both.run(wf, outputs=["5"])
    assert "sd3-cn-True" in str(info.value) and "SD3 ControlNet" in str(info.value)
