"""LeReS depth maps (comfyui_controlnet_aux's LeReS-DepthMapPreprocessor), written here in torch: the relative-depth
network of "Learning to Recover 3D Scene Shape from a Single Image" (lllyasviel/Annotators' res101.pth: a
ResNeXt-101 32x8d encoder and LeReS's decoder; a ResNet-50 one reads too, its widths and depths taken from the file).

The encoder is a ResNet without its classifier (a 7x7 stride-2 stem and max pool, then four stages of bottleneck
blocks, grouped 3x3 convolutions in ResNeXt), giving features at 1/4, 1/8, 1/16 and 1/32. The decoder refines the
1/32 features (a feature transfer block: a 3x3 convolution and ReLU plus a residual branch of convolution, batch
norm, ReLU, convolution, then ReLU), reduces them to 256 channels, and at each finer scale adds the upsampled coarser
result to that scale's refined features (bilinear x2, corners aligned); a last head of two 3x3 convolutions gives
one channel at the picture's size: depth, far large.

As the pack does: the picture sized as its preprocessors size one (nodes/annotator_size.py), its channels turned to
blue-green-red, its 0..255 levels (not 0..1) normalised by ImageNet's mean and deviation; the prediction normalised
from its least to its greatest to 16 bits (truncated), taken to 8 bits (rounded), pixels at or below rm_nearest
percent of white set to 0, turned over (near bright), pixels at or below rm_background percent set to 0.
The pack's boost (LeReS++: pix2pix merging of several resolutions) is not here.
"""
from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from nodeforge.core.errors import NodeError
from nodeforge.core.types import FileKind

from .annotator_size import prepared
from .loading import load_shared
from .weight_files import load_exact

_lock = threading.Lock()
FIX = "use res101.pth from lllyasviel/Annotators"
_MEAN = (0.485, 0.456, 0.406)
_STD = (0.229, 0.224, 0.225)


# -- the encoder: a ResNet / ResNeXt without its classifier ---------------------------------------------------------
class _Bottleneck(nn.Module):
    def __init__(self, inputs: int, width: int, outputs: int, groups: int, stride: int, project: bool) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inputs, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride=stride, padding=1, groups=groups, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, outputs, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(outputs)
        # the shortcut's projection, where the block changes the width or the scale: (1x1 conv, batch norm)
        self.downsample = nn.Sequential(nn.Conv2d(inputs, outputs, 1, stride=stride, bias=False),
                                        nn.BatchNorm2d(outputs)) if project else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.bn1(self.conv1(x)))
        y = F.relu(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(y))
        return F.relu(y + (self.downsample(x) if self.downsample is not None else x))


class ResNetEncoder(nn.Module):
    """`blocks` bottlenecks per stage; stage i's inner width `widths[i]` in `groups` groups, its output 256 x 2^i."""

    def __init__(self, blocks: tuple[int, ...] = (3, 4, 23, 3), widths: tuple[int, ...] = (256, 512, 1024, 2048),
                 groups: int = 32) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        inputs = 64
        for stage, (count, width) in enumerate(zip(blocks, widths)):
            outputs = 256 * 2 ** stage
            layer = []
            for index in range(count):
                stride = 2 if stage > 0 and index == 0 else 1
                layer.append(_Bottleneck(inputs, width, outputs, groups, stride, project=index == 0))
                inputs = outputs
            setattr(self, f"layer{stage + 1}", nn.Sequential(*layer))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = F.max_pool2d(F.relu(self.bn1(self.conv1(x))), 3, stride=2, padding=1)
        features = []
        for stage in (self.layer1, self.layer2, self.layer3, self.layer4):
            x = stage(x)
            features.append(x)
        return features


# -- the decoder ------------------------------------------------------------------------------------------------------
def _up(x: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=True)


class _Transfer(nn.Module):
    """A 3x3 convolution to `outputs` channels and ReLU, plus a residual branch (conv, batch norm, ReLU, conv), ReLU."""

    def __init__(self, inputs: int, outputs: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inputs, outputs, 3, padding=1)
        # positions as in the file: 1 and 4 the convolutions, 2 the batch norm (0 and 3 were its ReLUs)
        self.conv_branch = nn.ModuleDict({"1": nn.Conv2d(outputs, outputs, 3, padding=1),
                                          "2": nn.BatchNorm2d(outputs),
                                          "4": nn.Conv2d(outputs, outputs, 3, padding=1)})

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # The original's branch opens with an in-place ReLU, so the sum adds the branch to relu(conv1(x)), not to
        # conv1(x): the weights were trained so, and it is kept.
        x = F.relu(self.conv1(x))
        branch = self.conv_branch["4"](F.relu(self.conv_branch["2"](self.conv_branch["1"](x))))
        return F.relu(x + branch)


class _Fuse(nn.Module):
    """A scale's refined features plus the coarser result, refined again and upsampled x2."""

    def __init__(self, inputs: int, width: int) -> None:
        super().__init__()
        self.ftb1 = _Transfer(inputs, width)
        self.ftb2 = _Transfer(width, width)

    def forward(self, features: torch.Tensor, coarser: torch.Tensor) -> torch.Tensor:
        return _up(self.ftb2(self.ftb1(features) + coarser))


class _Head(nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.adapt_conv = nn.ModuleDict({"0": nn.Conv2d(width, width // 2, 3, padding=1),
                                         "1": nn.BatchNorm2d(width // 2),
                                         "3": nn.Conv2d(width // 2, 1, 3, padding=1)})

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _up(self.adapt_conv["3"](F.relu(self.adapt_conv["1"](self.adapt_conv["0"](x)))))


class LeReSDecoder(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = _Transfer(2048, 512)
        self.conv1 = nn.Conv2d(512, 256, 3, padding=1)
        self.ffm2 = _Fuse(1024, 256)
        self.ffm1 = _Fuse(512, 256)
        self.ffm0 = _Fuse(256, 256)
        self.outconv = _Head(256)

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        x = _up(self.conv1(self.conv(features[3])))       # 1/32 -> 1/16
        x = self.ffm2(features[2], x)                       # -> 1/8
        x = self.ffm1(features[1], x)                       # -> 1/4
        x = self.ffm0(features[0], x)                       # -> 1/2
        return self.outconv(x)                              # -> the picture's size


class _Encoder(nn.Module):
    def __init__(self, encoder: ResNetEncoder) -> None:
        super().__init__()
        self.encoder = encoder


class LeReS(nn.Module):
    """res101.pth's depth_model: `encoder_modules.encoder.*` and `decoder_modules.*`."""

    def __init__(self, encoder: ResNetEncoder | None = None) -> None:
        super().__init__()
        self.encoder_modules = _Encoder(encoder or ResNetEncoder())
        self.decoder_modules = LeReSDecoder()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder_modules(self.encoder_modules.encoder(x))


# -- reading the file ---------------------------------------------------------------------------------------------
def _depth_model_state(data: Any, source: str) -> dict[str, torch.Tensor]:
    """The tensors of the depth model, without the `module.` and `depth_model.` prefixes the file may carry."""
    if isinstance(data, dict) and isinstance(data.get("depth_model"), dict):
        data = data["depth_model"]
    if not isinstance(data, dict):
        raise NodeError(f"{source} holds no state dict: {FIX}", field="model")
    state = {}
    for key, value in data.items():
        if isinstance(value, torch.Tensor):
            for prefix in ("module.", "depth_model."):
                key = key[len(prefix):] if key.startswith(prefix) else key
            state[key] = value
    return state


def _encoder_shape(state: dict[str, torch.Tensor], source: str) -> ResNetEncoder:
    head = "encoder_modules.encoder."
    blocks, widths = [], []
    for stage in range(1, 5):
        count = len({key[len(head):].split(".")[1] for key in state if key.startswith(f"{head}layer{stage}.")})
        first = state.get(f"{head}layer{stage}.0.conv2.weight")
        if not count or first is None or first.ndim != 4:
            raise NodeError(f"{source} is not a LeReS depth model (no {head}layer{stage}.0.conv2.weight): {FIX}",
                            field="model")
        blocks.append(count)
        widths.append(int(first.shape[0]))
    groups = widths[0] // int(state[f"{head}layer1.0.conv2.weight"].shape[1])
    return ResNetEncoder(tuple(blocks), tuple(widths), max(groups, 1))


def build_leres(data: Any, source: str) -> LeReS:
    """The network holding the file's depth model (a dict with `depth_model`, or its tensors; `module.` prefixes
    dropped), its encoder's depth, widths and groups read from it; refused in one line when it is not one."""
    state = _depth_model_state(data, source)
    model = LeReS(_encoder_shape(state, source))
    return load_exact(model, state, source, "a LeReS depth model", FIX)


def load_leres(path: Path, device: str, shared: dict[str, Any] | None = None) -> LeReS:
    def read() -> LeReS:
        from .weight_files import load_pickle, read_safetensors

        if path.is_dir():
            raise NodeError(f"{path.name} is a folder: pick the file res101.pth in models/leres/", field="model")
        if path.suffix.lower() == ".safetensors":
            data: Any = read_safetensors(path, "model")[0]
        else:
            data = load_pickle(path, "model")
        return build_leres(data, path.name).to(device)
    return load_shared(shared, "nodes.leres", path, device, _lock, read)


# -- the map --------------------------------------------------------------------------------------------------------
def predict(model: LeReS, levels: torch.Tensor) -> torch.Tensor:
    """[3, H, W] RGB 8-bit levels (H, W multiples of 32) -> [H, W] depth, as the pack feeds the network."""
    bgr = levels.flip(0).float()
    mean = torch.tensor(_MEAN).view(3, 1, 1)
    std = torch.tensor(_STD).view(3, 1, 1)
    parameter = next(model.parameters())
    with torch.inference_mode():
        out = model(((bgr - mean) / std)[None].to(parameter.device, parameter.dtype))
    return out[0, 0].float().cpu()


def depth_levels(depth: torch.Tensor, rm_nearest: float, rm_background: float) -> torch.Tensor:
    """A prediction (far large) -> 8-bit levels, near bright, with the two cut-offs (percent of white)."""
    low, high = depth.min(), depth.max()
    if float(high - low) > torch.finfo(torch.float64).eps:
        sixteen = (65535 * (depth - low) / (high - low)).floor()
    else:
        sixteen = torch.zeros_like(depth)
    eight = torch.round(sixteen.double() * (255.0 / 65535.0)).clamp(0, 255)
    if rm_nearest != 0:
        eight = torch.where(eight > rm_nearest / 100 * 255, eight, torch.zeros_like(eight))
    eight = 255 - eight
    if rm_background != 0:
        eight = torch.where(eight > rm_background / 100 * 255, eight, torch.zeros_like(eight))
    return eight.float()


def run_leres_depth_map(ctx: Any, image: torch.Tensor, model: str, rm_nearest: float, rm_background: float,
                        resolution: int) -> dict[str, Any]:
    network = load_leres(Path(ctx.resolve_file(FileKind.LERES, model)), ctx.device, ctx.shared)
    maps = []
    for picture in image:
        levels, (height, width) = prepared(picture, resolution)
        depth = predict(network, levels)
        maps.append(depth_levels(depth, float(rm_nearest), float(rm_background))[:height, :width])
    return {"image": (torch.stack(maps) / 255).unsqueeze(-1).expand(-1, -1, -1, 3).contiguous()}
