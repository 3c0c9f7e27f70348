"""Run functions of the SD3 nodes (declared in nodes/families/specs.py)."""
from __future__ import annotations

import dataclasses
from typing import Any

from nodeforge.core.errors import NodeError

from ..embeddings import EmbeddingLookup
from ..wrappers import ClipModel, UNetModel
from .flow import check_clip_family
from .sd3_text import encode_sd3


def run_text_encoder_sd3(ctx: Any, clip: ClipModel, clip_l: str, clip_g: str, t5xxl: str) -> dict[str, Any]:
    """ComfyUI's CLIPTextEncodeSD3: each encoder reads its own prompt."""
    check_clip_family(clip, "sd3", "TextEncoderSD3", "an SD3 model's")
    entry = encode_sd3(clip, clip_l, EmbeddingLookup.for_context(ctx), clip_l=clip_l, clip_g=clip_g, t5xxl=t5xxl)
    return {"conditioning": [entry]}


def run_text_encoder_loader_sd3(ctx: Any, clip_l: str, clip_g: str, t5xxl: str) -> dict[str, Any]:
    """ComfyUI's TripleCLIPLoader: CLIP-L, CLIP-G and T5 from their own files."""
    from pathlib import Path

    from nodeforge.core.types import FileKind

    from .sd3_clips import load_sd3_clips

    names = {"clip_l": clip_l, "clip_g": clip_g, "t5xxl": t5xxl}
    paths = {param: Path(ctx.resolve_file(FileKind.TEXT_ENCODER, name)) for param, name in names.items()}
    return {"clip": load_sd3_clips(paths, ctx.device)}


def run_model_sampling_sd3(ctx: Any, unet: UNetModel, shift: float) -> dict[str, Any]:
    """The same model with another sigma shift (its scheduler config's `shift`)."""
    if unet.prediction_type != "flow":
        raise NodeError(f"{unet.name} is not a flow model (it predicts {unet.prediction_type}); ModelSamplingSD3 "
                        "applies to SD3/SD3.5 models", field="unet")
    if unet.family == "flux":
        from .specs import FLUX_SHIFT

        raise NodeError(f"{unet.name} {FLUX_SHIFT}", field="unet")
    if shift <= 0:
        raise NodeError("shift must be above 0 (1.0: no shift; SD3: 3.0)", field="shift")
    config = dict(unet.scheduler_config, shift=float(shift))
    if unet.family == "qwenimage":   # a fixed shift in place of the resolution-dependent one (ComfyUI's)
        config.update(use_dynamic_shifting=False, shift_terminal=None)
    return {"unet": dataclasses.replace(unet, scheduler_config=config)}
