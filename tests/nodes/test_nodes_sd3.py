"""SD3 as the second model family, checked against diffusers' StableDiffusion3Pipeline on tiny
random models (tests/nodes/tiny_sd3.py): loading (folder with and without T5, single file),
text encoding, flow sampling, img2img, and refusals of files that cannot work."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

import tiny_models as tm
import tiny_sd3 as ts
from nodeforge.core.errors import NodeError
from tiny_models import REPO, latent_of, shipped_txt2img

FLOW_SAMPLERS = ("euler", "euler_ancestral", "heun", "dpmpp_2m", "dpmpp_2m_sde", "uni_pc")


@pytest.fixture(scope="module")
def sd3_dir(tmp_path_factory) -> Path:
    torch.set_num_threads(2)
    root = tmp_path_factory.mktemp("sd3models")
    (root / "checkpoints").mkdir()
    parts = ts.make_sd3_components(0)
    folder = ts.save_sd3_folder(parts, root / "checkpoints" / "tiny-sd3")
    ts.save_sd3_single_file(parts, folder, root / "checkpoints" / "tiny-sd3-single.safetensors")
    ts.save_sd3_folder(ts.make_sd3_components(0, t5=False), root / "checkpoints" / "tiny-sd3-no-t5")
    return root


@pytest.fixture(scope="module")
def sd3_engine(make_engine, sd3_dir, tmp_path_factory):
    return make_engine(tmp_path_factory.mktemp("sd3out"), sd3_dir)


@pytest.fixture(scope="module")
def pipe(sd3_dir):
    return tm.pipeline(sd3_dir / "checkpoints" / "tiny-sd3", "StableDiffusion3Pipeline")


# -- loading -----------------------------------------------------------------------------------------------
def test_a_diffusers_folder_loads_as_the_sd3_family_with_a_16_channel_latent(sd3_dir):
    from nodes.loading import load_checkpoint

    unet, clip, vae = load_checkpoint(sd3_dir / "checkpoints" / "tiny-sd3", "cpu").wrappers()
    assert (unet.family, unet.prediction_type, unet.latent_channels, unet.vae_factor) == ("sd3", "flow", 16, 2)
    assert unet.scheduler_config["shift"] == 3.0
    assert clip.text_encoder_3 is not None and clip.context_width == 32
    assert (vae.scaling_factor, vae.shift_factor, vae.latent_channels) == (1.5035, 0.0609, 16)


def test_the_single_file_gives_the_folders_weights(sd3_dir):
    from nodes.loading import load_checkpoint

    folder = load_checkpoint(sd3_dir / "checkpoints" / "tiny-sd3", "cpu").wrappers()
    single = load_checkpoint(sd3_dir / "checkpoints" / "tiny-sd3-single.safetensors", "cpu").wrappers()
    pairs = [(folder[0].unet, single[0].unet), (folder[1].text_encoder, single[1].text_encoder),
             (folder[1].text_encoder_2, single[1].text_encoder_2), (folder[1].text_encoder_3, single[1].text_encoder_3),
             (folder[2].vae, single[2].vae)]
    for a, b in pairs:
        sa, sb = a.state_dict(), b.state_dict()
        assert sa.keys() == sb.keys()
        assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert single[0].family == "sd3" and single[0].scheduler_config["shift"] == 3.0


def test_the_transformer_config_is_read_from_the_files_keys():
    from diffusers import SD3Transformer2DModel

    from nodes.families.sd3_file import transformer_config

    base = SD3Transformer2DModel.load_config(str(REPO / "resources" / "configs" / "sd3" / "transformer"))
    small = SD3Transformer2DModel(sample_size=32, patch_size=2, in_channels=16, num_layers=3, attention_head_dim=8,
                                  num_attention_heads=4, caption_projection_dim=32, joint_attention_dim=24,
                                  pooled_projection_dim=40, out_channels=16, qk_norm="rms_norm",
                                  dual_attention_layers=(0, 1), pos_embed_max_size=12)
    config = transformer_config(small.state_dict(), base)
    for key in ("patch_size", "in_channels", "num_layers", "attention_head_dim", "num_attention_heads",
                "caption_projection_dim", "joint_attention_dim", "pooled_projection_dim", "out_channels",
                "qk_norm", "pos_embed_max_size"):
        assert config[key] == small.config[key], key
    assert tuple(config["dual_attention_layers"]) == (0, 1)


def test_the_shipped_sd3_configs_build_sd3_medium(tmp_path):
    from diffusers import SD3Transformer2DModel

    with torch.device("meta"):
        model = SD3Transformer2DModel.from_config(
            SD3Transformer2DModel.load_config(str(REPO / "resources" / "configs" / "sd3" / "transformer")))
    assert sum(p.numel() for p in model.parameters()) == pytest.approx(2.03e9, rel=0.01)


# -- text ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("text", ["a red circle on a blue background", ""])
def test_text_encoder_gives_the_pipelines_prompt_embeddings(sd3_engine, pipe, text):
    from nodeforge import Workflow

    wf = Workflow()
    wf.add("CheckpointLoader", {"checkpoint": "tiny-sd3"}, node_id="ckpt")
    wf.add("TextEncoder", {"text": text}, {"clip": ("ckpt", "clip")}, node_id="pos")
    entry = sd3_engine.run(wf, outputs=["pos"]).outputs["pos"]["conditioning"][0]
    embeds, _, pooled, _ = pipe.encode_prompt(text, text, text, do_classifier_free_guidance=False)
    assert entry["embeds"].shape == (1, 77 + 256, 32) and entry["pooled"].shape == (1, 64)
    torch.testing.assert_close(entry["embeds"], embeds, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(entry["pooled"], pooled, atol=1e-5, rtol=1e-5)


def test_text_encoder_sd3_reads_one_prompt_per_encoder(sd3_engine, pipe):
    from nodeforge import Workflow

    wf = Workflow()
    wf.add("CheckpointLoader", {"checkpoint": "tiny-sd3"}, node_id="ckpt")
    wf.add("TextEncoderSD3", {"clip_l": "a red circle", "clip_g": "a green square", "t5xxl": "a star"},
           {"clip": ("ckpt", "clip")}, node_id="pos")
    entry = sd3_engine.run(wf, outputs=["pos"]).outputs["pos"]["conditioning"][0]
    embeds, _, pooled, _ = pipe.encode_prompt("a red circle", "a green square", "a star",
                                              do_classifier_free_guidance=False)
    torch.testing.assert_close(entry["embeds"], embeds, atol=1e-4, rtol=1e-4)
    same, _, _, _ = pipe.encode_prompt("a red circle", None, None, do_classifier_free_guidance=False)
    assert (entry["embeds"][:, :77, 16:] - same[:, :77, 16:]).abs().max() > 1e-3   # CLIP-G read its own text


def test_without_t5_the_prompt_ends_in_256_zero_tokens(sd3_engine, sd3_dir):
    from diffusers import StableDiffusion3Pipeline
    from nodeforge import Workflow

    wf = Workflow()
    wf.add("CheckpointLoader", {"checkpoint": "tiny-sd3-no-t5"}, node_id="ckpt")
    wf.add("TextEncoder", {"text": "a red circle"}, {"clip": ("ckpt", "clip")}, node_id="pos")
    entry = sd3_engine.run(wf, outputs=["pos"]).outputs["pos"]["conditioning"][0]
    assert entry["embeds"].shape == (1, 77 + 256, 32) and not entry["embeds"][:, 77:].any()
    other = StableDiffusion3Pipeline.from_pretrained(str(sd3_dir / "checkpoints" / "tiny-sd3-no-t5"),
                                                     text_encoder_3=None, tokenizer_3=None)
    embeds, _, pooled, _ = other.encode_prompt("a red circle", None, None, do_classifier_free_guidance=False)
    torch.testing.assert_close(entry["embeds"], embeds, atol=1e-4, rtol=1e-4)


def test_a_tokenizer_that_pads_to_16_gives_the_pipelines_shorter_prompt(make_engine, tmp_path):
    """A small model trained on short contexts saves model_max_length 16 (nodeforge-shapes-flow):
    the pipeline pads to it, and so does NodeForge, window by window for longer prompts."""
    from diffusers import StableDiffusion3Pipeline
    from nodeforge import Workflow

    parts = ts.make_sd3_components(4, t5=False)
    parts["tokenizer"].model_max_length = parts["tokenizer_2"].model_max_length = 16
    ts.save_sd3_folder(parts, tmp_path / "checkpoints" / "short")
    engine = make_engine(tmp_path / "out", tmp_path)

    def encoded(text):
        wf = Workflow()
        wf.add("CheckpointLoader", {"checkpoint": "short"}, node_id="ckpt")
        wf.add("TextEncoder", {"text": text}, {"clip": ("ckpt", "clip")}, node_id="pos")
        return engine.run(wf, outputs=["pos"]).outputs["pos"]["conditioning"][0]

    pipe = StableDiffusion3Pipeline.from_pretrained(str(tmp_path / "checkpoints" / "short"), text_encoder_3=None,
                                                    tokenizer_3=None)
    entry = encoded("a red circle on a blue background")
    embeds, _, pooled, _ = pipe.encode_prompt("a red circle on a blue background", None, None,
                                              do_classifier_free_guidance=False)
    assert entry["embeds"].shape == (1, 16 + 256, 32)
    torch.testing.assert_close(entry["embeds"], embeds, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(entry["pooled"], pooled, atol=1e-5, rtol=1e-5)
    assert encoded(" ".join(["red circle"] * 10))["embeds"].shape == (1, 2 * 16 + 256, 32)   # 20 tokens: 2 windows


def test_prompt_weights_and_long_prompts_reach_the_sd3_encoders(sd3_engine):
    from nodeforge import Workflow

    def encoded(text):
        wf = Workflow()
        wf.add("CheckpointLoader", {"checkpoint": "tiny-sd3"}, node_id="ckpt")
        wf.add("TextEncoder", {"text": text}, {"clip": ("ckpt", "clip")}, node_id="pos")
        return sd3_engine.run(wf, outputs=["pos"]).outputs["pos"]["conditioning"][0]["embeds"]

    plain, weighted = encoded("a red circle"), encoded("a (red:1.5) circle")
    assert (plain[:, :77] - weighted[:, :77]).abs().max() > 1e-3     # CLIP part
    assert (plain[:, 77:] - weighted[:, 77:]).abs().max() > 1e-3     # T5 part
    long = encoded(" ".join(["red circle"] * 60))
    assert long.shape == (1, 2 * 77 + 256, 32)


# -- sampling ------------------------------------------------------------------------------------------------
def test_shipped_txt2img_on_a_tiny_sd3_folder_gives_the_pipelines_latents(sd3_engine, pipe):
    ours = latent_of(sd3_engine, shipped_txt2img("tiny-sd3", seed=7, steps=4))
    wf_params = shipped_txt2img("tiny-sd3").nodes
    theirs = pipe(wf_params["2"].params["text"], negative_prompt=wf_params["3"].params["text"], num_inference_steps=4,
                  guidance_scale=wf_params["5"].params["cfg"], height=32, width=32,
                  generator=torch.Generator().manual_seed(7), output_type="latent").images
    assert ours.shape == (1, 16, 16, 16)
    torch.testing.assert_close(ours, theirs, atol=1e-4, rtol=1e-4)


def test_the_negative_prompt_and_cfg_steer_as_diffusers(sd3_engine, pipe):
    wf = shipped_txt2img("tiny-sd3", seed=3, steps=3, cfg=3.0)
    wf.nodes["3"].params["text"] = "a green square"
    ours = latent_of(sd3_engine, wf)
    theirs = pipe(wf.nodes["2"].params["text"], negative_prompt="a green square", num_inference_steps=3,
                  guidance_scale=3.0, height=32, width=32, generator=torch.Generator().manual_seed(3),
                  output_type="latent").images
    torch.testing.assert_close(ours, theirs, atol=1e-4, rtol=1e-4)
    one = latent_of(sd3_engine, shipped_txt2img("tiny-sd3", seed=3, steps=3, cfg=1.0))
    uncond = pipe(wf.nodes["2"].params["text"], num_inference_steps=3, guidance_scale=1.0, height=32, width=32,
                  generator=torch.Generator().manual_seed(3), output_type="latent").images
    torch.testing.assert_close(one, uncond, atol=1e-4, rtol=1e-4)


def _flow_reference(pipe, sampler: str, shift: float = 3.0):
    import diffusers

    from nodes.families.flow import FLOW_SAMPLERS as TABLE

    kind = TABLE[sampler]
    config = {"num_train_timesteps": 1000, kind.shift_key: shift, **kind.overrides}
    return getattr(diffusers, kind.diffusers_class).from_config(config)


@pytest.mark.parametrize("sampler", FLOW_SAMPLERS)
def test_every_flow_sampler_matches_the_pipeline_with_that_scheduler(sd3_engine, pipe, sampler):
    ours = latent_of(sd3_engine, shipped_txt2img("tiny-sd3", seed=11, steps=4, sampler=sampler))
    original = pipe.scheduler
    pipe.scheduler = _flow_reference(pipe, sampler)
    generator = torch.Generator().manual_seed(11)
    if sampler in ("euler_ancestral", "dpmpp_2m_sde"):   # the pipeline leaves step noise to the global RNG;
        step = pipe.scheduler.step                        # NodeForge continues the seed's generator
        pipe.scheduler.step = lambda *a, **k: step(*a, generator=generator, **k)
    try:
        theirs = pipe("a red circle on a blue background", negative_prompt="", num_inference_steps=4,
                      guidance_scale=5.0, height=32, width=32, generator=generator, output_type="latent").images
    finally:
        pipe.scheduler = original
    torch.testing.assert_close(ours, theirs, atol=1e-4, rtol=1e-4)


def test_model_sampling_sd3_changes_the_shift(sd3_engine, pipe):
    wf = shipped_txt2img("tiny-sd3", seed=5, steps=3)
    wf.add("ModelSamplingSD3", {"shift": 1.0}, {"unet": ("1", "unet")}, node_id="shift")
    wf.nodes["5"].inputs["unet"] = ("shift", "unet")
    ours = latent_of(sd3_engine, wf)
    original = pipe.scheduler
    pipe.scheduler = _flow_reference(pipe, "euler", shift=1.0)
    try:
        theirs = pipe("a red circle on a blue background", num_inference_steps=3, guidance_scale=5.0, height=32,
                      width=32, generator=torch.Generator().manual_seed(5), output_type="latent").images
    finally:
        pipe.scheduler = original
    torch.testing.assert_close(ours, theirs, atol=1e-4, rtol=1e-4)
    default = latent_of(sd3_engine, shipped_txt2img("tiny-sd3", seed=5, steps=3))
    assert (default - ours).abs().max() > 1e-3


def test_img2img_noises_by_interpolation_as_the_img2img_pipeline(sd3_engine, sd3_dir, tmp_path):
    import numpy as np
    from diffusers import StableDiffusion3Img2ImgPipeline
    from PIL import Image

    picture = tmp_path / "start.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(picture)
    wf = shipped_txt2img("tiny-sd3", seed=4, steps=5, denoise=0.6)
    wf.add("LoadImage", {"path": str(picture)}, node_id="img")
    wf.add("VAEEncode", {}, {"vae": ("1", "vae"), "image": ("img", "image")}, node_id="enc")
    wf.nodes["5"].inputs["latent"] = ("enc", "latent")
    run = sd3_engine.run(wf, outputs=["5"])
    encoded = sd3_engine.run(wf, outputs=["enc"]).outputs["enc"]["latent"]["samples"]
    img2img = StableDiffusion3Img2ImgPipeline.from_pretrained(str(sd3_dir / "checkpoints" / "tiny-sd3"))
    img2img.set_progress_bar_config(disable=True)
    theirs = img2img("a red circle on a blue background", image=encoded, negative_prompt="", strength=0.6,
                     num_inference_steps=5, guidance_scale=5.0, generator=torch.Generator().manual_seed(4),
                     output_type="latent").images
    ours = run.outputs["5"]["latent"]["samples"]
    torch.testing.assert_close(ours, theirs, atol=1e-4, rtol=1e-4)
    assert (ours - encoded).abs().mean() < (latent_of(sd3_engine, shipped_txt2img("tiny-sd3", seed=4, steps=5))
                                            - encoded).abs().mean()


def test_masked_inpainting_keeps_the_known_area_as_the_inpaint_pipeline(sd3_engine, sd3_dir, tmp_path):
    import numpy as np
    from diffusers import StableDiffusion3InpaintPipeline
    from PIL import Image

    rgba = np.random.default_rng(1).integers(0, 255, (32, 32, 4), dtype=np.uint8)
    rgba[..., 3] = 255
    rgba[:, :16, 3] = 0                     # transparent left half: LoadImage's mask, 1 = repaint
    picture = tmp_path / "hole.png"
    Image.fromarray(rgba, "RGBA").save(picture)
    wf = shipped_txt2img("tiny-sd3", seed=6, steps=4)
    wf.add("LoadImage", {"path": str(picture)}, node_id="img")
    wf.add("VAEEncode", {}, {"vae": ("1", "vae"), "image": ("img", "image")}, node_id="enc")
    wf.add("SetLatentMask", {}, {"latent": ("enc", "latent"), "mask": ("img", "mask")}, node_id="masked")
    wf.nodes["5"].inputs["latent"] = ("masked", "latent")
    run = sd3_engine.run(wf, outputs=["5", "enc"])
    ours, encoded = run.outputs["5"]["latent"]["samples"], run.outputs["enc"]["latent"]["samples"]
    inpaint = StableDiffusion3InpaintPipeline.from_pretrained(str(sd3_dir / "checkpoints" / "tiny-sd3"))
    inpaint.set_progress_bar_config(disable=True)
    mask = torch.zeros(1, 1, 32, 32)
    mask[..., :16] = 1.0
    theirs = inpaint("a red circle on a blue background", image=encoded, mask_image=mask, masked_image_latents=encoded,
                     negative_prompt="",
                     strength=1.0, num_inference_steps=4, guidance_scale=5.0, height=32, width=32,
                     generator=torch.Generator().manual_seed(6), output_type="latent").images
    torch.testing.assert_close(ours, theirs, atol=1e-4, rtol=1e-4)
    assert torch.equal(ours[..., 8:], encoded[..., 8:])       # the kept half is the image's latent
    assert (ours[..., :8] - encoded[..., :8]).abs().mean() > 0.1


def test_two_stages_of_a_flow_model_give_the_single_run(sd3_engine):
    """KSamplerAdvanced-style stages: 0..2 of 4 keeping the leftover noise, then 2..4 adding none."""
    whole = latent_of(sd3_engine, shipped_txt2img("tiny-sd3", seed=8, steps=4))
    wf = shipped_txt2img("tiny-sd3", seed=8, steps=4, end_at_step=2, return_with_leftover_noise=True)
    wf.add("UNetDenoise", dict(wf.nodes["5"].params, start_at_step=2, end_at_step=10000, add_noise=False,
                               return_with_leftover_noise=False),
           {"unet": ("1", "unet"), "positive": ("2", "conditioning"), "negative": ("3", "conditioning"),
            "latent": ("5", "latent")}, node_id="second")
    torch.testing.assert_close(latent_of(sd3_engine, wf, "second"), whole, atol=1e-5, rtol=1e-5)
    cut = latent_of(sd3_engine, shipped_txt2img("tiny-sd3", seed=8, steps=4, end_at_step=2))
    assert (cut - whole).abs().max() > 1e-3   # a cut schedule ends on its own clean prediction


# -- refusals --------------------------------------------------------------------------------------------------
def test_a_ddpm_only_sampler_is_refused_for_a_flow_model_with_the_reason(sd3_engine):
    with pytest.raises(Exception) as info:
        sd3_engine.run(shipped_txt2img("tiny-sd3", sampler="ddim", steps=2), outputs=["5"])
    assert "ddim" in str(info.value) and "flow" in str(info.value) and "euler" in str(info.value)


def _validate_problems(engine, wf) -> dict:
    return {(p.node_id, p.field): p.message for p in engine.validate(wf)}


@pytest.mark.parametrize("checkpoint", ["tiny-sd3", "tiny-sd3-single.safetensors", "tiny-sd3-no-t5"])
def test_validate_refuses_impossible_flow_pairs_before_loading_the_model(sd3_engine, checkpoint, monkeypatch):
    import nodes.loading

    def no_load(*a, **k):
        raise AssertionError("validate loaded the checkpoint")

    monkeypatch.setattr(nodes.loading, "load_checkpoint", no_load)
    found = _validate_problems(sd3_engine, shipped_txt2img(checkpoint, sampler="ddim"))
    assert list(found) == [("5", "sampler")]
    assert "ddim" in found[("5", "sampler")] and "flow model" in found[("5", "sampler")]
    assert "euler, euler_ancestral, heun, dpmpp_2m, dpmpp_2m_sde, uni_pc" in found[("5", "sampler")]
    found = _validate_problems(sd3_engine, shipped_txt2img(checkpoint, sampler="heun", schedule="karras"))
    assert list(found) == [("5", "schedule")] and "karras needs euler or euler_ancestral" in found[("5", "schedule")]
    assert _validate_problems(sd3_engine, shipped_txt2img(checkpoint, sampler="euler", schedule="karras")) == {}


def test_validate_reads_the_model_kind_without_importing_torch(sd3_dir):
    import subprocess
    import sys

    code = ("import sys\n"
            "from nodeforge import Engine, load_workflow\n"
            "from nodeforge.core.models import ModelPaths\n"
            "from pathlib import Path\n"
            f"wf = load_workflow({str(REPO / 'workflows' / 'txt2img.json')!r})\n"
            "wf.nodes['1'].params['checkpoint'] = 'tiny-sd3-single.safetensors'\n"
            "wf.nodes['5'].params['sampler'] = 'pndm'\n"
            f"engine = Engine(device='cpu', model_paths=ModelPaths(roots=[Path({str(sd3_dir)!r})]))\n"
            "print([(p.node_id, p.field) for p in engine.validate(wf)], 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["[('5',", "'sampler')]", "False"], out.stdout + out.stderr


def test_validate_knows_a_flux_transformer_from_diffusion_model_loader(registry, tmp_path):
    from safetensors.torch import save_file

    from nodeforge import Engine, Workflow
    from nodeforge.core.models import ModelPaths

    (tmp_path / "diffusion_models").mkdir()
    save_file({"double_blocks.0.img_attn.qkv.weight": torch.zeros(6, 2)},   # only the header is read
              str(tmp_path / "diffusion_models" / "flux1-dev.safetensors"))
    wf = Workflow()
    wf.add("DiffusionModelLoader", {"model": "flux1-dev.safetensors"}, node_id="m")
    wf.add("ModelSamplingSD3", {"shift": 2.0}, {"unet": ("m", "unet")}, node_id="shift")
    wf.add("UNetDenoise", {"sampler": "pndm"}, {"unet": ("shift", "unet")}, node_id="d")
    engine = Engine(device="cpu", registry=registry, model_paths=ModelPaths(roots=[tmp_path]))
    problems = {(p.node_id, p.field): p.message for p in engine.validate(wf)}
    assert ("d", "sampler") in problems
    # ModelSamplingSD3's shift is not Flux's: refused at validate, pointing at ModelSamplingFlux.
    said = problems[("shift", "unet")]
    assert "Flux model" in said and "use ModelSamplingFlux" in said and "\n" not in said


def test_validate_follows_the_model_through_model_sampling_sd3(sd3_engine, engine):
    wf = shipped_txt2img("tiny-sd3", sampler="lms")
    wf.add("ModelSamplingSD3", {"shift": 2.0}, {"unet": ("1", "unet")}, node_id="shift")
    wf.nodes["5"].inputs["unet"] = ("shift", "unet")
    assert list(_validate_problems(sd3_engine, wf)) == [("5", "sampler")]
    unet = shipped_txt2img("tiny-sd", width=64, height=64, sampler="ddim")    # DDPM samplers stay fine for a UNet
    assert _validate_problems(engine, unet) == {}
    unet.add("ModelSamplingSD3", {"shift": 2.0}, {"unet": ("1", "unet")}, node_id="shift")
    unet.nodes["5"].inputs["unet"] = ("shift", "unet")
    found = _validate_problems(engine, unet)
    assert list(found) == [("shift", "unet")] and "not a flow model" in found[("shift", "unet")]


def test_a_folder_without_a_clip_encoder_names_it(sd3_engine, sd3_dir, tmp_path):
    message = tm.refusal_of_copy(sd3_dir / "checkpoints" / "tiny-sd3", tmp_path / "checkpoints" / "sd3-no-clip-g",
                                 without="text_encoder_2")
    assert "sd3-no-clip-g" in message and "text_encoder_2" in message and "\n" not in message


def test_a_folder_with_another_familys_transformer_names_it(sd3_dir, tmp_path):
    folder = tmp_path / "flux-like"
    shutil.copytree(sd3_dir / "checkpoints" / "tiny-sd3", folder)
    config = json.loads((folder / "transformer" / "config.json").read_text())
    (folder / "transformer" / "config.json").write_text(json.dumps(dict(config, _class_name="FluxTransformer2DModel")))
    from nodes.loading import load_checkpoint

    with pytest.raises(NodeError) as info:
        load_checkpoint(folder, "cpu")
    assert "flux-like/transformer" in str(info.value) and "FluxTransformer2DModel" in str(info.value)


def test_a_transformer_only_single_file_says_it_lacks_its_text_encoders(sd3_dir, tmp_path):
    from nodes.loading import load_checkpoint

    parts = ts.make_sd3_components(0, t5=False)
    path = ts.save_sd3_single_file(parts, sd3_dir / "checkpoints" / "tiny-sd3", tmp_path / "bare.safetensors",
                                   clips=False, vae=False)
    with pytest.raises(NodeError) as info:
        load_checkpoint(path, "cpu")
    message = str(info.value)
    assert "bare.safetensors" in message and "CLIP-L" in message and "VAE" in message and "incl_clips" in message


def test_a_flux_file_is_refused_as_flux(tmp_path):
    from safetensors.torch import save_file

    from nodes.loading import load_checkpoint

    path = tmp_path / "flux1-dev.safetensors"
    save_file({"double_blocks.0.img_attn.qkv.weight": torch.zeros(6, 2), "img_in.weight": torch.zeros(2, 2)}, str(path))
    with pytest.raises(NodeError) as info:
        load_checkpoint(path, "cpu")
    assert "flux1-dev.safetensors" in str(info.value) and "Flux" in str(info.value)


def test_a_truncated_sd3_file_names_the_file(sd3_dir, tmp_path):
    from nodes.loading import load_checkpoint

    data = (sd3_dir / "checkpoints" / "tiny-sd3-single.safetensors").read_bytes()
    path = tmp_path / "cut.safetensors"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(NodeError) as info:
        load_checkpoint(path, "cpu")
    assert "cut.safetensors" in str(info.value) and "incomplete" in str(info.value)


@pytest.mark.parametrize("prefix", ["model.diffusion_model.", ""])
def test_diffusion_model_loader_takes_an_sd3_transformer_alone(sd3_engine, sd3_dir, tmp_path, prefix):
    # ComfyUI's UNETLoader on an SD3 file: the transformer alone (original keys, with or without the
    # single file's prefix) gives the checkpoint's own latents, its text encoders and VAE from elsewhere.
    from safetensors.torch import save_file

    from nodeforge import Engine
    from nodeforge.core.models import ModelPaths

    folder = tmp_path / "diffusion_models"
    folder.mkdir()
    parts = ts.make_sd3_components(0)       # tiny-sd3's weights
    save_file({prefix + k: v.contiguous() for k, v in ts.original_transformer_state(parts["transformer"]).items()},
              str(folder / "sd3-tiny.safetensors"))
    shutil.copytree(sd3_dir / "checkpoints" / "tiny-sd3", folder / "sd3-tiny.config",
                    ignore=shutil.ignore_patterns("*.safetensors", "*.bin"))
    engine = Engine(device="cpu", registry=sd3_engine.registry, output_dir=tmp_path,
                    model_paths=ModelPaths(roots=[sd3_dir, tmp_path]))
    wf = shipped_txt2img("tiny-sd3", seed=3)
    expected = latent_of(engine, wf)
    wf.add("DiffusionModelLoader", {"model": "sd3-tiny.safetensors"}, node_id="m")
    wf.nodes["5"].inputs["unet"] = ("m", "unet")
    assert engine.validate(wf) == []
    got = latent_of(engine, wf)
    assert got.shape == expected.shape and torch.equal(got, expected)
    wf.nodes["5"].params["sampler"] = "pndm"      # the family fact reaches validate: a DDPM-only sampler is refused
    assert ("5", "sampler") in _validate_problems(engine, wf)


# -- skip-layer guidance (ComfyUI's SkipLayerGuidanceSD3) -----------------------------------------------------
def _with_skip_layer_guidance(wf, **params):
    wf.add("SkipLayerGuidanceSD3", params, {"unet": ("1", "unet")}, node_id="slg")
    wf.nodes["5"].inputs["unet"] = ("slg", "unet")
    return wf


def _percent_of(sigma: float, shift: float = 3.0) -> float:
    """The inverse of ComfyUI's percent_to_sigma on a shifted flow schedule."""
    return 1.0 - sigma / (shift - (shift - 1.0) * sigma)


def test_skip_layer_guidance_gives_the_pipelines_latents_for_the_same_steps(sd3_engine, pipe):
    # diffusers picks steps by index (i > 4 x 0.01 and i < 4 x 0.6: steps 1 and 2); ComfyUI's node by
    # sigma (start >= sigma > end): an end between the sigmas of steps 2 and 3 picks the same two.
    pipe.scheduler.set_timesteps(4)
    sigmas = [float(s) for s in pipe.scheduler.sigmas[:4]]
    end = _percent_of((sigmas[2] + sigmas[3]) / 2)
    wf = _with_skip_layer_guidance(shipped_txt2img("tiny-sd3", seed=7, steps=4), layers="1", scale=2.0,
                                   start_percent=0.01, end_percent=end)
    ours = latent_of(sd3_engine, wf)
    params = wf.nodes
    theirs = pipe(params["2"].params["text"], negative_prompt=params["3"].params["text"], num_inference_steps=4,
                  guidance_scale=params["5"].params["cfg"], height=32, width=32,
                  generator=torch.Generator().manual_seed(7), output_type="latent", skip_guidance_layers=[1],
                  skip_layer_guidance_scale=2.0, skip_layer_guidance_start=0.01,
                  skip_layer_guidance_stop=0.6).images
    torch.testing.assert_close(ours, theirs, atol=1e-4, rtol=1e-4)
    plain = latent_of(sd3_engine, shipped_txt2img("tiny-sd3", seed=7, steps=4))
    assert (plain - ours).abs().max() > 1e-3
    off = _with_skip_layer_guidance(shipped_txt2img("tiny-sd3", seed=7, steps=4), layers="1", scale=0.0)
    assert torch.equal(latent_of(sd3_engine, off), plain)


def test_skip_layer_guidance_reads_comfyuis_layers_text_and_percent_window():
    from nodes.families.skip_layers import SkipLayerGuidance, layer_numbers, percent_to_sigma

    assert layer_numbers("7, 8, 9") == (7, 8, 9) and layer_numbers("6,7,8") == (6, 7, 8)
    assert layer_numbers(" 3;3 , 10 ") == (3, 10) and layer_numbers("") == ()
    assert percent_to_sigma(0.0, 3.0) == 1.0 and percent_to_sigma(1.0, 3.0) == 0.0
    assert percent_to_sigma(0.5, 1.0) == pytest.approx(0.5)
    assert percent_to_sigma(0.15, 3.0) == pytest.approx(3 * 0.85 / (1 + 2 * 0.85))
    window = SkipLayerGuidance((7,), 3.0, percent_to_sigma(0.01, 3.0), percent_to_sigma(0.15, 3.0))
    assert [window.applies(s) for s in (1.0, 0.99, 0.95, 0.944, 0.5)] == [False, True, True, False, False]


def test_skip_layer_guidance_refuses_a_block_the_model_lacks_and_a_unet_model(sd3_engine, make_engine, tmp_path):
    from nodeforge.core.errors import NodeExecutionError

    wf = _with_skip_layer_guidance(shipped_txt2img("tiny-sd3", seed=7, steps=2), layers="1, 2", scale=3.0)
    with pytest.raises(NodeExecutionError, match="block 2 is not in tiny-sd3, whose transformer has blocks 0-1"):
        sd3_engine.run(wf)
    sd1 = _with_skip_layer_guidance(shipped_txt2img("tiny-sd3", seed=7, steps=2), layers="1", scale=3.0)
    sd1.nodes["1"].params["checkpoint"] = "nodeforge-shapes"
    problems = make_engine(tmp_path, tmp_path).validate(sd1)
    assert [(p.node_id, p.field) for p in problems] == [("slg", "unet")]
    assert problems[0].message == ("the model is a UNet (SD 1.x/2.x/XL) one; SkipLayerGuidanceSD3 skips blocks of an "
                                   "SD3/SD3.5 transformer (remove it, or pick an SD3 checkpoint)")


def test_skip_layer_guidance_skips_on_the_positive_as_encoded_when_the_negative_is_longer(sd3_dir):
    # the two sides are padded with zero tokens to batch together, but the skipped-layer call takes the
    # positive alone, unpadded, as diffusers' pipeline does (its original_prompt_embeds)
    from nodes.families.flow import FlowGuidance
    from nodes.families.skip_layers import run_skip_layer_guidance_sd3, skip_layer_velocity
    from nodes.loading import load_checkpoint

    unet = load_checkpoint(sd3_dir / "checkpoints" / "tiny-sd3", "cpu").wrappers()[0]
    model = run_skip_layer_guidance_sd3(None, unet, "1", 2.0, 0.0, 1.0)["unet"]
    width = int(unet.unet.config.joint_attention_dim)
    pooled_width = int(unet.unet.config.pooled_projection_dim)
    g = torch.Generator().manual_seed(3)

    def prompt(tokens):
        return {"family": "sd3", "embeds": torch.randn(1, tokens, width, generator=g),
                "pooled": torch.randn(1, pooled_width, generator=g)}

    positive, negative = prompt(5), prompt(9)
    guidance = FlowGuidance.build(model, [positive], [negative], 1, 4.0)
    assert guidance.positive["embeds"].shape[1] == 9 and guidance.positive_alone["embeds"].shape[1] == 5
    latents = torch.randn(1, unet.latent_channels, 4, 4, generator=g)
    t = torch.tensor([500.0])
    skipped = skip_layer_velocity(guidance, latents, t, None)

    def call(embeds, skip):
        with torch.no_grad():
            return unet.unet(hidden_states=latents, timestep=t, encoder_hidden_states=embeds,
                             pooled_projections=positive["pooled"], skip_layers=skip, return_dict=False)[0]

    torch.testing.assert_close(skipped, call(positive["embeds"], [1]))
    assert (skipped - call(guidance.positive["embeds"], [1])).abs().max() > 1e-4   # the padded prompt differs
    with torch.no_grad():
        together = guidance.predict(latents, t)
        plain = FlowGuidance.build(unet, [positive], [negative], 1, 4.0).predict(latents, t)
    cond = call(guidance.positive["embeds"], None)      # the positive side of the batched (padded) call
    torch.testing.assert_close(together, plain + 2.0 * (cond - skipped), atol=1e-5, rtol=1e-5)


def _with_cfg_norm(wf, strength: float):
    wf.add("CFGNorm", {"strength": strength}, {"unet": ("1", "unet")}, node_id="norm")
    wf.nodes["5"].inputs["unet"] = ("norm", "unet")
    return wf


def test_cfg_norm_on_sd3_caps_the_guided_prediction_and_scales_it_by_the_strength(sd3_engine):
    """Strength 1 at cfg 1 changes nothing (the guided prediction is the positive's); at cfg 5 it changes the
    latents; strength 0 makes every step's clean image 0, so Euler ends on an all-zero latent (as ComfyUI's)."""
    plain = latent_of(sd3_engine, shipped_txt2img("tiny-sd3", seed=3, steps=4, cfg=1.0))
    same = latent_of(sd3_engine, _with_cfg_norm(shipped_txt2img("tiny-sd3", seed=3, steps=4, cfg=1.0), 1.0))
    torch.testing.assert_close(same, plain, atol=1e-5, rtol=1e-5)
    guided = latent_of(sd3_engine, shipped_txt2img("tiny-sd3", seed=3, steps=4, cfg=5.0))
    capped = latent_of(sd3_engine, _with_cfg_norm(shipped_txt2img("tiny-sd3", seed=3, steps=4, cfg=5.0), 1.0))
    assert (guided - capped).abs().max() > 1e-3
    nothing = latent_of(sd3_engine, _with_cfg_norm(shipped_txt2img("tiny-sd3", seed=3, steps=4, cfg=5.0), 0.0))
    assert nothing.abs().max() < 1e-5
