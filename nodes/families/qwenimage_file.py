"""Qwen-Image's separate files, as ComfyUI users keep them (Comfy-Org/Qwen-Image_ComfyUI), offline.

- The transformer alone in models/diffusion_models (qwen_image_fp8_e4m3fn.safetensors,
  qwen_image_edit_2509_fp8_e4m3fn.safetensors; DiffusionModelLoader, ComfyUI's UNETLoader): diffusers' key
  names, with or without `model.diffusion_model.`; fp8 weights are upcast on read.
- Qwen2.5-VL-7B in models/text_encoders (qwen_2.5_vl_7b_fp8_scaled.safetensors; TextEncoderLoader with type
  qwen_image, ComfyUI's CLIPLoader): Qwen's own key names (`model.layers.`, `visual.`), which transformers 5
  nests under `model.language_model.` / `model.visual.`, or transformers' own. Its tokenizer is not in the
  file: `<stem>.config/tokenizer/` or `tokenizer/` beside the file (Qwen-Image's tokenizer folder), else
  Qwen/Qwen-Image's in the Hugging Face cache.
- The VAE in models/vae (qwen_image_vae.safetensors; VAELoader): Wan 2.1's original layout, converted by
  diffusers' convert_wan_vae_to_diffusers, or diffusers' own.

Shapes (width, layers, heads) are read from the keys over the shipped resources/configs/qwenimage configs;
a `<stem>.config/` folder beside the file in QwenImagePipeline's layout replaces them (its rope axes, for
other head widths; its text encoder config, for other Qwen2.5-VL sizes).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from nodeforge.core.errors import NodeError

from ..loading import _finish, _load_into, model_from_state, pick_dtype, read_state_dict, vae_dtype
from .separate import LoadedPart

PREFIXES = ("model.diffusion_model.", "diffusion_model.")
TOKENIZER_HUB = "Qwen/Qwen-Image"
QWEN_TYPES = ("qwen_image",)   # CLIPLoader's type for Qwen-Image's Qwen2.5-VL


def config_folder(path: Path) -> Path:
    from .qwenimage import shipped_configs

    beside = path.with_name(path.stem + ".config")
    return beside if beside.is_dir() else shipped_configs()


# -- the transformer (DiffusionModelLoader) --------------------------------------------------------------------
def read_transformer(path: Path, state: dict[str, torch.Tensor], device: str, dtype: torch.dtype) -> LoadedPart:
    from diffusers import QwenImageTransformer2DModel

    from ..wrappers import UNetModel
    from .qwenimage import model_fields, scheduler_config, shipped_configs, transformer_dtype

    dtype = transformer_dtype(device)   # not fp16, which overflows in this transformer
    cfg = config_folder(path)
    plain = {next((k[len(p):] for p in PREFIXES if k.startswith(p)), k): v for k, v in state.items()}
    if "img_in.weight" not in plain or "proj_out.weight" not in plain:
        raise NodeError(f"{path.name} is an incomplete Qwen-Image transformer (no img_in / proj_out weights); the "
                        "download may be damaged: download it again", field="model")
    config = transformer_config(plain, QwenImageTransformer2DModel.load_config(str(cfg / "transformer")))
    transformer = model_from_state(QwenImageTransformer2DModel, config, plain, "Qwen-Image transformer", field="model")
    # the rope's frequency tables are plain tensors (not buffers) computed at build: build them off the meta device
    transformer.pos_embed = type(transformer.pos_embed)(theta=10000, axes_dim=list(config["axes_dims_rope"]),
                                                        scale_rope=True)
    _finish([transformer], device, dtype)
    temporal = json.loads((cfg / "vae" / "config.json").read_text())["temperal_downsample"]
    sched = scheduler_config(cfg if cfg != shipped_configs() else None)
    return LoadedPart(UNetModel, model_fields(path.stem, sched, transformer, 2 ** len(temporal)))


def transformer_config(state: dict[str, torch.Tensor], base: dict[str, Any]) -> dict[str, Any]:
    """The QwenImageTransformer2DModel config the `state` needs: shapes from the keys, the rope axes and
    the rest from `base`."""
    width, channels = state["img_in.weight"].shape
    head = int(state["transformer_blocks.0.attn.norm_q.weight"].shape[0])
    config = {k: v for k, v in base.items() if not k.startswith("_")}
    config.update(in_channels=int(channels), num_attention_heads=int(width) // head, attention_head_dim=head,
                  joint_attention_dim=int(state["txt_in.weight"].shape[1]),
                  out_channels=int(state["proj_out.weight"].shape[0]) // config.get("patch_size", 2) ** 2,
                  num_layers=1 + max(int(k.split(".")[1]) for k in state if k.startswith("transformer_blocks.")))
    return config


# -- Qwen2.5-VL (TextEncoderLoader, type qwen_image) ---------------------------------------------------------------
def read_text_encoder(path: Path, device: str) -> LoadedPart:
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

    from ..wrappers import ClipModel
    from .qwenimage import clip_fields

    if path.suffix.lower() == ".gguf":
        raise NodeError(f"{path.name}: GGUF text encoders are not supported; use qwen_2.5_vl_7b_fp8_scaled.safetensors",
                        field="text_encoder")
    state, _ = read_state_dict(path, field="text_encoder")
    state = transformers_keys(state)
    if "model.language_model.layers.0.self_attn.q_proj.bias" not in state:
        kind = "Qwen3 (Z-Image's text encoder): set type lumina2" if any("q_norm." in k for k in state) else \
            "no Qwen2.5-VL text encoder; type qwen_image (Qwen-Image) takes qwen_2.5_vl_7b.safetensors"
        raise NodeError(f"{path.name} holds {kind}", field="text_encoder")
    cfg = config_folder(path)
    base = json.loads((cfg / "text_encoder" / "config.json").read_text())
    skip = ("architectures", "model_type", "transformers_version", "dtype", "torch_dtype")
    config = Qwen2_5_VLConfig(**{k: v for k, v in base.items() if k not in skip and not k.startswith("_")})
    config.text_config.vocab_size = config.vocab_size = int(state["model.language_model.embed_tokens.weight"].shape[0])
    with torch.device("meta"):
        encoder = Qwen2_5_VLForConditionalGeneration(config)
    _restore_buffers(encoder, config)
    state.setdefault("lm_head.weight", state["model.language_model.embed_tokens.weight"])   # unused: hidden states only
    _load_into(encoder, state, "Qwen2.5-VL text encoder", field="text_encoder")
    _finish([encoder], device, pick_dtype(device))
    return LoadedPart(ClipModel, clip_fields(qwen_tokenizer(path, cfg), encoder))


def transformers_keys(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Qwen's own names (ComfyUI's file) as transformers 5 nests them; transformers' names as they are."""
    out = {}
    for key, value in state.items():
        if key.startswith("visual."):
            key = "model." + key
        elif key.startswith("model.") and not key.startswith(("model.language_model.", "model.visual.")):
            key = "model.language_model." + key[len("model."):]
        out[key] = value
    return out


def _restore_buffers(encoder: Any, config: Any) -> None:
    """The rotary embeddings' inv_freq, computed (not stored in files), on the CPU instead of the meta device."""
    from transformers.models.qwen2_5_vl import modeling_qwen2_5_vl as qvl

    encoder.model.language_model.rotary_emb = qvl.Qwen2_5_VLRotaryEmbedding(config=config.text_config)
    encoder.model.visual.rotary_pos_emb = qvl.Qwen2_5_VLVisionRotaryEmbedding(config.vision_config)


def qwen_tokenizer(path: Path, cfg: Path) -> Any:
    """Qwen-Image's Qwen2.5-VL tokenizer for the text encoder file at `path` (zimage_file.find_qwen_tokenizer)."""
    from .zimage_file import find_qwen_tokenizer

    return find_qwen_tokenizer(path, cfg, TOKENIZER_HUB, "tokenizer", "Qwen-Image")


# -- the VAE (VAELoader) ------------------------------------------------------------------------------------------
VAE_MARKERS = ("decoder.head.0.gamma", "decoder.norm_out.gamma")   # Wan's original layout, diffusers'


def is_qwen_vae(state: dict[str, torch.Tensor]) -> bool:
    return any(marker in state for marker in VAE_MARKERS)


def read_vae(path: Path, state: dict[str, torch.Tensor], device: str) -> dict[str, Any]:
    """The VAE wrapper's fields for Qwen-Image's VAE file (Wan 2.1's: the same weights)."""
    from diffusers import AutoencoderKLQwenImage
    from diffusers.loaders import single_file_utils as sfu

    from .qwenimage import vae_fields

    if "decoder.head.0.gamma" in state:
        state = sfu.convert_wan_vae_to_diffusers(state)
    config = dict(AutoencoderKLQwenImage.load_config(str(config_folder(path) / "vae")))
    config.update(base_dim=int(state["encoder.conv_in.weight"].shape[0]), z_dim=int(state["post_quant_conv.weight"].shape[0]))
    with torch.device("meta"):
        vae = AutoencoderKLQwenImage.from_config(config)
    _load_into(vae, state, "Qwen-Image VAE", field="vae")
    _finish([vae], device, vae_dtype(device, True))
    return vae_fields(vae)


def read_vae_folder(folder: Path, device: str) -> dict[str, Any]:
    """The VAE wrapper's fields for a diffusers AutoencoderKLQwenImage folder (a QwenImagePipeline's vae/)."""
    from diffusers import AutoencoderKLQwenImage

    from ..loading import check_finite
    from .qwenimage import vae_fields

    try:
        vae = AutoencoderKLQwenImage.from_pretrained(str(folder), local_files_only=True)
    except (OSError, ValueError) as exc:
        raise NodeError(f"cannot load the Qwen-Image VAE in {folder.name}: {exc}", field="vae") from None
    check_finite(vae.state_dict().items(), f"the VAE in {folder.name}", "vae")
    _finish([vae], device, vae_dtype(device, True))
    return vae_fields(vae)
