"""Qwen-Image as a model family, checked against diffusers' QwenImagePipeline on tiny random models
(tests/nodes/tiny_qwenimage.py): loading a QwenImagePipeline folder, the Qwen2.5-VL prompt with the template
and its dropped prefix, the shipped txt2img graph with only the checkpoint, size and steps changed, the
resolution-dependent shift, a fixed shift from ModelSamplingSD3, the VAE, and refusals of files that
cannot work."""
from __future__ import annotations

from functools import partial
from pathlib import Path

import pytest
import torch

import tiny_models as tm
import tiny_qwenimage as tq
from nodeforge.core.errors import NodeError
from tiny_models import latent_of

PROMPT = "a red circle on a blue background"


@pytest.fixture(scope="module")
def qwen_dir(tmp_path_factory) -> Path:
    torch.set_num_threads(2)
    root = tmp_path_factory.mktemp("qwenmodels")
    (root / "checkpoints").mkdir()
    parts = tq.make_qwenimage_components(0)
    tq.save_qwenimage_folder(parts, root / "checkpoints" / "tiny-qwen")
    tq.qwen_loras(parts["transformer"], root / "loras")
    return root


@pytest.fixture(scope="module")
def qwen_engine(make_engine, qwen_dir, tmp_path_factory):
    return make_engine(tmp_path_factory.mktemp("qwenout"), qwen_dir)


def _pipe(qwen_dir, cls: str = "QwenImagePipeline", **scheduler):
    from nodes.families.qwenimage_text import TXT2IMG_TEMPLATE

    pipe = tm.pipeline(qwen_dir / "checkpoints" / "tiny-qwen", cls, **scheduler)
    # the template's prefix in this tokenizer (34 tokens in Qwen's own)
    pipe.prompt_template_encode_start_idx = tq.prefix_length(pipe.tokenizer, TXT2IMG_TEMPLATE)
    return pipe


@pytest.fixture(scope="module")
def pipe(qwen_dir):
    return _pipe(qwen_dir)


shipped_txt2img = partial(tm.shipped_txt2img, "tiny-qwen", steps=3, width=64, height=64)


def theirs(pipe, *, seed: int, steps: int = 3, width: int = 64, height: int = 64, **kw) -> torch.Tensor:
    """The pipeline's latents, unpacked to NodeForge's [B, 16, h, w]."""
    from diffusers import QwenImagePipeline

    packed = pipe(kw.pop("prompt", PROMPT), num_inference_steps=steps, height=height, width=width,
                  true_cfg_scale=kw.pop("true_cfg_scale", 1.0), generator=torch.Generator().manual_seed(seed),
                  output_type="latent", **kw).images
    return QwenImagePipeline._unpack_latents(packed, height, width, 8)[:, :, 0]


def _max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max())


# -- loading and text ----------------------------------------------------------------------------------------
def test_a_qwenimage_folder_loads_as_the_qwenimage_family_with_16_channel_latents(qwen_dir):
    from nodes.families.probe import model_facts
    from nodes.loading import load_checkpoint

    folder = qwen_dir / "checkpoints" / "tiny-qwen"
    unet, clip, vae = load_checkpoint(folder, "cpu").wrappers()
    assert (unet.family, unet.prediction_type, unet.latent_channels, unet.vae_factor) == ("qwenimage", "flow", 16, 8)
    assert unet.scheduler_config["use_dynamic_shifting"] and unet.scheduler_config["max_image_seq_len"] == 8192
    assert clip.family == "qwenimage" and type(clip.text_encoder).__name__ == "Qwen2_5_VLForConditionalGeneration"
    assert (vae.scaling_factor, vae.shift_factor, vae.latent_channels, vae.factor) == (1.0, 0.0, 16, 8)
    assert model_facts(folder) == {"family": "qwenimage", "flow": True}   # validation knows it without loading


@pytest.mark.parametrize("text", [PROMPT, ""])
def test_text_encoder_gives_the_pipelines_qwen25_vl_prompt(qwen_engine, pipe, text):
    from nodeforge import Workflow

    wf = Workflow()
    wf.add("CheckpointLoader", {"checkpoint": "tiny-qwen"}, node_id="ckpt")
    wf.add("TextEncoder", {"text": text}, {"clip": ("ckpt", "clip")}, node_id="pos")
    entry = qwen_engine.run(wf, outputs=["pos"]).outputs["pos"]["conditioning"][0]
    expected, mask = pipe.encode_prompt(text)
    assert mask is None and entry["family"] == "qwenimage" and entry["embeds"].shape == expected.shape
    torch.testing.assert_close(entry["embeds"], expected, atol=1e-5, rtol=1e-5)


# -- sampling --------------------------------------------------------------------------------------------------
def test_shipped_txt2img_with_cfg_1_gives_qwenimage_pipelines_latents(qwen_engine, pipe):
    ours = latent_of(qwen_engine, shipped_txt2img(seed=7, cfg=1.0))
    assert ours.shape == (1, 16, 8, 8)
    assert _max_diff(ours, theirs(pipe, seed=7)) < 1e-4


def test_cfg_mixes_the_negative_prompts_velocity_as_comfyui_does(qwen_engine, pipe):
    """cfg > 1: uncond + cfg (cond - uncond) on every step (the pipeline's true CFG without its norm rescale)."""
    import diffusers.pipelines.qwenimage.pipeline_qwenimage as module

    wf = shipped_txt2img(seed=3)
    assert wf.nodes["5"].params["cfg"] == 5.0 and wf.nodes["3"].params["text"] == ""
    ours = latent_of(qwen_engine, wf)
    norm = torch.norm
    module.torch.norm = lambda x, dim=None, keepdim=False: torch.ones_like(norm(x, dim=dim, keepdim=keepdim))
    try:   # the pipeline's rescale to the positive's norm, made 1 / 1
        expected = theirs(pipe, seed=3, true_cfg_scale=5.0, negative_prompt="")
    finally:
        module.torch.norm = norm
    assert _max_diff(ours, expected) < 1e-4
    assert _max_diff(ours, theirs(pipe, seed=3)) > 1e-3   # the negative prompt steered


def test_shipped_txt2img_decodes_to_qwenimage_pipelines_image(qwen_engine, pipe):
    image = qwen_engine.run(shipped_txt2img(seed=8, cfg=1.0), outputs=["6"]).outputs["6"]["image"]
    expected = pipe(PROMPT, num_inference_steps=3, height=64, width=64, true_cfg_scale=1.0,
                    generator=torch.Generator().manual_seed(8), output_type="pt").images
    assert image.shape == (1, 64, 64, 3)
    torch.testing.assert_close(image, expected.permute(0, 2, 3, 1), atol=1e-4, rtol=1e-4)


def test_a_wide_image_matches_the_pipeline_with_its_own_shift(qwen_engine, pipe):
    wide = latent_of(qwen_engine, shipped_txt2img(width=128, height=64, seed=2, cfg=1.0))
    assert wide.shape == (1, 16, 8, 16)
    assert _max_diff(wide, theirs(pipe, seed=2, width=128, height=64)) < 1e-4


def test_model_sampling_sd3_gives_a_fixed_shift_in_place_of_the_resolution_one(qwen_engine, qwen_dir):
    wf = shipped_txt2img(seed=5, cfg=1.0)
    wf.add("ModelSamplingSD3", {"shift": 3.1}, {"unet": ("1", "unet")}, node_id="shift")
    wf.nodes["5"].inputs["unet"] = ("shift", "unet")
    ours = latent_of(qwen_engine, wf)
    fixed = _pipe(qwen_dir, shift=3.1, use_dynamic_shifting=False, shift_terminal=None)
    assert _max_diff(ours, theirs(fixed, seed=5)) < 1e-4
    assert _max_diff(ours, latent_of(qwen_engine, shipped_txt2img(seed=5, cfg=1.0))) > 1e-3


def test_img2img_round_trips_through_the_qwen_vae(qwen_engine, pipe):
    """VAEEncode gives the pipeline's normalised latents ((mode - mean) / std), which VAEDecode undoes."""
    image = qwen_engine.run(shipped_txt2img(seed=8, cfg=1.0), outputs=["6"]).outputs["6"]["image"]
    from nodes.loading import load_checkpoint
    from nodes.vae import encode

    vae = load_checkpoint(Path(pipe.config._name_or_path), "cpu").wrappers()[2]
    ours = encode(vae, image)
    raw = pipe.vae.encode(image.permute(0, 3, 1, 2)[:, :, None] * 2 - 1).latent_dist.mode()[:, :, 0]
    mean = torch.tensor(pipe.vae.config.latents_mean).view(1, -1, 1, 1)
    std = torch.tensor(pipe.vae.config.latents_std).view(1, -1, 1, 1)
    torch.testing.assert_close(ours, (raw - mean) / std, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("layout", ["comfy", "diffusers"])
def test_a_qwenimage_lora_gives_the_pipelines_latents_with_it_loaded(qwen_engine, qwen_dir, layout):
    """LoraLoaderModelOnly's job on Qwen-Image: a LoRA in ComfyUI's (lightx2v's Lightning) or diffusers' layout."""
    wf = shipped_txt2img(seed=12, cfg=1.0)
    wf.add("LoRALoader", {"lora": f"qwen-{layout}", "strength_unet": 1.0, "strength_clip": 0.0},
           {"unet": ("1", "unet"), "clip": ("1", "clip")}, node_id="lora")
    wf.nodes["5"].inputs["unet"] = ("lora", "unet")
    ours = latent_of(qwen_engine, wf)
    with_lora = _pipe(qwen_dir)
    with_lora.load_lora_weights(str(qwen_dir / "loras" / f"qwen-{layout}.safetensors"))
    assert _max_diff(ours, theirs(with_lora, seed=12)) < 1e-4
    assert _max_diff(ours, latent_of(qwen_engine, shipped_txt2img(seed=12, cfg=1.0))) > 1e-3


@pytest.mark.parametrize("cfg", [1.0, 3.0])
def test_img2img_matches_qwenimage_img2img_pipeline(qwen_engine, qwen_dir, tmp_path, cfg):
    """VAEEncode's latent noised by interpolation at the plan's first sigma, as QwenImageImg2ImgPipeline's
    scale_noise (its strength = denoise); cfg 3 with the pipeline's norm rescale neutralised, as above."""
    import numpy as np
    from PIL import Image

    import diffusers.pipelines.qwenimage.pipeline_qwenimage_img2img as module

    path = tmp_path / "start.png"
    Image.fromarray(np.random.default_rng(1).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(path)
    wf = shipped_txt2img(seed=4, steps=5, denoise=0.6, cfg=cfg)
    wf.add("LoadImage", {"path": str(path)}, node_id="img")
    wf.add("VAEEncode", {}, {"vae": ("1", "vae"), "image": ("img", "image")}, node_id="enc")
    wf.nodes["5"].inputs["latent"] = ("enc", "latent")
    run = qwen_engine.run(wf, outputs=["5", "enc"])
    ours, encoded = run.outputs["5"]["latent"]["samples"], run.outputs["enc"]["latent"]["samples"]
    norm = torch.norm
    module.torch.norm = lambda x, dim=None, keepdim=False: torch.ones_like(norm(x, dim=dim, keepdim=keepdim))
    try:
        expected = theirs(_pipe(qwen_dir, "QwenImageImg2ImgPipeline"), seed=4, steps=5, image=encoded, strength=0.6,
                          true_cfg_scale=cfg, negative_prompt="")
    finally:
        module.torch.norm = norm
    assert _max_diff(ours, expected) < 1e-4
    full = latent_of(qwen_engine, shipped_txt2img(seed=4, steps=5, cfg=cfg))
    assert (ours - encoded).abs().mean() < (full - encoded).abs().mean()


def test_qwenimage_runs_in_bf16_or_fp32_never_fp16(monkeypatch):
    """fp16 overflows in Qwen-Image's transformer and VAE: an fp16-only device runs them in fp32."""
    from nodes import loading
    from nodes.families import qwenimage

    assert qwenimage.transformer_dtype("cpu") == torch.float32
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert qwenimage.transformer_dtype("cuda") == torch.bfloat16 and loading.vae_dtype("cuda", True) == torch.bfloat16
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert qwenimage.transformer_dtype("cuda") == torch.float32 and loading.vae_dtype("cuda", True) == torch.float32
    assert qwenimage.transformer_dtype("mps") == torch.float32


def test_an_odd_latent_size_is_refused_with_the_sizes_that_work(qwen_dir):
    from nodes.families.qwenimage_sampling import QWENIMAGE_SAMPLING
    from nodes.loading import load_checkpoint

    unet = load_checkpoint(qwen_dir / "checkpoints" / "tiny-qwen", "cpu").wrappers()[0]
    with pytest.raises(NodeError) as info:
        QWENIMAGE_SAMPLING.for_latent(unet, (1, 16, 9, 8))
    assert "2x2" in str(info.value) and "8x9" in str(info.value) and "divisible by 16" in str(info.value)


def test_a_zimage_prompt_on_a_qwenimage_model_is_refused_naming_the_fix(qwen_dir):
    from nodes.families.qwenimage_sampling import _side
    from nodes.loading import load_checkpoint

    unet = load_checkpoint(qwen_dir / "checkpoints" / "tiny-qwen", "cpu").wrappers()[0]
    with pytest.raises(NodeError) as info:
        _side([{"embeds": torch.zeros(1, 3, 16), "pooled": None, "family": "zimage"}], "positive", unet)
    assert "zimage" in str(info.value) and "Qwen-Image" in str(info.value)
