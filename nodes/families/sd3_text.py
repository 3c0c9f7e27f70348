"""SD3 text encoding, as StableDiffusion3Pipeline.encode_prompt does it.

CLIP-L and CLIP-G each read the prompt padded to 77 tokens (BOS + tokens + EOS + the tokenizer's
pad; fewer where the tokenizer's model_max_length says so, as the pipeline pads) and give their penultimate hidden states (clip skip moves that layer, as CLIPSetLastLayer)
and their pooled projections; the two hidden states are concatenated (768 + 1280 wide), padded
with zeros to the transformer's width (joint_attention_dim, 4096) and followed by T5-XXL's
last hidden state over the prompt padded to 256 tokens (zeros in its place when the model has no
T5). The pooled vector is CLIP-L's and CLIP-G's side by side (2048).

Beyond diffusers, as the pack's TextEncoder does for every family: prompts longer than 75 CLIP
tokens are encoded in windows of 77 that are concatenated (diffusers cuts them off), `(word:1.2)`
weights scale the CLIP and T5 token embeddings with the mean restored, `embedding:NAME` works in
the CLIP encoders, and each encoder may read its own prompt (TextEncoderSD3, ComfyUI's
CLIPTextEncodeSD3). A plain prompt of up to 75 tokens gives exactly diffusers' embeddings.
"""
from __future__ import annotations

import re
from typing import Any

import torch
import torch.nn.functional as F

from nodeforge.core.prompt_syntax import parse_weights

from ..prompt import _encode_chunk, embedding_width, encoder_layer, prompt_chunks, same_count

T5_LENGTH = 256   # diffusers' default max_sequence_length for SD3


def encode_sd3(clip: Any, text: str, embeddings: Any = None, clip_l: str | None = None, clip_g: str | None = None,
               t5xxl: str | None = None) -> dict[str, Any]:
    """One CONDITIONING entry: {"embeds": [1, 77k + 256, width], "pooled": [1, 2048], "family": "sd3"}."""
    if clip.text_encoder is None and clip.text_encoder_2 is None:
        from nodeforge.core.errors import NodeError

        raise NodeError(clip.missing or "this CLIP holds no text encoders; load them with TextEncoderLoaderSD3",
                        field="clip")
    with torch.inference_mode(), clip.patched():
        layer = encoder_layer(clip)
        chunks_l = prompt_chunks(clip.tokenizer, text if clip_l is None else clip_l, embeddings,
                                 embedding_width(clip.text_encoder), "CLIP-L text encoder")
        chunks_g = prompt_chunks(clip.tokenizer_2, text if clip_g is None else clip_g, embeddings,
                                 embedding_width(clip.text_encoder_2), "CLIP-G text encoder")
        count = max(len(chunks_l), len(chunks_g))
        chunks_l, chunks_g = same_count(clip.tokenizer, chunks_l, count), same_count(clip.tokenizer_2, chunks_g, count)
        parts_l = [_encode_chunk(clip.text_encoder, i, w, layer, rows=r) for i, w, r in chunks_l]
        parts_g = [_encode_chunk(clip.text_encoder_2, i, w, layer, rows=r) for i, w, r in chunks_g]
        hidden = torch.cat([torch.cat([a[0], b[0]], dim=-1) for a, b in zip(parts_l, parts_g)], dim=1)
        width = clip.context_width or hidden.shape[-1]
        hidden = F.pad(hidden, (0, width - hidden.shape[-1]))
        t5 = encode_t5(clip, text if t5xxl is None else t5xxl, width)
        pooled = torch.cat([parts_l[0][1], parts_g[0][1]], dim=-1)
    return {"embeds": torch.cat([hidden, t5.to(hidden.device)], dim=1).cpu(), "pooled": pooled.cpu(), "family": "sd3"}


def encode_t5(clip: Any, text: str, width: int) -> torch.Tensor:
    """T5-XXL's last hidden state over the prompt (weights applied, 256 tokens), or zeros without T5."""
    if clip.text_encoder_3 is None:
        return torch.zeros(1, T5_LENGTH, width)
    ids, weights = t5_tokens(clip.tokenizer_3, text)
    hidden, _ = _encode_chunk(clip.text_encoder_3, ids, weights, None)
    if hidden.shape[-1] != width:
        raise ValueError(f"T5 gives {hidden.shape[-1]} values per token but the transformer reads {width}")
    return hidden


def t5_tokens(tokenizer: Any, text: str, length: int = T5_LENGTH) -> tuple[list[int], list[float]]:
    """The prompt's T5 ids truncated to length - 1, then EOS, then padding (diffusers' max_length
    padding with truncation), one weight per id from the prompt's (word:1.2) syntax."""
    ids: list[int] = []
    weights: list[float] = []
    for fragment, weight in parse_weights(re.sub(r"\s*\bBREAK\b\s*", " ", text)):   # CLIP's window break
        if fragment.strip():
            found = tokenizer(fragment, add_special_tokens=False)["input_ids"]
            ids.extend(found)
            weights.extend([weight] * len(found))
    ids, weights = ids[:length - 1] + [tokenizer.eos_token_id], weights[:length - 1] + [1.0]
    fill = length - len(ids)
    return ids + [tokenizer.pad_token_id] * fill, weights + [1.0] * fill
