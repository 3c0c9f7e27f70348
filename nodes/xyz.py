"""The XYZ plot's run functions (declared in nodes/xyz_specs.py): Sampler Settings bundles a sampler's inputs,
Sampler XYZ draws every combination of its value lists with UNet Denoise's own code, VAE Decode (Batched)
decodes in chunks and Save Image Grid lays the batch out as one picture."""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

import torch

from nodeforge.core.errors import NodeError

from .latents import latent_shape
from .schedulers import check_pair
from .xyz_specs import LISTS, MAX_SAMPLINGS, ListError, combinations, read_list, too_many


@dataclass(frozen=True)
class SamplerSetting:
    """SAMPLER_SETTING: what UNet Denoise takes, on one wire (the models and tensors are shared, never changed)."""

    unet: Any
    positive: Any
    negative: Any
    latent: dict
    seed: int
    steps: int
    cfg: float
    sampler: str
    schedule: str
    denoise: float


def run_sampler_settings(ctx: Any, unet: Any, positive: Any, negative: Any, latent: dict, seed: int, steps: int,
                         cfg: float, sampler: str, schedule: str, denoise: float) -> dict[str, Any]:
    return {"setting": SamplerSetting(unet, positive, negative, latent, int(seed), int(steps), float(cfg), sampler,
                                      schedule, float(denoise))}


def _lists(setting: SamplerSetting, texts: dict[str, str]) -> dict[str, list[Any]]:
    """Each list's values (the setting's one value where the list is empty), or a NodeError naming the list."""
    own = {"seeds": setting.seed, "steps": setting.steps, "cfgs": setting.cfg, "samplers": setting.sampler,
           "schedules": setting.schedule}
    lists = {}
    for name in LISTS:
        try:
            lists[name] = read_list(name, texts[name]) or [own[name]]
        except ListError as exc:
            raise NodeError(str(exc), field=name) from None
    if combinations(lists) > MAX_SAMPLINGS:
        field, _, message = too_many(lists).partition(": ")
        raise NodeError(message, field=field)
    return lists


def plan(setting: SamplerSetting, seeds: str = "", steps: str = "", cfgs: str = "", samplers: str = "",
         schedules: str = "") -> list[SamplerSetting]:
    """The samplings in batch order: samplers outermost, then schedules, steps, cfgs, and seeds innermost (a seed's
    whole latent batch together), as hnmr's KSamplerXYZ orders them; each one the setting with those values."""
    lists = _lists(setting, {"seeds": seeds, "steps": steps, "cfgs": cfgs, "samplers": samplers,
                             "schedules": schedules})
    return [replace(setting, sampler=sampler, schedule=schedule, steps=int(step), cfg=float(cfg), seed=int(seed))
            for sampler in lists["samplers"] for schedule in lists["schedules"] for step in lists["steps"]
            for cfg in lists["cfgs"] for seed in lists["seeds"]]


def _joined(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """One LATENT of the samplings' latents, in order; per-item keys (noise mask, batch_index) follow their items."""
    out = dict(parts[0])
    out["samples"] = torch.cat([p["samples"] for p in parts])
    if all(isinstance(p.get("noise_mask"), torch.Tensor) and p["noise_mask"].shape[0] == p["samples"].shape[0]
           for p in parts):
        out["noise_mask"] = torch.cat([p["noise_mask"] for p in parts])
    if all(isinstance(p.get("batch_index"), list) for p in parts):
        out["batch_index"] = [i for p in parts for i in p["batch_index"]]
    else:
        out.pop("batch_index", None)
    return out


def run_sampler_xyz(ctx: Any, setting: SamplerSetting, seeds: str, steps: str, cfgs: str, samplers: str,
                    schedules: str, unet: Any = None) -> dict[str, Any]:
    from .sampling import run_unet_denoise

    if unet is not None:
        setting = replace(setting, unet=unet)
    runs = plan(setting, seeds, steps, cfgs, samplers, schedules)
    for run in runs:     # every pair checked before anything is drawn
        problems = check_pair(run.sampler, run.schedule)
        if problems:
            field, _, message = problems[0].partition(": ")
            raise NodeError(message, field="samplers" if field == "sampler" else "schedules")
    parts = []
    for run in runs:
        parts.append(run_unet_denoise(ctx, run.unet, run.positive, run.negative, run.latent, run.seed, run.steps,
                                      run.cfg, run.sampler, run.schedule, run.denoise)["latent"])
    return {"latent": _joined(parts)}


def run_vae_decode_batched(ctx: Any, vae: Any, latent: dict[str, Any], per_batch: int) -> dict[str, Any]:
    """VAE Decode on per_batch latents at a time, the images joined in order."""
    from .vae import run_vae_decode

    samples = latent.get("samples")
    if samples is None:   # an Empty Latent straight into the decoder: zeros, as VAE Decode
        samples = torch.zeros(latent_shape(latent, vae.latent_channels, vae.factor))
    size = max(1, int(per_batch))
    images = [run_vae_decode(ctx, vae, {"samples": samples[i:i + size]})["image"]
              for i in range(0, samples.shape[0], size)]
    return {"image": torch.cat(images)}


def image_grid(images: torch.Tensor, columns: int, gap: int) -> torch.Tensor:
    """One image [1, H', W', C] of the batch: `columns` images a row, left to right then top to bottom, `gap` black
    pixels between neighbours (none at the edges); a last row that is not full stays black at its end."""
    count, height, width, channels = images.shape
    columns = max(1, int(columns))
    rows = max(1, math.ceil(count / columns))
    canvas = torch.zeros(rows * (height + gap) - gap, columns * (width + gap) - gap, channels, dtype=images.dtype)
    for k in range(count):
        top, left = (k // columns) * (height + gap), (k % columns) * (width + gap)
        canvas[top:top + height, left:left + width] = images[k]
    return canvas[None]


def run_save_image_grid(ctx: Any, image: torch.Tensor, prefix: str, columns: int, gap: int) -> list[str]:
    from .images import save_pngs

    return save_pngs(ctx, image_grid(image, columns, int(gap)), prefix)
