"""Flux ControlNets (diffusers' FluxControlNetModel) through ControlNetLoader + ControlNetApply, checked
against FluxControlNetPipeline on tiny random models (tests/nodes/tiny_flux.py; the ControlNets
built as diffusers' tests/pipelines/controlnet_flux/ build them, with non-zero output blocks)."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

import tiny_flux as tf
import tiny_models as tm
from nodeforge.core.errors import NodeError
from tiny_models import latent_of
PROMPT = "a red circle on a blue background"


def make_flux_controlnet(seed: int, *, hint: bool = False, head: int = 16, heads: int = 2, layers: int = 1):
    """InstantX-style (reads VAE latents), or XLabs-style with `hint` (an input_hint_block on the image)."""
    from diffusers import FluxControlNetModel

    torch.manual_seed(seed)
    net = FluxControlNetModel(patch_size=2 if hint else 1, in_channels=64, num_layers=layers, num_single_layers=1,
                              attention_head_dim=head, num_attention_heads=heads, joint_attention_dim=32,
                              pooled_projection_dim=32, guidance_embeds=True,
                              axes_dims_rope=[4, 4, 8] if head == 16 else [16, 56, 56],
                              conditioning_embedding_channels=16 if hint else None)
    return tm.trained_looking(net)


def f8_components(seed: int) -> dict:
    """tiny_flux's parts with a VAE of four levels (8 pixels per latent, as Flux's): an XLabs-style
    input_hint_block downsamples the image 8x, then patches 2x2, matching 2x2-packed latents of it."""
    from diffusers import AutoencoderKL

    parts = tf.make_flux_components(seed)
    torch.manual_seed(seed)
    parts["vae"] = AutoencoderKL(sample_size=32, in_channels=3, out_channels=3, block_out_channels=(8,) * 4,
                                 layers_per_block=1, latent_channels=16, norm_num_groups=1, use_quant_conv=False,
                                 use_post_quant_conv=False, shift_factor=0.1159, scaling_factor=0.3611,
                                 down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4)
    return parts


@pytest.fixture(scope="module")
def cn_dir(tmp_path_factory) -> Path:
    from PIL import Image

    torch.set_num_threads(2)
    root = tmp_path_factory.mktemp("fluxcn")
    for sub in ("checkpoints", "controlnet"):
        (root / sub).mkdir()
    tf.save_flux_folder(tf.make_flux_components(0), root / "checkpoints" / "tiny-flux")
    tf.save_flux_folder(f8_components(0), root / "checkpoints" / "tiny-flux-f8")
    cn = root / "controlnet"
    make_flux_controlnet(5).save_pretrained(str(cn / "flux-cn"))
    make_flux_controlnet(7).save_pretrained(str(cn / "flux-cn-b"))
    make_flux_controlnet(8, hint=True).save_pretrained(str(cn / "flux-cn-xlabs"))
    tm.save_controlnet_file(make_flux_controlnet(6), cn / "flux-cn.safetensors")
    for name, size in (("edges.png", 32), ("edges64.png", 64)):
        rgb = np.zeros((size, size, 3), dtype=np.uint8)
        rgb[size // 4:3 * size // 4, size // 4:3 * size // 4] = 255
        rgb[:, :size // 8, 1] = 128
        Image.fromarray(rgb).save(root / name)
    return root


@pytest.fixture(scope="module")
def cn_engine(make_engine, cn_dir, tmp_path_factory):
    return make_engine(tmp_path_factory.mktemp("fluxcnout"), cn_dir)


def controlled(root: Path, controlnets: list[str], strength: float = 0.8, vae: bool = True, cfg: float = 1.0,
               checkpoint: str = "tiny-flux", size: int = 32):
    """workflows/txt2img.json on a Flux folder with one ControlNetApply per ControlNet, chained."""
    wf = tm.shipped_txt2img(checkpoint, size, size, seed=2, steps=3, cfg=cfg)
    return tm.with_controlnets(wf, root / ("edges.png" if size == 32 else "edges64.png"), controlnets, strength, vae)


def pipeline_latents(root: Path, nets: list[str], strength: float, monkeypatch, checkpoint: str = "tiny-flux",
                     size: int = 32, **kw) -> torch.Tensor:
    from diffusers import FluxControlNetModel, FluxControlNetPipeline
    from diffusers.models.autoencoders.vae import DiagonalGaussianDistribution
    from PIL import Image

    # The pipeline samples the control image's latent distribution with the seed's generator before
    # it draws the noise; NodeForge takes its mean (as VAEEncode): compare on the mean, which also
    # leaves the generator untouched for the noise.
    monkeypatch.setattr(DiagonalGaussianDistribution, "sample", lambda self, generator=None: self.mean)
    loaded = [FluxControlNetModel.from_pretrained(str(root / "controlnet" / n)) for n in nets]
    pipe = FluxControlNetPipeline.from_pretrained(str(root / "checkpoints" / checkpoint),
                                                  controlnet=loaded[0] if len(loaded) == 1 else loaded)
    pipe.set_progress_bar_config(disable=True)
    image = Image.open(root / ("edges.png" if size == 32 else "edges64.png")).convert("RGB")
    packed = pipe(PROMPT, control_image=image if len(nets) == 1 else [image] * len(nets),
                  controlnet_conditioning_scale=strength if len(nets) == 1 else [strength] * len(nets),
                  num_inference_steps=3, guidance_scale=3.5, height=size, width=size,
                  generator=torch.Generator().manual_seed(2), output_type="latent", **kw).images
    return pipe._unpack_latents(packed, size, size, pipe.vae_scale_factor)


def test_a_flux_controlnet_steers_as_flux_controlnet_pipeline(cn_engine, cn_dir, monkeypatch):
    ours = latent_of(cn_engine, controlled(cn_dir, ["flux-cn"]))
    theirs = pipeline_latents(cn_dir, ["flux-cn"], 0.8, monkeypatch)
    torch.testing.assert_close(ours, theirs, atol=1e-4, rtol=0)
    plain = latent_of(cn_engine, controlled(cn_dir, ["flux-cn"], strength=0.0))
    assert (ours - plain).abs().mean() > 1e-2


def test_with_true_cfg_the_negative_call_reuses_the_positive_controlnet_outputs(cn_engine, cn_dir, monkeypatch):
    ours = latent_of(cn_engine, controlled(cn_dir, ["flux-cn"], cfg=4.0))
    theirs = pipeline_latents(cn_dir, ["flux-cn"], 0.8, monkeypatch, negative_prompt="", true_cfg_scale=4.0)
    torch.testing.assert_close(ours, theirs, atol=1e-4, rtol=0)


def test_two_stacked_flux_controlnets_are_flux_multi_controlnet(cn_engine, cn_dir, monkeypatch):
    ours = latent_of(cn_engine, controlled(cn_dir, ["flux-cn", "flux-cn-b"], strength=0.5))
    theirs = pipeline_latents(cn_dir, ["flux-cn", "flux-cn-b"], 0.5, monkeypatch)
    torch.testing.assert_close(ours, theirs, atol=1e-4, rtol=0)
    one = latent_of(cn_engine, controlled(cn_dir, ["flux-cn"], strength=0.5))
    assert (ours - one).abs().mean() > 1e-3


def test_an_xlabs_style_controlnet_reads_the_image_without_the_vae(cn_engine, cn_dir, monkeypatch):
    wf = controlled(cn_dir, ["flux-cn-xlabs"], vae=False, checkpoint="tiny-flux-f8", size=64)
    assert cn_engine.validate(wf) == []
    ours = latent_of(cn_engine, wf)
    theirs = pipeline_latents(cn_dir, ["flux-cn-xlabs"], 0.8, monkeypatch, checkpoint="tiny-flux-f8", size=64)
    torch.testing.assert_close(ours, theirs, atol=1e-4, rtol=0)


def test_a_single_file_flux_controlnet_loads_with_its_config_beside_it(cn_dir):
    from nodes.controlnet import load_controlnet

    loaded = load_controlnet(cn_dir / "controlnet" / "flux-cn.safetensors", "cpu")
    assert loaded.family == "flux" and loaded.reads_latents
    expected = make_flux_controlnet(6).state_dict()
    assert all(torch.equal(v, expected[k]) for k, v in loaded.model.state_dict().items())


@pytest.mark.parametrize("hint", [False, True])
def test_a_single_file_with_flux_heads_needs_no_config(tmp_path, hint):
    from nodes.controlnet import load_controlnet

    net = make_flux_controlnet(9, hint=hint, head=128, heads=1, layers=2)
    tm.save_controlnet_file(net, tmp_path / "instantx.safetensors", config=False)
    loaded = load_controlnet(tmp_path / "instantx.safetensors", "cpu")
    ours = {k: v for k, v in loaded.model.config.items() if not k.startswith("_")}
    theirs = {k: v for k, v in net.config.items() if not k.startswith("_")}
    assert ours == theirs and loaded.reads_latents == (not hint)
    assert all(torch.equal(v, net.state_dict()[k]) for k, v in loaded.model.state_dict().items())


def test_a_single_file_with_other_heads_and_no_config_names_the_config_folder(cn_dir, tmp_path):
    from nodes.controlnet import load_controlnet

    shutil.copy(cn_dir / "controlnet" / "flux-cn.safetensors", tmp_path / "bare.safetensors")
    with pytest.raises(NodeError) as info:
        load_controlnet(tmp_path / "bare.safetensors", "cpu")
    assert "bare.safetensors" in str(info.value) and "bare.config" in str(info.value)


def test_union_and_xlabs_original_files_are_refused_in_one_line(cn_dir, tmp_path):
    from safetensors.torch import save_file

    from nodes.controlnet import load_controlnet

    union = tmp_path / "union"
    shutil.copytree(cn_dir / "controlnet" / "flux-cn", union)
    config = json.loads((union / "config.json").read_text())
    (union / "config.json").write_text(json.dumps(dict(config, num_mode=10)))
    with pytest.raises(NodeError) as info:
        load_controlnet(union, "cpu")
    assert "union" in str(info.value) and "control type" in str(info.value)
    save_file({"double_blocks.0.img_attn.qkv.weight": torch.zeros(3, 1), "controlnet_blocks.0.weight": torch.zeros(1, 1)},
              str(tmp_path / "flux-canny-controlnet-v3.safetensors"))
    with pytest.raises(NodeError) as info:
        load_controlnet(tmp_path / "flux-canny-controlnet-v3.safetensors", "cpu")
    assert "flux-canny-controlnet-v3" in str(info.value) and "diffusers" in str(info.value)


@pytest.mark.parametrize("controlnet", ["flux-cn", "flux-cn.safetensors"])
def test_an_instantx_controlnet_without_the_vae_is_refused_at_validate(cn_engine, cn_dir, controlnet):
    problems = [(p.node_id, p.field, p.message) for p in cn_engine.validate(controlled(cn_dir, [controlnet], vae=False))]
    assert len(problems) == 1 and problems[0][:2] == ("apply0", "vae") and "Flux ControlNet" in problems[0][2]
    assert cn_engine.validate(controlled(cn_dir, [controlnet])) == []


def test_a_flux_controlnet_on_an_sd3_or_unet_model_and_an_sd3_one_on_flux_are_refused(cn_engine, cn_dir):
    from nodes.controlnet import FlowControlNet, FluxControlNet, load_controlnet
    from nodes.families.flux_control import FluxControls
    from nodes.families.sd3_control import FlowControls

    net = load_controlnet(cn_dir / "controlnet" / "flux-cn", "cpu")
    assert isinstance(net, FluxControlNet)
    control = type("C", (), {"controlnet": net})()
    with pytest.raises(NodeError) as info:
        FlowControls([(control,)], None)
    assert "flux-cn is for Flux models" in str(info.value) and "SD3ControlNetModel" in str(info.value)
    sd3 = FlowControlNet(net.model, "sd3-cn")
    with pytest.raises(NodeError) as info:
        FluxControls((type("C", (), {"controlnet": sd3})(),), None, None)
    assert "sd3-cn is for SD3 models" in str(info.value) and "FluxControlNetModel" in str(info.value)
    wf = controlled(cn_dir, ["flux-cn"])
    wf.nodes["1"].params["checkpoint"] = "tiny-sd"
    wf.nodes["4"].params.update(width=64, height=64)
    with pytest.raises(Exception) as info:
        cn_engine.run(wf, outputs=["5"])
    assert "flux-cn" in str(info.value) and "Flux ControlNet" in str(info.value)
