"""Stage C's image coder (ComfyUI's c_vae): an EfficientNetV2-S feature extractor whose 1280 features are
mapped to stage C's 16 channels (what stage C was trained to draw), and the small previewer that turns a
stage C latent back into a rough picture at 8x its size.

The encoder is EfficientNetV2-S as torchvision builds it (Tan and Le 2021: fused MBConv stages, then MBConv
stages with squeeze-and-excitation, BatchNorm eps 1e-3, SiLU), written here with torchvision's module names
so the checkpoint's `encoder.backbone.*` tensors load as they are; the image goes in at -1..1 and is
normalised with ImageNet's mean and std (the file's `encoder.mean` / `encoder.std`).
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

# EfficientNetV2-S's stages: (fused, expand ratio, kernel, stride, in, out, layers), then 256 -> 1280.
V2_S_STAGES = ((True, 1, 3, 1, 24, 24, 2), (True, 4, 3, 2, 24, 48, 4), (True, 4, 3, 2, 48, 64, 4),
               (False, 4, 3, 2, 64, 128, 6), (False, 6, 3, 1, 128, 160, 9), (False, 6, 3, 2, 160, 256, 15))
FEATURES = 1280
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class ConvNormActivation(nn.Sequential):
    """Conv (no bias) -> BatchNorm (eps 1e-3) -> SiLU (none on a projection): torchvision's block, its names 0/1/2."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int = 1, groups: int = 1,
                 activation: bool = True) -> None:
        layers: list[nn.Module] = [nn.Conv2d(c_in, c_out, kernel, stride, (kernel - 1) // 2, groups=groups, bias=False),
                                   nn.BatchNorm2d(c_out, eps=1e-3)]
        if activation:
            layers.append(nn.SiLU())
        super().__init__(*layers)


class SqueezeExcitation(nn.Module):
    def __init__(self, channels: int, squeezed: int) -> None:
        super().__init__()
        self.fc1 = nn.Conv2d(channels, squeezed, 1)
        self.fc2 = nn.Conv2d(squeezed, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = self.fc2(nn.functional.silu(self.fc1(x.mean((2, 3), keepdim=True))))
        return x * scale.sigmoid()


class InvertedResidual(nn.Module):
    """One (fused) MBConv block; the residual where it keeps its size (stochastic depth is off at inference)."""

    def __init__(self, fused: bool, expand: int, kernel: int, stride: int, c_in: int, c_out: int) -> None:
        super().__init__()
        wide = c_in * expand
        self.residual = stride == 1 and c_in == c_out
        if fused:
            layers: list[nn.Module] = ([ConvNormActivation(c_in, wide, kernel, stride),
                                        ConvNormActivation(wide, c_out, 1, activation=False)] if wide != c_in
                                       else [ConvNormActivation(c_in, c_out, kernel, stride)])
        else:
            layers = [ConvNormActivation(c_in, wide, 1)] if wide != c_in else []
            layers += [ConvNormActivation(wide, wide, kernel, stride, groups=wide),
                       SqueezeExcitation(wide, max(1, c_in // 4)), ConvNormActivation(wide, c_out, 1, activation=False)]
        self.block = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.block(x)
        return out + x if self.residual else out


def efficientnet_v2_s_features() -> nn.Sequential:
    """EfficientNetV2-S's `features` (20.2M parameters): stem, six stages, the 1280-wide head; 1/32 of the size."""
    layers: list[nn.Module] = [ConvNormActivation(3, 24, 3, 2)]
    for fused, expand, kernel, stride, c_in, c_out, count in V2_S_STAGES:
        layers.append(nn.Sequential(*(InvertedResidual(fused, expand, kernel, stride if i == 0 else 1,
                                                       c_in if i == 0 else c_out, c_out) for i in range(count))))
    layers.append(ConvNormActivation(V2_S_STAGES[-1][5], FEATURES, 1))
    return nn.Sequential(*layers)


class EfficientNetEncoder(nn.Module):
    def __init__(self, channels: int = 16) -> None:
        super().__init__()
        self.backbone = efficientnet_v2_s_features()
        self.mapper = nn.Sequential(nn.Conv2d(FEATURES, channels, 1, bias=False), nn.BatchNorm2d(channels, affine=False))
        self.mean = nn.Parameter(torch.tensor(IMAGENET_MEAN), requires_grad=False)
        self.std = nn.Parameter(torch.tensor(IMAGENET_STD), requires_grad=False)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        x = (pixels * 0.5 + 0.5 - self.mean.view(3, 1, 1).to(pixels)) / self.std.view(3, 1, 1).to(pixels)
        return self.mapper(self.backbone(x))


def _previewer_blocks(c_in: int = 16, hidden: int = 512, c_out: int = 3) -> nn.Sequential:
    """Stage C's previewer: 1x1 in, then (conv 3x3, transposed conv x2) three times narrowing 512 -> 128, GELU and
    BatchNorm after each, 1x1 out."""
    widths = (hidden, hidden, hidden // 2, hidden // 2, hidden // 4, hidden // 4, hidden // 4, hidden // 4)
    layers: list[nn.Module] = []
    previous = c_in
    for i, width in enumerate(widths):
        if i == 0:
            conv: nn.Module = nn.Conv2d(previous, width, 1)
        elif i % 2 == 0:
            conv = nn.ConvTranspose2d(previous, width, 2, stride=2)
        else:
            conv = nn.Conv2d(previous, width, 3, padding=1)
        layers += [conv, nn.GELU(), nn.BatchNorm2d(width)]
        previous = width
    layers.append(nn.Conv2d(previous, c_out, 1))
    return nn.Sequential(*layers)


class Previewer(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.blocks = _previewer_blocks()

    def forward(self, latents: torch.Tensor) -> torch.Tensor:
        return (self.blocks(latents) - 0.5) * 2.0


class StageCCoder(nn.Module):
    """Stage C's VAE behind the VAE nodes' calls: encode pixels (-1..1) to the 16-channel latent, decode a
    latent to the previewer's picture (-1..1, 8x the latent)."""

    def __init__(self) -> None:
        super().__init__()
        self.encoder = EfficientNetEncoder()
        self.previewer = Previewer()

    def encode(self, pixels: torch.Tensor) -> Any:
        from .cascade_nodes import _Output

        return _Output(self.encoder(pixels))

    def decode(self, latents: torch.Tensor) -> Any:
        from nodeforge.core.errors import NodeError

        from .cascade_nodes import _Output

        if self.previewer is None:
            raise NodeError(f"{getattr(self, 'name', 'this checkpoint')}'s stage C VAE has no previewer to decode with; "
                            "decode the image after stage B with stage B's VAE (stage A)", field="vae")
        return _Output(self.previewer(latents))
