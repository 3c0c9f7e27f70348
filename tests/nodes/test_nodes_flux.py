"""Flux.1 as a model family, checked against diffusers' FluxPipeline, FluxImg2ImgPipeline and
FluxInpaintPipeline on tiny random models (tests/nodes/tiny_flux.py): loading, text encoding,
packed latents with the resolution-dependent shift, the guidance embedding and FluxGuidance, true
CFG, img2img, inpainting, and refusals of folders that cannot work."""
from __future__ import annotations

from functools import partial
from pathlib import Path

import pytest
import torch

import tiny_models as tm
from nodeforge.core.errors import NodeError
from tiny_models import latent_of

PROMPT = "a red circle on a blue background"


@pytest.fixture(scope="module")
def flux_engine(make_engine, flux_dir, tmp_path_factory):
    return make_engine(tmp_path_factory.mktemp("fluxout"), flux_dir)


def _pipe(flux_dir, name="tiny-flux", cls="FluxPipeline"):
    return tm.pipeline(flux_dir / "checkpoints" / name, cls)


@pytest.fixture(scope="module")
def pipe(flux_dir):
    return _pipe(flux_dir)


shipped_txt2img = partial(tm.shipped_txt2img, steps=4)   # (checkpoint, width=32, height=32, **UNetDenoise params)


def theirs(pipe, *, seed: int, steps: int = 4, width: int = 32, height: int = 32, **kw) -> torch.Tensor:
    """The pipeline's latents, unpacked to [B, 16, h, w] as NodeForge keeps them."""
    packed = pipe(kw.pop("prompt", PROMPT), num_inference_steps=steps, height=height, width=width,
                  generator=torch.Generator().manual_seed(seed), output_type="latent", **kw).images
    return pipe._unpack_latents(packed, height, width, pipe.vae_scale_factor)


# -- loading and text ----------------------------------------------------------------------------------------
def test_a_flux_folder_loads_as_the_flux_family_with_16_channel_latents(flux_dir):
    from nodes.loading import load_checkpoint

    unet, clip, vae = load_checkpoint(flux_dir / "checkpoints" / "tiny-flux", "cpu").wrappers()
    assert (unet.family, unet.prediction_type, unet.latent_channels, unet.vae_factor) == ("flux", "flow", 16, 2)
    assert unet.scheduler_config["use_dynamic_shifting"] and unet.scheduler_config["max_shift"] == 1.15
    assert clip.family == "flux" and type(clip.text_encoder_2).__name__ == "T5EncoderModel"
    assert (vae.scaling_factor, vae.shift_factor, vae.latent_channels) == (0.3611, 0.1159, 16)


@pytest.mark.parametrize("text", [PROMPT, ""])
def test_text_encoder_gives_the_pipelines_t5_prompt_and_clip_pooled(flux_engine, pipe, text):
    from nodeforge import Workflow

    wf = Workflow()
    wf.add("CheckpointLoader", {"checkpoint": "tiny-flux"}, node_id="ckpt")
    wf.add("TextEncoder", {"text": text}, {"clip": ("ckpt", "clip")}, node_id="pos")
    entry = flux_engine.run(wf, outputs=["pos"]).outputs["pos"]["conditioning"][0]
    embeds, pooled, _ = pipe.encode_prompt(text, None)
    assert entry["embeds"].shape == (1, 512, 32) and entry["pooled"].shape == (1, 32)
    torch.testing.assert_close(entry["embeds"], embeds, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(entry["pooled"], pooled, atol=1e-5, rtol=1e-5)
    assert "guidance" not in entry   # the sampler's default, 3.5, unless FluxGuidance sets it


def test_text_encoder_flux_reads_one_prompt_per_encoder_and_sets_guidance(flux_engine, pipe):
    from nodeforge import Workflow

    wf = Workflow()
    wf.add("CheckpointLoader", {"checkpoint": "tiny-flux"}, node_id="ckpt")
    wf.add("TextEncoderFlux", {"clip_l": "a green square", "t5xxl": "a red circle", "guidance": 5.0},
           {"clip": ("ckpt", "clip")}, node_id="pos")
    entry = flux_engine.run(wf, outputs=["pos"]).outputs["pos"]["conditioning"][0]
    embeds, pooled, _ = pipe.encode_prompt("a green square", "a red circle")
    torch.testing.assert_close(entry["embeds"], embeds, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(entry["pooled"], pooled, atol=1e-5, rtol=1e-5)
    assert entry["guidance"] == 5.0
    _, other, _ = pipe.encode_prompt("a red circle", None)
    assert (other - pooled).abs().max() > 1e-3   # CLIP-L read its own text


# -- sampling --------------------------------------------------------------------------------------------------
def test_shipped_txt2img_with_cfg_1_gives_flux_pipelines_latents(flux_engine, pipe):
    wf = shipped_txt2img("tiny-flux", seed=7, cfg=1.0)
    ours = latent_of(flux_engine, wf)
    assert ours.shape == (1, 16, 16, 16)
    torch.testing.assert_close(ours, theirs(pipe, seed=7), atol=1e-4, rtol=1e-4)


def test_shipped_txt2img_decodes_to_flux_pipelines_image(flux_engine, pipe):
    wf = shipped_txt2img("tiny-flux", seed=8, cfg=1.0)
    image = flux_engine.run(wf, outputs=["6"]).outputs["6"]["image"]          # [1, 32, 32, 3] in 0..1
    expected = pipe(PROMPT, num_inference_steps=4, height=32, width=32, generator=torch.Generator().manual_seed(8),
                    output_type="pt").images                                  # [1, 3, 32, 32] in 0..1
    assert image.shape == (1, 32, 32, 3)
    torch.testing.assert_close(image, expected.permute(0, 2, 3, 1), atol=1e-4, rtol=1e-4)


def test_shipped_txt2img_as_it_is_runs_true_cfg_with_its_negative_prompt(flux_engine, pipe):
    wf = shipped_txt2img("tiny-flux", seed=3)
    assert wf.nodes["5"].params["cfg"] == 5.0 and wf.nodes["3"].params["text"] == ""
    ours = latent_of(flux_engine, wf)
    torch.testing.assert_close(ours, theirs(pipe, seed=3, negative_prompt="", true_cfg_scale=5.0),
                               atol=1e-4, rtol=1e-4)
    assert (ours - theirs(pipe, seed=3)).abs().max() > 1e-3   # the negative prompt steered


def test_a_batch_of_two_is_two_single_runs_of_seed_and_seed_plus_one(flux_engine):
    wf = shipped_txt2img("tiny-flux", seed=20, cfg=2.0)
    wf.nodes["4"].params["batch_size"] = 2
    both = latent_of(flux_engine, wf)
    assert both.shape == (2, 16, 16, 16)
    for i in range(2):
        single = latent_of(flux_engine, shipped_txt2img("tiny-flux", seed=20 + i, cfg=2.0))
        torch.testing.assert_close(both[i:i + 1], single, atol=1e-5, rtol=1e-5)


def test_an_odd_latent_size_is_refused_with_the_sizes_that_work(flux_dir):
    from nodes.families.flux_sampling import FLUX_SAMPLING
    from nodes.loading import load_checkpoint

    unet = load_checkpoint(flux_dir / "checkpoints" / "tiny-flux", "cpu").wrappers()[0]
    with pytest.raises(NodeError) as info:   # a 1000 x 1000 image is 125 x 125 latents on the real Flux
        FLUX_SAMPLING.for_latent(unet, (1, 16, 17, 16))
    assert "2x2" in str(info.value) and "16x17" in str(info.value) and "divisible by 4" in str(info.value)


def test_the_shift_follows_the_image_size_as_flux_pipeline(flux_engine, pipe):
    from nodes.families.flux_sampling import calculate_shift

    wide = latent_of(flux_engine, shipped_txt2img("tiny-flux", width=64, height=32, seed=2, cfg=1.0))
    assert wide.shape == (1, 16, 16, 32)
    torch.testing.assert_close(wide, theirs(pipe, seed=2, width=64, height=32), atol=1e-4, rtol=1e-4)
    config = pipe.scheduler.config
    assert calculate_shift(256, config) == pytest.approx(0.5) and calculate_shift(4096, config) == pytest.approx(1.15)


def test_flux_guidance_sets_the_distilled_guidance(flux_engine, pipe):
    wf = shipped_txt2img("tiny-flux", seed=5, cfg=1.0)
    wf.add("FluxGuidance", {"guidance": 7.0}, {"conditioning": ("2", "conditioning")}, node_id="guide")
    wf.nodes["5"].inputs["positive"] = ("guide", "conditioning")
    ours = latent_of(flux_engine, wf)
    torch.testing.assert_close(ours, theirs(pipe, seed=5, guidance_scale=7.0), atol=1e-4, rtol=1e-4)
    assert (ours - theirs(pipe, seed=5)).abs().max() > 1e-3


def test_model_sampling_flux_fixes_the_shift_for_its_size(flux_dir):
    from nodes.families.flux_nodes import run_model_sampling_flux
    from nodes.families.flux_sampling import FLUX_SAMPLING
    from nodes.loading import load_checkpoint
    from nodes.sampling import DenoiseRequest

    unet = load_checkpoint(flux_dir / "checkpoints" / "tiny-flux", "cpu").wrappers()[0]
    request = DenoiseRequest(seed=0, steps=4, cfg=1.0, sampler="euler", schedule="default")

    def sigmas(model, shape):
        return FLUX_SAMPLING.plan_steps(FLUX_SAMPLING.for_latent(model, shape), request).scheduler.sigmas

    small, big = sigmas(unet, (1, 16, 16, 16)), sigmas(unet, (1, 16, 64, 64))   # 32 px vs 128 px at factor 2
    assert (big[1:-1] > small[1:-1]).all()          # a larger image spends more steps at high noise
    fixed = run_model_sampling_flux(None, unet, 1.15, 0.5, 64, 64)["unet"]      # 16 x 16 = 256 packed tokens
    assert fixed.scheduler_config["fixed_mu"] == pytest.approx(0.5)             # base_shift at 256 tokens
    torch.testing.assert_close(sigmas(fixed, (1, 16, 16, 16)), sigmas(unet, (1, 16, 32, 32)))
    assert "fixed_mu" not in unet.scheduler_config   # the input model is unchanged


def test_schnell_without_guidance_input_runs_as_its_pipeline(flux_engine, flux_dir):
    from nodes.loading import load_checkpoint

    unet = load_checkpoint(flux_dir / "checkpoints" / "tiny-flux-schnell", "cpu").wrappers()[0]
    assert not unet.unet.config.guidance_embeds and not unet.scheduler_config["use_dynamic_shifting"]
    ours = latent_of(flux_engine, shipped_txt2img("tiny-flux-schnell", seed=9, cfg=1.0))
    torch.testing.assert_close(ours, theirs(_pipe(flux_dir, "tiny-flux-schnell"), seed=9), atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("sampler", ["heun", "dpmpp_2m", "uni_pc"])
def test_other_flow_samplers_run_flux_on_its_shifted_sigmas(flux_engine, sampler):
    euler = latent_of(flux_engine, shipped_txt2img("tiny-flux", seed=4, steps=8, cfg=1.0))
    other = latent_of(flux_engine, shipped_txt2img("tiny-flux", seed=4, steps=8, cfg=1.0, sampler=sampler))
    assert torch.isfinite(other).all()
    assert (other - euler).abs().mean() < 0.25 * euler.abs().mean()   # the same ODE, another solver


def _picture(tmp_path, alpha_left: bool = False) -> Path:
    import numpy as np
    from PIL import Image

    rgba = np.random.default_rng(1).integers(0, 255, (32, 32, 4), dtype=np.uint8)
    rgba[..., 3] = 255
    if alpha_left:
        rgba[:, :16, 3] = 0                     # transparent left half: LoadImage's mask, 1 = repaint
    path = tmp_path / "start.png"
    Image.fromarray(rgba, "RGBA").save(path)
    return path


def test_img2img_matches_flux_img2img_pipeline(flux_engine, flux_dir, tmp_path):
    wf = shipped_txt2img("tiny-flux", seed=4, steps=5, denoise=0.6, cfg=1.0)
    wf.add("LoadImage", {"path": str(_picture(tmp_path))}, node_id="img")
    wf.add("VAEEncode", {}, {"vae": ("1", "vae"), "image": ("img", "image")}, node_id="enc")
    wf.nodes["5"].inputs["latent"] = ("enc", "latent")
    run = flux_engine.run(wf, outputs=["5", "enc"])
    ours, encoded = run.outputs["5"]["latent"]["samples"], run.outputs["enc"]["latent"]["samples"]
    img2img = _pipe(flux_dir, cls="FluxImg2ImgPipeline")
    expected = theirs(img2img, seed=4, steps=5, image=encoded, strength=0.6, guidance_scale=3.5)   # its default is 7
    torch.testing.assert_close(ours, expected, atol=1e-4, rtol=1e-4)
    full = latent_of(flux_engine, shipped_txt2img("tiny-flux", seed=4, steps=5, cfg=1.0))
    assert (ours - encoded).abs().mean() < (full - encoded).abs().mean()


def test_masked_inpainting_matches_flux_inpaint_pipeline(flux_engine, flux_dir, tmp_path):
    wf = shipped_txt2img("tiny-flux", seed=6, steps=4, cfg=1.0)
    wf.add("LoadImage", {"path": str(_picture(tmp_path, alpha_left=True))}, node_id="img")
    wf.add("VAEEncode", {}, {"vae": ("1", "vae"), "image": ("img", "image")}, node_id="enc")
    wf.add("SetLatentMask", {}, {"latent": ("enc", "latent"), "mask": ("img", "mask")}, node_id="masked")
    wf.nodes["5"].inputs["latent"] = ("masked", "latent")
    run = flux_engine.run(wf, outputs=["5", "enc"])
    ours, encoded = run.outputs["5"]["latent"]["samples"], run.outputs["enc"]["latent"]["samples"]
    mask = torch.zeros(1, 1, 32, 32)
    mask[..., :16] = 1.0
    inpaint = _pipe(flux_dir, cls="FluxInpaintPipeline")
    expected = theirs(inpaint, seed=6, image=encoded, mask_image=mask, masked_image_latents=encoded, strength=1.0,
                      guidance_scale=3.5)
    torch.testing.assert_close(ours, expected, atol=1e-4, rtol=1e-4)
    assert torch.equal(ours[..., 8:], encoded[..., 8:])       # the kept half is the image's latent
    assert (ours[..., :8] - encoded[..., :8]).abs().mean() > 0.1


# -- LoRAs ------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("layout", ["kohya", "diffusers"])
def test_a_flux_lora_gives_the_pipelines_latents_with_it_loaded(flux_engine, flux_dir, layout):
    wf = shipped_txt2img("tiny-flux", seed=12, cfg=1.0)
    wf.add("LoRALoader", {"lora": f"flux-{layout}", "strength_unet": 1.0, "strength_clip": 1.0},
           {"unet": ("1", "unet"), "clip": ("1", "clip")}, node_id="lora")
    wf.nodes["5"].inputs["unet"] = ("lora", "unet")
    ours = latent_of(flux_engine, wf)
    with_lora = _pipe(flux_dir)
    with_lora.load_lora_weights(str(flux_dir / "loras" / f"flux-{layout}.safetensors"))
    torch.testing.assert_close(ours, theirs(with_lora, seed=12), atol=1e-4, rtol=1e-4)
    base = latent_of(flux_engine, shipped_txt2img("tiny-flux", seed=12, cfg=1.0))
    assert (ours - base).abs().max() > 1e-3


def test_both_lora_layouts_patch_the_same_weights(flux_engine, flux_dir):
    from nodes.families.flux import lora_state
    from nodes.loading import read_state_dict
    from nodes.lora import parse_lora

    entries = {}
    for layout in ("kohya", "diffusers"):
        state, _ = read_state_dict(flux_dir / "loras" / f"flux-{layout}.safetensors", field="lora")
        entries[layout] = parse_lora(lora_state(state, layout))[0]["unet"]
    assert set(entries["kohya"]) == set(entries["diffusers"]) == {
        "transformer_blocks.0.attn.to_q", "transformer_blocks.0.attn.to_k", "transformer_blocks.0.attn.to_v",
        "transformer_blocks.0.ff.net.0.proj", "single_transformer_blocks.0.proj_out"}


# -- refusals --------------------------------------------------------------------------------------------------
def test_a_folder_without_t5_names_it_and_the_fix(flux_dir, tmp_path):
    message = tm.refusal_of_copy(flux_dir / "checkpoints" / "tiny-flux", tmp_path / "flux-no-t5",
                                 without="text_encoder_2")
    assert "flux-no-t5" in message and "text_encoder_2" in message and "T5" in message and "\n" not in message


def test_a_flux_transformer_in_an_sd3_folder_is_refused_naming_both(flux_dir, tmp_path):
    message = tm.refusal_of_copy(flux_dir / "checkpoints" / "tiny-flux", tmp_path / "sd3-with-flux",
                                 pipeline="StableDiffusion3Pipeline")
    assert "sd3-with-flux/transformer" in message and "StableDiffusion3Pipeline" in message and "\n" not in message


def test_flux_nodes_refuse_other_families_naming_the_input(flux_engine):
    from nodeforge import Workflow

    wf = Workflow()
    wf.add("CheckpointLoader", {"checkpoint": "tiny-sd"}, node_id="ckpt")
    wf.add("TextEncoder", {"text": "a red circle"}, {"clip": ("ckpt", "clip")}, node_id="pos")
    wf.add("FluxGuidance", {"guidance": 4.0}, {"conditioning": ("pos", "conditioning")}, node_id="guide")
    with pytest.raises(Exception) as info:
        flux_engine.run(wf, outputs=["guide"])
    assert "FluxGuidance" in str(info.value) and "sd1" in str(info.value)
    wf = shipped_txt2img("tiny-flux", seed=1)
    wf.add("CheckpointLoader", {"checkpoint": "tiny-sd"}, node_id="sd")
    wf.nodes["2"].inputs["clip"] = ("sd", "clip")
    with pytest.raises(Exception) as info:
        flux_engine.run(wf, outputs=["5"])
    assert "positive" in str(info.value) and "Flux" in str(info.value)


def test_model_sampling_sd3_on_flux_is_refused_pointing_at_model_sampling_flux(flux_engine, flux_dir):
    # Its fixed shift is not how Flux dev samples (the shift follows the image size), so it would be
    # ignored silently: validate refuses it on the checkpoint's facts, the run on the loaded model.
    from nodes.families.sd3_nodes import run_model_sampling_sd3
    from nodes.loading import load_checkpoint

    wf = shipped_txt2img("tiny-flux", cfg=1.0)
    wf.add("ModelSamplingSD3", {"shift": 3.0}, {"unet": ("1", "unet")}, node_id="shift")
    wf.nodes["5"].inputs["unet"] = ("shift", "unet")
    problems = {(p.node_id, p.field): p.message for p in flux_engine.validate(wf)}
    assert list(problems) == [("shift", "unet")]
    assert "Flux model" in problems[("shift", "unet")] and "use ModelSamplingFlux" in problems[("shift", "unet")]
    unet = load_checkpoint(flux_dir / "checkpoints" / "tiny-flux", "cpu").wrappers()[0]
    with pytest.raises(NodeError) as info:
        run_model_sampling_sd3(None, unet, 3.0)
    assert info.value.field == "unet" and "ModelSamplingFlux" in str(info.value) and "\n" not in str(info.value)
