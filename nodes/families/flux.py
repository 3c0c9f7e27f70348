"""Flux.1 (dev, schnell) as a family: a 12B rectified-flow transformer over packed 16-channel
latents, CLIP-L (pooled) + T5-XXL (the prompt), a distilled guidance input (dev).

Files: a diffusers folder in FluxPipeline's layout (transformer, vae, text_encoder + tokenizer =
CLIP-L, text_encoder_2 + tokenizer_2 = T5; T5 is required), or single files in Black Forest
Labs' layout (nodes/families/flux_file.py: a checkpoint with its text encoders and VAE, or the
transformer alone with CLIP-L, T5 and the VAE as separate files), converted with diffusers'
single-file functions; configs come from `resources/configs/flux/` (schnell told from dev by its
missing guidance input). Text is encoded as FluxPipeline.encode_prompt does
(nodes/families/flux_text.py); sampling is flow matching with Flux's packing, resolution-dependent
shift, guidance and true CFG (nodes/families/flux_sampling.py). The MODEL is the pack's UNetModel
holding the transformer (family "flux", prediction "flow"), so LoRAs, memory accounting, the cache
and UNetDenoise treat it as any other model.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from nodeforge.core.errors import NodeError

from ..loading import _finish, _from_pretrained, _quiet_progress_bars, configs_dir, pick_dtype, vae_dtype
from ..wrappers import LoadedCheckpoint
from .flux_sampling import FLUX_SAMPLING
from .flow import check_pipeline_folder, folder_text_encoders
from .probe import class_name

MODEL_FAMILIES = ("flux",)
TRANSFORMER_CLASS = "FluxTransformer2DModel"
FOLDER_PARTS = (("vae", "the VAE"), ("text_encoder", "CLIP-L"), ("tokenizer", "CLIP-L's tokenizer"),
                ("text_encoder_2", "T5-XXL"), ("tokenizer_2", "T5's tokenizer"))


def claims_folder(path: Path) -> bool:
    return class_name(path / "transformer" / "config.json") == TRANSFORMER_CLASS


def claims_state(keys: Any) -> bool:
    return any(k.startswith(("double_blocks.", "model.diffusion_model.double_blocks.")) for k in keys)


def shipped_configs() -> Path:
    return configs_dir() / "flux"


def scheduler_config(folder: Path | None, schnell: bool) -> dict[str, Any]:
    """The folder's scheduler config, else the shipped one for dev or schnell."""
    own = folder / "scheduler" / "scheduler_config.json" if folder is not None else None
    name = "scheduler_config_schnell.json" if schnell else "scheduler_config.json"
    return json.loads((own if own is not None and own.exists() else shipped_configs() / "scheduler" / name).read_text())


# -- diffusers folders ------------------------------------------------------------------------------------
def load_folder(path: Path, device: str) -> LoadedCheckpoint:
    from diffusers import AutoencoderKL, FluxTransformer2DModel

    _check_folder(path)
    _quiet_progress_bars()
    dtype = pick_dtype(device)
    transformer = _from_pretrained(FluxTransformer2DModel, path, "transformer", torch_dtype=dtype)
    vae = _from_pretrained(AutoencoderKL, path, "vae")
    encoders = _folder_text_encoders(path, dtype)
    sched = scheduler_config(path, not transformer.config.guidance_embeds)
    return assemble(path.name, sched, transformer, vae, encoders, device, dtype)


def _check_folder(path: Path) -> None:
    """A Flux transformer in another pipeline's folder, or a folder without a part, in one line."""
    check_pipeline_folder(path, TRANSFORMER_CLASS, "FluxPipeline", "Flux", FOLDER_PARTS,
                          "Flux cannot run without it, copy the whole FluxPipeline folder (T5-XXL: text_encoder_2 "
                          "and tokenizer_2 from black-forest-labs/FLUX.1-dev or -schnell)")


def _folder_text_encoders(path: Path, dtype: torch.dtype) -> dict[str, Any]:
    from transformers import AutoTokenizer, CLIPTextModel, CLIPTokenizer, T5EncoderModel

    parts = (("", CLIPTextModel, CLIPTokenizer), ("_2", T5EncoderModel, AutoTokenizer))
    return folder_text_encoders(path, dtype, parts, checked=("tokenizer", "tokenizer_2"))


def assemble(name: str, sched: dict, transformer: Any, vae: Any, encoders: dict[str, Any], device: str,
             dtype: torch.dtype) -> LoadedCheckpoint:
    """The MODEL, CLIP and VAE fields of a Flux model from its loaded parts."""
    te, te2 = encoders["text_encoder"], encoders["text_encoder_2"]
    _finish([transformer, te, te2], device, dtype)
    _finish([vae], device, vae_dtype(device, bool(getattr(vae.config, "force_upcast", False))))
    factor = 2 ** (len(vae.config.block_out_channels) - 1)
    return LoadedCheckpoint(
        dict(unet=transformer, scheduler_config=dict(sched), prediction_type="flow",
             latent_channels=transformer.config.in_channels // 4, vae_factor=factor, family="flux", name=name,
             sampling_behaviour=FLUX_SAMPLING),
        dict(tokenizer=encoders["tokenizer"], text_encoder=te, family="flux", tokenizer_2=encoders["tokenizer_2"],
             text_encoder_2=te2, context_width=int(transformer.config.joint_attention_dim)),
        vae_fields(vae, factor))


def vae_fields(vae: Any, factor: int) -> dict[str, Any]:
    return dict(vae=vae, scaling_factor=float(vae.config.scaling_factor),
                shift_factor=float(getattr(vae.config, "shift_factor", None) or 0.0), factor=factor,
                latent_channels=vae.config.latent_channels)


# -- single files -------------------------------------------------------------------------------------------
def load_file(path: Path, device: str, state: dict, metadata: dict) -> LoadedCheckpoint:
    from .flux_file import load_flux_file

    return load_flux_file(path, device, state)


# -- LoRAs ------------------------------------------------------------------------------------------------------
def lora_state(state: dict[str, torch.Tensor], source: str) -> dict[str, torch.Tensor]:
    """A Flux LoRA in diffusers' names, as FluxPipeline.load_lora_weights reads it: kohya/ComfyUI
    (`lora_unet_double_blocks_0_img_attn_qkv`, `diffusion_model.` names: fused qkv split by
    diffusers' converter, alpha folded in), XLabs, BFL Control LoRAs; diffusers' and PEFT's own
    names pass through (nodes/lora.py reads them)."""
    from diffusers.loaders import FluxLoraLoaderMixin

    if any(k.startswith(("base_model.model.", "transformer.", "text_encoder.")) for k in state):
        return state
    try:
        converted, alphas = FluxLoraLoaderMixin.lora_state_dict(dict(state), return_alphas=True)
    except Exception as exc:   # diffusers' converters raise bare KeyError/ValueError on layouts they half know
        line = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
        raise NodeError(f"LoRA {source} is not in a Flux LoRA layout diffusers can read ({line}); use a kohya, "
                        "ComfyUI, XLabs or diffusers/PEFT Flux LoRA", field="lora") from None
    return {**converted, **(alphas or {})}


# -- text -------------------------------------------------------------------------------------------------------
def encode(clip: Any, text: str, embeddings: Any = None, **texts: str) -> dict[str, Any]:
    from .flux_text import encode_flux

    return encode_flux(clip, text, embeddings, texts.get("clip_l"), texts.get("t5xxl"))
