"""ComfyUI's custom sampling as NodeForge nodes: the sigmas each scheduler gives (against ComfyUI's
documented behaviour and the published tables), and SamplerCustom / SamplerCustomAdvanced giving
UNetDenoise's latents for the same settings."""
from __future__ import annotations

import math
import re

import numpy as np
import pytest
import torch

from nodeforge import Workflow

CONDS = {"positive": ("pos", "conditioning"), "negative": ("neg", "conditioning")}


def _base(batch: int = 1) -> Workflow:
    wf = Workflow()
    wf.add("CheckpointLoader", {"checkpoint": "tiny-sd"}, node_id="ckpt")
    wf.add("TextEncoder", {"text": "a red circle"}, {"clip": ("ckpt", "clip")}, node_id="pos")
    wf.add("TextEncoder", {"text": "blue"}, {"clip": ("ckpt", "clip")}, node_id="neg")
    wf.add("EmptyLatent", {"width": 32, "height": 32, "batch_size": batch}, node_id="empty")
    return wf


def _ksampler(wf: Workflow, sampler: str, schedule: str, steps: int = 6, denoise: float = 1.0, **stage) -> None:
    params = {"seed": 11, "steps": steps, "cfg": 4.0, "sampler": sampler, "schedule": schedule, "denoise": denoise}
    wf.add("UNetDenoise", dict(params, **stage), dict(CONDS, unet=("ckpt", "unet"), latent=("empty", "latent")),
           node_id="ks")


def _custom_advanced(wf: Workflow, sampler: str, sigmas_node: str, *, latent=("empty", "latent"),
                     noise: str = "noise", node_id: str = "sca") -> None:
    wf.add("SamplerSelect", {"sampler": sampler}, node_id=f"{node_id}_sampler")
    wf.add("CFGGuider", {"cfg": 4.0}, dict(CONDS, unet=("ckpt", "unet")), node_id=f"{node_id}_guider")
    wf.add("SamplerCustomAdvanced", {}, {"noise": (noise, "noise"), "guider": (f"{node_id}_guider", "guider"),
                                         "sampler": (f"{node_id}_sampler", "sampler"),
                                         "sigmas": sigmas_node if isinstance(sigmas_node, tuple) else
                                         (sigmas_node, "sigmas"), "latent": latent}, node_id=node_id)


def _samples(out, node, name="output"):
    return out[node][name]["samples"]


@pytest.mark.parametrize("sampler,schedule", [("euler", "default"), ("euler_ancestral", "normal"),
                                              ("dpmpp_2m", "karras"), ("ddim", "ddim_uniform"), ("heun", "simple")])
def test_sampler_custom_advanced_with_basic_scheduler_gives_the_ksampler_latents(engine, sampler, schedule):
    wf = _base(batch=2)
    _ksampler(wf, sampler, schedule)
    wf.add("RandomNoise", {"seed": 11}, node_id="noise")
    wf.add("BasicScheduler", {"schedule": schedule, "steps": 6, "denoise": 1.0}, {"unet": ("ckpt", "unet")},
           node_id="sched")
    _custom_advanced(wf, sampler, "sched")
    out = engine.run(wf, outputs=["ks", "sca"]).outputs
    assert torch.equal(_samples(out, "sca"), out["ks"]["latent"]["samples"])


def test_sampler_custom_with_denoise_gives_the_ksampler_img2img(engine):
    wf = _base()
    wf.add("UNetDenoise", {"seed": 3, "steps": 8, "cfg": 4.0, "sampler": "euler", "schedule": "normal",
                           "denoise": 1.0}, dict(CONDS, unet=("ckpt", "unet"), latent=("empty", "latent")),
           node_id="first")
    wf.add("UNetDenoise", {"seed": 4, "steps": 8, "cfg": 4.0, "sampler": "euler_ancestral", "schedule": "normal",
                           "denoise": 0.5}, dict(CONDS, unet=("ckpt", "unet"), latent=("first", "latent")),
           node_id="ks")
    wf.add("SamplerSelect", {"sampler": "euler_ancestral"}, node_id="sel")
    wf.add("BasicScheduler", {"schedule": "normal", "steps": 8, "denoise": 0.5}, {"unet": ("ckpt", "unet")},
           node_id="sched")
    wf.add("SamplerCustom", {"add_noise": True, "seed": 4, "cfg": 4.0},
           dict(CONDS, unet=("ckpt", "unet"), sampler=("sel", "sampler"), sigmas=("sched", "sigmas"),
                latent=("first", "latent")), node_id="sc")
    out = engine.run(wf, outputs=["ks", "sc", "sched"]).outputs
    assert torch.equal(_samples(out, "sc"), out["ks"]["latent"]["samples"])
    assert len(out["sched"]["sigmas"].values) == 5      # 4 of the 8 steps: 5 sigmas


def test_split_sigmas_with_disable_noise_are_the_two_stage_ksampler(engine):
    wf = _base()
    # euler: DisableNoise has no seed, so an ancestral second stage draws other step noise (as in ComfyUI)
    _ksampler(wf, "euler", "normal", steps=8)
    wf.add("RandomNoise", {"seed": 11}, node_id="noise")
    wf.add("DisableNoise", {}, node_id="off")
    wf.add("BasicScheduler", {"schedule": "normal", "steps": 8, "denoise": 1.0}, {"unet": ("ckpt", "unet")},
           node_id="sched")
    wf.add("SplitSigmas", {"step": 5}, {"sigmas": ("sched", "sigmas")}, node_id="split")
    _custom_advanced(wf, "euler", ("split", "high_sigmas"), node_id="high")
    _custom_advanced(wf, "euler", ("split", "low_sigmas"), latent=("high", "output"), noise="off",
                     node_id="low")
    out = engine.run(wf, outputs=["ks", "high", "low", "split"]).outputs
    assert torch.equal(_samples(out, "low"), out["ks"]["latent"]["samples"])
    high, low = out["split"]["high_sigmas"].values, out["split"]["low_sigmas"].values
    assert len(high) == 6 and len(low) == 4 and high[-1] == low[0] > 0
    # the first stage stops with its noise; its denoised output is the clean latent predicted there
    assert (_samples(out, "high") - _samples(out, "low")).abs().max() > 0.05
    assert not torch.equal(_samples(out, "high", "denoised_output"), _samples(out, "high"))


def test_basic_scheduler_sigmas_are_what_unet_denoise_steps_through(engine):
    from diffusers import EulerDiscreteScheduler

    wf = _base()
    wf.add("BasicScheduler", {"schedule": "karras", "steps": 10, "denoise": 1.0}, {"unet": ("ckpt", "unet")},
           node_id="sched")
    sigmas = engine.run(wf, outputs=["sched"]).outputs["sched"]["sigmas"].values
    model = engine.run(wf, outputs=["ckpt"]).outputs["ckpt"]["unet"]
    ref = EulerDiscreteScheduler.from_config(dict(model.scheduler_config, use_karras_sigmas=True))
    ref.set_timesteps(10)
    assert len(sigmas) == 11 and sigmas[-1] == 0
    assert torch.allclose(sigmas, ref.sigmas.float())
    # Karras et al.'s rho-7 spacing between the model's highest and lowest sigma
    lo, hi = float(sigmas[-2]), float(sigmas[0])
    ramp = np.linspace(0, 1, 10)
    karras = (hi ** (1 / 7) + ramp * (lo ** (1 / 7) - hi ** (1 / 7))) ** 7
    assert np.allclose(sigmas[:-1].numpy(), karras, rtol=1e-5)


def _sigmas(engine, node_type, params, with_model=True):
    wf = _base()
    wf.add(node_type, params, {"unet": ("ckpt", "unet")} if with_model else {}, node_id="s")
    return engine.run(wf, outputs=["s"]).outputs["s"]["sigmas"].values


PUBLISHED_SD1 = [14.6146412293, 6.4745760956, 3.8636745985, 2.6946151520, 1.8841921177, 1.3943805092,
                 0.9642583904, 0.6523686016, 0.3977456272, 0.1515232662, 0.0]


def test_align_your_steps_at_ten_steps_is_the_published_schedule(engine):
    sd1 = _sigmas(engine, "AlignYourStepsScheduler", {"model_type": "SD1", "steps": 10, "denoise": 1.0}, False)
    assert np.allclose(sd1.numpy(), PUBLISHED_SD1, rtol=1e-6)
    sdxl = _sigmas(engine, "AlignYourStepsScheduler", {"model_type": "SDXL", "steps": 10, "denoise": 1.0}, False)
    assert math.isclose(float(sdxl[1]), 6.3184485287, rel_tol=1e-6) and float(sdxl[-1]) == 0.0


def test_align_your_steps_interpolates_log_linearly_and_denoise_keeps_the_last_steps(engine):
    twenty = _sigmas(engine, "AlignYourStepsScheduler", {"model_type": "SD1", "steps": 20, "denoise": 1.0}, False)
    assert len(twenty) == 21 and twenty[-1] == 0
    # every other point of 20 steps is a published level; between them, the geometric mean
    assert np.allclose(twenty[:-1:2].numpy(), PUBLISHED_SD1[:-1], rtol=1e-5)
    assert math.isclose(float(twenty[1]), math.sqrt(14.6146412293 * 6.4745760956), rel_tol=1e-5)
    assert math.isclose(float(twenty[-2]), math.sqrt(0.1515232662 * 0.0291671582), rel_tol=1e-5)
    half = _sigmas(engine, "AlignYourStepsScheduler", {"model_type": "SD1", "steps": 10, "denoise": 0.5}, False)
    assert np.allclose(half.numpy(), PUBLISHED_SD1[5:], rtol=1e-6)


def test_sd_turbo_sigmas_are_the_models_at_999_899_and_so_on(engine):
    one = _sigmas(engine, "SDTurboScheduler", {"steps": 1, "denoise": 1.0})
    four = _sigmas(engine, "SDTurboScheduler", {"steps": 4, "denoise": 1.0})
    later = _sigmas(engine, "SDTurboScheduler", {"steps": 2, "denoise": 0.5})
    betas = torch.linspace(0.00085 ** 0.5, 0.012 ** 0.5, 1000, dtype=torch.float64) ** 2   # SD's scaled_linear
    cumprod = torch.cumprod(1 - betas, 0)
    sigma = ((1 - cumprod) / cumprod) ** 0.5
    assert torch.allclose(one, torch.tensor([sigma[999], 0.0]).float())
    assert math.isclose(float(one[0]), 14.6146, rel_tol=1e-4)
    assert torch.allclose(four, torch.tensor([sigma[999], sigma[899], sigma[799], sigma[699], 0.0]).float())
    assert torch.allclose(later, torch.tensor([sigma[499], sigma[399], 0.0]).float())


def test_karras_scheduler_gives_karras_et_al_sigmas_and_the_models_own_karras_schedule(engine):
    sigmas = _sigmas(engine, "KarrasScheduler", {"steps": 10, "sigma_max": 14.614642, "sigma_min": 0.0291675,
                                                 "rho": 7.0}, False)
    assert len(sigmas) == 11 and float(sigmas[-1]) == 0.0
    assert math.isclose(float(sigmas[0]), 14.614642, rel_tol=1e-6)
    assert math.isclose(float(sigmas[-2]), 0.0291675, rel_tol=1e-5)
    i = 4    # (max^(1/7) + 4/9 (min^(1/7) - max^(1/7)))^7, written out
    want = (14.614642 ** (1 / 7) + i / 9 * (0.0291675 ** (1 / 7) - 14.614642 ** (1 / 7))) ** 7
    assert math.isclose(float(sigmas[i]), want, rel_tol=1e-5)
    # the model's own karras schedule over its whole range (dpmpp_2m's) is the same curve
    from nodes.sampling import DenoiseRequest, sampling_behaviour

    model = engine.run(_base(), outputs=["ckpt"]).outputs["ckpt"]["unet"]
    plan = sampling_behaviour(model).plan_steps(model, DenoiseRequest(0, 10, 1.0, "dpmpp_2m", "karras"))
    assert torch.allclose(plan.scheduler.sigmas.float(), sigmas, rtol=1e-4)


# Given sigmas find their timestep by log-sigma interpolation (as ComfyUI), which is how diffusers maps
# karras sigmas too; its "normal" interpolates sigma linearly and DPM-Solver rounds the timesteps to whole
# numbers, so there the model sees a timestep a little off.
@pytest.mark.parametrize("sampler,schedule,atol", [("euler", "karras", 2e-4), ("dpmpp_2m", "karras", 0.05),
                                                   ("lms", "karras", 2e-4), ("euler_ancestral", "normal", 0.2)])
def test_given_sigmas_run_as_the_schedule_they_are(engine, sampler, schedule, atol):
    """A sampler stepping through explicit sigmas (the path AYS and SDTurbo take) gives UNetDenoise's
    latents on the schedule whose sigmas they are (the sampler's own: diffusers' euler spreads karras
    sigmas over the model's spaced timesteps, dpmpp_2m over the whole range)."""
    from nodes.custom_sampling import Guider, Noise, SamplerChoice, Sigmas, sample
    from nodes.sampling import DenoiseRequest, sampling_behaviour

    wf = _base()
    _ksampler(wf, sampler, schedule, steps=6)
    out = engine.run(wf, outputs=["ks", "ckpt", "pos", "neg", "empty"]).outputs
    model = out["ckpt"]["unet"]
    plan = sampling_behaviour(model).plan_steps(model, DenoiseRequest(11, 6, 4.0, sampler, schedule))
    plain = Sigmas(plan.scheduler.sigmas.float())        # the values alone, no schedule remembered
    guider = Guider(model, out["pos"]["conditioning"], out["neg"]["conditioning"], 4.0)
    got = sample(_Ctx(), Noise(11), guider, SamplerChoice(sampler), plain, out["empty"]["latent"])
    assert torch.allclose(got["output"]["samples"], out["ks"]["latent"]["samples"], atol=atol)


class _Ctx:
    def progress(self, *args, **kwargs):
        pass


def test_align_your_steps_runs_a_tiny_sd_graph_and_differs_from_normal(engine):
    wf = _base()
    _ksampler(wf, "euler", "normal", steps=10)
    wf.add("RandomNoise", {"seed": 11}, node_id="noise")
    wf.add("AlignYourStepsScheduler", {"model_type": "SD1", "steps": 10, "denoise": 1.0}, node_id="ays")
    _custom_advanced(wf, "dpmpp_2m", "ays")
    wf.add("VAEDecode", {}, {"vae": ("ckpt", "vae"), "latent": ("sca", "output")}, node_id="dec")
    out = engine.run(wf, outputs=["ks", "sca", "dec"]).outputs
    got = _samples(out, "sca")
    assert torch.isfinite(got).all() and got.shape == out["ks"]["latent"]["samples"].shape
    assert not torch.allclose(got, out["ks"]["latent"]["samples"], atol=1e-3)
    # denoised_output at a last sigma of 0 is the clean result itself
    assert torch.allclose(_samples(out, "sca", "denoised_output"), got, atol=1e-4)


def test_manual_sigmas_are_the_numbers_written_and_sample_as_the_same_sigmas_from_a_scheduler(engine):
    from nodeforge.core.errors import NodeExecutionError

    got = _sigmas(engine, "ManualSigmas", {"sigmas": "1., 0.99375, 0.725,0.421875 0.0"}, False)
    assert torch.equal(got, torch.tensor([1.0, 0.99375, 0.725, 0.421875, 0.0], dtype=torch.float32))
    assert _sigmas(engine, "ManualSigmas", {"sigmas": "14.6, 1.5e-1, 0"}, False).tolist() == pytest.approx(
        [14.6, 0.15, 0.0])
    karras = _sigmas(engine, "KarrasScheduler", {"steps": 5, "sigma_max": 14.614642, "sigma_min": 0.0291675,
                                                 "rho": 7.0}, False)
    wf = _base()
    wf.add("RandomNoise", {"seed": 11}, node_id="noise")
    wf.add("KarrasScheduler", {"steps": 5, "sigma_max": 14.614642, "sigma_min": 0.0291675, "rho": 7.0}, node_id="k")
    wf.add("ManualSigmas", {"sigmas": ", ".join(repr(float(v)) for v in karras)}, node_id="m")
    _custom_advanced(wf, "euler", "k", node_id="a")
    _custom_advanced(wf, "euler", "m", node_id="b")
    out = engine.run(wf, outputs=["a", "b"]).outputs
    assert torch.equal(_samples(out, "a"), _samples(out, "b"))
    for text, message in (("none", "no numbers in 'none'"), ("0.5, 1.0, 0", "sigmas must fall (highest first)")):
        wf.nodes["m"].params["sigmas"] = text
        with pytest.raises(NodeExecutionError, match=re.escape(message)):
            engine.run(wf, outputs=["b"])


def test_a_sampler_that_cannot_follow_given_sigmas_is_named(engine):
    from nodeforge.core.errors import NodeExecutionError

    wf = _base()
    wf.add("RandomNoise", {"seed": 1}, node_id="noise")
    wf.add("AlignYourStepsScheduler", {"model_type": "SD1", "steps": 4, "denoise": 1.0}, node_id="ays")
    _custom_advanced(wf, "ddim", "ays")
    with pytest.raises(NodeExecutionError, match=r"ddim cannot step through given sigmas.*euler"):
        engine.run(wf, outputs=["sca"])


# -- SDXL: the same nodes on an SDXL UNet (two text encoders, micro-conditioning) ------------------------
@pytest.fixture(scope="module")
def xl_engine(make_engine, tmp_path_factory):
    import tiny_models as tm

    root = tmp_path_factory.mktemp("xlcustom")
    tm.save_diffusers(tm.make_components(4, sdxl=True), root / "checkpoints" / "tiny-xl")
    return make_engine(tmp_path_factory.mktemp("xlcustomout"), root)


def test_sdxl_custom_sampler_with_split_sigmas_gives_the_ksampler_advanced_stages(xl_engine):
    wf = _base()
    wf.nodes["ckpt"].params["checkpoint"] = "tiny-xl"
    _ksampler(wf, "euler", "karras", steps=6, end_at_step=4, return_with_leftover_noise=True)
    wf.add("UNetDenoise", {"seed": 11, "steps": 6, "cfg": 4.0, "sampler": "euler", "schedule": "karras",
                           "denoise": 1.0, "start_at_step": 4, "add_noise": False},
           dict(CONDS, unet=("ckpt", "unet"), latent=("ks", "latent")), node_id="ks2")
    wf.add("SamplerSelect", {"sampler": "euler"}, node_id="sel")
    wf.add("BasicScheduler", {"schedule": "karras", "steps": 6, "denoise": 1.0}, {"unet": ("ckpt", "unet")},
           node_id="sched")
    wf.add("SplitSigmas", {"step": 4}, {"sigmas": ("sched", "sigmas")}, node_id="split")
    for node, sigmas, latent, add in (("sc1", "high_sigmas", ("empty", "latent"), True),
                                      ("sc2", "low_sigmas", ("sc1", "output"), False)):
        wf.add("SamplerCustom", {"add_noise": add, "seed": 11, "cfg": 4.0},
               dict(CONDS, unet=("ckpt", "unet"), sampler=("sel", "sampler"), sigmas=("split", sigmas),
                    latent=latent), node_id=node)
    out = xl_engine.run(wf, outputs=["ks", "ks2", "sc1", "sc2"]).outputs
    assert torch.equal(_samples(out, "sc1"), out["ks"]["latent"]["samples"])
    assert torch.equal(_samples(out, "sc2"), out["ks2"]["latent"]["samples"])
    assert (_samples(out, "sc1") - _samples(out, "sc2")).abs().max() > 0.05


# -- SD3 (flow): the same nodes on the transformer family ---------------------------------------------
@pytest.fixture(scope="module")
def sd3_engine(make_engine, tmp_path_factory):
    import tiny_sd3 as ts

    root = tmp_path_factory.mktemp("sd3custom")
    (root / "checkpoints").mkdir()
    ts.save_sd3_folder(ts.make_sd3_components(0, t5=False), root / "checkpoints" / "tiny-sd3")
    return make_engine(tmp_path_factory.mktemp("sd3customout"), root)


def _sd3_base(shift: float = 2.0) -> Workflow:
    wf = Workflow()
    wf.add("CheckpointLoader", {"checkpoint": "tiny-sd3"}, node_id="load")
    wf.add("ModelSamplingSD3", {"shift": shift}, {"unet": ("load", "unet")}, node_id="ckpt")
    wf.add("TextEncoder", {"text": "a red circle"}, {"clip": ("load", "clip")}, node_id="pos")
    wf.add("TextEncoder", {"text": "blue"}, {"clip": ("load", "clip")}, node_id="neg")
    wf.add("EmptyLatent", {"width": 32, "height": 32, "batch_size": 1}, node_id="empty")
    return wf


@pytest.mark.parametrize("sampler,schedule", [("euler", "simple"), ("dpmpp_2m", "sgm_uniform")])
def test_sd3_custom_sampling_with_basic_scheduler_gives_the_ksampler_latents(sd3_engine, sampler, schedule):
    wf = _sd3_base()
    _ksampler(wf, sampler, schedule, steps=5)
    wf.add("RandomNoise", {"seed": 11}, node_id="noise")
    wf.add("BasicScheduler", {"schedule": schedule, "steps": 5, "denoise": 1.0}, {"unet": ("ckpt", "unet")},
           node_id="sched")
    _custom_advanced(wf, sampler, "sched")
    out = sd3_engine.run(wf, outputs=["ks", "sca", "sched"]).outputs
    assert torch.equal(_samples(out, "sca"), out["ks"]["latent"]["samples"])
    sigmas = out["sched"]["sigmas"].values
    # StableDiffusion3Pipeline's sigmas: s evenly spaced from 1 to the lowest shifted training sigma
    # (1/1000 shifted), then shifted to shift x s / (1 + (shift - 1) s) by ModelSamplingSD3's shift 2
    s = torch.linspace(1.0, 2.0 * 0.001 / 1.001, 5, dtype=torch.float64)
    assert torch.allclose(sigmas[:-1].double(), 2.0 * s / (1 + s), atol=1e-5) and sigmas[-1] == 0


def test_sd3_turbo_sigmas_are_the_shifted_flow_sigmas_and_run(sd3_engine):
    wf = _sd3_base(shift=3.0)
    wf.add("SDTurboScheduler", {"steps": 2, "denoise": 1.0}, {"unet": ("ckpt", "unet")}, node_id="sched")
    wf.add("RandomNoise", {"seed": 2}, node_id="noise")
    _custom_advanced(wf, "euler", "sched")
    out = sd3_engine.run(wf, outputs=["sca", "sched"]).outputs
    s = torch.tensor([0.999, 0.899], dtype=torch.float64)
    assert torch.allclose(out["sched"]["sigmas"].values.double(), torch.cat([3 * s / (1 + 2 * s), torch.zeros(1)]),
                          atol=1e-6)
    assert torch.isfinite(_samples(out, "sca")).all()


def test_align_your_steps_on_a_flow_model_is_refused_naming_the_sigmas(sd3_engine):
    from nodeforge.core.errors import NodeExecutionError

    wf = _sd3_base()
    wf.add("RandomNoise", {"seed": 2}, node_id="noise")
    wf.add("AlignYourStepsScheduler", {"model_type": "SDXL", "steps": 4, "denoise": 1.0}, node_id="ays")
    _custom_advanced(wf, "euler", "ays")
    with pytest.raises(NodeExecutionError, match="flow model's lie in 0..1"):
        sd3_engine.run(wf, outputs=["sca"])
