"""Flux single files as users download them, in Black Forest Labs' key layout, offline.

- A checkpoint with everything (ComfyUI's flux1-dev-fp8.safetensors): `model.diffusion_model.`
  transformer, `text_encoders.clip_l.transformer.`, `text_encoders.t5xxl.transformer.`, `vae.`
  (or `first_stage_model.`).
- The separate files (DiffusionModelLoader, DualTextEncoderLoader, VAELoader): the transformer
  alone (flux1-dev.safetensors: `double_blocks.`, `single_blocks.`, ...; or diffusers' layout),
  CLIP-L (clip_l.safetensors, transformers' keys), T5-XXL (t5xxl_fp16 / t5xxl_fp8_e4m3fn,
  transformers' keys), the VAE (ae.safetensors, LDM keys).

The transformer is converted with diffusers' convert_flux_transformer_checkpoint_to_diffusers
(which assumes Flux's width of 3072 for the single blocks' fused projection: another width, such
as the tests' tiny models, is padded to it and cut back). Its shape (layers, width, heads,
guidance input: dev or schnell) is read from the keys over the shipped resources/configs/flux
config; a `<name>.config/` FluxPipeline-layout folder beside the file replaces the shipped configs.
float8 weights (e4m3fn, e5m2) were upcast when the file was read (loading.read_state_dict).
T5's tokenizer is not bundled: `tokenizer_2/` in the config folder or beside the file, or
google/t5-v1_1-xxl in the Hugging Face cache.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from nodeforge.core.errors import NodeError

from ..loading import _load_into, _quiet_progress_bars, load_tokenizer, model_from_state, pick_dtype
from .flow import t5_tokenizer as flow_t5_tokenizer
from .flux import assemble, scheduler_config, shipped_configs

MODEL_PREFIX = "model.diffusion_model."
CLIP_L, T5 = "text_encoders.clip_l.transformer.", "text_encoders.t5xxl.transformer."
VAE_PREFIXES = ("vae.", "first_stage_model.")
FLUX_WIDTH = 3072          # the width diffusers' converter assumes for the single blocks
SEPARATE = ("load the transformer with DiffusionModelLoader, clip_l and t5xxl with DualTextEncoderLoader and "
            "ae.safetensors with VAELoader (ComfyUI's UNETLoader, DualCLIPLoader, VAELoader), or use the "
            "FluxPipeline folder or a checkpoint that includes them (flux1-dev-fp8.safetensors)")


def load_flux_file(path: Path, device: str, state: dict[str, torch.Tensor]) -> Any:
    """A Flux checkpoint that includes CLIP-L, T5 and the VAE (see the module)."""
    _quiet_progress_bars()
    parts = split_parts(state)
    lacking = [name for name in ("CLIP-L", "T5-XXL", "VAE") if not parts[name]]
    if lacking:
        raise NodeError(f"{path.name} is a Flux transformer without its {', '.join(lacking)}, which CheckpointLoader "
                        f"needs: {SEPARATE}", field="checkpoint")
    cfg = config_folder(path)
    encoders = {"tokenizer": clip_tokenizer(path, cfg), "tokenizer_2": t5_tokenizer(path, cfg, "checkpoint")}
    transformer = transformer_from_state(parts["transformer"], cfg, path.name)
    encoders["text_encoder"] = clip_l_from_state(parts["CLIP-L"], cfg, "checkpoint")
    encoders["text_encoder_2"] = t5_from_state(parts["T5-XXL"], cfg, "checkpoint")
    vae = vae_from_state(parts["VAE"], cfg, "checkpoint")
    sched = scheduler_config(cfg if cfg != shipped_configs() else None, not transformer.config.guidance_embeds)
    return assemble(path.stem, sched, transformer, vae, encoders, device, pick_dtype(device))


def split_parts(state: dict[str, torch.Tensor]) -> dict[str, dict[str, torch.Tensor]]:
    """The file's tensors by part, each without its prefix."""
    parts: dict[str, dict[str, torch.Tensor]] = {"transformer": {}, "CLIP-L": {}, "T5-XXL": {}, "VAE": {}}
    for key, value in state.items():
        if key.startswith(CLIP_L):
            parts["CLIP-L"][key[len(CLIP_L):]] = value
        elif key.startswith(T5):
            parts["T5-XXL"][key[len(T5):]] = value
        elif key.startswith(VAE_PREFIXES):
            parts["VAE"][key.split(".", 1)[1]] = value
        elif key.startswith(MODEL_PREFIX):
            parts["transformer"][key[len(MODEL_PREFIX):]] = value
        elif not key.startswith(("text_encoders.", "cond_stage_model.", "conditioner.")):
            parts["transformer"][key] = value   # a transformer-only file keeps no prefix
    return parts


def config_folder(path: Path) -> Path:
    beside = path.with_name(path.stem + ".config")
    return beside if beside.is_dir() else shipped_configs()


# -- the transformer ---------------------------------------------------------------------------------------
def transformer_from_state(state: dict[str, torch.Tensor], cfg: Path, name: str, field: str = "checkpoint") -> Any:
    from diffusers import FluxTransformer2DModel

    converted = convert_bfl(state) if any(k.startswith("double_blocks.") for k in state) else dict(state)
    if "x_embedder.weight" not in converted:
        raise NodeError(f"{name} holds no Flux transformer (no img_in / x_embedder weights); it may be another kind "
                        "of model", field=field)
    config = transformer_config(converted, FluxTransformer2DModel.load_config(str(cfg / "transformer")))
    return model_from_state(FluxTransformer2DModel, config, converted, "Flux transformer", field=field)


def convert_bfl(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """BFL keys -> diffusers' (diffusers' converter; a width other than 3072 padded to it and cut back)."""
    from diffusers.loaders import single_file_utils as sfu

    state = dict(state)
    inner = int(state["img_in.weight"].shape[0])
    mlp = {}
    if inner != FLUX_WIDTH:
        for key in [k for k in state if k.startswith("single_blocks.") and ".linear1." in k]:
            mlp[key.split(".")[1]] = int(state[key].shape[0]) - 3 * inner
            state[key] = _padded(state[key], inner, mlp[key.split(".")[1]])
    converted = sfu.convert_flux_transformer_checkpoint_to_diffusers(state)
    for block, width in mlp.items():
        prefix = f"single_transformer_blocks.{block}."
        for part, size in (("attn.to_q", inner), ("attn.to_k", inner), ("attn.to_v", inner), ("proj_mlp", width)):
            for kind in ("weight", "bias"):
                converted[f"{prefix}{part}.{kind}"] = converted[f"{prefix}{part}.{kind}"][:size].clone()
    return converted


def _padded(fused: torch.Tensor, inner: int, mlp: int) -> torch.Tensor:
    if inner > FLUX_WIDTH or mlp > 4 * FLUX_WIDTH:
        raise NodeError(f"a Flux transformer {inner} wide is wider than Flux.1 ({FLUX_WIDTH}); this file is not "
                        "Flux.1 dev or schnell", field="checkpoint")
    out = fused.new_zeros((3 * FLUX_WIDTH + 4 * FLUX_WIDTH, *fused.shape[1:]))
    for i in range(3):
        out[i * FLUX_WIDTH:i * FLUX_WIDTH + inner] = fused[i * inner:(i + 1) * inner]
    out[3 * FLUX_WIDTH:3 * FLUX_WIDTH + mlp] = fused[3 * inner:]
    return out


def transformer_config(state: dict[str, torch.Tensor], base: dict[str, Any]) -> dict[str, Any]:
    """The FluxTransformer2DModel config the converted `state` needs: shapes from the keys, the rope
    axes from `base`."""
    inner = int(state["x_embedder.weight"].shape[0])
    head = int(state["transformer_blocks.0.attn.norm_q.weight"].shape[0])
    config = {k: v for k, v in base.items() if not k.startswith("_")}
    config.update(
        in_channels=int(state["x_embedder.weight"].shape[1]), attention_head_dim=head,
        num_attention_heads=inner // head, joint_attention_dim=int(state["context_embedder.weight"].shape[1]),
        pooled_projection_dim=int(state["time_text_embed.text_embedder.linear_1.weight"].shape[1]),
        num_layers=_count(state, "transformer_blocks."), num_single_layers=_count(state, "single_transformer_blocks."),
        guidance_embeds=any(k.startswith("time_text_embed.guidance_embedder.") for k in state))
    return config


def _count(state: dict[str, torch.Tensor], prefix: str) -> int:
    return 1 + max((int(k.split(".")[1]) for k in state if k.startswith(prefix)), default=-1)


# -- text encoders and VAE -----------------------------------------------------------------------------------
def clip_l_from_state(state: dict[str, torch.Tensor], cfg: Path, field: str) -> Any:
    from transformers import CLIPTextConfig, CLIPTextModel

    with torch.device("meta"):
        model = CLIPTextModel(CLIPTextConfig.from_pretrained(str(cfg / "text_encoder")))
    state = {k: v for k, v in state.items() if not k.startswith("text_projection")}   # a CLIP-L with projection
    _load_into(model, state, "CLIP-L text encoder", field=field)
    return model


def t5_from_state(state: dict[str, torch.Tensor], cfg: Path, field: str) -> Any:
    from transformers import T5Config, T5EncoderModel

    with torch.device("meta"):
        model = T5EncoderModel(T5Config.from_pretrained(str(cfg / "text_encoder_2")))
    embed = state.get("shared.weight", state.get("encoder.embed_tokens.weight"))
    if embed is not None:   # tied: files keep one or both names
        state = dict(state, **{"shared.weight": embed, "encoder.embed_tokens.weight": embed})
    _load_into(model, {k: v for k, v in state.items() if k != "scaled_fp8"}, "T5-XXL text encoder", field=field)
    return model


def vae_from_state(state: dict[str, torch.Tensor], cfg: Path, field: str) -> Any:
    from diffusers import AutoencoderKL
    from diffusers.loaders import single_file_utils as sfu

    with torch.device("meta"):
        vae = AutoencoderKL.from_config(AutoencoderKL.load_config(str(cfg / "vae")))
    if not any(k.startswith("encoder.down_blocks.") for k in state):   # the original (LDM) layout
        state = sfu.convert_ldm_vae_checkpoint(state, vae.config)
    _load_into(vae, state, "VAE", field=field)
    return vae


def clip_tokenizer(path: Path, cfg: Path) -> Any:
    return load_tokenizer([cfg / "tokenizer", path.parent / "tokenizer"], None, "CLIP-L text encoder")


def t5_tokenizer(path: Path, cfg: Path, field: str) -> Any:
    return flow_t5_tokenizer(path, "tokenizer_2", cfg, "FLUX.1's", field)
