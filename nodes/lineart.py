"""Line drawings of a picture for a lineart ControlNet or sketch T2I-Adapter: comfyui_controlnet_aux's Standard
Lineart (a pure image operation) and Realistic Lineart (the informative-drawings generator of lllyasviel's
Annotators, sk_model.pth and the coarse sk_model2.pth), written here in torch.

Both size the picture as the pack does (nodes/annotator_size.py) and give the map at that size.

Standard Lineart: each 8-bit channel blurred by a Gaussian of sigma `guassian_sigma` (OpenCV's kernel for
float pictures: 8 sigma + 1 taps, mirrored at the border without repeating the edge), the intensity the
least over the channels of blur minus picture (dark lines on a lighter surround are positive), clipped to
0..255, divided by the median of the intensities above `intensity_threshold` (at least 16), times 127,
clipped and truncated to 8-bit levels: grey-to-white lines on black.

Realistic Lineart: the generator (reflection-padded 7x7 convolution, two stride-2 convolutions, residual
blocks, two transposed convolutions, a 7x7 convolution and a sigmoid; instance norm without weights after
every convolution but the last) takes the picture in 0..1 and gives a line image, white where there is
no line; the node gives 255 minus its 8-bit levels, white lines on black.
"""
from __future__ import annotations

import math
import threading
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from nodeforge.core.errors import NodeError
from nodeforge.core.types import FileKind

from .annotator_size import prepared
from .loading import load_shared
from .weight_files import load_exact

_lock = threading.Lock()
ANNOTATORS = "lllyasviel/Annotators"


# -- Standard Lineart ------------------------------------------------------------------------------------------
def gaussian_taps(sigma: float) -> torch.Tensor:
    """OpenCV's Gaussian kernel for a float picture with the size left to it: round(8 sigma + 1), made odd."""
    size = int(math.floor(sigma * 8 + 1 + 0.5)) | 1 if sigma > 0 else 1
    if size == 1:
        return torch.ones(1, dtype=torch.float64)
    x = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    taps = torch.exp(-0.5 * x * x / (sigma * sigma))
    return taps / taps.sum()


def _mirrored(n: int, radius: int) -> torch.Tensor:
    """Indices of a line of n pixels extended by `radius` on each side, mirrored without repeating the edge
    pixel (OpenCV's default border; any radius)."""
    index = torch.arange(-radius, n + radius)
    if n == 1:
        return torch.zeros_like(index)
    period = 2 * (n - 1)
    index = index % period
    return torch.where(index >= n, period - index, index)


def blur(levels: torch.Tensor, sigma: float) -> torch.Tensor:
    """[C, H, W] blurred channel by channel by `gaussian_taps(sigma)`, separably, in float32."""
    taps = gaussian_taps(sigma).float()
    radius = (len(taps) - 1) // 2
    if radius == 0:
        return levels.float().clone()
    c, h, w = levels.shape
    x = levels.float()[:, _mirrored(h, radius)][:, :, _mirrored(w, radius)][:, None]
    x = F.conv2d(x, taps.view(1, 1, -1, 1))
    x = F.conv2d(x, taps.view(1, 1, 1, -1))
    return x[:, 0]


def standard_lineart(levels: torch.Tensor, sigma: float, intensity_threshold: int) -> torch.Tensor:
    """[3, H, W] 8-bit levels -> [H, W] line levels 0..255 (whole numbers)."""
    x = levels.float()
    intensity = (blur(x, sigma) - x).amin(dim=0).clamp(0, 255).numpy()
    above = intensity[intensity > intensity_threshold]
    median = float(np.median(above)) if above.size else 0.0
    intensity = intensity / np.float32(max(16.0, median)) * np.float32(127)
    return torch.from_numpy(np.floor(intensity.clip(0, 255)))


def run_lineart_standard(ctx: Any, image: torch.Tensor, guassian_sigma: float, intensity_threshold: int,
                         resolution: int) -> dict[str, Any]:
    maps = []
    for picture in image:
        levels, (height, width) = prepared(picture, resolution)
        maps.append(standard_lineart(levels, float(guassian_sigma), int(intensity_threshold))[:height, :width])
    return {"image": _grey(torch.stack(maps))}


def _grey(levels: torch.Tensor) -> torch.Tensor:
    """[B, H, W] 8-bit levels -> IMAGE [B, H, W, 3] in 0..1."""
    return (levels.float() / 255).unsqueeze(-1).expand(-1, -1, -1, 3).contiguous()


# -- Realistic Lineart: the informative-drawings generator ----------------------------------------------------
class _Numbered(nn.Module):
    """Layers kept under the positions the original file numbers them by (its state dict's keys)."""

    def __init__(self, layers: dict[int, nn.Module]) -> None:
        super().__init__()
        for position, layer in layers.items():
            self.add_module(str(position), layer)

    def at(self, position: int) -> nn.Module:
        return getattr(self, str(position))


def _norm_relu(x: torch.Tensor) -> torch.Tensor:
    return F.relu(F.instance_norm(x, eps=1e-5))


class _Residual(nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.conv_block = _Numbered({1: nn.Conv2d(width, width, 3), 5: nn.Conv2d(width, width, 3)})

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = _norm_relu(self.conv_block.at(1)(F.pad(x, (1, 1, 1, 1), mode="reflect")))
        y = F.instance_norm(self.conv_block.at(5)(F.pad(y, (1, 1, 1, 1), mode="reflect")), eps=1e-5)
        return x + y


class LineartGenerator(nn.Module):
    """The generator of sk_model.pth / sk_model2.pth: `width` channels after the first convolution (64), four
    times that in the `blocks` residual blocks (3)."""

    def __init__(self, width: int = 64, blocks: int = 3) -> None:
        super().__init__()
        self.model0 = _Numbered({1: nn.Conv2d(3, width, 7)})
        self.model1 = _Numbered({0: nn.Conv2d(width, 2 * width, 3, stride=2, padding=1),
                                 3: nn.Conv2d(2 * width, 4 * width, 3, stride=2, padding=1)})
        self.model2 = nn.ModuleList([_Residual(4 * width) for _ in range(blocks)])
        self.model3 = _Numbered({0: nn.ConvTranspose2d(4 * width, 2 * width, 3, stride=2, padding=1, output_padding=1),
                                 3: nn.ConvTranspose2d(2 * width, width, 3, stride=2, padding=1, output_padding=1)})
        self.model4 = _Numbered({1: nn.Conv2d(width, 1, 7)})

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = _norm_relu(self.model0.at(1)(F.pad(x, (3, 3, 3, 3), mode="reflect")))
        x = _norm_relu(self.model1.at(0)(x))
        x = _norm_relu(self.model1.at(3)(x))
        for block in self.model2:
            x = block(x)
        x = _norm_relu(self.model3.at(0)(x))
        x = _norm_relu(self.model3.at(3)(x))
        return torch.sigmoid(self.model4.at(1)(F.pad(x, (3, 3, 3, 3), mode="reflect")))


def build_generator(state: dict[str, torch.Tensor], source: str) -> LineartGenerator:
    """The generator holding `state`, its width and number of residual blocks read from it; refused in one line
    when the file is not one."""
    first = state.get("model0.1.weight")
    if first is None or first.ndim != 4 or tuple(first.shape[1:]) != (3, 7, 7):
        raise NodeError(f"{source} is not a lineart model (no model0.1.weight of a 7x7 convolution on RGB): use "
                        f"sk_model.pth or sk_model2.pth from {ANNOTATORS}", field="model")
    blocks = len({key.split(".")[1] for key in state if key.startswith("model2.")})
    model = LineartGenerator(int(first.shape[0]), blocks)
    return load_exact(model, state, source, "a lineart model", f"use sk_model.pth or sk_model2.pth from {ANNOTATORS}")


def load_generator(path: Path, device: str, shared: dict[str, Any] | None = None) -> LineartGenerator:
    def read() -> LineartGenerator:
        from .loading import read_state_dict

        if path.is_dir():
            raise NodeError(f"{path.name} is a folder: pick the file sk_model.pth (or sk_model2.pth, coarse) in "
                            "models/lineart/", field="model")
        state, _ = read_state_dict(path, field="model")
        return build_generator(state, path.name).to(device)
    return load_shared(shared, "nodes.lineart", path, device, _lock, read)


def lineart(model: LineartGenerator, levels: torch.Tensor) -> torch.Tensor:
    """[3, H, W] 8-bit levels -> [H, W] line levels (white lines on black), whole numbers 0..255."""
    parameter = next(model.parameters())
    with torch.inference_mode():
        line = model((levels / 255)[None].to(parameter.device, parameter.dtype))[0, 0].float().cpu()
    return 255 - (line * 255).clamp(0, 255).floor()


def run_lineart(ctx: Any, image: torch.Tensor, model: str, resolution: int) -> dict[str, Any]:
    network = load_generator(Path(ctx.resolve_file(FileKind.LINEART, model)), ctx.device, ctx.shared)
    maps = []
    for picture in image:
        levels, (height, width) = prepared(picture, resolution)
        maps.append(lineart(network, levels)[:height, :width])
    return {"image": _grey(torch.stack(maps))}
