"""Flux text encoding, as FluxPipeline.encode_prompt does it.

T5-XXL reads the prompt padded to 512 tokens and gives the prompt the transformer attends to
(its last hidden state); CLIP-L reads it padded to 77 and gives only its pooled output (the
final-layer-normed end-of-text token), the pooled vector. `(word:1.2)` weights scale T5's token
embeddings with the mean restored, as for SD3's T5; `embedding:NAME` works in CLIP-L; CLIP-L and
T5 may each read their own text (TextEncoderFlux, ComfyUI's CLIPTextEncodeFlux), which also sets
the guidance value. A prompt of up to 511 T5 tokens gives exactly diffusers' embeddings.
"""
from __future__ import annotations

from typing import Any

import torch

from ..placement import device_of
from ..prompt import _encode_chunk, embedding_width, prompt_chunks, substituted
from .sd3_text import t5_tokens

T5_LENGTH = 512   # FluxPipeline's default max_sequence_length (schnell works with 256 too)


def encode_flux(clip: Any, text: str, embeddings: Any = None, clip_l: str | None = None,
                t5xxl: str | None = None, guidance: float | None = None) -> dict[str, Any]:
    """One CONDITIONING entry: {"embeds": [1, 512, width], "pooled": [1, 768], "family": "flux"}
    (and "guidance" when given)."""
    with torch.inference_mode(), clip.patched():
        ids, _, rows = prompt_chunks(clip.tokenizer, text if clip_l is None else clip_l, embeddings,
                                     embedding_width(clip.text_encoder), "CLIP-L text encoder")[0]
        encoder = clip.text_encoder
        with substituted(encoder, rows or {}):
            out = encoder(torch.tensor([ids], device=device_of(encoder)))
        pooled = out.pooler_output.float()
        t5_ids, weights = t5_tokens(clip.tokenizer_2, text if t5xxl is None else t5xxl, T5_LENGTH)
        embeds, _ = _encode_chunk(clip.text_encoder_2, t5_ids, weights, None)
    entry = {"embeds": embeds.cpu(), "pooled": pooled.cpu(), "family": "flux"}
    if guidance is not None:
        entry["guidance"] = float(guidance)
    return entry
