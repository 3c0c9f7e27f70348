"""Timestep Noise (LG_SamplingUtils' ZImageTimestepNoise, flow mode) on the tiny Z-Image model: strength 0
and a zero mask are the plain run; in its window each model call is told a sigma moved by the pack's
rule and the sampler steps on that call's clean-latent estimate, checked against a hand-written Euler
loop over diffusers' ZImagePipeline parts (tests/nodes/tiny_zimage.py); other models and the sigma
mode are refused at validate."""
from __future__ import annotations

from functools import partial

import pytest
import torch

import tiny_models as tm
import tiny_zimage as tz
from tiny_models import latent_of

PROMPT = "a red circle on a blue background"
shipped_txt2img = partial(tm.shipped_txt2img, "tiny-zimage", steps=4)


@pytest.fixture(scope="module")
def zimage_dir(tmp_path_factory):
    torch.set_num_threads(2)
    root = tmp_path_factory.mktemp("zimagenoise")
    (root / "checkpoints").mkdir()
    tz.save_zimage_folder(tz.make_zimage_components(0), root / "checkpoints" / "tiny-zimage")
    return root


@pytest.fixture(scope="module")
def zimage_engine(make_engine, zimage_dir, tmp_path_factory):
    return make_engine(tmp_path_factory.mktemp("zimagenoiseout"), zimage_dir)


def _noised(seed=1, mask=None, **noise):
    """The shipped graph (cfg 1) with BasicScheduler -> Timestep Noise between its checkpoint and sampler."""
    wf = shipped_txt2img(seed=seed, cfg=1.0)
    wf.add("BasicScheduler", {"schedule": "simple", "steps": 4, "denoise": 1.0}, {"unet": ("1", "unet")},
           node_id="sched")
    inputs = {"unet": ("1", "unet"), "sigmas": ("sched", "sigmas")}
    if mask is not None:
        wf.add("SolidMask", {"value": mask, "width": 32, "height": 32}, node_id="mask")
        inputs["mask"] = ("mask", "mask")
    wf.add("TimestepNoise", dict({"noise_strength": 0.3, "seed": 11, "start_percent": 0.0, "end_percent": 0.5},
                                 **noise), inputs, node_id="noise")
    wf.nodes["5"].inputs["unet"] = ("noise", "unet")
    return wf


def _told(sigma: float, call: int, strength: float, seed: int) -> float:
    # the pack's flow rule: r from seed + call, spread over [-min(strength, s), +min(strength, 1 - s)]
    r = torch.rand(1, generator=torch.Generator().manual_seed(seed + call)).item()
    down, up = min(strength, sigma), min(strength, 1 - sigma)
    return min(1.0, max(0.0, sigma + r * (up + down) - down))


def test_strength_0_and_a_zero_mask_are_the_plain_run(zimage_engine):
    plain = latent_of(zimage_engine, shipped_txt2img(seed=1, cfg=1.0))
    assert torch.equal(latent_of(zimage_engine, _noised(noise_strength=0.0)), plain)
    assert torch.equal(latent_of(zimage_engine, _noised(mask=0.0)), plain)
    assert (latent_of(zimage_engine, _noised()) - plain).abs().max() > 1e-3


def test_each_call_in_the_window_is_told_the_moved_sigma_and_steps_on_its_estimate(zimage_engine, zimage_dir):
    pipe = tm.pipeline(zimage_dir / "checkpoints" / "tiny-zimage", "ZImagePipeline")
    pipe.scheduler.set_timesteps(sigmas=[1.0, 0.75, 0.5, 0.25])     # ZImagePipeline's linspace(1, 1 / steps)
    sigmas = [float(s) for s in pipe.scheduler.sigmas]                # shifted by 3: 1, 0.9, 0.75, 0.5, then 0
    embeds = pipe.encode_prompt(PROMPT, do_classifier_free_guidance=False)[0][0]
    x = pipe.prepare_latents(1, 16, 32, 32, torch.float32, "cpu", torch.Generator().manual_seed(1), None)
    with torch.no_grad():
        for i, (s, s_next) in enumerate(zip(sigmas[:-1], sigmas[1:])):
            told = _told(s, i + 1, 0.3, 11) if i / 4 <= 0.5 else s      # progress i / 4 within 0..0.5
            v = -pipe.transformer([x[0][:, None]], torch.tensor([1 - told]), [embeds], return_dict=False)[0][0][:, 0]
            x = x + (s_next - s) * v[None] * (told / s)                  # x0 = x - told v, stepped from s
    ours = latent_of(zimage_engine, _noised())
    assert (ours - x).abs().max() < 1e-4
    # a mask of ones is the noise everywhere: the same as no mask
    assert (latent_of(zimage_engine, _noised(mask=1.0)) - ours).abs().max() < 1e-6


def test_other_models_and_the_sigma_mode_are_refused_at_validate_and_at_run_in_the_same_words(zimage_engine, engine):
    from types import SimpleNamespace

    from nodeforge.core.errors import NodeError
    from nodes.families.timestep_noise import run_timestep_noise

    found = {(p.node_id, p.field): p.message for p in zimage_engine.validate(_noised(mode="sigma"))}
    sigma_mode = "'sigma' (for UNet models) is not supported; flow is, for Z-Image models"
    assert found[("noise", "mode")] == sigma_mode
    wf = _noised()
    wf.nodes["1"].params["checkpoint"] = "tiny-sd"
    found = {(p.node_id, p.field): p.message for p in engine.validate(wf)}
    not_zimage = "is a {} model; Timestep Noise is for Z-Image models here: remove the node, or load a Z-Image model"
    assert found[("noise", "unet")] == "the model " + not_zimage.format("sd1")   # the folder's config tells sd1
    # the run (a graph that skipped validate) refuses with the same words, naming the model
    zimage, sd = SimpleNamespace(family="zimage", name="tiny-zimage"), SimpleNamespace(family="sd1", name="tiny-sd")
    with pytest.raises(NodeError) as refused:
        run_timestep_noise(None, zimage, [1.0, 0.0], mode="sigma")
    assert (refused.value.field, str(refused.value)) == ("mode", sigma_mode)
    with pytest.raises(NodeError) as refused:
        run_timestep_noise(None, sd, [1.0, 0.0])
    assert (refused.value.field, str(refused.value)) == ("unet", "tiny-sd " + not_zimage.format("sd1"))


def _header_only(path, keys):
    """A .safetensors file holding one tiny tensor under each key: all the probe reads is the header."""
    from safetensors.torch import save_file

    save_file({k: torch.zeros(1) for k in keys}, str(path))
    return path


@pytest.mark.parametrize("keys, said", [
    (["model.diffusion_model.input_blocks.0.0.weight", "cond_stage_model.transformer.text_model.x"], "sd1"),
    (["model.diffusion_model.input_blocks.0.0.weight", "cond_stage_model.model.ln_final.bias"], "sd2"),
    (["model.diffusion_model.input_blocks.0.0.weight", "conditioner.embedders.1.model.ln_final.bias",
      "conditioner.embedders.0.transformer.text_model.x"], "sdxl"),
    (["model.diffusion_model.input_blocks.0.0.weight", "conditioner.embedders.0.model.ln_final.bias"], "sdxl"),
    (["model.diffusion_model.input_blocks.0.0.weight"], "UNet (SD 1.x/2.x/XL)"),   # no text encoder: not told
])
def test_validate_names_a_single_file_s_model_family_from_its_text_encoder_keys(engine, models_dir, keys, said):
    """The words the run gives (`unet.family`: sd1, sd2, sdxl; a refiner loads as sdxl), before any weight loads."""
    checkpoint = _header_only(models_dir / "checkpoints" / f"header-{len(keys)}-{said[:4]}.safetensors", keys)
    wf = _noised()
    wf.nodes["1"].params["checkpoint"] = checkpoint.name
    found = {(p.node_id, p.field): p.message for p in engine.validate(wf)}
    assert found[("noise", "unet")] == (f"the model is a {said} model; Timestep Noise is for Z-Image models here: "
                                        "remove the node, or load a Z-Image model")


@pytest.mark.parametrize("checkpoint", ["tiny-sd-single.safetensors", "tiny-sd"])
def test_validate_and_the_run_name_the_same_family_for_the_tiny_sd_file_and_folder(engine, checkpoint):
    from nodeforge.core.errors import NodeError
    from nodes.families.timestep_noise import run_timestep_noise

    wf = _noised()
    wf.nodes["1"].params["checkpoint"] = checkpoint
    found = {(p.node_id, p.field): p.message for p in engine.validate(wf)}
    loaded = engine.run(wf, outputs=["1"]).outputs["1"]["unet"]   # the run's words come from the loaded model
    with pytest.raises(NodeError) as refused:
        run_timestep_noise(None, loaded, [1.0, 0.0])
    said = " is a sd1 model; Timestep Noise is for Z-Image models here: remove the node, or load a Z-Image model"
    assert (found[("noise", "unet")], str(refused.value)) == ("the model" + said, loaded.name + said)


def test_timestep_noise_at_strength_0_passes_the_model_on_and_the_cache_counts_it_once(make_engine, zimage_dir,
                                                                                        tmp_path):
    engine = make_engine(tmp_path / "out", zimage_dir)
    wf = _noised(noise_strength=0.0)
    engine.run(wf, outputs=["1", "sched"])
    before = engine.cache.stats()
    out = engine.run(wf, outputs=["1", "sched", "noise"]).outputs
    assert out["noise"]["unet"] is out["1"]["unet"]
    after = engine.cache.stats()
    assert (after.entries, after.nbytes) == (before.entries + 1, before.nbytes)   # it counted the transformer twice
