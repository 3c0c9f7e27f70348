"""TextEncoder: prompts of any length, with emphasis weights, into CONDITIONING.

Long prompts are split into windows of 75 tokens, each encoded as BOS + tokens + EOS + padding
(77) and concatenated along the sequence axis, as A1111 and ComfyUI do. Weights scale token
embeddings and then the mean is restored (A1111's method). CONDITIONING is a dict:
{"embeds": [1, T, D] float tensor, "pooled": [1, P] tensor or None (SDXL), "family": str}.
"""
from __future__ import annotations

from typing import Any

import torch

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


def _encode_chunk(encoder: Any, ids: list[int], weights: list[float], penultimate: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
    device = next(encoder.parameters()).device
    out = encoder(torch.tensor([ids], device=device), output_hidden_states=penultimate)
    hidden = out.hidden_states[-2] if penultimate else out.last_hidden_state
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
        ids, weights = tokenize_weighted(clip.tokenizer, text)
        chunks = chunk_tokens(clip.tokenizer, ids, weights)
        sdxl = clip.text_encoder_2 is not None
        embeds = torch.cat([_encode_chunk(clip.text_encoder, i, w, sdxl)[0] for i, w in chunks], dim=1)
        pooled = None
        if sdxl:
            ids2, weights2 = tokenize_weighted(clip.tokenizer_2, text)
            parts = [_encode_chunk(clip.text_encoder_2, i, w, True) for i, w in chunks_for(clip.tokenizer_2, ids2, weights2, len(chunks))]
            embeds = torch.cat([embeds, torch.cat([p[0] for p in parts], dim=1)], dim=-1)
            pooled = parts[0][1]
    return {"embeds": embeds.cpu(), "pooled": pooled.cpu() if pooled is not None else None, "family": clip.family}


def chunks_for(tokenizer: Any, ids: list[int], weights: list[float], count: int) -> list:
    """The second encoder's windows, as many as the first's so the two concatenate."""
    chunks = chunk_tokens(tokenizer, ids, weights)
    while len(chunks) < count:
        chunks.append(chunk_tokens(tokenizer, [], [])[0])
    return chunks[:count]


def run_text_encoder(ctx: Any, clip: ClipModel, text: str) -> dict[str, Any]:
    return {"conditioning": encode(clip, text)}
