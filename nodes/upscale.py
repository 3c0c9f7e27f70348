"""UpscaleModelLoader and ImageUpscaleWithModel: ESRGAN-family image upscalers, tiled.

Models load through spandrel when it is installed (it knows dozens of architectures; it needs
torchvision). Without it the two ESRGAN-family architectures most upscalers are built on load
from the same files: Real-ESRGAN's Compact (SRVGGNetCompact, `body.N.*`) and RRDBNet (ESRGAN,
in Real-ESRGAN's `conv_first`/`body.N.rdbM` names or the original `model.N.sub` names). Files:
`.safetensors`, and `.pth`/`.pt` read with `torch.load(weights_only=True)` only; a `params_ema`,
`params` or `state_dict` wrapper is unwrapped, as Real-ESRGAN and basicsr save them.

Upscaling runs over overlapping tiles blended with linear ramps (the VAE's tiler), so memory is
that of one tile whatever the image size.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from nodeforge.core.errors import NodeError, first_line
from nodeforge.core.models import EXTENSIONS
from nodeforge.core.types import FileKind

from .loading import check_finite, pick_dtype, read_state_dict
from .memory import memory_advice
from .vae import tiled
from .wrappers import OnModule

WRAPPERS = ("params_ema", "params-ema", "params", "state_dict", "model_state_dict", "model", "net")


@dataclass(frozen=True, eq=False)
class UpscaleModel(OnModule):
    """UPSCALE_MODEL: a module mapping [B, 3, H, W] in 0..1 to [B, 3, H*scale, W*scale]."""

    module: Any
    scale: int
    architecture: str
    name: str
    owner: Any = field(default=None, repr=False)


# -- the built-in architectures ---------------------------------------------------------------------------
class Compact(nn.Module):
    """Real-ESRGAN's SRVGGNetCompact: convolutions at the input size, a pixel shuffle, plus the
    nearest-upscaled input (so the network learns the residual)."""

    def __init__(self, in_ch: int = 3, out_ch: int = 3, feat: int = 64, convs: int = 16, scale: int = 4) -> None:
        super().__init__()
        self.scale = scale
        layers: list[nn.Module] = [nn.Conv2d(in_ch, feat, 3, 1, 1), nn.PReLU(feat)]
        for _ in range(convs):
            layers += [nn.Conv2d(feat, feat, 3, 1, 1), nn.PReLU(feat)]
        layers.append(nn.Conv2d(feat, out_ch * scale * scale, 3, 1, 1))
        self.body = nn.ModuleList(layers)
        self.upsampler = nn.PixelShuffle(scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = x
        for layer in self.body:
            out = layer(out)
        return self.upsampler(out) + F.interpolate(x, scale_factor=self.scale, mode="nearest")


class _DenseBlock(nn.Module):
    def __init__(self, feat: int, grow: int) -> None:
        super().__init__()
        for i in range(4):
            setattr(self, f"conv{i + 1}", nn.Conv2d(feat + i * grow, grow, 3, 1, 1))
        self.conv5 = nn.Conv2d(feat + 4 * grow, feat, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = [x]
        for i in range(4):
            features.append(F.leaky_relu(getattr(self, f"conv{i + 1}")(torch.cat(features, 1)), 0.2))
        return self.conv5(torch.cat(features, 1)) * 0.2 + x


class _RRDB(nn.Module):
    def __init__(self, feat: int, grow: int) -> None:
        super().__init__()
        self.rdb1, self.rdb2, self.rdb3 = (_DenseBlock(feat, grow) for _ in range(3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.rdb3(self.rdb2(self.rdb1(x))) * 0.2 + x


class RRDBNet(nn.Module):
    """ESRGAN's network: residual-in-residual dense blocks, then two nearest 2x upsamplings (x4);
    x2 and x1 models take a pixel-unshuffled input."""

    def __init__(self, in_ch: int = 3, out_ch: int = 3, scale: int = 4, feat: int = 64, blocks: int = 23,
                 grow: int = 32) -> None:
        super().__init__()
        self.scale = scale
        self.unshuffle = {4: 1, 2: 2, 1: 4}[scale]
        self.conv_first = nn.Conv2d(in_ch * self.unshuffle ** 2, feat, 3, 1, 1)
        self.body = nn.Sequential(*(_RRDB(feat, grow) for _ in range(blocks)))
        self.conv_body = nn.Conv2d(feat, feat, 3, 1, 1)
        self.conv_up1 = nn.Conv2d(feat, feat, 3, 1, 1)
        self.conv_up2 = nn.Conv2d(feat, feat, 3, 1, 1)
        self.conv_hr = nn.Conv2d(feat, feat, 3, 1, 1)
        self.conv_last = nn.Conv2d(feat, out_ch, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.unshuffle > 1:
            x = F.pixel_unshuffle(x, self.unshuffle)
        feat = self.conv_first(x)
        feat = feat + self.conv_body(self.body(feat))
        for conv in (self.conv_up1, self.conv_up2):
            feat = F.leaky_relu(conv(F.interpolate(feat, scale_factor=2, mode="nearest")), 0.2)
        return self.conv_last(F.leaky_relu(self.conv_hr(feat), 0.2))


def _original_esrgan_names(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """ESRGAN's original `model.N.sub.M.RDBk.convj.0` names as Real-ESRGAN's (x4 models)."""
    blocks = len({k.split(".")[3] for k in state if re.match(r"model\.1\.sub\.\d+\.RDB", k)})
    top = {"model.0.": "conv_first.", f"model.1.sub.{blocks}.": "conv_body.", "model.3.": "conv_up1.",
           "model.6.": "conv_up2.", "model.8.": "conv_hr.", "model.10.": "conv_last."}
    out = {}
    for key, value in state.items():
        m = re.match(r"model\.1\.sub\.(\d+)\.RDB(\d)\.conv(\d)\.0\.(weight|bias)$", key)
        if m:
            out[f"body.{m[1]}.rdb{m[2]}.conv{m[3]}.{m[4]}"] = value
            continue
        for old, new in top.items():
            if key.startswith(old):
                out[new + key[len(old):]] = value
                break
        else:
            out[key] = value
    return out


def _count(state: dict[str, Any], pattern: str) -> int:
    return len({m[1] for k in state if (m := re.match(pattern, k))})


def build_builtin(state: dict[str, torch.Tensor], name: str) -> tuple[nn.Module, int, str]:
    """(module, scale, architecture) for a state dict of a built-in architecture."""
    if "model.0.weight" in state and any(k.startswith("model.1.sub.") for k in state):
        state = _original_esrgan_names(state)
    if "conv_first.weight" in state and "body.0.rdb1.conv1.weight" in state:
        feat, in_ch = state["conv_first.weight"].shape[:2]
        scale = {3: 4, 12: 2, 48: 1}.get(int(in_ch))
        if scale is None:
            raise NodeError(f"{name}: an RRDBNet taking {in_ch} input channels is not one NodeForge knows",
                            field="upscale_model")
        module = RRDBNet(3, state["conv_last.weight"].shape[0], scale, feat, _count(state, r"body\.(\d+)\."),
                         state["body.0.rdb1.conv1.weight"].shape[0])
        arch = "ESRGAN (RRDBNet)"
    elif "body.0.weight" in state and "body.1.weight" in state:
        last = max(int(m[1]) for k in state if (m := re.match(r"body\.(\d+)\.weight$", k)))
        in_ch, feat = state["body.0.weight"].shape[1], state["body.0.weight"].shape[0]
        shuffle = state[f"body.{last}.weight"].shape[0]
        scale = round((shuffle / in_ch) ** 0.5)
        if scale * scale * in_ch != shuffle:
            raise NodeError(f"{name}: cannot tell this Compact model's scale ({shuffle} output channels)",
                            field="upscale_model")
        module = Compact(in_ch, in_ch, feat, (last - 2) // 2, scale)
        arch = "Real-ESRGAN Compact"
    else:
        raise NodeError(f"{name} is not an upscale model NodeForge can read without spandrel (ESRGAN RRDBNet or "
                        "Real-ESRGAN Compact); install spandrel (and torchvision) for other architectures",
                        field="upscale_model")
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise NodeError(f"{name}: the {arch} weights do not fit ({first_line(exc)})",
                        field="upscale_model") from None
    return module, module.scale, arch


def _spandrel(state: dict[str, torch.Tensor], name: str) -> tuple[nn.Module, int, str] | None:
    try:
        import spandrel
    except Exception:   # not installed, or its torchvision does not load
        return None
    try:
        descriptor = spandrel.ModelLoader().load_from_state_dict(state)
    except Exception:
        return None
    if not isinstance(descriptor, spandrel.ImageModelDescriptor):
        raise NodeError(f"{name} is a {descriptor.architecture.name} model, not an upscaler", field="upscale_model")
    return descriptor.model, int(descriptor.scale), descriptor.architecture.name


def read_upscale_state(path: Path) -> dict[str, torch.Tensor]:
    if path.suffix.lower() not in EXTENSIONS[FileKind.UPSCALE_MODEL]:
        raise NodeError(f"{path.name}: use a .safetensors or .pth upscale model", field="upscale_model")
    if path.suffix.lower() == ".safetensors":
        state, _ = read_state_dict(path, field="upscale_model")
        return state
    from .weight_files import load_pickle

    data = load_pickle(path, "upscale_model")
    for key in WRAPPERS:
        if isinstance(data, dict) and isinstance(data.get(key), dict):
            data = data[key]
            break
    if not isinstance(data, dict):
        raise NodeError(f"{path.name} holds no state dict", field="upscale_model")
    state = {k: v for k, v in data.items() if isinstance(v, torch.Tensor)}
    check_finite(state.items(), path.name, "upscale_model")
    return state


def load_upscale_model(path: Path, device: str) -> UpscaleModel:
    state = read_upscale_state(path)
    module, scale, arch = _spandrel(state, path.name) or build_builtin(state, path.name)
    module.eval().requires_grad_(False)
    dtype = pick_dtype(device)
    module.to(device=device, dtype=torch.float32 if dtype == torch.float16 else dtype)   # fp16 overflows ESRGANs
    return UpscaleModel(module, scale, arch, path.stem)


# -- the nodes ----------------------------------------------------------------------------------------------
def run_upscale_model_loader(ctx: Any, upscale_model: str) -> dict[str, Any]:
    path = ctx.resolve_file(FileKind.UPSCALE_MODEL, upscale_model)
    return {"upscale_model": load_upscale_model(Path(path), ctx.device)}


def upscale(model: UpscaleModel, image: torch.Tensor, tile: int, overlap: int) -> torch.Tensor:
    """IMAGE [B, H, W, 3] upscaled by the model's scale, tile by tile (tiles of tile x tile input
    pixels sharing `overlap` pixels, blended)."""
    x = image[..., :3].permute(0, 3, 1, 2).float()

    def run(part: torch.Tensor) -> torch.Tensor:
        return model.module(part.to(model.device, model.dtype)).float()

    overlap = min(overlap, tile // 2)
    with torch.inference_mode(), memory_advice("tile size, or upscale a smaller image"):
        out = tiled(run, x, tile, overlap, model.scale, 3)
    return out.clamp(0, 1).permute(0, 2, 3, 1).contiguous()


def run_image_upscale_with_model(ctx: Any, upscale_model: UpscaleModel, image: torch.Tensor, tile: int,
                                 overlap: int) -> dict[str, Any]:
    total = image.shape[0]
    results = []
    for i in range(total):   # one image at a time: a batch of large images would not fit otherwise
        results.append(upscale(upscale_model, image[i:i + 1], tile, overlap))
        if ctx is not None:
            ctx.progress(i + 1, total)
    return {"image": torch.cat(results)}
