"""PerturbedAttentionGuidance (ComfyUI's, from Ahn et al. 2024's perturbed-attention guidance) and
sd-perturbed-attention's PerturbedAttention: each step the UNet is called once more on the positive prompt
with the self-attention of its middle block's transformer layers replaced by identity (each token's output is
its own value projection: the attention map is the identity), and the guided prediction moves away from that
perturbed one: guided + s x (positive - perturbed), after CFG (and after RescaleCFG), as ComfyUI's post-CFG
step does (in the model's output space, which is linear in the clean-latent space ComfyUI adds in for a given
input). s is `scale`, lowered by `adaptive_scale` at high noise: s = max(0, scale - scale x adaptive^4 x
(1000 - t)) at the model's timestep t (the pack's rule; 0 leaves it at `scale`). Like SelfAttentionGuidance it
works with one plain prompt per side (no area, mask, timestep range, ControlNet or IP-Adapter).
"""
from __future__ import annotations

import contextlib
import dataclasses
from dataclasses import dataclass
from typing import Any, Iterator

import torch

from nodeforge.core.errors import NodeError

from .sag import plain_call


@dataclass(frozen=True)
class PerturbedAttention:
    scale: float
    adaptive_scale: float = 0.0


def _identity_attention(attn: Any, hidden_states: torch.Tensor, encoder_hidden_states: Any = None,
                        attention_mask: Any = None, **_: Any) -> torch.Tensor:
    """Self-attention with the identity as its map: the output projection of each token's value."""
    return attn.to_out[1](attn.to_out[0](attn.to_v(hidden_states)))


@contextlib.contextmanager
def perturbed(unet: Any) -> Iterator[None]:
    """The UNet with its middle block's self-attention layers perturbed while inside."""
    layers = [block.attn1 for attention in unet.mid_block.attentions for block in attention.transformer_blocks]
    before = [layer.processor for layer in layers]
    for layer in layers:
        layer.set_processor(_identity_attention)
    try:
        yield
    finally:
        for layer, processor in zip(layers, before):
            layer.set_processor(processor)


def signal_scale(settings: PerturbedAttention, timestep: float) -> float:
    scale = settings.scale
    if settings.adaptive_scale > 0:
        scale -= settings.scale * settings.adaptive_scale ** 4 * (1000 - timestep)
    return max(scale, 0.0)


def guidance_term(guidance: Any, x: torch.Tensor, t: Any, cond: torch.Tensor) -> torch.Tensor | float:
    """s x (cond - the positive prediction with perturbed self-attention); 0 where s is 0."""
    model = guidance.model
    scale = signal_scale(model.perturbed_attention, float(torch.as_tensor(t).reshape(-1)[0]))
    if scale == 0:
        return 0.0
    [(units, embeds, added)] = plain_call(guidance, "PerturbedAttentionGuidance")
    from .conditioning import unet_conditions

    # the positive's rows (DualCFGGuider's: the middle prompt's, which `cond` is there)
    index = 1 if guidance.use_cfg else 0
    rows = slice(index * guidance.batch, (index + 1) * guidance.batch)
    extra_channels = guidance.extra_channels(index)
    inputs = x if extra_channels is None else torch.cat([x, extra_channels.to(x.device, x.dtype)], 1)
    extra = None if added is None else {k: v[rows] for k, v in added.items()}
    with perturbed(model.unet):
        pred = model.unet(inputs.to(model.dtype), t, encoder_hidden_states=embeds[rows],
                          **unet_conditions(extra)).sample.float()
    return scale * (cond - pred)


def run_perturbed_attention_guidance(ctx: Any, unet: Any, scale: float, adaptive_scale: float = 0.0) -> dict[str, Any]:
    if not hasattr(unet, "perturbed_attention") or getattr(unet.unet, "mid_block", None) is None \
            or getattr(unet.unet.mid_block, "attentions", None) is None:
        raise NodeError(f"PerturbedAttentionGuidance works on UNet models (SD 1.x, 2.x, XL); {unet.name} is a "
                        f"{unet.family} model: remove the node", field="unet")
    if scale == 0:
        return {"unet": unet}
    settings = PerturbedAttention(float(scale), float(adaptive_scale))
    return {"unet": dataclasses.replace(unet, perturbed_attention=settings)}
