"""ModelSamplingContinuousEDM (CosXL's sampling): the tiny SD model sampled as a continuous EDM model gives
the latents of diffusers' pipeline with its EDM scheduler (how diffusers runs CosXL), and the node refuses
what diffusers' EDM schedulers do not do."""
from __future__ import annotations

import pytest
import torch

from nodeforge.core.errors import NodeError, NodeExecutionError
from nodeforge.core.registry import builtin_module


@pytest.fixture(scope="module")
def pipeline(models_dir):
    from diffusers import StableDiffusionPipeline

    pipe = StableDiffusionPipeline.from_pretrained(str(models_dir / "checkpoints" / "tiny-sd"), local_files_only=True,
                                                   safety_checker=None, requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _edm_graph(make_txt2img, sampler, schedule, sampling="v_prediction", sigma_max=120.0, sigma_min=0.002, **kw):
    wf = make_txt2img(text="a red circle", seed=21, steps=4, cfg=5.0, sampler=sampler, schedule=schedule, **kw)
    wf.add("ModelSamplingContinuousEDM", {"sampling": sampling, "sigma_max": sigma_max, "sigma_min": sigma_min},
           {"unet": ("ckpt", "unet")}, node_id="edm")
    wf.nodes["denoise"].inputs["unet"] = ("edm", "unet")
    return wf


def _latent(engine, wf):
    return engine.run(wf, outputs=["denoise"]).outputs["denoise"]["latent"]["samples"]


@pytest.mark.parametrize("sampler, schedule, sampling, scheduler", [
    ("euler", "karras", "v_prediction", ("EDMEulerScheduler", {"sigma_schedule": "karras"})),
    ("dpmpp_2m", "normal", "v_prediction", ("EDMDPMSolverMultistepScheduler",
                                            {"sigma_schedule": "exponential", "algorithm_type": "dpmsolver++"})),
    ("euler", "exponential", "edm", ("EDMEulerScheduler", {"sigma_schedule": "exponential"})),
])
def test_an_edm_model_samples_as_diffusers_edm_scheduler(engine, pipeline, make_txt2img, sampler, schedule, sampling,
                                                         scheduler):
    import diffusers

    ours = _latent(engine, _edm_graph(make_txt2img, sampler, schedule, sampling, sigma_max=80.0, sigma_min=0.01))
    name, config = scheduler
    prediction = "v_prediction" if sampling == "v_prediction" else "epsilon"     # diffusers' EDM 'epsilon': EDM's F
    pipeline.scheduler = getattr(diffusers, name)(sigma_min=0.01, sigma_max=80.0, sigma_data=1.0,
                                                  prediction_type=prediction, **config)
    theirs = pipeline("a red circle", negative_prompt="", num_inference_steps=4, guidance_scale=5.0, height=32,
                      width=32, generator=torch.Generator().manual_seed(21), output_type="latent").images
    torch.testing.assert_close(ours, theirs, atol=1e-4, rtol=1e-4)
    plain = _latent(engine, make_txt2img(text="a red circle", seed=21, steps=4, cfg=5.0, sampler=sampler,
                                         schedule=schedule))
    assert (plain - ours).abs().max() > 1e-2


def test_the_edm_model_is_called_at_a_quarter_log_sigma_on_inputs_scaled_by_sigma():
    edm = builtin_module("edm_sampling")
    sched = edm.EDMSampling(0.002, 120.0, "v_prediction").scheduler_for("euler", "karras")
    sched.set_timesteps(4)
    sigmas = sched.sigmas[:-1]
    assert float(sigmas[0]) == pytest.approx(120.0) and float(sched.sigmas[-1]) == 0.0
    torch.testing.assert_close(sched.timesteps, 0.25 * sigmas.log())
    x = torch.ones(1, 4, 2, 2)
    assert float(sched.scale_model_input(x, sched.timesteps[0])[0, 0, 0, 0]) == pytest.approx(1 / (120 ** 2 + 1) ** 0.5)
    behaviour = edm.EDMSampling(0.002, 120.0, "v_prediction")
    levels = torch.tensor([14.6, 1.0, 0.03])
    torch.testing.assert_close(behaviour.sigma_timesteps(sched, levels), 0.25 * levels.log())
    sched = edm.EDMSampling(0.002, 120.0, "v_prediction").scheduler_for("euler", "simple")
    sched.set_timesteps(3)          # simple on a continuous model: evenly spaced in log sigma
    expected = torch.linspace(torch.tensor(120.0).log(), torch.tensor(0.002).log(), 3).exp()
    torch.testing.assert_close(sched.sigmas[:-1], expected, atol=1e-4, rtol=1e-4)


def test_self_attention_guidance_reads_an_edm_models_noise_level(engine, make_txt2img):
    edm = builtin_module("edm_sampling")
    behaviour = edm.EDMSampling(0.002, 120.0, "v_prediction")
    assert float(behaviour.alpha_at(0.25 * torch.tensor(2.0).log())) == pytest.approx(0.2)  # 1/(1+2^2)
    wf = _edm_graph(make_txt2img, "euler", "karras")
    plain = _latent(engine, wf)
    wf.add("SelfAttentionGuidance", {"scale": 0.8, "blur_sigma": 2.0}, {"unet": ("edm", "unet")}, node_id="sag")
    wf.nodes["denoise"].inputs["unet"] = ("sag", "unet")
    guided = _latent(engine, wf)
    assert torch.isfinite(guided).all() and (guided - plain).abs().max() > 1e-3
    with pytest.raises(NodeError, match="works with sampling v_prediction only"):
        edm.EDMSampling(0.002, 120.0, "epsilon").alpha_at(torch.tensor(0.0))


def test_edm_refuses_what_it_cannot_do(engine, make_txt2img):
    wf = _edm_graph(make_txt2img, "heun", "karras")
    with pytest.raises(NodeExecutionError, match="heun cannot sample an EDM model .*choose one of euler, dpmpp_2m, "
                                                 "dpmpp_2m_sde"):
        engine.run(wf, outputs=["denoise"])
    wf = _edm_graph(make_txt2img, "euler", "beta")
    with pytest.raises(NodeExecutionError, match="schedule beta has no EDM form"):
        engine.run(wf, outputs=["denoise"])
    wf = _edm_graph(make_txt2img, "euler", "karras", sampling="eps")
    with pytest.raises(NodeExecutionError, match="sampling 'eps' is not supported yet"):
        engine.run(wf, outputs=["edm"])
    wf = _edm_graph(make_txt2img, "euler", "karras")
    wf.add("ConditioningSetTimestepRange", {"start": 0.0, "end": 0.5}, {"conditioning": ("pos", "conditioning")},
           node_id="range")
    wf.nodes["denoise"].inputs["positive"] = ("range", "conditioning")
    with pytest.raises(NodeExecutionError, match=r"a window of the sampling \(0 to 0.5\) cannot be placed on an EDM"):
        engine.run(wf, outputs=["denoise"])


def test_sampler_custom_advanced_samples_an_edm_model_as_the_ksampler_does(engine, make_txt2img):
    """SamplerCustomAdvanced with BasicScheduler on an EDM model (CosXL Edit's graph) runs the same request as
    UNetDenoise: the same latent, and its denoised output (it failed on the frozen EDM family before)."""
    wf = _edm_graph(make_txt2img, "euler", "karras")
    wf.add("CFGGuider", {"cfg": 5.0}, {"unet": ("edm", "unet"), "positive": ("pos", "conditioning"),
                                       "negative": ("neg", "conditioning")}, node_id="guider")
    wf.add("RandomNoise", {"seed": 21}, node_id="noise")
    wf.add("SamplerSelect", {"sampler": "euler"}, node_id="sampler")
    wf.add("BasicScheduler", {"schedule": "karras", "steps": 4, "denoise": 1.0}, {"unet": ("edm", "unet")},
           node_id="sigmas")
    wf.add("SamplerCustomAdvanced", {}, {"noise": ("noise", "noise"), "guider": ("guider", "guider"),
                                         "sampler": ("sampler", "sampler"), "sigmas": ("sigmas", "sigmas"),
                                         "latent": ("empty", "latent")}, node_id="custom")
    out = engine.run(wf, outputs=["denoise", "custom"]).outputs
    torch.testing.assert_close(out["custom"]["output"]["samples"], out["denoise"]["latent"]["samples"])
    assert out["custom"]["denoised_output"]["samples"].shape == (1, 4, 8, 8)
