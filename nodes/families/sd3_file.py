"""SD3 / SD3.5 single files as users download them (sd3_medium_incl_clips[_t5xxlfp16], sd3.5_large,
sd3.5_medium, sd3.5_large_turbo): the original key layout converted with diffusers' single-file
functions (diffusers.loaders.single_file_utils), offline.

The transformer's shape (layers, width, patch size, qk norm, SD3.5 medium's dual-attention
layers, position-embedding size) is read from the file's keys on top of the shipped
`resources/configs/sd3/transformer` config, so SD3 medium and every SD3.5 size load from one
config set; a `<name>.config/` diffusers-layout folder beside the file replaces the shipped set
(models of other shapes, the tests' tiny models). The CLIP tokenizers are the bundled CLIP BPE;
T5's tokenizer is not bundled (its vocabulary is not in the project): a file with T5 needs a
`tokenizer_3/` in the config folder or beside the file, or google/t5-v1_1-xxl in the Hugging Face cache.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import torch

from nodeforge.core.errors import NodeError

from ..loading import _load_into, _quiet_progress_bars, load_tokenizer, pick_dtype
from .flow import t5_tokenizer
from .sd3 import CLIP_G, CLIP_L, FILE_PREFIX, T5, VAE_PREFIX, assemble, shipped_configs


def load_sd3_file(path: Path, device: str, state: dict[str, torch.Tensor]) -> Any:
    from diffusers import AutoencoderKL, SD3Transformer2DModel
    from diffusers.loaders import single_file_utils as sfu

    _quiet_progress_bars()
    parts = split_parts(path, state)
    beside = path.with_name(path.stem + ".config")
    cfg = beside if beside.is_dir() else shipped_configs()
    with_clips = CLIP_L in parts
    encoders = _tokenizers(path, cfg, T5 in parts) if with_clips else {}   # a missing vocabulary fails first
    transformer_state = sfu.convert_sd3_transformer_checkpoint_to_diffusers(dict(parts["transformer"]))
    config = transformer_config(transformer_state, SD3Transformer2DModel.load_config(str(cfg / "transformer")))
    with torch.device("meta"):
        transformer = SD3Transformer2DModel.from_config(config)
        vae = AutoencoderKL.from_config(AutoencoderKL.load_config(str(cfg / "vae")))
    _load_into(transformer, transformer_state, "SD3 transformer")
    _load_into(vae, sfu.convert_ldm_vae_checkpoint(parts[VAE_PREFIX], vae.config), "VAE")
    encoders.update(_text_encoders(cfg, parts) if with_clips else {})
    sched = json.loads((cfg / "scheduler" / "scheduler_config.json").read_text())
    loaded = assemble(path.stem, sched, transformer, vae, encoders, device, pick_dtype(device))
    if not with_clips:
        loaded.clip_fields["missing"] = (f"{path.name} holds no text encoders (only the transformer and the VAE): load "
                                  "CLIP-L, CLIP-G and T5 with TextEncoderLoaderSD3 (ComfyUI's TripleCLIPLoader) and "
                                  "link its clip instead of the checkpoint's")
    return loaded


def split_parts(path: Path, state: dict[str, torch.Tensor]) -> dict[str, dict[str, torch.Tensor]]:
    """The file's tensors by part: "transformer" (prefix removed) and each known prefix as written;
    a file without its text encoders or VAE is refused naming what it lacks."""
    parts: dict[str, dict[str, torch.Tensor]] = {"transformer": {}, CLIP_L: {}, CLIP_G: {}, T5: {}, VAE_PREFIX: {}}
    for key, value in state.items():
        owner = next((p for p in (CLIP_L, CLIP_G, T5, VAE_PREFIX) if key.startswith(p)), None)
        if owner is not None:
            parts[owner][key] = value
        elif key.startswith(FILE_PREFIX):
            parts["transformer"][key[len(FILE_PREFIX):]] = value
        elif not key.startswith(("text_encoders.", "cond_stage_model.", "conditioner.")):
            parts["transformer"][key] = value   # a transformer-only file keeps no prefix
    lacking = [name for name, prefix in (("CLIP-L", CLIP_L), ("CLIP-G", CLIP_G), ("VAE", VAE_PREFIX))
               if not parts[prefix]]
    if lacking == ["CLIP-L", "CLIP-G"] and not parts[T5]:
        del parts[CLIP_L], parts[CLIP_G], parts[T5]   # transformer + VAE: its CLIP comes from TextEncoderLoaderSD3
        return parts
    if lacking:
        raise NodeError(f"{path.name} is an SD3 transformer without its {' and '.join(lacking)} (no "
                        f"'{CLIP_L if 'CLIP-L' in lacking else VAE_PREFIX}' keys); use the file that includes "
                        "them (e.g. sd3_medium_incl_clips.safetensors, sd3.5_large.safetensors) or the "
                        "diffusers folder", field="checkpoint")
    if not parts[T5]:
        del parts[T5]
    return parts


def transformer_config(state: dict[str, torch.Tensor], base: dict[str, Any]) -> dict[str, Any]:
    """The SD3Transformer2DModel config the converted `state` needs: its shapes from the keys, the
    rest (head width without qk norm, sample size) from `base`."""
    proj = state["pos_embed.proj.weight"]
    width, channels, patch = proj.shape[0], proj.shape[1], proj.shape[-1]
    layers = 1 + max(int(k.split(".")[1]) for k in state if k.startswith("transformer_blocks."))
    norm_q = state.get("transformer_blocks.0.attn.norm_q.weight")
    head = int(norm_q.shape[0]) if norm_q is not None else int(base.get("attention_head_dim", 64))
    dual = sorted({int(k.split(".")[1]) for k in state if ".attn2." in k})
    config = {k: v for k, v in base.items() if not k.startswith("_")}
    config.update(
        in_channels=int(channels), patch_size=int(patch), num_layers=layers, attention_head_dim=head,
        num_attention_heads=int(width // head), caption_projection_dim=int(state["context_embedder.weight"].shape[0]),
        joint_attention_dim=int(state["context_embedder.weight"].shape[1]),
        pooled_projection_dim=int(state["time_text_embed.text_embedder.linear_1.weight"].shape[1]),
        out_channels=int(state["proj_out.weight"].shape[0] // (patch * patch)),
        pos_embed_max_size=int(math.isqrt(state["pos_embed.pos_embed"].shape[1])),
        qk_norm="rms_norm" if norm_q is not None else None, dual_attention_layers=tuple(dual))
    return config


def _tokenizers(path: Path, cfg: Path, with_t5: bool) -> dict[str, Any]:
    found = {}
    for part, what in (("tokenizer", "CLIP-L text encoder"), ("tokenizer_2", "CLIP-G text encoder")):
        config = cfg / part / "tokenizer_config.json"
        pad = json.loads(config.read_text()).get("pad_token") if config.exists() else None
        found[part] = load_tokenizer([cfg / part, path.parent / part], pad, what)
    if with_t5:
        found["tokenizer_3"] = _t5_tokenizer(path, cfg)
    return found


def _t5_tokenizer(path: Path, cfg: Path) -> Any:
    return t5_tokenizer(path, "tokenizer_3", cfg, "the model's", "checkpoint")


def _text_encoders(cfg: Path, parts: dict[str, dict[str, torch.Tensor]]) -> dict[str, Any]:
    from diffusers.loaders import single_file_utils as sfu
    from transformers import CLIPTextConfig, CLIPTextModelWithProjection, T5Config, T5EncoderModel

    found = {}
    for part, prefix, what in (("text_encoder", CLIP_L, "CLIP-L text encoder"),
                               ("text_encoder_2", CLIP_G, "CLIP-G text encoder")):
        with torch.device("meta"):
            found[part] = CLIPTextModelWithProjection(CLIPTextConfig.from_pretrained(str(cfg / part)))
        _load_into(found[part], sfu.convert_ldm_clip_checkpoint(parts[prefix], prefix), what)
    if T5 in parts:
        with torch.device("meta"):
            found["text_encoder_3"] = T5EncoderModel(T5Config.from_pretrained(str(cfg / "text_encoder_3")))
        _load_into(found["text_encoder_3"], sfu.convert_sd3_t5_checkpoint_to_diffusers(parts[T5]), "T5 text encoder")
    return found
