"""Z-Image as a model family, checked against diffusers' ZImagePipeline and ZImageImg2ImgPipeline on
tiny random models (tests/nodes/tiny_zimage.py): loading a ZImagePipeline folder, the Qwen3 prompt
with the chat template, the shipped txt2img graph with only the checkpoint, size and steps changed,
CFG as the pipeline's guidance_scale + 1, the shift, img2img, and refusals of files that cannot work."""
from __future__ import annotations

import json
from functools import partial
from pathlib import Path

import pytest
import torch

import tiny_models as tm
import tiny_zimage as tz
from nodeforge.core.errors import NodeError
from tiny_models import latent_of

PROMPT = "a red circle on a blue background"


@pytest.fixture(scope="module")
def zimage_dir(tmp_path_factory) -> Path:
    torch.set_num_threads(2)
    root = tmp_path_factory.mktemp("zimagemodels")
    (root / "checkpoints").mkdir()
    parts = tz.make_zimage_components(0)
    tz.save_zimage_folder(parts, root / "checkpoints" / "tiny-zimage")
    tz.zimage_loras(parts["transformer"], root / "loras")
    return root


@pytest.fixture(scope="module")
def zimage_engine(make_engine, zimage_dir, tmp_path_factory):
    return make_engine(tmp_path_factory.mktemp("zimageout"), zimage_dir)


def _pipe(zimage_dir, cls="ZImagePipeline", **scheduler):
    return tm.pipeline(zimage_dir / "checkpoints" / "tiny-zimage", cls, **scheduler)


@pytest.fixture(scope="module")
def pipe(zimage_dir):
    return _pipe(zimage_dir)


shipped_txt2img = partial(tm.shipped_txt2img, "tiny-zimage", steps=4)   # (width=32, height=32, **UNetDenoise params)


def theirs(pipe, *, seed: int, steps: int = 4, width: int = 32, height: int = 32, cfg: float = 1.0,
           **kw) -> torch.Tensor:
    """The pipeline's latents for NodeForge's cfg (the pipeline's guidance_scale is cfg - 1)."""
    return pipe(kw.pop("prompt", PROMPT), num_inference_steps=steps, height=height, width=width,
                guidance_scale=cfg - 1.0, generator=torch.Generator().manual_seed(seed), output_type="latent",
                **kw).images


def _max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max())


# -- loading and text ----------------------------------------------------------------------------------------
def test_a_zimage_folder_loads_as_the_zimage_family_with_16_channel_latents(zimage_dir):
    from nodes.families.probe import model_facts
    from nodes.loading import load_checkpoint

    folder = zimage_dir / "checkpoints" / "tiny-zimage"
    unet, clip, vae = load_checkpoint(folder, "cpu").wrappers()
    assert (unet.family, unet.prediction_type, unet.latent_channels, unet.vae_factor) == ("zimage", "flow", 16, 2)
    assert unet.scheduler_config["shift"] == 3.0 and not unet.scheduler_config["use_dynamic_shifting"]
    assert clip.family == "zimage" and type(clip.text_encoder).__name__ == "Qwen3Model"
    assert (vae.scaling_factor, vae.shift_factor, vae.latent_channels) == (0.3611, 0.1159, 16)
    assert model_facts(folder) == {"family": "zimage", "flow": True}   # validation knows it without loading


@pytest.mark.parametrize("text", [PROMPT, ""])
def test_text_encoder_gives_the_pipelines_qwen3_prompt(zimage_engine, pipe, text):
    from nodeforge import Workflow

    wf = Workflow()
    wf.add("CheckpointLoader", {"checkpoint": "tiny-zimage"}, node_id="ckpt")
    wf.add("TextEncoder", {"text": text}, {"clip": ("ckpt", "clip")}, node_id="pos")
    entry = zimage_engine.run(wf, outputs=["pos"]).outputs["pos"]["conditioning"][0]
    expected = pipe.encode_prompt(text, do_classifier_free_guidance=False)[0][0]   # [tokens, 16], no padding
    chat = pipe.tokenizer.apply_chat_template([{"role": "user", "content": text}], tokenize=False,
                                              add_generation_prompt=True, enable_thinking=True)
    assert entry["family"] == "zimage" and entry["embeds"].shape == (1, len(pipe.tokenizer(chat).input_ids), 16)
    torch.testing.assert_close(entry["embeds"][0], expected, atol=1e-5, rtol=1e-5)


def test_a_tokenizer_without_chat_template_gets_qwen3s_turn(pipe):
    from nodes.families.zimage_text import chat_text

    with_template = chat_text(pipe.tokenizer, "a cat")
    bare = tz.make_qwen_tokenizer()
    bare.chat_template = None
    assert chat_text(bare, "a cat") == with_template == "<|im_start|>user\na cat<|im_end|>\n<|im_start|>assistant\n"


# -- sampling --------------------------------------------------------------------------------------------------
def test_shipped_txt2img_with_cfg_1_gives_zimage_pipelines_latents(zimage_engine, pipe):
    ours = latent_of(zimage_engine, shipped_txt2img(seed=7, cfg=1.0))
    assert ours.shape == (1, 16, 16, 16)
    expected = theirs(pipe, seed=7)
    assert _max_diff(ours, expected) < 1e-4


def test_shipped_txt2img_as_it_is_runs_cfg_with_its_negative_prompt(zimage_engine, pipe):
    wf = shipped_txt2img(seed=3)
    assert wf.nodes["5"].params["cfg"] == 5.0 and wf.nodes["3"].params["text"] == ""
    ours = latent_of(zimage_engine, wf)
    assert _max_diff(ours, theirs(pipe, seed=3, cfg=5.0, negative_prompt="")) < 1e-4   # guidance_scale 4
    assert _max_diff(ours, theirs(pipe, seed=3)) > 1e-3   # the negative prompt steered


def test_shipped_txt2img_decodes_to_zimage_pipelines_image(zimage_engine, pipe):
    image = zimage_engine.run(shipped_txt2img(seed=8, cfg=1.0), outputs=["6"]).outputs["6"]["image"]
    expected = pipe(PROMPT, num_inference_steps=4, height=32, width=32, guidance_scale=0.0,
                    generator=torch.Generator().manual_seed(8), output_type="pt").images
    assert image.shape == (1, 32, 32, 3)
    torch.testing.assert_close(image, expected.permute(0, 2, 3, 1), atol=1e-4, rtol=1e-4)


def test_a_batch_of_two_is_two_single_runs_of_seed_and_seed_plus_one(zimage_engine):
    wf = shipped_txt2img(seed=20, cfg=2.0)
    wf.nodes["4"].params["batch_size"] = 2
    both = latent_of(zimage_engine, wf)
    assert both.shape == (2, 16, 16, 16)
    for i in range(2):
        single = latent_of(zimage_engine, shipped_txt2img(seed=20 + i, cfg=2.0))
        assert _max_diff(both[i:i + 1], single) < 1e-5


def test_a_wide_image_matches_the_pipeline(zimage_engine, pipe):
    wide = latent_of(zimage_engine, shipped_txt2img(width=64, height=32, seed=2, cfg=1.0))
    assert wide.shape == (1, 16, 16, 32)
    assert _max_diff(wide, theirs(pipe, seed=2, width=64, height=32)) < 1e-4


def test_model_sampling_sd3_sets_the_shift_as_the_schedulers_config(zimage_engine, zimage_dir):
    wf = shipped_txt2img(seed=5, cfg=1.0)
    wf.add("ModelSamplingSD3", {"shift": 6.0}, {"unet": ("1", "unet")}, node_id="shift")
    wf.nodes["5"].inputs["unet"] = ("shift", "unet")
    ours = latent_of(zimage_engine, wf)
    assert _max_diff(ours, theirs(_pipe(zimage_dir, shift=6.0), seed=5)) < 1e-4
    assert _max_diff(ours, latent_of(zimage_engine, shipped_txt2img(seed=5, cfg=1.0))) > 1e-3


@pytest.mark.parametrize("sampler", ["heun", "dpmpp_2m", "uni_pc"])
def test_other_flow_samplers_run_zimage_on_its_shifted_sigmas(zimage_engine, sampler):
    euler = latent_of(zimage_engine, shipped_txt2img(seed=4, steps=8, cfg=1.0))
    other = latent_of(zimage_engine, shipped_txt2img(seed=4, steps=8, cfg=1.0, sampler=sampler))
    assert torch.isfinite(other).all()
    assert (other - euler).abs().mean() < 0.25 * euler.abs().mean()   # the same ODE, another solver


def test_validate_refuses_a_sampler_a_flow_model_cannot_run(zimage_engine):
    found = {(p.node_id, p.field): p.message for p in zimage_engine.validate(shipped_txt2img(sampler="ddim"))}
    assert list(found) == [("5", "sampler")] and "flow model" in found[("5", "sampler")]


def test_an_odd_latent_size_is_refused_with_the_sizes_that_work(zimage_dir):
    from nodes.families.zimage_sampling import ZIMAGE_SAMPLING
    from nodes.loading import load_checkpoint

    unet = load_checkpoint(zimage_dir / "checkpoints" / "tiny-zimage", "cpu").wrappers()[0]
    with pytest.raises(NodeError) as info:
        ZIMAGE_SAMPLING.for_latent(unet, (1, 16, 17, 16))
    assert "2x2" in str(info.value) and "16x17" in str(info.value) and "divisible by 4" in str(info.value)


def _picture(tmp_path) -> Path:
    import numpy as np
    from PIL import Image

    rgb = np.random.default_rng(1).integers(0, 255, (32, 32, 3), dtype=np.uint8)
    path = tmp_path / "start.png"
    Image.fromarray(rgb, "RGB").save(path)
    return path


@pytest.mark.parametrize("cfg", [1.0, 3.0])
def test_img2img_matches_zimage_img2img_pipeline(zimage_engine, zimage_dir, tmp_path, cfg):
    wf = shipped_txt2img(seed=4, steps=5, denoise=0.6, cfg=cfg)
    wf.add("LoadImage", {"path": str(_picture(tmp_path))}, node_id="img")
    wf.add("VAEEncode", {}, {"vae": ("1", "vae"), "image": ("img", "image")}, node_id="enc")
    wf.nodes["5"].inputs["latent"] = ("enc", "latent")
    run = zimage_engine.run(wf, outputs=["5", "enc"])
    ours, encoded = run.outputs["5"]["latent"]["samples"], run.outputs["enc"]["latent"]["samples"]
    img2img = _pipe(zimage_dir, cls="ZImageImg2ImgPipeline")
    expected = theirs(img2img, seed=4, steps=5, cfg=cfg, image=encoded, strength=0.6, negative_prompt="")
    assert _max_diff(ours, expected) < 1e-4
    full = latent_of(zimage_engine, shipped_txt2img(seed=4, steps=5, cfg=cfg))
    assert (ours - encoded).abs().mean() < (full - encoded).abs().mean()


# -- LoRAs ------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("layout", ["kohya", "diffusers"])
def test_a_zimage_lora_gives_the_pipelines_latents_with_it_loaded(zimage_engine, zimage_dir, layout):
    wf = shipped_txt2img(seed=12, cfg=1.0)
    wf.add("LoRALoader", {"lora": f"zimage-{layout}", "strength_unet": 1.0, "strength_clip": 1.0},
           {"unet": ("1", "unet"), "clip": ("1", "clip")}, node_id="lora")
    wf.nodes["5"].inputs["unet"] = ("lora", "unet")
    ours = latent_of(zimage_engine, wf)
    with_lora = _pipe(zimage_dir)
    with_lora.load_lora_weights(str(zimage_dir / "loras" / f"zimage-{layout}.safetensors"))
    assert _max_diff(ours, theirs(with_lora, seed=12)) < 1e-4
    assert _max_diff(ours, latent_of(zimage_engine, shipped_txt2img(seed=12, cfg=1.0))) > 1e-3


# -- refusals --------------------------------------------------------------------------------------------------
def test_a_folder_without_its_text_encoder_names_it_and_the_fix(zimage_dir, tmp_path):
    message = tm.refusal_of_copy(zimage_dir / "checkpoints" / "tiny-zimage", tmp_path / "zimage-no-qwen",
                                 without="text_encoder")
    assert "zimage-no-qwen" in message and "'text_encoder'" in message and "Qwen3" in message
    assert "TextEncoderLoader (type lumina2)" in message and "\n" not in message


def test_a_folder_whose_qwen3_tokenizer_lost_its_vocabulary_names_the_files(zimage_dir, tmp_path):
    """The flow families' folder check (flow.folder_text_encoders): Qwen3's tokenizer is BPE, so the
    refusal names its files as Z-Image's own check did before it."""
    import shutil

    from nodes.loading import load_checkpoint

    folder = shutil.copytree(zimage_dir / "checkpoints" / "tiny-zimage", tmp_path / "zimage-no-vocab")
    for name in ("vocab.json", "merges.txt", "tokenizer.json"):
        (folder / "tokenizer" / name).unlink(missing_ok=True)
    with pytest.raises(NodeError) as info:
        load_checkpoint(folder, "cpu")
    assert str(info.value) == ("zimage-no-vocab/tokenizer holds no usable vocabulary (tokenizer.json, or vocab.json "
                               "and merges.txt); copy it from the model again")


def test_a_zimage_transformer_in_an_sd3_folder_is_refused_naming_both(zimage_dir, tmp_path):
    message = tm.refusal_of_copy(zimage_dir / "checkpoints" / "tiny-zimage", tmp_path / "sd3-with-zimage",
                                 pipeline="StableDiffusion3Pipeline")
    assert "sd3-with-zimage/transformer" in message and "ZImageTransformer2DModel" in message
    assert "StableDiffusion3Pipeline" in message and "\n" not in message


def test_zimage_prompts_and_other_families_prompts_do_not_mix(zimage_engine):
    wf = shipped_txt2img(seed=1)
    wf.add("CheckpointLoader", {"checkpoint": "tiny-sd"}, node_id="sd")
    wf.nodes["2"].inputs["clip"] = ("sd", "clip")
    with pytest.raises(Exception) as info:
        zimage_engine.run(wf, outputs=["5"])
    assert "positive" in str(info.value) and "Z-Image" in str(info.value) and "sd1" in str(info.value)


def test_masked_inpainting_matches_zimage_inpaint_pipeline(zimage_engine, zimage_dir, tmp_path):
    from types import SimpleNamespace

    import numpy as np
    from PIL import Image

    rgba = np.random.default_rng(1).integers(0, 255, (32, 32, 4), dtype=np.uint8)
    rgba[..., 3] = 255
    rgba[:, :16, 3] = 0                     # transparent left half: LoadImage's mask, 1 = repaint
    Image.fromarray(rgba, "RGBA").save(tmp_path / "masked.png")
    wf = shipped_txt2img(seed=6, steps=4, cfg=1.0)
    wf.add("LoadImage", {"path": str(tmp_path / "masked.png")}, node_id="img")
    wf.add("VAEEncode", {}, {"vae": ("1", "vae"), "image": ("img", "image")}, node_id="enc")
    wf.add("SetLatentMask", {}, {"latent": ("enc", "latent"), "mask": ("img", "mask")}, node_id="masked")
    wf.nodes["5"].inputs["latent"] = ("masked", "latent")
    run = zimage_engine.run(wf, outputs=["5", "enc"])
    ours, encoded = run.outputs["5"]["latent"]["samples"], run.outputs["enc"]["latent"]["samples"]
    mask = torch.zeros(1, 1, 32, 32)
    mask[..., :16] = 1.0
    inpaint = _pipe(zimage_dir, cls="ZImageInpaintPipeline")
    # The pipeline VAE-encodes the image itself, sampling the latent with the seed's generator (which moves its
    # noise): hand it VAEEncode's latent instead, as its encoder's output (it scales it back to `encoded`).
    config = inpaint.vae.config
    raw = encoded / config.scaling_factor + config.shift_factor
    inpaint.vae.encode = lambda *a, **k: SimpleNamespace(latents=raw)
    pixels = torch.from_numpy(rgba[..., :3]).permute(2, 0, 1)[None].float() / 255
    expected = theirs(inpaint, seed=6, image=pixels, mask_image=mask, masked_image_latents=encoded, strength=1.0)
    assert _max_diff(ours, expected) < 1e-4
    assert torch.equal(ours[..., 8:], encoded[..., 8:])       # the kept half is the image's latent
    assert (ours[..., :8] - encoded[..., :8]).abs().mean() > 0.1


def test_the_memory_check_estimates_zimages_image_tokens():
    from types import SimpleNamespace

    from nodeforge.paths import builtin_dir
    from nodes import memory

    config = SimpleNamespace(**json.loads((builtin_dir("resources") / "configs" / "zimage" / "transformer" /
                                           "config.json").read_text()))
    # 1024x1024 pixels: a 128x128 latent in 2x2 patches is 4096 image tokens, 3840 wide (30 heads x 128), bf16
    one_k = memory.transformer_activation_bytes(config, (1, 16, 128, 128), 2, False)
    assert one_k == 4096 * 3840 * 2 * memory.FLOW_LIVE_MAPS
    assert memory.transformer_activation_bytes(config, (1, 16, 128, 128), 2, True) == 2 * one_k


@pytest.mark.parametrize("config", ["[]", "{not json", None], ids=["a-list", "broken", "missing"])
def test_a_transformer_folder_with_an_unreadable_config_is_no_flux_or_zimage_folder(tmp_path, config):
    """Flux and Z-Image read the transformer's class name as the probe does (probe.class_name): a
    config.json that is not a JSON object no longer raises out of Flux's and Z-Image's check."""
    from nodes.families import for_folder

    (tmp_path / "transformer").mkdir()
    if config is not None:
        (tmp_path / "transformer" / "config.json").write_text(config)
    found = for_folder(tmp_path)
    assert found is not None and found.name == "sd3"      # SD3 claims any folder with a transformer/
