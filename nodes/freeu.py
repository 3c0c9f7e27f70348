"""FreeU and FreeU_V2 (Si et al. 2023) on the UNet families, as ComfyUI applies them.

In each decoder layer the UNet joins its hidden features h with the skip features hsp. FreeU
scales the first half of h's channels by b (V2: by 1 + (b - 1) x h's channel mean, normalised to
0..1 per image) and damps the lowest frequencies of hsp by s (diffusers' Fourier filter). Which
layers is ComfyUI's rule: by h's channel count, b1/s1 where it is 4x the UNet's first block width
and b2/s2 where it is 2x (diffusers' enable_freeu picks the first two decoder blocks instead, which
is not the same layers). The wrapper records the settings; `freeu_applied` hooks them onto the
shared UNet only while sampling, so the input model never changes.
"""
from __future__ import annotations

import contextlib
import dataclasses
from dataclasses import dataclass
from typing import Any, Iterator

import torch

from nodeforge.core.errors import NodeError


@dataclass(frozen=True)
class FreeU:
    b1: float
    b2: float
    s1: float
    s2: float
    version: int = 1


def scale_features(h: torch.Tensor, hsp: torch.Tensor, b: float, s: float, version: int
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """One layer's FreeU: the backbone half of h scaled, the skip features filtered."""
    from diffusers.utils.torch_utils import fourier_filter

    half = h.shape[1] // 2
    h = h.clone()
    if version == 2:
        mean = h.mean(1, keepdim=True)
        flat = mean.reshape(mean.shape[0], -1)
        low, high = flat.min(-1).values.reshape(-1, 1, 1, 1), flat.max(-1).values.reshape(-1, 1, 1, 1)
        h[:, :half] = h[:, :half] * ((b - 1) * ((mean - low) / (high - low)) + 1)
    else:
        h[:, :half] = h[:, :half] * b
    return h, fourier_filter(hsp, threshold=1, scale=s)


def decoder_splits(unet: Any) -> list[tuple[Any, int]]:
    """(resnet, channels of h in its input) for every decoder resnet: its input is h then hsp, joined."""
    widths = list(reversed(unet.config.block_out_channels))
    out: list[tuple[Any, int]] = []
    for k, block in enumerate(unet.up_blocks):
        previous = widths[k - 1] if k > 0 else widths[0]
        for i, resnet in enumerate(block.resnets):
            out.append((resnet, previous if i == 0 else widths[k]))
    return out


@contextlib.contextmanager
def freeu_applied(unet: Any, settings: FreeU | None) -> Iterator[None]:
    """The UNet with FreeU on its decoder resnets (forward pre-hooks), removed on exit."""
    if settings is None:
        yield
        return
    base = unet.config.block_out_channels[0]
    scales = {4 * base: (settings.b1, settings.s1), 2 * base: (settings.b2, settings.s2)}
    handles = []

    def hook_for(channels: int, b: float, s: float) -> Any:
        def hook(module: Any, args: tuple) -> tuple:
            x = args[0]
            h, hsp = scale_features(x[:, :channels], x[:, channels:], b, s, settings.version)
            return (torch.cat([h, hsp], 1), *args[1:])
        return hook

    try:
        for resnet, channels in decoder_splits(unet):
            if channels in scales:
                handles.append(resnet.register_forward_pre_hook(hook_for(channels, *scales[channels])))
        yield
    finally:
        for handle in handles:
            handle.remove()


def _with_freeu(unet: Any, settings: FreeU) -> dict[str, Any]:
    if not hasattr(unet.unet, "up_blocks") or not hasattr(unet, "freeu"):
        raise NodeError(f"FreeU works on UNet models (SD 1.x, 2.x, XL); this {unet.family} model has no UNet "
                        "decoder to apply it to: remove the node", field="unet")
    return {"unet": dataclasses.replace(unet, freeu=settings)}


def run_freeu(ctx: Any, unet: Any, b1: float, b2: float, s1: float, s2: float) -> dict[str, Any]:
    return _with_freeu(unet, FreeU(float(b1), float(b2), float(s1), float(s2), 1))


def run_freeu_v2(ctx: Any, unet: Any, b1: float, b2: float, s1: float, s2: float) -> dict[str, Any]:
    return _with_freeu(unet, FreeU(float(b1), float(b2), float(s1), float(s2), 2))
