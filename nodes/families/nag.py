"""NormalizedAttentionGuidance: Chen et al. 2025's Normalized Attention Guidance (NAG), as ComfyUI's
NAGuidance applies it to a single-stream transformer, on Z-Image.

Each model call runs the positive and the negative prompt together (also at cfg 1, where the negative
would otherwise be skipped). In every main layer of the transformer (the joint image + text attention),
the attention output of the image tokens, before the output projection, becomes for both prompts
    guided = Z+ x scale - Z- x (scale - 1)                     (extrapolated away from the negative)
    guided x min(r, tau) / r,  r = |guided|_1 / |Z+|_1        (per token: its L1 norm held to tau x Z+'s)
    Z = guided x alpha + Z+ x (1 - alpha)
(Z+: the positive's output, Z-: the negative's). CFG then mixes the two predictions as usual: at cfg 1 the
result is the positive's, now steered away from the negative prompt, which is how distilled models
(Z-Image-Turbo) get a negative prompt. scale 1 (or alpha 0) changes nothing; with BasicGuider (no
negative prompt) there is nothing to guide by and the model runs as it is, as in ComfyUI. Other families
are refused in one line.
"""
from __future__ import annotations

import contextlib
import dataclasses
from dataclasses import dataclass
from typing import Any, Iterator

import torch

from nodeforge.core.errors import NodeError


@dataclass(frozen=True)
class NormalizedAttention:
    scale: float
    alpha: float
    tau: float


def nag_mix(positive: torch.Tensor, negative: torch.Tensor, settings: NormalizedAttention) -> torch.Tensor:
    """The guided attention output for `positive` away from `negative` (tokens on the last axis' rows)."""
    guided = positive * settings.scale - negative * (settings.scale - 1.0)
    norm_positive = positive.abs().sum(-1, keepdim=True).clamp_min(1e-6)
    norm_guided = guided.abs().sum(-1, keepdim=True).clamp_min(1e-6)
    ratio = norm_guided / norm_positive
    guided = guided * (ratio.clamp(max=settings.tau) / ratio)
    return guided * settings.alpha + positive * (1.0 - settings.alpha)


def nag_refusal(family: str | None, model: str = "the model") -> str | None:
    """Why NAG cannot patch a model of `family`: the one wording validate and the run give."""
    if family is None or family == "zimage":
        return None
    return (f"{model} is a {family} model; Normalized Attention Guidance runs on Z-Image models here: remove or "
            "bypass the node, or load a Z-Image model")


def run_normalized_attention_guidance(ctx: Any, unet: Any, nag_scale: float = 5.0, nag_alpha: float = 0.5,
                                      nag_tau: float = 1.5) -> dict[str, Any]:
    refusal = nag_refusal(unet.family, unet.name)
    if refusal:
        raise NodeError(refusal, field="unet")
    settings = NormalizedAttention(float(nag_scale), float(nag_alpha), float(nag_tau))
    return {"unet": dataclasses.replace(unet, normalized_attention=settings)}


class _ProjectionAfterGuidance:
    """The attention module as its processor sees it, with the output projection preceded by NAG."""

    def __init__(self, attention: Any, guide: Any) -> None:
        self._attention = attention
        projection = attention.to_out[0]
        self.to_out = [lambda hidden: projection(guide(hidden))]

    def __getattr__(self, name: str) -> Any:
        return getattr(self._attention, name)


class _GuidedProcessor:
    """A main layer's attention processor with NAG on the image tokens of a [positives, negatives] batch."""

    def __init__(self, inner: Any, settings: NormalizedAttention, batch: int, image_tokens: int) -> None:
        self.inner, self.settings, self.batch, self.image_tokens = inner, settings, batch, image_tokens

    def guide(self, hidden: torch.Tensor) -> torch.Tensor:
        b, n = self.batch, self.image_tokens
        if hidden.shape[0] != 2 * b:
            return hidden
        mixed = nag_mix(hidden[:b, :n].float(), hidden[b:, :n].float(), self.settings).to(hidden.dtype)
        hidden = hidden.clone()
        hidden[:b, :n] = mixed      # both halves go on with the guided output (ComfyUI's img_slice rule)
        hidden[b:, :n] = mixed
        return hidden

    # named as ZSingleStreamAttnProcessor's: diffusers' Attention passes only the keywords a processor names
    def __call__(self, attn: Any, hidden_states: torch.Tensor, encoder_hidden_states: Any = None,
                 attention_mask: Any = None, freqs_cis: Any = None) -> torch.Tensor:
        return self.inner(_ProjectionAfterGuidance(attn, self.guide), hidden_states, encoder_hidden_states,
                          attention_mask, freqs_cis)


@contextlib.contextmanager
def guided_attention(transformer: Any, settings: NormalizedAttention | None, batch: int,
                     image_tokens: int) -> Iterator[None]:
    """The Z-Image transformer with NAG in its main layers while inside (nothing when `settings` is None).
    The call's batch must be the `batch` positives followed by as many negatives; the image's
    `image_tokens` come first in each sequence (diffusers' unified sequence: image, then caption)."""
    if settings is None:
        yield
        return
    layers = [layer.attention for layer in transformer.layers]
    before = [layer.processor for layer in layers]
    for layer, processor in zip(layers, before):
        layer.processor = _GuidedProcessor(processor, settings, batch, image_tokens)
    try:
        yield
    finally:
        for layer, processor in zip(layers, before):
            layer.processor = processor
