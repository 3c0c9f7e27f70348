"""Timestep noise for Z-Image (LG_SamplingUtils' ZImageTimestepNoise): in a window of the sampling, the
model is told a slightly wrong noise level, so that seeds that would draw near-duplicates differ more.

Per model call n (counted from 1 in each sampling run; a step with CFG is one call, as ComfyUI batches
both prompts) at flow sigma s: a number r in [0, 1) is drawn from a CPU generator seeded seed + n, and
the model is called at s' = s + r (up + down) - down, where down = min(strength, s) and up =
min(strength, 1 - s) (so s' stays in 0..1; no room both ways: s' = s). Its clean-latent estimate is
taken at s' as well, x0 = x - s' v(x, s'), and the sampler steps from s as usual, so the velocity it
sees is v(x, s') s' / s. With a mask (bilinear to the latent), the two estimates mix: the noisy one
where the mask is 1. The window: the call's progress is the index of the sigma nearest s in the
node's sigmas over their count - 1, and the noise applies while start_percent <= progress <=
end_percent. ComfyUI's pack draws r on the model's device (a GPU's numbers differ from the CPU's) and
keeps counting calls across runs until the node runs again; NodeForge starts each run at call 1.
Only the pack's flow mode is here (its sigma mode is for UNet models).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from nodeforge.core.errors import NodeError


@dataclass(frozen=True)
class TimestepNoise:
    strength: float
    seed: int
    start: float
    end: float
    sigmas: tuple[float, ...]
    mask: torch.Tensor | None = None

    def progress(self, sigma: float) -> float:
        nearest = min(range(len(self.sigmas)), key=lambda i: abs(self.sigmas[i] - sigma))  # the first of ties
        total = len(self.sigmas) - 1
        return max(0.0, min(1.0, nearest / total)) if total > 0 else 0.0

    def noisy_sigma(self, sigma: float, call: int) -> float:
        """The sigma the model is told at call `call` (counted from 1)."""
        draw = torch.rand(1, generator=torch.Generator().manual_seed((self.seed + call) % 2 ** 64)).item()
        down, up = min(self.strength, sigma), min(self.strength, 1.0 - sigma)
        moved = sigma + (draw * (up + down) - down if up + down > 1e-6 else 0.0)
        return min(1.0, max(0.0, moved))

    def latent_mask(self, latents: torch.Tensor) -> torch.Tensor:
        mask = self.mask[None] if self.mask.ndim == 2 else self.mask
        mask = F.interpolate(mask[:, None].float(), size=tuple(latents.shape[-2:]), mode="bilinear",
                             align_corners=False)
        if mask.shape[0] == 1 and latents.shape[0] > 1:
            mask = mask.expand(latents.shape[0], -1, -1, -1)
        return mask.to(latents.device, latents.dtype)


def noisy_velocity(settings: TimestepNoise, velocity: Any, latents: torch.Tensor, sigma: float,
                   call: int) -> torch.Tensor | None:
    """The velocity the sampler steps on at call `call`, or None where the noise does not apply
    (`velocity(sigma)`: the model's velocity at that flow sigma)."""
    if sigma <= 0 or not settings.start <= settings.progress(sigma) <= settings.end:
        return None
    told = settings.noisy_sigma(sigma, call)
    noisy = velocity(told) * (told / sigma)
    if settings.mask is None:
        return noisy
    mask = settings.latent_mask(latents)
    return velocity(sigma) * (1 - mask) + noisy * mask


def run_timestep_noise(ctx: Any, unet: Any, sigmas: Any, mode: str = "flow", noise_strength: float = 0.05,
                       seed: int = 0, start_percent: float = 0.0, end_percent: float = 0.5,
                       mask: torch.Tensor | None = None) -> dict[str, Any]:
    from .specs import timestep_noise_refusals

    refusals = timestep_noise_refusals(mode, unet.family, unet.name)
    if refusals:
        field, message = refusals[0]
        raise NodeError(message, field=field)
    if noise_strength <= 0:               # as the pack: the same model
        return {"unet": unet}
    values = getattr(sigmas, "values", sigmas)
    settings = TimestepNoise(float(noise_strength), int(seed), float(start_percent), float(end_percent),
                             tuple(float(s) for s in torch.as_tensor(values).reshape(-1).tolist()),
                             None if mask is None else mask.detach().float().cpu())
    if not settings.sigmas:
        raise NodeError("the sigmas are empty; link the sigmas the sampler runs (BasicScheduler)", field="sigmas")
    return {"unet": dataclasses.replace(unet, timestep_noise=settings)}
