"""TextEncoder: prompts of any length, with emphasis weights, into CONDITIONING.

Long prompts are split into windows of 75 tokens, each encoded as BOS + tokens + EOS + padding
(77) and concatenated along the sequence axis, as A1111 and ComfyUI do; `BREAK` starts a new
window (A1111). Weights scale token
embeddings and then the mean is restored (A1111's method). Textual-inversion embeddings
(`embedding:NAME`, or an embedding's file stem as a bare word) take one position per vector, kept
within one window, their vectors substituted for the token embeddings there (nodes/embeddings.py). CONDITIONING is a list of entries
(nodes/conditioning.py); TextEncoder gives one: {"embeds": [1, T, D] float tensor, "pooled": [1, P]
tensor or None (SDXL), "family": str}. An SDXL refiner's CLIP (bigG alone) gives bigG's penultimate
hidden states and its pooled projection, as diffusers' StableDiffusionXLImg2ImgPipeline.
"""
from __future__ import annotations

import contextlib
import dataclasses
import re
import threading
from typing import Any, Iterator

import torch

from nodeforge.core.errors import NodeError
from nodeforge.core.prompt_syntax import parse_weights, split_embeddings
from nodeforge.core.spec import check_prompt_length

from .embeddings import EmbeddingLookup
from .families.unet import MODEL_FAMILIES as UNET_FAMILIES
from .wrappers import ClipModel

WINDOW = 75


def window_of(tokenizer: Any) -> int:
    """Tokens per window: 75, or fewer where the tokenizer pads to less than 77 (its
    model_max_length, which diffusers' pipelines pad to: a small model trained on short contexts)."""
    length = getattr(tokenizer, "model_max_length", None)
    return min(WINDOW, length - 2) if isinstance(length, int) and length > 2 else WINDOW


@dataclasses.dataclass
class Tokens:
    """A prompt's tokens without BOS/EOS: ids, one weight each, and for embedding positions the
    vector to use there (`groups` numbers each embedding's positions so windows keep them whole)."""

    ids: list[int] = dataclasses.field(default_factory=list)
    weights: list[float] = dataclasses.field(default_factory=list)
    vectors: list[torch.Tensor | None] = dataclasses.field(default_factory=list)
    groups: list[int] = dataclasses.field(default_factory=list)


def tokenize_prompt(tokenizer: Any, text: str, embeddings: EmbeddingLookup | None = None, width: int = 0,
                    what: str = "text encoder") -> Tokens:
    """The tokens of `text`; `embedding:NAME` (and A1111's bare names) become one position per vector."""
    out = Tokens()
    with _quiet(tokenizer):
        for fragment, weight in parse_weights(text):
            if not fragment.strip():
                continue
            pieces = split_embeddings(fragment, embeddings.bare_words) if embeddings else [(fragment, False)]
            for piece, is_embedding in pieces:
                if is_embedding and embeddings is not None:
                    rows = embeddings.get(piece).for_width(width, what)
                    window = window_of(tokenizer)
                    if len(rows) > window:   # it would be cut across two windows, each read on its own
                        raise NodeError(f"embedding {piece!r} has {len(rows)} vectors, more than the {window} a "
                                        f"prompt window of the {what} holds; it cannot be used whole (train or "
                                        f"pick one with at most {window})", field="text")
                    group = max(out.groups, default=0) + 1
                    # a placeholder id (BOS: never the EOS the pooled output is read at); the vector replaces it
                    out.ids.extend([tokenizer.bos_token_id] * len(rows))
                    out.vectors.extend(rows)
                    out.groups.extend([group] * len(rows))
                    out.weights.extend([weight] * len(rows))
                elif piece.strip():
                    tokens = tokenizer(piece, add_special_tokens=False, truncation=False)["input_ids"]
                    out.ids.extend(tokens)
                    out.vectors.extend([None] * len(tokens))
                    out.groups.extend([0] * len(tokens))
                    out.weights.extend([weight] * len(tokens))
    return out


@contextlib.contextmanager
def _quiet(tokenizer: Any) -> Iterator[None]:
    """Long prompts are expected (they are windowed): silence transformers' "longer than 77" warning
    while a transformers tokenizer runs (a lite tokenizer, nodes/lite, has none)."""
    if not type(tokenizer).__module__.startswith("transformers"):
        yield
        return
    from transformers.utils import logging as transformers_logging

    level = transformers_logging.get_verbosity()
    transformers_logging.set_verbosity_error()
    try:
        yield
    finally:
        transformers_logging.set_verbosity(level)


def tokenize_weighted(tokenizer: Any, text: str) -> tuple[list[int], list[float]]:
    """Token ids (without BOS/EOS) and one weight per token."""
    tokens = tokenize_prompt(tokenizer, text)
    return tokens.ids, tokens.weights


Chunk = tuple[list[int], list[float], dict[int, torch.Tensor]]   # 77 ids, weights, embedding vectors by position


def chunk_tokens(tokenizer: Any, ids: list[int], weights: list[float], tokens: Tokens | None = None) -> list[Chunk]:
    """Windows of 75 tokens framed as BOS + tokens + EOS + padding = 77 (at least one window; shorter
    where the tokenizer pads to less, see window_of). An embedding that would straddle two windows
    moves whole to the next one (as ComfyUI keeps words)."""
    size = window_of(tokenizer)
    bos, eos = tokenizer.bos_token_id, tokenizer.eos_token_id
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos
    groups = tokens.groups if tokens is not None else [0] * len(ids)
    vectors = tokens.vectors if tokens is not None else [None] * len(ids)
    windows: list[list[int]] = []
    current: list[int] = []
    i = 0
    while i < len(ids):
        j = i + 1
        while groups[i] and j < len(ids) and groups[j] == groups[i]:
            j += 1
        if current and len(current) + (j - i) > size >= j - i:
            windows.append(current)
            current = []
        for k in range(i, j):
            current.append(k)
            if len(current) == size:
                windows.append(current)
                current = []
        i = j
    if current or not windows:
        windows.append(current)
    chunks = []
    for window in windows:
        fill = size - len(window)
        rows = {1 + n: vectors[k] for n, k in enumerate(window) if vectors[k] is not None}
        chunks.append(([bos] + [ids[k] for k in window] + [eos] + [pad] * fill,
                       [1.0] + [weights[k] for k in window] + [1.0] + [1.0] * fill, rows))
    return chunks


def prompt_chunks(tokenizer: Any, text: str, embeddings: EmbeddingLookup | None = None, width: int = 0,
                  what: str = "text encoder") -> list[Chunk]:
    """The windows of a prompt; A1111's `BREAK` (a whole upper-case word) starts a new window."""
    try:
        check_prompt_length(text)       # text from a wire was not checked at validate
    except ValueError as exc:
        raise NodeError(str(exc), field="text") from None
    chunks = []
    for segment in re.split(r"\bBREAK\b", text):
        tokens = tokenize_prompt(tokenizer, segment, embeddings, width, what)
        if tokens.ids:
            chunks.extend(chunk_tokens(tokenizer, tokens.ids, tokens.weights, tokens))
    return chunks or chunk_tokens(tokenizer, [], [])


@contextlib.contextmanager
def substituted(encoder: Any, rows: dict[int, torch.Tensor]) -> Iterator[None]:
    """While encoding one window in this thread, the token embeddings at `rows`' positions are the
    embedding's vectors. A forward hook, removed on exit: the shared encoder's weights and
    vocabulary stay as they are, and other threads' calls are not affected."""
    if not rows:
        yield
        return
    thread = threading.get_ident()
    positions = torch.tensor(list(rows))
    values = torch.stack(list(rows.values()))

    def replace(module: Any, args: Any, output: torch.Tensor) -> torch.Tensor | None:
        if threading.get_ident() != thread:
            return None
        output = output.clone()
        output[:, positions.to(output.device)] = values.to(output.device, output.dtype)
        return output

    handle = encoder.get_input_embeddings().register_forward_hook(replace)
    try:
        yield
    finally:
        handle.remove()


def embedding_width(encoder: Any) -> int:
    return encoder.get_input_embeddings().weight.shape[1]


def _hidden(encoder: Any, ids: list[int], layer: int | None, norm: bool) -> tuple[torch.Tensor, Any]:
    """The encoder's output for one window: the last hidden state (layer None), or the hidden state
    after layer `layer` (-1 = the last), through the final layer norm when `norm` (SD 1.x/2.x)."""
    from .placement import device_of

    device = device_of(encoder)
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
                  norm: bool = False, rows: dict[int, torch.Tensor] | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
    from .placement import device_of

    device = device_of(encoder)
    with substituted(encoder, rows or {}):
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


def encode(clip: ClipModel, text: str, embeddings: EmbeddingLookup | None = None,
           text_l: str | None = None) -> dict[str, Any]:
    """One CONDITIONING entry for `text` (empty text gives the model's unconditional embedding);
    `embeddings` finds the textual-inversion embeddings the prompt names. With `text_l` (ComfyUI's
    CLIPTextEncodeSDXL) an SDXL base's CLIP-L reads `text_l` and bigG `text`, the one with fewer
    windows padded with empty ones; a CLIP without bigG reads `text_l`, a refiner's `text`."""
    if clip.family not in UNET_FAMILIES:
        raise NodeError(f"this node encodes for the UNet generation, not for a {clip.family} model; use TextEncoder",
                        field="clip")
    with torch.inference_mode(), clip.patched():
        sdxl = clip.text_encoder_2 is not None
        layer = encoder_layer(clip)
        embeds = pooled = None
        if clip.text_encoder is not None:   # None for an SDXL refiner: its bigG encoder gives both
            first = text if text_l is None else text_l
            chunks = prompt_chunks(clip.tokenizer, first, embeddings, embedding_width(clip.text_encoder),
                                   "text encoder")
            if sdxl and text_l is not None:   # each encoder its own prompt: pad the shorter (ComfyUI's)
                chunks2 = prompt_chunks(clip.tokenizer_2, text, embeddings, embedding_width(clip.text_encoder_2),
                                        "second text encoder")
                chunks = same_count(clip.tokenizer, chunks, max(len(chunks), len(chunks2)))
            embeds = torch.cat([_encode_chunk(clip.text_encoder, i, w, layer, not sdxl, r)[0] for i, w, r in chunks],
                               dim=1)
        if sdxl:
            chunks2 = prompt_chunks(clip.tokenizer_2, text, embeddings, embedding_width(clip.text_encoder_2),
                                    "second text encoder" if embeds is not None else "text encoder")
            if embeds is not None:
                chunks2 = same_count(clip.tokenizer_2, chunks2, len(chunks))
            parts = [_encode_chunk(clip.text_encoder_2, i, w, layer, rows=r) for i, w, r in chunks2]
            second = torch.cat([p[0] for p in parts], dim=1)
            embeds = second if embeds is None else torch.cat([embeds, second], dim=-1)
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
    from .families import of_model   # the CLIP's family encodes (SD3: CLIP-L + CLIP-G + T5)

    return {"conditioning": [of_model(clip.family).encode(clip, text, EmbeddingLookup.for_context(ctx))]}


def run_text_encoder_sdxl(ctx: Any, clip: ClipModel, text_g: str, text_l: str, width: int, height: int,
                          crop_w: int, crop_h: int, target_width: int, target_height: int) -> dict[str, Any]:
    """ComfyUI's CLIPTextEncodeSDXL: text_g for bigG, text_l for CLIP-L, and the micro-conditioning
    an SDXL base UNet takes (the size the image is taken to have, the crop's top-left corner, the
    target size), in place of the image size, no crop and the image size."""
    entry = encode(clip, text_g, EmbeddingLookup.for_context(ctx), text_l=text_l)
    entry.update(size=(int(height), int(width)), crop=(int(crop_h), int(crop_w)),
                 target_size=(int(target_height), int(target_width)))
    return {"conditioning": [entry]}


def run_text_encoder_sdxl_refiner(ctx: Any, clip: ClipModel, text: str, aesthetic_score: float, width: int,
                                  height: int) -> dict[str, Any]:
    """ComfyUI's CLIPTextEncodeSDXLRefiner: the prompt with a refiner's micro-conditioning (size and
    aesthetic score)."""
    entry = encode(clip, text, EmbeddingLookup.for_context(ctx))
    entry.update(size=(int(height), int(width)), aesthetic_score=float(aesthetic_score))
    return {"conditioning": [entry]}


def run_clip_set_last_layer(ctx: Any, clip: ClipModel, stop_at_layer: int) -> dict[str, Any]:
    """Clip skip as ComfyUI defines it: -1 reads the last layer, -2 the one before, and so on."""
    layers = min(enc.config.num_hidden_layers for enc in (clip.text_encoder, clip.text_encoder_2) if enc is not None)
    if -stop_at_layer > layers:
        raise NodeError(f"this text encoder has {layers} layers: choose a value from -1 to -{layers}",
                        field="stop_at_layer")
    return {"clip": dataclasses.replace(clip, stop_at_layer=stop_at_layer)}
