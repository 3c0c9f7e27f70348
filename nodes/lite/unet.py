"""The Stable Diffusion 1.x/2.x UNet (diffusers' UNet2DConditionModel for the configs those
families use), in plain torch: the same parameter names and the same operations as diffusers,
without importing it (see nodes/lite/__init__.py for why and when it is used).

`supports(config)` says whether a config is within what this implements; the loader uses
diffusers for any other.
"""
from __future__ import annotations

import math
from types import SimpleNamespace
from typing import Any

import torch
from torch import nn

from .layers import Conv2d, Downsample, GroupNorm, Linear, ResnetBlock, Transformer2D, Upsample

DOWN_TYPES = ("DownBlock2D", "CrossAttnDownBlock2D")
UP_TYPES = ("UpBlock2D", "CrossAttnUpBlock2D")
# Config keys and the only values this implementation handles (diffusers' defaults for SD 1.x/2.x).
REQUIRED = {
    "act_fn": "silu", "addition_embed_type": None, "attention_type": "default", "center_input_sample": False,
    "class_embed_type": None, "conv_in_kernel": 3, "conv_out_kernel": 3, "cross_attention_norm": None,
    "dropout": 0.0, "dual_cross_attention": False, "encoder_hid_dim": None, "encoder_hid_dim_type": None,
    "mid_block_type": "UNetMidBlock2DCrossAttn", "num_class_embeds": None, "only_cross_attention": False,
    "resnet_out_scale_factor": 1.0, "resnet_skip_time_act": False, "resnet_time_scale_shift": "default",
    "time_cond_proj_dim": None, "time_embedding_act_fn": None, "time_embedding_dim": None,
    "time_embedding_type": "positional", "timestep_post_act": None, "upcast_attention": False,
    "addition_time_embed_dim": None, "projection_class_embeddings_input_dim": None,
    "reverse_transformer_layers_per_block": None, "class_embeddings_concat": False,
    "mid_block_only_cross_attention": None,
}
# diffusers' defaults for the keys a config.json may leave out.
DEFAULTS = {
    **REQUIRED, "in_channels": 4, "out_channels": 4, "flip_sin_to_cos": True, "freq_shift": 0,
    "down_block_types": ("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
    "up_block_types": ("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
    "block_out_channels": (320, 640, 1280, 1280), "layers_per_block": 2, "downsample_padding": 1,
    "mid_block_scale_factor": 1, "norm_num_groups": 32, "norm_eps": 1e-5, "cross_attention_dim": 1280,
    "transformer_layers_per_block": 1, "attention_head_dim": 8, "num_attention_heads": None,
    "use_linear_projection": False, "sample_size": None,
}


def full_config(config: dict[str, Any]) -> dict[str, Any]:
    """`config` with diffusers' defaults for the keys it leaves out."""
    return {**DEFAULTS, **config}


def supports(config: dict[str, Any]) -> bool:
    """Whether `config` (a UNet2DConditionModel config.json) is one this module implements."""
    config = full_config(config)
    if config.get("_class_name") != "UNet2DConditionModel":
        return False
    if any(config.get(key, value) != value for key, value in REQUIRED.items()):
        return False
    blocks = len(config.get("block_out_channels", ()))
    per_block = ("layers_per_block", "transformer_layers_per_block", "cross_attention_dim", "attention_head_dim",
                 "num_attention_heads")
    if any(isinstance(config.get(key), (list, tuple)) and len(config[key]) != blocks for key in per_block):
        return False
    if any(isinstance(v, (list, tuple)) for v in _per_block(config.get("transformer_layers_per_block", 1), blocks)):
        return False
    return (blocks >= 1 and all(t in DOWN_TYPES for t in config.get("down_block_types", ()))
            and all(t in UP_TYPES for t in config.get("up_block_types", ()))
            and len(config.get("down_block_types", ())) == blocks == len(config.get("up_block_types", ()))
            and all(isinstance(config.get(k), int) for k in ("in_channels", "out_channels", "norm_num_groups")))


def _per_block(value: Any, blocks: int) -> list:
    return list(value) if isinstance(value, (list, tuple)) else [value] * blocks


def timestep_embedding(timesteps: torch.Tensor, dim: int, flip_sin_to_cos: bool, shift: float) -> torch.Tensor:
    """diffusers' get_timestep_embedding (scale 1, max period 10000)."""
    half_dim = dim // 2
    exponent = -math.log(10000) * torch.arange(start=0, end=half_dim, dtype=torch.float32, device=timesteps.device)
    exponent = exponent / (half_dim - shift)
    emb = torch.exp(exponent)
    emb = timesteps[:, None].float() * emb[None, :]
    emb = 1 * emb
    emb = torch.cat([torch.sin(emb), torch.cos(emb)], dim=-1)
    if flip_sin_to_cos:
        emb = torch.cat([emb[:, half_dim:], emb[:, :half_dim]], dim=-1)
    if dim % 2 == 1:
        emb = torch.nn.functional.pad(emb, (0, 1, 0, 0))
    return emb


class TimestepEmbedding(nn.Module):
    def __init__(self, in_channels: int, dim: int) -> None:
        super().__init__()
        self.linear_1 = Linear(in_channels, dim)
        self.act = nn.SiLU()
        self.linear_2 = Linear(dim, dim)

    def forward(self, sample: torch.Tensor) -> torch.Tensor:
        return self.linear_2(self.act(self.linear_1(sample)))


class DownBlock(nn.Module):
    """DownBlock2D, or CrossAttnDownBlock2D when `attention` holds (heads, transformer layers, ...)."""

    def __init__(self, in_channels: int, out_channels: int, temb: int, layers: int, groups: int, eps: float,
                 downsample_padding: int | None, attention: dict | None) -> None:
        super().__init__()
        self.resnets = nn.ModuleList([ResnetBlock(in_channels if i == 0 else out_channels, out_channels, temb, groups,
                                                  eps) for i in range(layers)])
        if attention is not None:
            self.attentions = nn.ModuleList([Transformer2D(in_channels=out_channels, groups=groups, **attention)
                                             for _ in range(layers)])
        self.has_cross_attention = attention is not None
        self.downsamplers = nn.ModuleList([Downsample(out_channels, downsample_padding)]) \
            if downsample_padding is not None else None

    def forward(self, hidden_states: torch.Tensor, temb: torch.Tensor, context: torch.Tensor,
                residual: torch.Tensor | None) -> tuple[torch.Tensor, tuple]:
        output_states = ()
        for i, resnet in enumerate(self.resnets):
            hidden_states = resnet(hidden_states, temb)
            if self.has_cross_attention:
                hidden_states = self.attentions[i](hidden_states, context)
                if i == len(self.resnets) - 1 and residual is not None:
                    hidden_states = hidden_states + residual
            output_states = output_states + (hidden_states,)
        if self.downsamplers is not None:
            hidden_states = self.downsamplers[0](hidden_states)
            output_states = output_states + (hidden_states,)
        return hidden_states, output_states


class UpBlock(nn.Module):
    """UpBlock2D, or CrossAttnUpBlock2D when `attention` holds (heads, transformer layers, ...)."""

    def __init__(self, in_channels: int, prev_channels: int, out_channels: int, temb: int, layers: int,
                 groups: int, eps: float, upsample: bool, attention: dict | None) -> None:
        super().__init__()
        def width(i: int) -> int:   # the running channels plus the skip's
            return (prev_channels if i == 0 else out_channels) + (in_channels if i == layers - 1 else out_channels)

        self.resnets = nn.ModuleList([ResnetBlock(width(i), out_channels, temb, groups, eps) for i in range(layers)])
        if attention is not None:
            self.attentions = nn.ModuleList([Transformer2D(in_channels=out_channels, groups=groups, **attention)
                                             for _ in range(layers)])
        self.has_cross_attention = attention is not None
        self.upsamplers = nn.ModuleList([Upsample(out_channels)]) if upsample else None

    def forward(self, hidden_states: torch.Tensor, skips: tuple, temb: torch.Tensor, context: torch.Tensor,
                upsample_size: Any) -> torch.Tensor:
        for i, resnet in enumerate(self.resnets):
            hidden_states = torch.cat([hidden_states, skips[-1]], dim=1)
            skips = skips[:-1]
            hidden_states = resnet(hidden_states, temb)
            if self.has_cross_attention:
                hidden_states = self.attentions[i](hidden_states, context)
        if self.upsamplers is not None:
            hidden_states = self.upsamplers[0](hidden_states, upsample_size)
        return hidden_states


class MidBlock(nn.Module):
    """UNetMidBlock2DCrossAttn (one layer): resnet, transformer, resnet."""

    def __init__(self, channels: int, temb: int, groups: int, eps: float, scale: float, attention: dict) -> None:
        super().__init__()
        self.resnets = nn.ModuleList([ResnetBlock(channels, channels, temb, groups, eps, scale) for _ in range(2)])
        self.attentions = nn.ModuleList([Transformer2D(in_channels=channels, groups=groups, **attention)])

    def forward(self, hidden_states: torch.Tensor, temb: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        hidden_states = self.resnets[0](hidden_states, temb)
        for attn, resnet in zip(self.attentions, self.resnets[1:]):
            hidden_states = resnet(attn(hidden_states, context), temb)
        return hidden_states


class Output(SimpleNamespace):
    """What the model call returns (`.sample`, as diffusers' UNet2DConditionOutput)."""


class LiteUNet(nn.Module):
    """UNet2DConditionModel for SD 1.x/2.x configs: `unet(sample, t, encoder_hidden_states=...).sample`,
    with ControlNet residuals and T2I-Adapter features taken as diffusers takes them."""

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__()
        self.config = SimpleNamespace(**{k: v for k, v in full_config(config).items() if not k.startswith("_")})
        c = self.config
        channels = list(c.block_out_channels)
        blocks = len(channels)
        temb = channels[0] * 4
        self.time_proj_args = (channels[0], c.flip_sin_to_cos, c.freq_shift)
        self.time_embedding = TimestepEmbedding(channels[0], temb)
        self.conv_in = Conv2d(c.in_channels, channels[0], kernel_size=3, padding=1)
        heads = _per_block(c.num_attention_heads or c.attention_head_dim, blocks)
        layers = _per_block(c.layers_per_block, blocks)
        cross = _per_block(c.cross_attention_dim, blocks)
        depth = _per_block(c.transformer_layers_per_block, blocks)

        def attention(i: int, width: int) -> dict:
            return dict(heads=heads[i], dim_head=width // heads[i], layers=depth[i], cross_attention_dim=cross[i],
                        use_linear_projection=c.use_linear_projection)

        self.down_blocks = nn.ModuleList(
            DownBlock(channels[max(i - 1, 0)], channels[i], temb, layers[i], c.norm_num_groups, c.norm_eps,
                      c.downsample_padding if i < blocks - 1 else None,
                      attention(i, channels[i]) if kind == "CrossAttnDownBlock2D" else None)
            for i, kind in enumerate(c.down_block_types))
        self.mid_block = MidBlock(channels[-1], temb, c.norm_num_groups, c.norm_eps, c.mid_block_scale_factor,
                                  attention(blocks - 1, channels[-1]))
        self.up_blocks = nn.ModuleList(
            UpBlock(channels[blocks - 1 - min(i + 1, blocks - 1)], channels[blocks - i if i else blocks - 1],
                    channels[blocks - 1 - i], temb, layers[blocks - 1 - i] + 1, c.norm_num_groups, c.norm_eps,
                    i < blocks - 1, attention(blocks - 1 - i, channels[blocks - 1 - i])
                    if kind == "CrossAttnUpBlock2D" else None)
            for i, kind in enumerate(c.up_block_types))
        self.conv_norm_out = GroupNorm(c.norm_num_groups, channels[0], eps=c.norm_eps)
        self.conv_act = nn.SiLU()
        self.conv_out = Conv2d(channels[0], c.out_channels, kernel_size=3, padding=1)
        self.num_upsamplers = blocks - 1

    @property
    def dtype(self) -> torch.dtype:
        return next(self.parameters()).dtype

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def time_embed(self, sample: torch.Tensor, timestep: Any) -> torch.Tensor:
        timesteps = timestep
        if not torch.is_tensor(timesteps):
            dtype = torch.float64 if isinstance(timestep, float) else torch.int64
            timesteps = torch.tensor([timesteps], dtype=dtype, device=sample.device)
        elif len(timesteps.shape) == 0:
            timesteps = timesteps[None].to(sample.device)
        timesteps = timesteps.expand(sample.shape[0])
        t_emb = timestep_embedding(timesteps, *self.time_proj_args).to(dtype=sample.dtype)
        return self.time_embedding(t_emb)

    def forward(self, sample: torch.Tensor, timestep: Any, encoder_hidden_states: torch.Tensor,
                added_cond_kwargs: Any = None, down_block_additional_residuals: Any = None,
                mid_block_additional_residual: torch.Tensor | None = None,
                down_intrablock_additional_residuals: Any = None) -> Output:
        if added_cond_kwargs:
            raise ValueError("this UNet takes no added conditioning (it is not an SDXL UNet)")
        upsample_factor = 2 ** self.num_upsamplers
        forward_upsample_size = any(dim % upsample_factor != 0 for dim in sample.shape[-2:])
        emb = self.time_embed(sample, timestep)
        sample = self.conv_in(sample)
        adapter = down_intrablock_additional_residuals
        skips = (sample,)
        for block in self.down_blocks:
            extra = adapter.pop(0) if adapter and block.has_cross_attention else None
            sample, res_samples = block(sample, emb, encoder_hidden_states, extra)
            if adapter and not block.has_cross_attention:
                sample += adapter.pop(0)
            skips += res_samples
        if down_block_additional_residuals is not None and mid_block_additional_residual is not None:
            skips = tuple(s + r for s, r in zip(skips, down_block_additional_residuals))
        sample = self.mid_block(sample, emb, encoder_hidden_states)
        if adapter and sample.shape == adapter[0].shape:
            sample += adapter.pop(0)
        if mid_block_additional_residual is not None and down_block_additional_residuals is not None:
            sample = sample + mid_block_additional_residual
        for i, block in enumerate(self.up_blocks):
            res_samples, skips = skips[-len(block.resnets):], skips[:-len(block.resnets)]
            size = skips[-1].shape[2:] if i < len(self.up_blocks) - 1 and forward_upsample_size else None
            sample = block(sample, res_samples, emb, encoder_hidden_states, size)
        sample = self.conv_out(self.conv_act(self.conv_norm_out(sample)))
        return Output(sample=sample)
