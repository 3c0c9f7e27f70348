"""CADS (asagi4's ComfyUI-CADS, after Sadat et al. 2023's condition-annealed diffusion sampling): noise added to
the conditioning early in sampling for more varied images.

At each UNet call, with t = round(timestep / 999, 2) (1 at pure noise), gamma is 1 for t <= t1, 0 for t >= t2
and falls linearly between; each conditioning row the node applies to (the positive prompt's rows, the
negative's or both: `apply_to`) becomes sqrt(gamma) y + noise_scale sqrt(1 - gamma) n, n drawn fresh each
call (normal, uniform on [0, 1) or exponential(1): `noise_type`) from a generator seeded with `seed` at the
start of each sampling run. With `rescale` psi != 0 the noised row is also standardised back to the original
row's mean and std and mixed: psi standardised + (1 - psi) noised. `key` picks what is noised: y, the SDXL
UNet's added vector (the pooled prompt and its size embedding, the input of its add_embedding), which SD 1.x
and 2.x do not have (nothing happens there, as in the pack); c_crossattn, the prompt's token embeddings; or
both. The pack's step-count schedule (start_step < total_steps) is not made: the timestep's is.
"""
from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from typing import Any, Iterator

import torch

from nodeforge.core.errors import NodeError

APPLY_TO = ("both", "cond", "uncond")
KEYS = ("both", "y", "c_crossattn")
NOISE_TYPES = ("normal", "uniform", "exponential")


@dataclass(frozen=True)
class CADS:
    noise_scale: float
    t1: float
    t2: float
    rescale: float = 0.0
    apply_to: str = "both"
    key: str = "y"
    noise_type: str = "normal"
    seed: int = 0


def gamma(settings: CADS, timestep: float) -> float:
    t = round(timestep / 999.0, 2)
    if t <= settings.t1:
        return 1.0
    if t >= settings.t2:
        return 0.0
    return (settings.t2 - t) / (settings.t2 - settings.t1)


def _draw(shape: torch.Size, generator: torch.Generator, noise_type: str) -> torch.Tensor:
    out = torch.empty(shape)
    if noise_type == "uniform":
        return out.uniform_(generator=generator)
    if noise_type == "exponential":
        return out.exponential_(generator=generator)
    return out.normal_(generator=generator)


def noised(settings: CADS, rows: torch.Tensor, chosen: list[bool], g: float, generator: torch.Generator) -> torch.Tensor:
    """`rows` [N, ...] with each chosen row noised at gamma `g` (see the module note)."""
    out = rows.clone()
    for i, pick in enumerate(chosen):
        if not pick:
            continue
        y = rows[i].float()
        noise = _draw(y.shape, generator, settings.noise_type).to(y.device)
        mixed = math.sqrt(g) * y + settings.noise_scale * math.sqrt(1 - g) * noise
        if settings.rescale != 0:
            scaled = (mixed - mixed.mean()) / mixed.std() * y.std() + y.mean()
            if not scaled.isnan().any():
                mixed = settings.rescale * scaled + (1 - settings.rescale) * mixed
        out[i] = mixed.to(rows.dtype)
    return out


def chosen_rows(settings: CADS, sides: list[int], batch: int) -> list[bool]:
    """Which rows of a call (`batch` per unit, units of side 0 = negative, 1 = positive, 2 = DualCFGGuider's
    middle prompt, a positive one) get noise."""
    want = {"both": (0, 1, 2), "cond": (1, 2), "uncond": (0,)}[settings.apply_to]
    return [side in want for side in sides for _ in range(batch)]


@contextlib.contextmanager
def conditioning_noise(guidance: Any, sides: list[int], embeds: torch.Tensor, t: Any) -> Iterator[torch.Tensor]:
    """The call's prompt embeddings (noised for key c_crossattn), the SDXL added vector noised while inside
    (key y)."""
    settings = guidance.model.cads
    g = gamma(settings, float(torch.as_tensor(t).reshape(-1)[0]))
    if settings.noise_scale == 0 or g == 1.0:
        yield embeds
        return
    if guidance.cads_generator is None:
        guidance.cads_generator = torch.Generator().manual_seed(settings.seed)
    chosen = chosen_rows(settings, sides, guidance.batch)
    if settings.key in ("both", "c_crossattn"):
        embeds = noised(settings, embeds, chosen, g, guidance.cads_generator)
    target = getattr(guidance.model.unet, "add_embedding", None) if settings.key in ("both", "y") else None
    hook = None
    if target is not None:
        hook = target.register_forward_pre_hook(
            lambda module, args: (noised(settings, args[0], chosen, g, guidance.cads_generator), *args[1:]))
    try:
        yield embeds
    finally:
        if hook is not None:
            hook.remove()


def run_cads(ctx: Any, unet: Any, noise_scale: float, t1: float, t2: float, rescale: float = 0.0,
             apply_to: str = "both", key: str = "y", noise_type: str = "normal", seed: int = 0) -> dict[str, Any]:
    if not hasattr(unet, "cads") or getattr(unet.unet, "mid_block", None) is None:
        raise NodeError(f"CADS works on UNet models (SD 1.x, 2.x, XL); {unet.name} is a {unet.family} model: remove "
                        "the node", field="unet")
    for value, allowed, field in ((apply_to, APPLY_TO, "apply_to"), (key, KEYS, "key"),
                                  (noise_type, NOISE_TYPES, "noise_type")):
        if value not in allowed:
            raise NodeError(f"{field} {value!r} is not one of {', '.join(allowed)}", field=field)
    if noise_scale == 0:
        return {"unet": unet}
    import dataclasses

    settings = CADS(float(noise_scale), float(t1), float(t2), float(rescale), apply_to, key, noise_type, int(seed))
    return {"unet": dataclasses.replace(unet, cads=settings)}
