"""TextEncoder: prompts of any length, with emphasis weights, into CONDITIONING.

Long prompts are split into windows of 75 tokens, each encoded as BOS + tokens + EOS + padding
(77) and concatenated along the sequence axis, as A1111 and ComfyUI do; `BREAK` starts a new
window (A1111). Weights scale token
embeddings and then the mean is restored (A1111's method). CONDITIONING is a list of entries
(nodes/conditioning.py); TextEncoder gives one: {"embeds": [1, T, D] float tensor, "pooled": [1, P]
tensor or None (SDXL), "family": str}.
"""
from __future__ import annotations

import dataclasses
import re
from typing import Any

import torch

from nodeforge.core.errors import NodeError

from .prompt_syntax import parse_weights
from .wrappers import ClipModel

WINDOW = 75


def tokenize_weighted(tokenizer: Any, text: str) -> tuple[list[int], list[float]]:
    """Token ids (without BOS/EOS) and one weight per token."""
    from transformers.utils import logging as transformers_logging

    ids: list[int] = []
    weights: list[float] = []
    # Long prompts are expected here (they are windowed below): silence the "longer than 77" warning.
    level = transformers_logging.get_verbosity()
    transformers_logging.set_verbosity_error()
    try:
        for fragment, weight in parse_weights(text):
            if not fragment.strip():
                continue
            tokens = tokenizer(fragment, add_special_tokens=False, truncation=False)["input_ids"]
            ids.extend(tokens)
            weights.extend([weight] * len(tokens))
    finally:
        transformers_logging.set_verbosity(level)
    return ids, weights


def chunk_tokens(tokenizer: Any, ids: list[int], weights: list[float]) -> list[tuple[list[int], list[float]]]:
    """Windows of 75 tokens framed as BOS + tokens + EOS + padding = 77 (at least one window)."""
    bos, eos = tokenizer.bos_token_id, tokenizer.eos_token_id
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos
    chunks = []
    for start in range(0, max(len(ids), 1), WINDOW):
        part, part_w = ids[start:start + WINDOW], weights[start:start + WINDOW]
        fill = WINDOW - len(part)
        chunks.append(([bos] + part + [eos] + [pad] * fill, [1.0] + part_w + [1.0] + [1.0] * fill))
    return chunks


def prompt_chunks(tokenizer: Any, text: str) -> list[tuple[list[int], list[float]]]:
    """The windows of a prompt; A1111's `BREAK` (a whole upper-case word) starts a new window."""
    chunks = []
    for segment in re.split(r"\bBREAK\b", text):
        ids, weights = tokenize_weighted(tokenizer, segment)
        if ids:
            chunks.extend(chunk_tokens(tokenizer, ids, weights))
    return chunks or chunk_tokens(tokenizer, [], [])


def _hidden(encoder: Any, ids: list[int], layer: int | None, norm: bool) -> tuple[torch.Tensor, Any]:
    """The encoder's output for one window: the last hidden state (layer None), or the hidden state
    after layer `layer` (-1 = the last), through the final layer norm when `norm` (SD 1.x/2.x)."""
    device = next(encoder.parameters()).device
    out = encoder(torch.tensor([ids], device=device), output_hidden_states=layer is not None)
    if layer is None:
        return out.last_hidden_state, out
    hidden = out.hidden_states[layer]
    if norm:
        hidden = final_layer_norm(encoder)(hidden)
    return hidden, out


def final_layer_norm(encoder: Any) -> Any:
    # transformers 5 flattened CLIPTextModel (no .text_model); CLIPTextModelWithProjection keeps it.
    return getattr(encoder, "text_model", encoder).final_layer_norm


def _encode_chunk(encoder: Any, ids: list[int], weights: list[float], layer: int | None,
                  norm: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
    device = next(encoder.parameters()).device
    hidden, out = _hidden(encoder, ids, layer, norm)
    hidden = hidden.float()
    pooled = getattr(out, "text_embeds", None)
    w = torch.tensor(weights, device=device, dtype=hidden.dtype)
    if not torch.all(w == 1):
        original_mean = hidden.mean()
        hidden = hidden * w[None, :, None]
        new_mean = hidden.mean()
        if new_mean.abs() > 1e-6:   # a mean of ~0 (untrained layer norm) cannot be restored by scaling
            hidden = hidden * (original_mean / new_mean)
    return hidden, (pooled.float() if pooled is not None else None)


def encode(clip: ClipModel, text: str) -> dict[str, Any]:
    """CONDITIONING for `text` (empty text gives the model's unconditional embedding)."""
    with torch.inference_mode(), clip.patched():
        chunks = prompt_chunks(clip.tokenizer, text)
        sdxl = clip.text_encoder_2 is not None
        layer = encoder_layer(clip)
        embeds = torch.cat([_encode_chunk(clip.text_encoder, i, w, layer, not sdxl)[0] for i, w in chunks], dim=1)
        pooled = None
        if sdxl:
            chunks2 = same_count(clip.tokenizer_2, prompt_chunks(clip.tokenizer_2, text), len(chunks))
            parts = [_encode_chunk(clip.text_encoder_2, i, w, layer) for i, w in chunks2]
            embeds = torch.cat([embeds, torch.cat([p[0] for p in parts], dim=1)], dim=-1)
            pooled = parts[0][1]
    return {"embeds": embeds.cpu(), "pooled": pooled.cpu() if pooled is not None else None, "family": clip.family}


def encoder_layer(clip: ClipModel) -> int | None:
    """Which hidden state the prompt is read from: SD 1.x/2.x the last (None) unless clip skip says
    otherwise; SDXL the penultimate of both encoders by default, or the one CLIPSetLastLayer chose."""
    if clip.stop_at_layer is None:
        return -2 if clip.text_encoder_2 is not None else None
    if clip.stop_at_layer == -1 and clip.text_encoder_2 is None:
        return None   # the last layer through the final norm is exactly last_hidden_state
    return clip.stop_at_layer


def same_count(tokenizer: Any, chunks: list, count: int) -> list:
    """The second encoder's windows, as many as the first's so the two concatenate."""
    empty = chunk_tokens(tokenizer, [], [])[0]
    return (chunks + [empty] * count)[:count]


def run_text_encoder(ctx: Any, clip: ClipModel, text: str) -> dict[str, Any]:
    return {"conditioning": [encode(clip, text)]}


def run_clip_set_last_layer(ctx: Any, clip: ClipModel, stop_at_layer: int) -> dict[str, Any]:
    """Clip skip as ComfyUI defines it: -1 reads the last layer, -2 the one before, and so on."""
    layers = min(enc.config.num_hidden_layers for enc in (clip.text_encoder, clip.text_encoder_2) if enc is not None)
    if -stop_at_layer > layers:
        raise NodeError(f"this text encoder has {layers} layers: choose a value from -1 to -{layers}",
                        field="stop_at_layer")
    return {"clip": dataclasses.replace(clip, stop_at_layer=stop_at_layer)}
