"""A latent upscaled by a small neural network (Ttl's ComfyUi_NNLatentUpscale): an SD 1.x or SDXL latent made
1 to 2 times larger without decoding it, sharper than a bilinear latent upscale.

The network is the pack's latent resizer, read from its weight file (sd15_resizer.pt for SD 1.x latents,
sdxl_resizer.pt for SDXL's; .safetensors too) in models/latent_upscale_models/: a 3x3 convolution from the 4
latent channels to C, a stack of residual blocks (GroupNorm 32, SiLU, 3x3 convolution, plus a 32-wide
embedding of (scale - 1), then GroupNorm, SiLU, 3x3 convolution, added to the input) with single-head
self-attention blocks (GroupNorm, 1x1 q/k/v, softmax(q k / sqrt(C)) v, 1x1 projection, added) before the
second and the last residual block, a bilinear resize to round(side x scale), the same stack again, then
GroupNorm, SiLU and a 3x3 convolution back to 4 channels. The block counts and C come from the file.

The pack's networks take the VAE's own values (ComfyUI's latents) times 0.13025, for both versions.
NodeForge's latents are already multiplied by their VAE's scaling factor, so they are divided by the
factor of the VAE the file was made for and multiplied by 0.13025 on the way in, and the other way on
the way out: SDXL's 0.13025 (sdxl_resizer.pt: the latent goes in as it is), SD 1.x's 0.18215 for a file
named sd15_*, or the factor a .safetensors file names in its metadata (`nodeforge_vae_scaling_factor`,
as the demo resizer shapes-resizer made by `nodeforge train-latent-upscaler` does). A scale that
leaves the size as it is gives the latent back unchanged.
"""
from __future__ import annotations

import math
import threading
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from nodeforge.core.errors import NodeError, first_line
from nodeforge.core.types import FileKind

from .loading import load_shared

LATENT_SCALE = 0.13025
SD15_SCALE = 0.18215
SCALE_KEY = "nodeforge_vae_scaling_factor"
EMBED = 32
_KEY = "nodes.latent_resizers"
_lock = threading.Lock()


class _Attention(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.norm = nn.GroupNorm(32, channels)
        self.q, self.k, self.v, self.proj_out = (nn.Conv2d(channels, channels, 1) for _ in range(4))

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        normed = self.norm(x)
        q, k, v = (layer(normed).flatten(2).transpose(1, 2) for layer in (self.q, self.k, self.v))
        mixed = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, c, h, w)
        return x + self.proj_out(mixed)


class _Residual(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.in_layers = nn.Sequential(nn.GroupNorm(32, channels), nn.SiLU(), nn.Conv2d(channels, channels, 3, padding=1))
        self.emb_layers = nn.Sequential(nn.SiLU(), nn.Linear(EMBED, channels))
        self.out_layers = nn.Sequential(nn.GroupNorm(32, channels), nn.SiLU(), nn.Dropout(0.0),
                                        nn.Conv2d(channels, channels, 3, padding=1))

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.in_layers(x) + self.emb_layers(emb)[..., None, None]
        return x + self.out_layers(h)


def _stack(blocks: int, channels: int, attention: bool) -> nn.ModuleList:
    layers: list[nn.Module] = []
    for b in range(blocks):
        if attention and b in (1, blocks - 1):
            layers.append(_Attention(channels))
        layers.append(_Residual(channels))
    return nn.ModuleList(layers)


class LatentResizer(nn.Module):
    def __init__(self, in_blocks: int, out_blocks: int, channels: int, attention: bool) -> None:
        super().__init__()
        self.conv_in = nn.Conv2d(4, channels, 3, padding=1)
        self.embed = nn.Sequential(nn.Linear(1, EMBED), nn.SiLU(), nn.Linear(EMBED, EMBED))
        self.in_blocks = _stack(in_blocks, channels, attention)
        self.out_blocks = _stack(out_blocks, channels, attention)
        self.norm_out = nn.GroupNorm(32, channels)
        self.conv_out = nn.Conv2d(channels, 4, 3, padding=1)
        self.vae_scale = LATENT_SCALE     # the scaling factor of the VAE whose latents it takes (read_resizer)

    def forward(self, x: torch.Tensor, scale: float) -> torch.Tensor:
        size = (int(round(x.shape[-2] * scale)), int(round(x.shape[-1] * scale)))
        if size == tuple(x.shape[-2:]):
            return x
        emb = self.embed(torch.tensor([[scale - 1.0]], dtype=x.dtype, device=x.device))
        h = self.conv_in(x)
        for block in self.in_blocks:
            h = block(h, emb)
        h = F.interpolate(h, size=size, mode="bilinear")
        for block in self.out_blocks:
            h = block(h, emb)
        return self.conv_out(F.silu(self.norm_out(h)))


def layout(state: dict[str, torch.Tensor]) -> tuple[int, int, int, bool]:
    """(residual blocks in, out, channels, attention) of a resizer's state dict."""
    def count(prefix: str) -> tuple[int, int]:
        indices = {int(k.split(".")[1]) for k in state if k.startswith(prefix + ".")}
        attention = {int(k.split(".")[1]) for k in state if k.startswith(prefix + ".") and k.endswith(".q.weight")}
        return (max(indices) + 1 if indices else 0), len(attention)

    (ins, in_attn), (outs, out_attn) = count("in_blocks"), count("out_blocks")
    return ins - in_attn, outs - out_attn, state["conv_in.bias"].shape[0], out_attn > 0


def read_resizer(path: Path, device: str) -> LatentResizer:
    from .weight_files import load_pickle, read_safetensors

    what = "an NN latent upscaler"
    state, metadata = (read_safetensors(path, "model", what) if path.suffix == ".safetensors"
                       else (load_pickle(path, "model", what), {}))
    if not isinstance(state, dict) or "conv_in.bias" not in state or not any(k.startswith("in_blocks.") for k in state):
        raise NodeError(f"{path.name} is not an NN latent upscaler (ComfyUi_NNLatentUpscale's sd15_resizer.pt or "
                        "sdxl_resizer.pt); put one of those in models/latent_upscale_models", field="model")
    ins, outs, channels, attention = layout(state)
    model = LatentResizer(ins, outs, channels, attention)
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        first = first_line(exc)
        raise NodeError(f"{path.name} does not fit the NN latent upscaler's layout ({first[:120]})",
                        field="model") from None
    model.vae_scale = vae_scale_of(path, metadata)
    return model.to(device).eval()


def vae_scale_of(path: Path, metadata: dict[str, str]) -> float:
    """The scaling factor of the VAE whose latents the resizer at `path` takes (see the module's docstring)."""
    value = metadata.get(SCALE_KEY)
    if value is None:
        return SD15_SCALE if path.stem.lower().startswith(("sd15", "sd1.5", "sd_15")) else LATENT_SCALE
    try:
        scale = float(value)
    except ValueError:
        scale = 0.0
    if not math.isfinite(scale) or scale <= 0:
        raise NodeError(f"{path.name} names a VAE scaling factor of {value[:40]!r} in its metadata; "
                        "train it again with nodeforge train-latent-upscaler", field="model")
    return scale


def load_resizer(path: Path, device: str, shared: dict[str, Any] | None = None) -> LatentResizer:
    return load_shared(shared, _KEY, path, device, _lock, lambda: read_resizer(path, device))


def run_latent_upscale_nn(ctx: Any, latent: dict, model: str, scale_by: float) -> dict[str, Any]:
    samples = latent["samples"]
    if samples.ndim != 4 or samples.shape[1] != 4:
        raise NodeError(f"the NN latent upscaler takes SD 1.x and SDXL latents (4 channels); this one has "
                        f"{samples.shape[1] if samples.ndim == 4 else samples.ndim} channels: use Upscale Latent",
                        field="latent")
    resizer = load_resizer(Path(ctx.resolve_file(FileKind.LATENT_UPSCALE_MODEL, model)), ctx.device, ctx.shared)
    k = LATENT_SCALE / resizer.vae_scale     # NodeForge's scaled latent -> the pack's units (1 for SDXL)
    size = (int(round(samples.shape[-2] * scale_by)), int(round(samples.shape[-1] * scale_by)))
    if size == tuple(samples.shape[-2:]):
        return {"latent": latent}
    weights = next(resizer.parameters())
    with torch.inference_mode():
        out = resizer(samples.to(weights.device, weights.dtype) * k, float(scale_by)) / k
    kept = {k: v for k, v in latent.items() if k not in ("samples", "noise_mask", "width", "height", "batch_size")}
    return {"latent": {**kept, "samples": out.float().cpu()}}
