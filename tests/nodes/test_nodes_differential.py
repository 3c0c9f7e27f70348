"""DifferentialDiffusion (ComfyUI's core node) on the tiny SD model: the per-step mask thresholds, and a
whole masked run checked against ComfyUI's way of inpainting written out by hand (before each model call
the pixels off at that step's threshold are put back on the original's noise trajectory, and the model's
clean estimate is blended with the original through the same mask), with diffusers' Euler scheduler."""
from __future__ import annotations

import torch

from nodeforge.core.registry import builtin_module

sampling = builtin_module("sampling")


class _Ctx:
    def progress(self, *args, **kwargs):
        pass


def _plan(timesteps, leftover=False, next_timestep=None):
    return sampling.StepPlan(None, torch.tensor(timesteps), next_timestep, len(timesteps), 0, len(timesteps), leftover)


def test_each_step_repaints_the_pixels_whose_mask_reaches_its_place_in_the_run():
    mask = torch.tensor([0.0, 0.3, 0.6, 1.0])
    plan = _plan([999.0, 749.25, 499.5, 249.75])              # places 1, 0.75, 0.5, 0.25
    got = [sampling.differential_mask(mask, plan, i, 1.0).tolist() for i in range(4)]
    assert got == [[0, 0, 0, 1], [0, 0, 0, 1], [0, 0, 1, 1], [0, 1, 1, 1]]
    # a strength below 1 mixes the thresholded mask with the soft one; 0 acts as 1 (as ComfyUI's)
    torch.testing.assert_close(sampling.differential_mask(mask, plan, 2, 0.25),
                               0.25 * torch.tensor([0.0, 0.0, 1.0, 1.0]) + 0.75 * mask)
    assert sampling.differential_mask(mask, plan, 2, 0.0).tolist() == [0, 0, 1, 1]
    # a slice that keeps its leftover noise ends at the next timestep, not at 0
    cut = _plan([999.0, 749.25], leftover=True, next_timestep=torch.tensor([499.5]))
    assert sampling.differential_mask(mask, cut, 1, 1.0).tolist() == [0, 0, 1, 1]   # (749.25 - 499.5) / 499.5


def test_a_masked_run_is_comfyuis_differential_inpainting(engine, make_txt2img):
    out = engine.run(make_txt2img(), outputs=["ckpt", "pos"]).outputs
    unet, positive = out["ckpt"]["unet"], out["pos"]["conditioning"]
    gen = torch.Generator().manual_seed(3)
    original = torch.randn(1, 4, 8, 8, generator=gen)
    mask = torch.linspace(0, 1, 64).reshape(1, 8, 8)          # a soft ramp, 0 to 1
    request = sampling.DenoiseRequest(seed=5, steps=6, cfg=1.0, sampler="euler", schedule="normal", denoise=1.0)
    dd = builtin_module("differential").run_differential_diffusion(None, unet, 1.0)["unet"]
    ours = sampling.denoise_latent(_Ctx(), model=dd, positive=positive, negative=positive,
                                   latent={"samples": original, "noise_mask": mask}, request=request)["samples"]

    scheduler = sampling.make_scheduler("euler", "normal", unet.scheduler_config, 5)
    scheduler.set_timesteps(6)
    sigmas, timesteps = scheduler.sigmas.double(), scheduler.timesteps
    noise = sampling.initial_noise((1, 4, 8, 8), sampling.seeded_generators(5, 1))
    embeds = positive[0]["embeds"]
    m4 = mask[:, None]
    x = original + noise * sigmas[0]                             # NodeForge's start: the original noised
    with torch.no_grad():
        for i, t in enumerate(timesteps):
            s, s_next = float(sigmas[i]), float(sigmas[i + 1])
            m = (m4 >= float(t) / float(timesteps[0])).float()  # the threshold: the step's timestep / the first
            x_in = x * m + (original + noise * s) * (1 - m)
            eps = unet.unet(x_in / (s * s + 1) ** 0.5, t, encoder_hidden_states=embeds).sample
            denoised = (x_in - s * eps) * m + original * (1 - m)
            x = x_in + (x_in - denoised) / s * (s_next - s)
    assert (ours - x).abs().max() < 1e-4
    plain = sampling.denoise_latent(_Ctx(), model=unet, positive=positive, negative=positive,
                                    latent={"samples": original, "noise_mask": mask}, request=request)["samples"]
    assert (plain - x).abs().max() > 1e-2                       # the plain soft-mask run differs
