"""Run functions of the Flux nodes (declared in nodes/families/specs.py)."""
from __future__ import annotations

import dataclasses
from typing import Any

from nodeforge.core.errors import NodeError

from ..conditioning import entries
from ..embeddings import EmbeddingLookup
from ..wrappers import ClipModel, UNetModel
from .flow import check_clip_family
from .flux_sampling import calculate_shift
from .flux_text import encode_flux


def run_flux_guidance(ctx: Any, conditioning: Any, guidance: float) -> dict[str, Any]:
    """The same prompt with the guidance value Flux dev's transformer reads (ComfyUI's FluxGuidance)."""
    found = entries(conditioning)
    other = next((e.get("family") for e in found if e.get("family") != "flux"), None)
    if other is not None:
        raise NodeError(f"FluxGuidance sets the guidance of a Flux prompt; this one was encoded for a {other} "
                        "model (its guidance is UNetDenoise's cfg)", field="conditioning")
    return {"conditioning": [dict(e, guidance=float(guidance)) for e in found]}


def run_text_encoder_flux(ctx: Any, clip: ClipModel, clip_l: str, t5xxl: str, guidance: float) -> dict[str, Any]:
    """ComfyUI's CLIPTextEncodeFlux: CLIP-L and T5 each read their own prompt; the guidance is set too."""
    check_clip_family(clip, "flux", "TextEncoderFlux", "a Flux model's")
    entry = encode_flux(clip, t5xxl, EmbeddingLookup.for_context(ctx), clip_l=clip_l, t5xxl=t5xxl, guidance=guidance)
    return {"conditioning": [entry]}


def run_model_sampling_flux(ctx: Any, unet: UNetModel, max_shift: float, base_shift: float, width: int,
                            height: int) -> dict[str, Any]:
    """The same model with its shift fixed to the one for width x height (mu between base and max shift)."""
    if unet.family != "flux":
        raise NodeError(f"{unet.name} is not a Flux model (family {unet.family}); ModelSamplingFlux applies to "
                        "Flux, ModelSamplingSD3 to SD3", field="unet")
    patch = 2 * unet.vae_factor   # pixels per packed latent token along each side
    config = dict(unet.scheduler_config, base_shift=float(base_shift), max_shift=float(max_shift),
                  use_dynamic_shifting=True)
    config["fixed_mu"] = calculate_shift((width // patch) * (height // patch), config)
    return {"unet": dataclasses.replace(unet, scheduler_config=config)}
