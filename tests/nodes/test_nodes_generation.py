"""Generation through the real Engine on tiny random-weight models."""
from __future__ import annotations


import numpy as np
import pytest
import torch

import nodeforge
from nodeforge import Workflow
from nodeforge.core.errors import ValidationError
from nodeforge.core.registry import builtin_module


def _image(engine, wf) -> np.ndarray:
    result = engine.run(wf)
    images = result.outputs["preview"]
    return np.stack([np.asarray(im) for im in images])


def _latent(engine, wf):
    return engine.run(wf, outputs=["denoise"]).outputs["denoise"]["latent"]["samples"]


def test_diffusers_folder_and_single_file_give_the_same_image(engine, make_txt2img):
    folder = _image(engine, make_txt2img("tiny-sd"))
    single = _image(engine, make_txt2img("tiny-sd-single.safetensors"))
    assert folder.shape == (1, 32, 32, 3)
    assert folder.std() > 0
    np.testing.assert_allclose(folder.astype(float), single.astype(float), atol=1)


def test_same_seed_reproduces_and_another_seed_differs(engine, make_txt2img):
    a = _latent(engine, make_txt2img(seed=1))
    engine.cache.clear()
    b = _latent(engine, make_txt2img(seed=1))
    c = _latent(engine, make_txt2img(seed=2))
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)


@pytest.mark.parametrize("scheduler", ["euler", "euler_ancestral"])
def test_batch_items_are_the_seeds_of_single_runs(engine, make_txt2img, scheduler):
    batch = _latent(engine, make_txt2img(seed=10, batch_size=2, sampler=scheduler))
    second = _latent(engine, make_txt2img(seed=11, sampler=scheduler))
    assert batch.shape[0] == 2
    # A batch of 2 and a batch of 1 take different BLAS paths: float noise of ~1e-5, which an
    # ancestral sampler's fresh noise per step can grow (1.3e-5 seen once); another seed is O(1) away.
    torch.testing.assert_close(batch[1:], second, atol=1e-4, rtol=1e-3)
    assert (batch[1:] - batch[:1]).abs().max() > 0.1


def test_changing_the_prompt_changes_the_image(engine, make_txt2img):
    a = _latent(engine, make_txt2img(text="a red circle"))
    b = _latent(engine, make_txt2img(text="a green square"))
    assert not torch.allclose(a, b)


def test_changing_seed_reruns_only_denoise_and_after(engine, make_txt2img):
    engine.run(make_txt2img(seed=100))
    result = engine.run(make_txt2img(seed=101))
    assert set(result.executed) == {"denoise", "decode", "preview"}


# Each sampler's diffusers class and the config it must have, written out here (not read from the
# table under test). Latent models never clip the predicted sample.
EXPECTED_SAMPLERS = {
    "euler": ("EulerDiscreteScheduler", {}),
    "euler_ancestral": ("EulerAncestralDiscreteScheduler", {}),
    "heun": ("HeunDiscreteScheduler", {"clip_sample": False}),
    "dpm_2": ("KDPM2DiscreteScheduler", {}),
    "dpm_2_ancestral": ("KDPM2AncestralDiscreteScheduler", {}),
    "lms": ("LMSDiscreteScheduler", {}),
    "dpmpp_2m": ("DPMSolverMultistepScheduler", {"algorithm_type": "dpmsolver++", "solver_order": 2}),
    "dpmpp_2m_sde": ("DPMSolverMultistepScheduler", {"algorithm_type": "sde-dpmsolver++", "solver_order": 2}),
    "dpmpp_sde": ("DPMSolverSDEScheduler", {}),
    "deis": ("DEISMultistepScheduler", {}),
    "uni_pc": ("UniPCMultistepScheduler", {"solver_type": "bh1", "final_sigmas_type": "sigma_min"}),
    "uni_pc_bh2": ("UniPCMultistepScheduler", {"solver_type": "bh2"}),
    "ddim": ("DDIMScheduler", {"clip_sample": False}),
    "ddpm": ("DDPMScheduler", {"clip_sample": False}),
    "pndm": ("PNDMScheduler", {"skip_prk_steps": True}),
    "lcm": ("LCMScheduler", {"clip_sample": False}),
}
EXPECTED_SCHEDULES = {
    "default": {"timestep_spacing": "leading", "use_karras_sigmas": False},   # the tiny model's own
    "normal": {"timestep_spacing": "linspace"},
    "karras": {"use_karras_sigmas": True},
    "exponential": {"use_exponential_sigmas": True},
    "beta": {"use_beta_sigmas": True},
    "simple": {"timestep_spacing": "trailing"},
    "sgm_uniform": {"timestep_spacing": "trailing"},
    "ddim_uniform": {"timestep_spacing": "leading", "steps_offset": 1},
}


def _reference_scheduler(pipe, sampler: str, schedule: str = "default", seed: int = 0):
    """The scheduler built straight from diffusers, as a diffusers user would for this sampler."""
    import diffusers

    class_name, overrides = EXPECTED_SAMPLERS[sampler]
    extra = dict(EXPECTED_SCHEDULES[schedule]) if schedule != "default" else {}
    if sampler == "dpmpp_sde":
        extra["noise_sampler_seed"] = seed
    return getattr(diffusers, class_name).from_config(pipe.original_scheduler_config, **overrides, **extra)


def test_the_sampler_list_is_comfyuis():
    assert set(builtin_module("schedulers").SAMPLERS) == set(EXPECTED_SAMPLERS)
    assert set(builtin_module("schedulers").SCHEDULES) == set(EXPECTED_SCHEDULES)


@pytest.mark.parametrize("sampler", list(EXPECTED_SAMPLERS))
def test_every_sampler_builds_its_diffusers_scheduler(engine, make_txt2img, sampler):
    config = engine.run(make_txt2img(), outputs=["ckpt"]).outputs["ckpt"]["unet"].scheduler_config
    built = builtin_module("schedulers").make_scheduler(sampler, "default", config, 0)
    class_name, overrides = EXPECTED_SAMPLERS[sampler]
    assert type(built).__name__ == class_name
    for key, value in overrides.items():
        assert built.config[key] == value, (sampler, key)
    assert built.config.get("clip_sample", False) is False
    samples = _latent(engine, make_txt2img(sampler=sampler, steps=3))
    assert samples.shape == (1, 4, 8, 8) and torch.isfinite(samples).all()
    # A name that silently fell back to Euler would give Euler's latent. (DDIM with eta 0 is the
    # same ODE step as Euler, so its latent equals Euler's: its class is what tells them apart.)
    if sampler not in ("euler", "ddim"):
        assert not torch.allclose(samples, _latent(engine, make_txt2img(sampler="euler", steps=3)), atol=1e-3)


@pytest.mark.parametrize("schedule", list(EXPECTED_SCHEDULES))
def test_every_schedule_sets_its_spacing_or_sigmas(engine, make_txt2img, schedule):
    config = engine.run(make_txt2img(), outputs=["ckpt"]).outputs["ckpt"]["unet"].scheduler_config
    built = builtin_module("schedulers").make_scheduler("dpmpp_2m", schedule, config, 0)
    for key, value in EXPECTED_SCHEDULES[schedule].items():
        assert built.config[key] == value, (schedule, key)


def test_a_sampler_that_cannot_follow_a_sigma_schedule_is_refused_at_validate(engine, make_txt2img):
    wf = make_txt2img(sampler="ddim", schedule="karras")
    problems = engine.validate(wf)
    assert any(p.node_id == "denoise" and p.field == "schedule" and "ddim cannot follow karras" in p.message
               for p in problems), problems
    assert engine.validate(make_txt2img(sampler="ddim", schedule="ddim_uniform")) == []


def test_cfg_one_calls_the_unet_once_per_step(engine, make_txt2img):
    unet = engine.run(make_txt2img(), outputs=["ckpt"]).outputs["ckpt"]["unet"].unet
    batches = []
    hook = unet.register_forward_pre_hook(lambda m, args: batches.append(args[0].shape[0]))
    try:
        _latent(engine, make_txt2img(cfg=1.0, seed=5, steps=2))
        _latent(engine, make_txt2img(cfg=4.0, seed=5, steps=2))
    finally:
        hook.remove()
    assert batches == [1, 1, 2, 2]




def test_width_not_a_multiple_of_the_vae_factor_is_refused(engine, make_txt2img):
    with pytest.raises(ValidationError) as info:
        engine.run(make_txt2img(width=34))
    assert "width" in str(info.value)


def test_missing_checkpoint_names_node_and_field(engine, make_txt2img):
    with pytest.raises(ValidationError) as info:
        engine.run(make_txt2img(checkpoint="no-such-model"))
    problems = [p for p in info.value.problems if p.field == "checkpoint"]
    assert problems and problems[0].node_id == "ckpt"


def test_denoise_zero_keeps_the_latent(engine, make_txt2img):
    wf = _img2img_workflow(denoise=0.0)
    out = engine.run(wf, outputs=["enc", "denoise"]).outputs
    assert torch.equal(out["denoise"]["latent"]["samples"], out["enc"]["latent"]["samples"])


def _img2img_workflow(denoise: float, mask=None) -> Workflow:
    wf = Workflow()
    wf.add("CheckpointLoader", {"checkpoint": "tiny-sd"}, node_id="ckpt")
    wf.add("TextEncoder", {"text": "a red circle"}, {"clip": ("ckpt", "clip")}, node_id="pos")
    wf.add("TextEncoder", {"text": ""}, {"clip": ("ckpt", "clip")}, node_id="neg")
    wf.add("EmptyLatent", {"width": 32, "height": 32, "batch_size": 1}, node_id="empty")
    wf.add("VAEDecode", {}, {"vae": ("ckpt", "vae"), "latent": ("empty", "latent")}, node_id="blank")
    wf.add("VAEEncode", {}, {"vae": ("ckpt", "vae"), "image": ("blank", "image")}, node_id="enc")
    latent = ("enc", "latent")
    if mask is not None:
        wf.add("LoadImage", {"path": str(mask)}, node_id="load")
        wf.add("SetLatentMask", {}, {"latent": latent, "mask": ("load", "mask")}, node_id="masked")
        latent = ("masked", "latent")
    wf.add("UNetDenoise", {"seed": 3, "steps": 4, "cfg": 5.0, "sampler": "euler", "schedule": "default", "denoise": denoise},
           {"unet": ("ckpt", "unet"), "positive": ("pos", "conditioning"), "negative": ("neg", "conditioning"),
            "latent": latent}, node_id="denoise")
    wf.add("VAEDecode", {}, {"vae": ("ckpt", "vae"), "latent": ("denoise", "latent")}, node_id="decode")
    wf.add("Preview", {}, {"image": ("decode", "image")}, node_id="preview")
    return wf


def test_img2img_changes_the_latent_less_with_lower_denoise(engine):
    out_low = engine.run(_img2img_workflow(0.3), outputs=["enc", "denoise"]).outputs
    out_high = engine.run(_img2img_workflow(1.0), outputs=["denoise"]).outputs
    source = out_low["enc"]["latent"]["samples"]
    low = (out_low["denoise"]["latent"]["samples"] - source).abs().mean()
    high = (out_high["denoise"]["latent"]["samples"] - source).abs().mean()
    # Measured: 0.034 at denoise 0.3, 3.52 at 1.0 (the source latent's mean magnitude is 0.143).
    # Absolute bounds, so a denoise 0.3 that noises as far as 1.0 (or not at all) fails.
    assert 0.005 < low < 0.1 and high > 1.0, (float(low), float(high))


def test_inpainting_leaves_unmasked_latent_pixels_unchanged(engine, tmp_path):
    from PIL import Image

    rgba = np.full((32, 32, 4), 255, np.uint8)
    rgba[8:24, 8:24, 3] = 0        # transparent square = repaint; aligned to the 4-pixel latent grid
    Image.fromarray(rgba, "RGBA").save(tmp_path / "mask.png")
    out = engine.run(_img2img_workflow(1.0, mask=tmp_path / "mask.png"), outputs=["enc", "denoise"]).outputs
    before = out["enc"]["latent"]["samples"]
    after = out["denoise"]["latent"]["samples"]
    keep = torch.ones_like(before, dtype=torch.bool)
    keep[:, :, 2:6, 2:6] = False
    assert torch.equal(after[keep], before[keep])
    assert not torch.allclose(after[~keep], before[~keep])


def test_cancelling_mid_denoise_stops_within_a_step_and_the_next_run_works(fresh_engine, make_txt2img):
    steps_seen = []

    def listener(event):
        if type(event).__name__ == "NodeProgress":
            steps_seen.append(event.step)
            if event.step == 2:
                fresh_engine.cancel()

    unsubscribe = fresh_engine.subscribe(listener)
    with pytest.raises(nodeforge.Cancelled):
        fresh_engine.run(make_txt2img(steps=10, seed=9))
    unsubscribe()
    assert max(steps_seen) == 2
    result = fresh_engine.run(make_txt2img(steps=2, seed=9))
    assert "denoise" in result.executed


def test_cancelling_a_lora_run_mid_denoise_leaves_the_base_weights_and_the_rerun_is_bit_equal(
        fresh_engine, make_txt2img):
    wf = make_txt2img(steps=6, seed=9, lora=[("kohya", 0.8, 1.0)])
    loaded = fresh_engine.run(make_txt2img(), outputs=["ckpt"]).outputs["ckpt"]
    base_unet = {k: v.clone() for k, v in loaded["unet"].unet.state_dict().items()}
    base_te = {k: v.clone() for k, v in loaded["clip"].text_encoder.state_dict().items()}
    steps_seen = []

    def listener(event):
        if type(event).__name__ == "NodeProgress" and event.node_id == "denoise":
            steps_seen.append(event.step)
            if event.step == 3:   # inside the LoRA-patched UNet loop
                fresh_engine.cancel()

    with pytest.raises(nodeforge.Cancelled) as info:
        fresh_engine.run(wf, on_event=listener)
    assert info.value.node_id == "denoise" and max(steps_seen) == 3
    # The patch was undone: the shared base model is bitwise what was loaded.
    for name, tensor in loaded["unet"].unet.state_dict().items():
        assert torch.equal(tensor, base_unet[name]), name
    for name, tensor in loaded["clip"].text_encoder.state_dict().items():
        assert torch.equal(tensor, base_te[name]), name
    # The same workflow again (same cache keys: the cancelled node left nothing half-made in the
    # cache) equals an uncancelled run in a fresh engine, bit for bit.
    again = fresh_engine.run(wf, outputs=["denoise"])
    assert "denoise" in again.executed and "ckpt" in again.cached
    from nodeforge import Engine

    clean = Engine(device="cpu", output_dir=fresh_engine.output_dir, registry=fresh_engine.registry,
                   model_paths=fresh_engine.model_paths).run(wf, outputs=["denoise"])
    assert torch.equal(again.outputs["denoise"]["latent"]["samples"], clean.outputs["denoise"]["latent"]["samples"])


def test_latent_size_is_checked_against_the_models_vae_factor():
    from nodeforge.core.errors import NodeError

    latent_shape = builtin_module("latents").latent_shape
    lazy = {"samples": None, "width": 516, "height": 512, "batch_size": 2}
    assert latent_shape(lazy, 4, 4) == (2, 4, 128, 129)
    with pytest.raises(NodeError) as info:
        latent_shape(lazy, 4, 8)
    assert info.value.field == "width" and "multiple of 8" in str(info.value)


@pytest.fixture(scope="module")
def pipeline(models_dir):
    from diffusers import StableDiffusionPipeline

    pipe = StableDiffusionPipeline.from_pretrained(str(models_dir / "checkpoints" / "tiny-sd"), local_files_only=True,
                                                   safety_checker=None, requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    pipe.original_scheduler_config = dict(pipe.scheduler.config)   # the tests swap pipe.scheduler
    return pipe


@pytest.mark.parametrize("sampler, schedule", [(name, "default") for name in EXPECTED_SAMPLERS]
                         + [("dpmpp_2m", "karras"), ("euler", "exponential"), ("dpmpp_sde", "karras"),
                            ("euler", "normal"), ("ddim", "ddim_uniform")])
def test_txt2img_matches_the_diffusers_pipeline(engine, pipeline, make_txt2img, sampler, schedule):
    ours = _latent(engine, make_txt2img(text="a red circle", seed=21, steps=4, cfg=5.0, sampler=sampler,
                                        schedule=schedule))
    pipe = pipeline
    pipe.scheduler = _reference_scheduler(pipe, sampler, schedule, seed=21)
    if sampler == "lms":   # UNetDenoise runs LMS at 3rd order (4th overshoots at few steps)
        step = pipe.scheduler.step
        pipe.scheduler.step = lambda *a, **k: step(*a, order=3, **k)
    theirs = pipe("a red circle", negative_prompt="", num_inference_steps=4, guidance_scale=5.0, height=32,
                  width=32, generator=torch.Generator().manual_seed(21), output_type="latent").images
    torch.testing.assert_close(ours, theirs, atol=1e-4, rtol=1e-4)


def test_progress_reports_every_step_with_a_preview(fresh_engine, make_txt2img):
    events = []
    fresh_engine.run(make_txt2img(steps=3), on_event=lambda e: events.append(e))
    progress = [e for e in events if type(e).__name__ == "NodeProgress" and e.node_id == "denoise"]
    assert [e.step for e in progress] == [0, 1, 2, 3] and progress[-1].total == 3
    assert progress[-1].preview is not None and progress[-1].preview.size == (8, 8)


def test_out_of_memory_becomes_advice():
    from nodeforge.core.errors import NodeError

    memory = builtin_module("memory")
    with pytest.raises(NodeError) as info:
        with memory.memory_advice():
            raise RuntimeError("CUDA out of memory. Tried to allocate 20.00 GiB")
    assert "smaller" in str(info.value)
    with pytest.raises(NodeError) as info:   # torch's CPU allocator words it differently: same advice
        with memory.memory_advice():
            torch.empty(1 << 62, dtype=torch.uint8)
    assert "ran out of memory; try a smaller image size or batch size" in str(info.value)
    with pytest.raises(ValueError):
        with memory.memory_advice():
            raise ValueError("something else")


def test_denoise_does_not_mutate_its_input_latent(engine):
    wf = _img2img_workflow(0.6)
    source = engine.run(wf, outputs=["enc"]).outputs["enc"]["latent"]
    kept = source["samples"].clone()
    engine.run(wf, outputs=["denoise"])   # "enc" comes from the cache: the same tensor goes in
    assert torch.equal(source["samples"], kept) and set(source) == {"samples", "factor"}


def test_half_precision_weights_run_as_on_a_gpu(models_dir):
    """bf16 weights (what CUDA gets) with fp32 latents, LoRA patches and VAE: no dtype mismatch."""
    import copy
    import threading

    from nodeforge.core.context import NodeContext

    loading, sampling, vae_mod, prompt, lora = (builtin_module(m) for m in ("loading", "sampling", "vae", "prompt", "lora"))
    loaded = loading.load_checkpoint(models_dir / "checkpoints" / "tiny-sd", "cpu", {})
    unet, clip, vae = loaded.wrappers()
    unet = type(unet)(**{**loaded.unet_fields, "unet": copy.deepcopy(unet.unet).to(torch.bfloat16)})
    vae = type(vae)(**{**loaded.vae_fields, "vae": copy.deepcopy(vae.vae).to(torch.bfloat16)})
    state, _ = loading.read_state_dict(models_dir / "loras" / "kohya.safetensors")
    patch, _ = lora.resolve(lora.parse_lora(state)[0]["unet"], unet.unet, "kohya", 1.0, unet.unet.config)
    unet = unet.with_lora(patch)
    ctx = NodeContext("n", "UNetDenoise", None, models_dir, None, {}, "cpu", lambda d: d, threading.Event(),
                      lambda *a: None)
    cond, uncond = prompt.encode(clip, "a red circle"), prompt.encode(clip, "")
    latent = {"samples": None, "width": 32, "height": 32, "batch_size": 1}
    before = {k: v.clone() for k, v in unet.unet.state_dict().items()}
    request = sampling.DenoiseRequest(seed=1, steps=2, cfg=5.0, sampler="euler_ancestral", schedule="default")
    out = sampling.denoise_latent(ctx, model=unet, positive=cond, negative=uncond, latent=latent, request=request)
    assert out["samples"].dtype == torch.float32 and torch.isfinite(out["samples"]).all()
    assert all(torch.equal(before[k], v) for k, v in unet.unet.state_dict().items())
    image = vae_mod.decode(vae, out["samples"])
    assert image.dtype == torch.float32 and image.shape == (1, 32, 32, 3)


# -- the CFG formula and the negative prompt ---------------------------------------------------------
def _with_negative(make_txt2img, positive, negative, cfg, seed=6, steps=3):
    wf = make_txt2img(text=positive, cfg=cfg, seed=seed, steps=steps)
    wf.nodes["neg"].params["text"] = negative
    return wf


def test_cfg_steps_from_the_negative_towards_the_positive_as_written_out_by_hand(engine, make_txt2img):
    """The denoise loop written out with diffusers' Euler scheduler: noise = uncond + cfg x (cond -
    uncond), uncond from the negative prompt. A flipped sign, swapped prompts or a dropped negative
    all fail."""
    from diffusers import EulerDiscreteScheduler

    cfg, steps, seed = 4.0, 3, 6
    wf = _with_negative(make_txt2img, "a red circle", "a green square", cfg, seed, steps)
    ours = _latent(engine, wf)
    out = engine.run(wf, outputs=["ckpt", "pos", "neg"]).outputs
    unet = out["ckpt"]["unet"].unet
    embeds = torch.cat([out["neg"]["conditioning"][0]["embeds"], out["pos"]["conditioning"][0]["embeds"]])
    sched = EulerDiscreteScheduler.from_config(out["ckpt"]["unet"].scheduler_config)
    sched.set_timesteps(steps)
    latents = torch.randn(4, 8, 8, generator=torch.Generator().manual_seed(seed))[None] * sched.init_noise_sigma
    with torch.inference_mode():
        for t in sched.timesteps:
            x = sched.scale_model_input(torch.cat([latents] * 2), t)
            uncond, cond = unet(x, t, encoder_hidden_states=embeds).sample.chunk(2)
            latents = sched.step(uncond + cfg * (cond - uncond), t, latents).prev_sample
    torch.testing.assert_close(ours, latents, atol=1e-4, rtol=1e-4)


def test_swapping_the_prompts_at_cfg_c_is_the_original_at_one_minus_c(engine, make_txt2img):
    """neg + c (pos - neg) with the prompts swapped is pos + c (neg - pos) = neg + (1 - c)(pos - neg):
    a property of the formula that holds only with the right sign and the right prompt on each side."""
    a, b = "a red circle", "a green square"
    original = _latent(engine, _with_negative(make_txt2img, a, b, 0.25))
    swapped = _latent(engine, _with_negative(make_txt2img, b, a, 0.75))
    torch.testing.assert_close(swapped, original, atol=1e-4, rtol=1e-4)
    assert (original - _latent(engine, _with_negative(make_txt2img, a, b, 0.75))).abs().max() > 1e-2


def test_the_negative_prompt_changes_the_image_above_cfg_one_and_not_at_cfg_one(engine, make_txt2img):
    empty = _latent(engine, _with_negative(make_txt2img, "a red circle", "", 5.0))
    negative = _latent(engine, _with_negative(make_txt2img, "a red circle", "a green square", 5.0))
    assert (empty - negative).abs().max() > 1e-2
    # At CFG 1 only the positive prompt is used (one UNet call a step): the negative is ignored exactly.
    at_one = [_latent(engine, _with_negative(make_txt2img, "a red circle", neg, 1.0)) for neg in ("", "a green square")]
    assert torch.equal(*at_one)


# -- img2img runs exactly int(steps x denoise) steps -------------------------------------------------
@pytest.mark.parametrize("steps, denoise, calls", [(10, 1.0, 10), (10, 0.5, 5), (10, 0.3, 3), (4, 0.75, 3),
                                                   (7, 0.5, 3), (20, 0.55, 11)])
def test_img2img_calls_the_unet_int_steps_times_denoise_times(engine, steps, denoise, calls):
    """diffusers' img2img rule (strength x steps, rounded down), counted at the UNet: a slip that runs
    every step, or rounds up, changes the count."""
    wf = _img2img_workflow(denoise)
    wf.nodes["denoise"].params["steps"] = steps
    unet = engine.run(wf, outputs=["ckpt"]).outputs["ckpt"]["unet"].unet
    batches = []
    hook = unet.register_forward_pre_hook(lambda m, args: batches.append(args[0].shape[0]))
    try:
        engine.run(wf, outputs=["denoise"])
    finally:
        hook.remove()
    assert batches == [2] * calls   # negative and positive in one call per step


# -- a cancelled plain run caches nothing of the node it stopped in ------------------------------------
def test_cancelling_a_plain_run_leaves_no_partial_result_in_the_cache(fresh_engine, make_txt2img):
    wf = make_txt2img(steps=6, seed=9)

    def listener(event):
        if type(event).__name__ == "NodeProgress" and event.node_id == "denoise" and event.step == 3:
            fresh_engine.cancel()

    with pytest.raises(nodeforge.Cancelled):
        fresh_engine.run(wf, on_event=listener)
    result = fresh_engine.run(wf, outputs=["denoise"])
    assert "denoise" in result.executed and "denoise" not in result.cached
    assert {"ckpt", "pos", "neg", "empty"} <= set(result.cached)   # what finished before the cancel is kept
    latent = result.outputs["denoise"]["latent"]["samples"]
    fresh_engine.cache.clear()
    assert torch.equal(_latent(fresh_engine, wf), latent)


@pytest.mark.parametrize("sampler, zsnr", [("euler", False), ("euler", True), ("dpmpp_2m", True)])
def test_model_sampling_discrete_samples_as_the_pipeline_with_that_prediction_and_schedule(
        engine, pipeline, make_txt2img, sampler, zsnr):
    # ComfyUI's ModelSamplingDiscrete: the tiny model read as a v-prediction model, with zsnr on a zero-terminal-
    # SNR schedule: the latents of diffusers' pipeline with that scheduler config
    wf = make_txt2img(text="a red circle", seed=21, steps=4, cfg=5.0, sampler=sampler, schedule="normal")
    wf.add("ModelSamplingDiscrete", {"sampling": "v_prediction", "zsnr": zsnr}, {"unet": ("ckpt", "unet")},
           node_id="msd")
    wf.nodes["denoise"].inputs["unet"] = ("msd", "unet")
    ours = _latent(engine, wf)
    pipe = pipeline
    pipe.scheduler = _reference_scheduler(pipe, sampler, "normal")
    pipe.scheduler = type(pipe.scheduler).from_config(dict(pipe.scheduler.config, prediction_type="v_prediction",
                                                           rescale_betas_zero_snr=zsnr))
    theirs = pipe("a red circle", negative_prompt="", num_inference_steps=4, guidance_scale=5.0, height=32,
                  width=32, generator=torch.Generator().manual_seed(21), output_type="latent").images
    torch.testing.assert_close(ours, theirs, atol=1e-4, rtol=1e-4)
    plain = _latent(engine, make_txt2img(text="a red circle", seed=21, steps=4, cfg=5.0, sampler=sampler,
                                         schedule="normal"))
    assert (plain - ours).abs().max() > 1e-2


def test_model_sampling_discrete_refuses_what_it_cannot_do(engine, make_txt2img):
    from nodeforge.core.errors import NodeExecutionError

    wf = make_txt2img(sampler="heun")
    wf.add("ModelSamplingDiscrete", {"sampling": "v_prediction", "zsnr": True}, {"unet": ("ckpt", "unet")},
           node_id="msd")
    wf.nodes["denoise"].inputs["unet"] = ("msd", "unet")
    with pytest.raises(NodeExecutionError, match=r"heun cannot sample a zero-terminal-SNR model .*choose one of "
                                                 r"euler, euler_ancestral, dpmpp_2m"):
        engine.run(wf, outputs=["denoise"])
    wf.nodes["msd"].params["sampling"] = "lcm"
    with pytest.raises(NodeExecutionError, match="sampling 'lcm' is not supported yet"):
        engine.run(wf, outputs=["msd"])
