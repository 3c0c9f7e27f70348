"""Stable Diffusion 3 / 3.5 as a family: MMDiT transformer, rectified flow, CLIP-L + CLIP-G (+ T5).

Files: a diffusers folder in StableDiffusion3Pipeline's layout (transformer, vae, text_encoder,
text_encoder_2, tokenizer, tokenizer_2; text_encoder_3 + tokenizer_3 for T5, optional), or an
original single file (`model.diffusion_model.joint_blocks...`, `first_stage_model.`,
`text_encoders.clip_l/clip_g/t5xxl.transformer.`) converted with diffusers' single-file
functions; its configs come from a `<name>.config/` folder beside it or from the shipped
`resources/configs/sd3/` (shapes read from the file's keys). Text is encoded as
StableDiffusion3Pipeline.encode_prompt does (nodes/families/sd3_text.py); sampling is flow
matching, the denoise loop's phases as `FlowSampling` replaces them (nodes/families/flow.py). The
MODEL wrapper is the pack's UNetModel holding the transformer (family "sd3", prediction "flow",
`sampling_behaviour` FLOW_SAMPLING), so LoRA patching, memory accounting, the engine's cache and
UNetDenoise treat it like any other model.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from nodeforge.core.errors import NodeError

from ..loading import _finish, _from_pretrained, _quiet_progress_bars, configs_dir, pick_dtype, \
    vae_dtype
from ..wrappers import LoadedCheckpoint
from .flow import FLOW_SAMPLING, folder_text_encoders

MODEL_FAMILIES = ("sd3",)
TRANSFORMER_CLASS = "SD3Transformer2DModel"
FILE_PREFIX = "model.diffusion_model."
CLIP_L, CLIP_G, T5 = "text_encoders.clip_l.transformer.", "text_encoders.clip_g.transformer.", \
    "text_encoders.t5xxl.transformer."
VAE_PREFIX = "first_stage_model."


def claims_folder(path: Path) -> bool:
    return (path / "transformer").is_dir()


def claims_state(keys: Any) -> bool:
    return any(k.startswith(("joint_blocks.", FILE_PREFIX + "joint_blocks.")) for k in keys)


def shipped_configs() -> Path:
    return configs_dir() / "sd3"


# -- diffusers folders ------------------------------------------------------------------------------------
def load_folder(path: Path, device: str) -> LoadedCheckpoint:
    from diffusers import AutoencoderKL, SD3Transformer2DModel

    _check_transformer_class(path)
    for part in ("vae", "text_encoder", "tokenizer", "text_encoder_2", "tokenizer_2"):
        if not (path / part).is_dir():
            raise NodeError(f"{path.name} is not a complete SD3 model: it has no '{part}' folder; copy the "
                            f"whole StableDiffusion3Pipeline folder (only text_encoder_3/tokenizer_3, T5, "
                            "may be left out)", field="checkpoint")
    _quiet_progress_bars()
    dtype = pick_dtype(device)
    transformer = _from_pretrained(SD3Transformer2DModel, path, "transformer", torch_dtype=dtype)
    vae = _from_pretrained(AutoencoderKL, path, "vae")
    encoders = _folder_text_encoders(path, dtype)
    sched_file = path / "scheduler" / "scheduler_config.json"
    sched = json.loads((sched_file if sched_file.exists() else
                        shipped_configs() / "scheduler" / "scheduler_config.json").read_text())
    return assemble(path.name, sched, transformer, vae, encoders, device, dtype)


def _check_transformer_class(path: Path) -> None:
    config = path / "transformer" / "config.json"
    try:
        found = json.loads(config.read_text()).get("_class_name")
    except (OSError, ValueError):
        raise NodeError(f"{path.name}/transformer/config.json is missing or unreadable; copy the model's "
                        "transformer folder again", field="checkpoint") from None
    if found != TRANSFORMER_CLASS:
        raise NodeError(f"{path.name}/transformer is a {found}, not an SD3 transformer ({TRANSFORMER_CLASS}); "
                        "only SD3/SD3.5 transformer folders are supported so far", field="checkpoint")


def _folder_text_encoders(path: Path, dtype: torch.dtype) -> dict[str, Any]:
    from transformers import AutoTokenizer, CLIPTextModelWithProjection, CLIPTokenizer, T5EncoderModel

    parts = [("", CLIPTextModelWithProjection, CLIPTokenizer), ("_2", CLIPTextModelWithProjection, CLIPTokenizer)]
    if (path / "text_encoder_3").is_dir():
        if not (path / "tokenizer_3").is_dir():
            raise NodeError(f"{path.name} has text_encoder_3 (T5) but no tokenizer_3 folder; copy it from the "
                            "model, or remove text_encoder_3 to run without T5", field="checkpoint")
        parts.append(("_3", T5EncoderModel, AutoTokenizer))
    return folder_text_encoders(path, dtype, tuple(parts), checked=("tokenizer", "tokenizer_2"))


def assemble(name: str, sched: dict, transformer: Any, vae: Any, encoders: dict[str, Any], device: str,
             dtype: torch.dtype) -> LoadedCheckpoint:
    """The MODEL, CLIP and VAE fields of an SD3 model from its loaded parts."""
    te, te2, te3 = (encoders.get(k) for k in ("text_encoder", "text_encoder_2", "text_encoder_3"))
    _finish([transformer, te, te2, te3], device, dtype)
    _finish([vae], device, vae_dtype(device, bool(getattr(vae.config, "force_upcast", False))))
    factor = 2 ** (len(vae.config.block_out_channels) - 1)
    sched = dict(sched)
    sched.setdefault("shift", 1.0)
    return LoadedCheckpoint(
        dict(unet=transformer, scheduler_config=sched, prediction_type="flow",
             latent_channels=transformer.config.out_channels, vae_factor=factor, family="sd3", name=name,
             sampling_behaviour=FLOW_SAMPLING),
        dict(tokenizer=encoders.get("tokenizer"), text_encoder=te, family="sd3", tokenizer_2=encoders.get("tokenizer_2"),
             text_encoder_2=te2, tokenizer_3=encoders.get("tokenizer_3"), text_encoder_3=te3,
             context_width=int(transformer.config.joint_attention_dim)),
        dict(vae=vae, scaling_factor=float(vae.config.scaling_factor),
             shift_factor=float(getattr(vae.config, "shift_factor", None) or 0.0), factor=factor,
             latent_channels=vae.config.latent_channels))


# -- single files -------------------------------------------------------------------------------------------
def load_file(path: Path, device: str, state: dict, metadata: dict) -> LoadedCheckpoint:
    from .sd3_file import load_sd3_file

    return load_sd3_file(path, device, state)


# -- LoRAs ---------------------------------------------------------------------------------------------------
def lora_entries(entries: dict[str, dict[str, Any]], transformer: Any, source: str) -> dict[str, dict[str, Any]]:
    """A LoRA's transformer entries on diffusers' module names (MMDiT-named files renamed and split)."""
    from .sd3_lora import lora_entries as renamed

    return renamed(entries, transformer, source)


# -- text -------------------------------------------------------------------------------------------------------
def encode(clip: Any, text: str, embeddings: Any = None, **texts: str) -> dict[str, Any]:
    from .sd3_text import encode_sd3

    return encode_sd3(clip, text, embeddings, texts.get("clip_l"), texts.get("clip_g"), texts.get("t5xxl"))

