"""UNetDenoise: the denoising loop (txt2img, img2img with denoise < 1, inpainting with a mask).

Stages (ComfyUI's KSamplerAdvanced): `start_at_step`/`end_at_step` run a slice of a `steps`-step
schedule, `add_noise` off takes the latent as it is (the leftover noise of an earlier stage) and
`return_with_leftover_noise` off denoises fully at the slice's last step. Two stages of one model
(0..20 of 25 with leftover noise, then 20..25 without adding noise) give the single 25-step run:
the second stage starts the scheduler at step 20 and, for schedulers that draw step noise, moves
each item's generator past the draws of the skipped steps.

Noise comes from CPU generators seeded per batch item (seed + i), so a seed gives the same image
on any device and item i of a batch equals a batch of one with seed + i (ancestral schedulers
included: their step noise continues each item's generator).
"""
from __future__ import annotations

import inspect
from typing import Any

import torch

from nodeforge.core.errors import NodeError

from .conditioning import Guidance, inpainting_inputs
from .latents import latent_shape, preview_image, resize_mask
from .memory import memory_advice
from .schedulers import SAMPLERS, make_scheduler
from .wrappers import UNetModel

SEED_SPACE = 2 ** 64


def seeded_generators(seed: int, batch: int, indices: Any = None) -> list[torch.Generator]:
    """One CPU generator per batch item (seed + i): the initial noise, then the ancestral noise. A
    latent cut from a batch (LatentFromBatch, RepeatLatentBatch) carries its items' `batch_index`,
    so item i gets seed + its index in the batch it came from, as ComfyUI keeps their noise."""
    if indices is None or len(indices) != batch:
        indices = range(batch)
    return [torch.Generator().manual_seed((seed + int(i)) % SEED_SPACE) for i in indices]


def initial_noise(shape: tuple[int, ...], generators: list[torch.Generator]) -> torch.Tensor:
    return torch.stack([torch.randn(shape[1:], generator=g) for g in generators])



def denoise_latent(ctx: Any, model: UNetModel, positive: dict, negative: dict, latent: dict, seed: int,
                   steps: int, cfg: float, sampler: str, schedule: str, denoise: float, start_at_step: int = 0,
                   end_at_step: int = 10000, add_noise: bool = True,
                   return_with_leftover_noise: bool = False) -> dict[str, Any]:
    if denoise <= 0 or start_at_step >= min(end_at_step, steps):
        return latent
    shape = latent_shape(latent, model.latent_channels, model.vae_factor)
    if shape[1] != model.latent_channels:
        raise NodeError(f"the latent has {shape[1]} channels but this model expects {model.latent_channels}; "
                        "encode it with this model's VAE", field="latent")
    batch, device = shape[0], model.device
    sched = make_scheduler(sampler, schedule, model.scheduler_config, seed)
    try:
        sched.set_timesteps(steps, device=device)
    except ValueError as exc:   # e.g. LCM refuses more steps than it was distilled for
        raise NodeError(f"{sampler} cannot run {steps} steps: {exc}", field="steps") from None
    start = steps - min(max(int(steps * denoise), 1), steps)       # skip the first (1 - denoise)
    start = max(start, start_at_step)
    end = min(end_at_step, steps)
    leftover = end < steps and return_with_leftover_noise
    # PNDM's schedule has one timestep more than steps x order (it repeats an early one): a run to
    # the end takes it too, as diffusers' pipelines do (without it PLMS stops one step short).
    stop = len(sched.timesteps) if end == steps else end * sched.order
    timesteps = sched.timesteps[start * sched.order:stop]
    next_timestep = sched.timesteps[stop:stop + 1] if leftover else None
    if hasattr(sched, "set_begin_index"):
        sched.set_begin_index(start * sched.order)

    generators = seeded_generators(seed, batch, latent.get("batch_index"))
    noise = initial_noise(shape, generators).to(device)
    for _ in range(start_at_step * SAMPLERS[sampler].step_noise_draws):   # the skipped steps' draws
        initial_noise(shape, generators)
    original = latent["samples"].to(device, torch.float32) if latent.get("samples") is not None else None
    mask = latent.get("noise_mask")
    if original is None and (denoise < 1 or start > 0 or mask is not None or not add_noise):
        original = torch.zeros(shape, device=device)   # what an empty latent stands for
    if not add_noise:
        latents = original.clone()
    elif original is None:
        latents = noise * sched.init_noise_sigma
    else:
        latents = sched.add_noise(original, noise, timesteps[:1])
    if mask is not None:
        mask = resize_mask(mask, batch, shape[2], shape[3]).to(device)

    concat = inpainting_inputs(original, mask, shape) if model.is_inpainting else None
    guidance = Guidance(model, positive, negative, batch, (shape[2], shape[3]), cfg, concat)
    takes_generator = "generator" in inspect.signature(sched.step).parameters
    # The same generators continue into the steps (as diffusers' pipelines do), item by item.
    step_kwargs = {"generator": generators} if takes_generator else {}
    step_kwargs.update(SAMPLERS[sampler].step_kwargs)
    total = len(timesteps)
    ctx.progress(0, total)
    with torch.inference_mode(), model.patched(), memory_advice():
        for i, t in enumerate(timesteps):
            pred = guidance.predict(sched.scale_model_input(latents, t), t)
            result = sched.step(pred, t, latents, **step_kwargs)
            latents = result.prev_sample
            if i + 1 == total and end < steps and not leftover:   # a cut schedule still ends clean
                latents = _denoised(result, latents)
            if mask is not None:   # keep the unmasked area on the original's noise trajectory
                if i + 1 < total:
                    known = sched.add_noise(original, noise, timesteps[i + 1:i + 2])
                elif leftover:
                    known = sched.add_noise(original, noise, next_timestep)
                else:
                    known = original
                latents = (1 - mask) * known + mask * latents
            ctx.progress(i + 1, total, preview_image(latents, model.family, model.preview_rgb))
    out = {k: v for k, v in latent.items() if k not in ("width", "height", "batch_size")}
    out["samples"] = latents.float().cpu()
    out["factor"] = model.vae_factor   # pixels per latent pixel, for LatentUpscale
    if mask is not None:
        out["noise_mask"] = mask.cpu()
    return out


def _denoised(result: Any, latents: torch.Tensor) -> torch.Tensor:
    """The step's prediction of the clean latent (ComfyUI sets the cut schedule's last sigma to 0)."""
    x0 = getattr(result, "pred_original_sample", None)
    if x0 is None:
        x0 = getattr(result, "denoised", None)
    return latents if x0 is None else x0.to(latents.dtype)


def run_unet_denoise(ctx: Any, unet: UNetModel, positive: dict, negative: dict, latent: dict, seed: int,
                     steps: int, cfg: float, sampler: str, schedule: str, denoise: float, start_at_step: int = 0,
                     end_at_step: int = 10000, add_noise: bool = True,
                     return_with_leftover_noise: bool = False) -> dict[str, Any]:
    return {"latent": denoise_latent(ctx, unet, positive, negative, latent, seed, steps, cfg, sampler, schedule,
                                     denoise, start_at_step, end_at_step, add_noise, return_with_leftover_noise)}
