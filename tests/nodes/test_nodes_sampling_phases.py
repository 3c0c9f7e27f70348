"""The denoise loop's phases are the seam a model family plugs into (nodes/sampling.py): a family
that replaces the scheduler, the noising, the input scaling and the step keyword arguments runs
through the same loop, mask blend and progress as the UNet families."""
from __future__ import annotations

import dataclasses
import threading
from typing import ClassVar

import pytest
import torch

from nodeforge.core.registry import builtin_module

sampling, loading, prompt = (builtin_module(m) for m in ("sampling", "loading", "prompt"))

SHIFT = 3.0


class _FlowSampling(sampling.SamplingBehaviour):
    """Rectified flow as issue 28's families sample: shifted sigmas, the start and the mask's known
    area noised by interpolation, no input scaling, the model's output stepped on as a velocity."""

    def make_scheduler(self, model, request):
        from diffusers import FlowMatchEulerDiscreteScheduler

        scheduler = FlowMatchEulerDiscreteScheduler(shift=SHIFT)
        scheduler.set_timesteps(request.steps, device=model.device)
        return scheduler

    def pure_noise(self, scheduler, noise):
        return noise

    def noised(self, scheduler, original, noise, timestep):
        return scheduler.scale_noise(original, timestep, noise)

    def model_input(self, scheduler, latents, t):
        return latents

    def step_kwargs(self, scheduler, start, request):
        return {}

    def denoised(self, plan, result, prediction, latents):
        sigma = plan.scheduler.sigmas[plan.scheduler.step_index - 1]   # the step has moved the index on
        return latents - sigma * prediction


@pytest.fixture(scope="module")
def parts(models_dir):
    loaded = loading.load_checkpoint(models_dir / "checkpoints" / "tiny-sd", "cpu", {})
    unet, clip, _ = loaded.wrappers()

    @dataclasses.dataclass(frozen=True)
    class FlowModel(type(unet)):
        sampling_behaviour: ClassVar = _FlowSampling()

    flow = FlowModel(**loaded.unet_fields, owner=loaded)
    return loaded, unet, flow, prompt.encode(clip, "a red circle"), prompt.encode(clip, "")


def _ctx(steps_seen: list):
    from nodeforge.core.context import NodeContext

    return NodeContext("n", "UNetDenoise", None, None, None, {}, "cpu", lambda d: d, threading.Event(),
                       lambda step, total, preview: steps_seen.append((step, total, preview is not None)))


def _velocity(unet, x, t, cond, uncond, cfg):
    embeds = torch.cat([uncond["embeds"], cond["embeds"]])
    out = unet.unet(torch.cat([x, x]), t, encoder_hidden_states=embeds).sample
    v_uncond, v_cond = out.chunk(2)
    return v_uncond + cfg * (v_cond - v_uncond)


def _rectified_flow(unet, original, noise, mask, cond, uncond, steps, denoise, cfg, end=None):
    """Euler on the flow ODE written out: x_sigma = (1 - sigma) x0 + sigma noise, dx/dsigma = v;
    a run cut at `end` ends on the clean prediction x - sigma v of its last step."""
    from diffusers import FlowMatchEulerDiscreteScheduler

    scheduler = FlowMatchEulerDiscreteScheduler(shift=SHIFT)
    scheduler.set_timesteps(steps)
    sigmas, timesteps = scheduler.sigmas, scheduler.timesteps
    first, end = steps - int(steps * denoise), end or steps
    x = (1 - sigmas[first]) * original + sigmas[first] * noise
    for i in range(first, end):
        v = _velocity(unet, x, timesteps[i], cond, uncond, cfg)
        x = x - sigmas[i] * v if i + 1 == end < steps else x + (sigmas[i + 1] - sigmas[i]) * v
        known = original if i + 1 == end else (1 - sigmas[i + 1]) * original + sigmas[i + 1] * noise
        x = (1 - mask) * known + mask * x
    return x


def test_a_family_that_replaces_phases_runs_its_own_sampling_through_the_one_loop(parts):
    _, unet, flow, cond, uncond = parts
    original = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(3))
    mask = torch.zeros(1, 8, 8)
    mask[:, :, 4:] = 1.0   # repaint the right half
    latent = {"samples": original, "noise_mask": mask}
    request = sampling.DenoiseRequest(seed=5, steps=6, cfg=4.0, sampler="euler", schedule="default", denoise=0.5)
    events: list = []
    with torch.inference_mode():
        out = sampling.denoise_latent(_ctx(events), model=flow, positive=cond, negative=uncond, latent=latent,
                                      request=request)
        noise = sampling.initial_noise((1, 4, 8, 8), sampling.seeded_generators(5, 1))
        expected = _rectified_flow(unet, original, noise, mask[:, None], cond, uncond, 6, 0.5, 4.0)
    torch.testing.assert_close(out["samples"], expected, atol=1e-5, rtol=1e-4)
    assert torch.equal(out["samples"][:, :, :, :4], original[:, :, :, :4])   # the kept half is the input
    assert (out["samples"][:, :, :, 4:] - original[:, :, :, 4:]).abs().mean() > 0.05
    # The same request through the UNet family's phases (epsilon, add_noise) lands elsewhere.
    with torch.inference_mode():
        eps = sampling.denoise_latent(_ctx([]), model=unet, positive=cond, negative=uncond, latent=latent,
                                      request=request)
    assert (eps["samples"] - out["samples"]).abs().max() > 1e-2
    assert events == [(0, 3, False), (1, 3, True), (2, 3, True), (3, 3, True)]   # denoise 0.5: 3 of 6 steps


def test_a_model_without_its_own_behaviour_samples_as_a_unet(parts):
    _, unet, flow, _, _ = parts
    assert sampling.sampling_behaviour(unet) is sampling.UNET_SAMPLING
    assert isinstance(sampling.sampling_behaviour(flow), _FlowSampling)


@pytest.mark.parametrize("request_args", [dict(denoise=0.0), dict(start_at_step=4, end_at_step=4),
                                          dict(start_at_step=6)])
def test_a_request_with_no_step_to_run_passes_the_latent_through(parts, request_args):
    _, unet, _, cond, uncond = parts
    latent = {"samples": torch.zeros(1, 4, 8, 8)}
    request = sampling.DenoiseRequest(seed=0, steps=6, cfg=4.0, sampler="euler", schedule="default",
                                      **{"denoise": 1.0, **request_args})
    assert not request.has_work()
    out = sampling.denoise_latent(_ctx([]), model=unet, positive=cond, negative=uncond, latent=latent,
                                  request=request)
    assert out is latent


def test_a_family_gives_the_clean_latent_of_a_cut_schedule_from_its_own_prediction(parts):
    _, unet, flow, cond, uncond = parts
    latent = {"samples": None, "width": 32, "height": 32, "batch_size": 1}
    request = sampling.DenoiseRequest(seed=2, steps=6, cfg=4.0, sampler="euler", schedule="default", end_at_step=3)
    with torch.inference_mode():
        out = sampling.denoise_latent(_ctx([]), model=flow, positive=cond, negative=uncond, latent=latent,
                                      request=request)
        noise = sampling.initial_noise((1, 4, 8, 8), sampling.seeded_generators(2, 1))
        expected = _rectified_flow(unet, torch.zeros(1, 4, 8, 8), noise, torch.ones(1, 1, 8, 8), cond, uncond,
                                   6, 1.0, 4.0, end=3)
    torch.testing.assert_close(out["samples"], expected, atol=1e-5, rtol=1e-4)
