"""The Stable Diffusion VAE (diffusers' AutoencoderKL with DownEncoderBlock2D/UpDecoderBlock2D), in
plain torch with diffusers' parameter names and operations: `encode(x).latent_dist.mode()` and
`decode(z).sample`, as the pack's VAE nodes call them.
"""
from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import torch
from torch import nn

from .layers import Attention, Conv2d, Downsample, GroupNorm, ResnetBlock, Upsample

DEFAULTS = {
    "in_channels": 3, "out_channels": 3, "down_block_types": ("DownEncoderBlock2D",),
    "up_block_types": ("UpDecoderBlock2D",), "block_out_channels": (64,), "layers_per_block": 1, "act_fn": "silu",
    "latent_channels": 4, "norm_num_groups": 32, "sample_size": 32, "scaling_factor": 0.18215,
    "shift_factor": None, "latents_mean": None, "latents_std": None, "force_upcast": True,
    "use_quant_conv": True, "use_post_quant_conv": True, "mid_block_add_attention": True,
}


def full_config(config: dict[str, Any]) -> dict[str, Any]:
    return {**DEFAULTS, **config}


def supports(config: dict[str, Any]) -> bool:
    """Whether `config` (an AutoencoderKL config.json) is one this module implements."""
    c = full_config(config)
    blocks = len(c["block_out_channels"])
    return (config.get("_class_name") == "AutoencoderKL" and c["act_fn"] == "silu" and blocks >= 1
            and list(c["down_block_types"]) == ["DownEncoderBlock2D"] * blocks
            and list(c["up_block_types"]) == ["UpDecoderBlock2D"] * blocks
            and isinstance(c["layers_per_block"], int) and isinstance(c["norm_num_groups"], int))


class MidBlock(nn.Module):
    """UNetMidBlock2D without a time embedding: resnet, (pixel attention), resnet."""

    def __init__(self, channels: int, groups: int, attention: bool) -> None:
        super().__init__()
        self.resnets = nn.ModuleList([ResnetBlock(channels, channels, None, groups, 1e-6) for _ in range(2)])
        self.attentions = nn.ModuleList([Attention(channels, 1, channels, bias=True, groups=groups, eps=1e-6,
                                                   residual_connection=True) if attention else None])

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        hidden_states = self.resnets[0](hidden_states, None)
        if self.attentions[0] is not None:
            hidden_states = self.attentions[0](hidden_states)
        return self.resnets[1](hidden_states, None)


class CoderBlock(nn.Module):
    """DownEncoderBlock2D (`down`) or UpDecoderBlock2D (`up`): resnets, then the resampler if any."""

    def __init__(self, in_channels: int, out_channels: int, layers: int, groups: int, resample: str | None) -> None:
        super().__init__()
        self.resnets = nn.ModuleList([ResnetBlock(in_channels if i == 0 else out_channels, out_channels, None,
                                                  groups, 1e-6) for i in range(layers)])
        if resample == "down":
            self.downsamplers = nn.ModuleList([Downsample(out_channels, 0)])
        elif resample == "up":
            self.upsamplers = nn.ModuleList([Upsample(out_channels)])
        self.resample = resample

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        for resnet in self.resnets:
            hidden_states = resnet(hidden_states, None)
        if self.resample == "down":
            hidden_states = self.downsamplers[0](hidden_states)
        elif self.resample == "up":
            hidden_states = self.upsamplers[0](hidden_states)
        return hidden_states


class Coder(nn.Module):
    """The Encoder (`encoder=True`: image -> latent mean and log-variance) or the Decoder."""

    def __init__(self, c: SimpleNamespace, encoder: bool) -> None:
        super().__init__()
        channels, groups, n = list(c.block_out_channels), c.norm_num_groups, len(c.block_out_channels)
        self.conv_in = Conv2d(c.in_channels if encoder else c.latent_channels, channels[0 if encoder else -1],
                                 kernel_size=3, stride=1, padding=1)
        if encoder:
            blocks = [CoderBlock(channels[max(i - 1, 0)], channels[i], c.layers_per_block, groups,
                                 "down" if i < n - 1 else None) for i in range(n)]
            self.down_blocks = nn.ModuleList(blocks)
        else:
            rev = channels[::-1]
            blocks = [CoderBlock(rev[max(i - 1, 0)], rev[i], c.layers_per_block + 1, groups,
                                 "up" if i < n - 1 else None) for i in range(n)]
            self.up_blocks = nn.ModuleList(blocks)
        self.mid_block = MidBlock(channels[-1], groups, c.mid_block_add_attention)
        out = channels[-1] if encoder else channels[0]
        self.conv_norm_out = GroupNorm(num_channels=out, num_groups=groups, eps=1e-6)
        self.conv_act = nn.SiLU()
        self.conv_out = Conv2d(out, 2 * c.latent_channels if encoder else c.out_channels, 3, padding=1)
        self.encoder = encoder

    def forward(self, sample: torch.Tensor) -> torch.Tensor:
        sample = self.conv_in(sample)
        if self.encoder:
            for block in self.down_blocks:
                sample = block(sample)
            sample = self.mid_block(sample)
        else:
            sample = self.mid_block(sample)
            for block in self.up_blocks:
                sample = block(sample)
        return self.conv_out(self.conv_act(self.conv_norm_out(sample)))


class LiteVAE(nn.Module):
    """AutoencoderKL: `encode(pixels).latent_dist.mode()` and `decode(latents).sample`."""

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__()
        self.config = SimpleNamespace(**{k: v for k, v in full_config(config).items() if not k.startswith("_")})
        c = self.config
        self.encoder = Coder(c, encoder=True)
        self.decoder = Coder(c, encoder=False)
        self.quant_conv = Conv2d(2 * c.latent_channels, 2 * c.latent_channels, 1) if c.use_quant_conv else None
        self.post_quant_conv = Conv2d(c.latent_channels, c.latent_channels, 1) if c.use_post_quant_conv else None

    def encode(self, x: torch.Tensor) -> SimpleNamespace:
        moments = self.encoder(x)
        if self.quant_conv is not None:
            moments = self.quant_conv(moments)
        mean, _ = torch.chunk(moments, 2, dim=1)
        return SimpleNamespace(latent_dist=SimpleNamespace(mode=lambda: mean, mean=mean))

    def decode(self, z: torch.Tensor) -> SimpleNamespace:
        if self.post_quant_conv is not None:
            z = self.post_quant_conv(z)
        return SimpleNamespace(sample=self.decoder(z))
