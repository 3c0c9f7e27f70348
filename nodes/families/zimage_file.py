"""Z-Image's separate files, as ComfyUI users keep them, offline.

- The transformer alone in models/diffusion_models (z_image_turbo_bf16.safetensors, DiffusionModelLoader;
  ComfyUI's UNETLoader): the original keys (`layers.N.attention.qkv`, `x_embedder`, `final_layer`,
  `cap_embedder`, `noise_refiner`, `context_refiner`, with or without `model.diffusion_model.`),
  converted with diffusers' convert_z_image_transformer_checkpoint_to_diffusers, or diffusers' own.
- Qwen3-4B in models/text_encoders (qwen_3_4b.safetensors, TextEncoderLoader with type lumina2;
  ComfyUI's CLIPLoader): transformers' keys with or without `model.` (an `lm_head` is left out).
  Its tokenizer is not in the file: `<stem>.config/tokenizer/` or `tokenizer/` beside the file
  (Z-Image-Turbo's tokenizer folder), else Qwen/Qwen3-4B in the Hugging Face cache.
- The VAE is Flux's ae.safetensors (VAELoader).

Shapes (width, layers, heads, caption width; Qwen3's width, layers, heads) are read from the keys
over the shipped resources/configs/zimage configs (or a `<stem>.config/` folder beside the file, in
ZImagePipeline's layout, whose configs replace them: its rope axes, for other head widths).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from nodeforge.core.errors import NodeError

from ..loading import _finish, _load_into, model_from_state, pick_dtype, read_state_dict, tokenizer_works
from .separate import LoadedPart

QWEN_TOKENIZER_HUB = "Qwen/Qwen3-4B"
PREFIXES = ("model.diffusion_model.", "diffusion_model.")


def config_folder(path: Path) -> Path:
    from .zimage import shipped_configs

    beside = path.with_name(path.stem + ".config")
    return beside if beside.is_dir() else shipped_configs()


# -- the transformer (DiffusionModelLoader) --------------------------------------------------------------------
def read_transformer(path: Path, state: dict[str, torch.Tensor], device: str, dtype: torch.dtype) -> LoadedPart:
    from diffusers import ZImageTransformer2DModel

    from ..wrappers import UNetModel
    from .zimage import model_fields, scheduler_config, shipped_configs

    cfg = config_folder(path)
    converted = diffusers_keys(state)
    if "all_x_embedder.2-1.weight" not in converted:
        raise NodeError(f"{path.name} is an incomplete Z-Image transformer (no x_embedder weights); the download may "
                        "be damaged: download it again", field="model")
    config = transformer_config(converted, ZImageTransformer2DModel.load_config(str(cfg / "transformer")))
    transformer = model_from_state(ZImageTransformer2DModel, config, converted, "Z-Image transformer", field="model")
    _finish([transformer], device, dtype)
    blocks = json.loads((cfg / "vae" / "config.json").read_text())["block_out_channels"]
    sched = scheduler_config(cfg if cfg != shipped_configs() else None)
    return LoadedPart(UNetModel, model_fields(path.stem, sched, transformer, 2 ** (len(blocks) - 1)))


def diffusers_keys(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The transformer's tensors on diffusers' names (the original layout converted by diffusers)."""
    from diffusers.loaders import single_file_utils as sfu

    plain = {}
    for key, value in state.items():
        plain[next((key[len(p):] for p in PREFIXES if key.startswith(p)), key)] = value
    if "all_x_embedder.2-1.weight" in plain:
        return plain
    return sfu.convert_z_image_transformer_checkpoint_to_diffusers(plain)


def transformer_config(state: dict[str, torch.Tensor], base: dict[str, Any]) -> dict[str, Any]:
    """The ZImageTransformer2DModel config the converted `state` needs: shapes from the keys, the rope
    axes and the rest from `base`."""
    embed = state["all_x_embedder.2-1.weight"]
    dim, head = int(embed.shape[0]), int(state["layers.0.attention.norm_q.weight"].shape[0])
    config = {k: v for k, v in base.items() if not k.startswith("_")}
    config.update(dim=dim, in_channels=int(embed.shape[1]) // 4, n_heads=dim // head,
                  n_kv_heads=int(state["layers.0.attention.to_k.weight"].shape[0]) // head,
                  n_layers=_count(state, "layers."), n_refiner_layers=_count(state, "noise_refiner."),
                  cap_feat_dim=int(state["cap_embedder.1.weight"].shape[1]))
    return config


def _count(state: dict[str, torch.Tensor], prefix: str) -> int:
    return 1 + max((int(k.split(".")[1]) for k in state if k.startswith(prefix)), default=-1)


# -- Qwen3 (TextEncoderLoader, type lumina2) -------------------------------------------------------------------
def read_text_encoder(path: Path, device: str) -> LoadedPart:
    from transformers import Qwen3Config, Qwen3Model
    from transformers.models.qwen3.modeling_qwen3 import Qwen3RotaryEmbedding

    from ..wrappers import ClipModel
    from .zimage import clip_fields

    if path.suffix.lower() == ".gguf":
        raise NodeError(f"{path.name}: GGUF text encoders are not supported; use qwen_3_4b.safetensors",
                        field="text_encoder")
    state, _ = read_state_dict(path, field="text_encoder")
    state = {k.removeprefix("model."): v for k, v in state.items() if not k.startswith("lm_head.")}
    if "layers.0.self_attn.q_norm.weight" not in state or "embed_tokens.weight" not in state:
        if any(k.startswith(("visual.", "model.visual.")) for k in state) or "layers.0.self_attn.q_proj.bias" in state:
            raise NodeError(f"{path.name} holds Qwen2.5-VL (Qwen-Image's text encoder), not Qwen3: set type "
                            "qwen_image", field="text_encoder")
        raise NodeError(f"{path.name} holds no Qwen3 text encoder; type lumina2 (Z-Image) takes Qwen3-4B "
                        "(qwen_3_4b.safetensors) from the text_encoders folder", field="text_encoder")
    cfg = config_folder(path)
    tokenizer = qwen_tokenizer(path, cfg)
    base = json.loads((cfg / "text_encoder" / "config.json").read_text())
    skip = ("architectures", "model_type", "layer_types", "transformers_version", "dtype", "torch_dtype")
    kept = {k: v for k, v in base.items() if k not in skip and not k.startswith("_")}
    config = Qwen3Config(**{**kept, **qwen3_shape(state)})
    with torch.device("meta"):
        encoder = Qwen3Model(config)
    encoder.rotary_emb = Qwen3RotaryEmbedding(config)   # its inv_freq is computed, not stored in files
    _load_into(encoder, state, "Qwen3 text encoder", field="text_encoder")
    _finish([encoder], device, pick_dtype(device))
    return LoadedPart(ClipModel, clip_fields(tokenizer, encoder))


def qwen3_shape(state: dict[str, torch.Tensor]) -> dict[str, int]:
    """Qwen3's sizes as its keys give them."""
    vocab, width = state["embed_tokens.weight"].shape
    head = int(state["layers.0.self_attn.q_norm.weight"].shape[0])
    return dict(vocab_size=int(vocab), hidden_size=int(width), head_dim=head,
                num_attention_heads=int(state["layers.0.self_attn.q_proj.weight"].shape[0]) // head,
                num_key_value_heads=int(state["layers.0.self_attn.k_proj.weight"].shape[0]) // head,
                intermediate_size=int(state["layers.0.mlp.gate_proj.weight"].shape[0]),
                num_hidden_layers=_count(state, "layers."))


def qwen_tokenizer(path: Path, cfg: Path) -> Any:
    """Z-Image's Qwen3 tokenizer for the text encoder file at `path` (see find_qwen_tokenizer)."""
    return find_qwen_tokenizer(path, cfg, QWEN_TOKENIZER_HUB, None, "Z-Image-Turbo")


def find_qwen_tokenizer(path: Path, cfg: Path, hub: str, subfolder: str | None, model: str) -> Any:
    """Qwen's BPE tokenizer from beside the file (tokenizer/ in its config folder or its own folder), else `hub`
    (its `subfolder`) in the Hugging Face cache, never downloaded; refused in one line naming `model`'s folder."""
    from transformers import AutoTokenizer

    for folder in (cfg / "tokenizer", path.parent / "tokenizer"):
        if folder.is_dir() and any(folder.iterdir()):
            tok = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
            if tokenizer_works(tok):
                return tok
    try:
        tok = AutoTokenizer.from_pretrained(hub, local_files_only=True, **({"subfolder": subfolder} if subfolder else {}))
        if tokenizer_works(tok):
            return tok
    except Exception:
        pass
    raise NodeError(f"{path.name}: no Qwen tokenizer was found offline; put {model}'s tokenizer folder (from "
                    f"its diffusers repository) beside the file as tokenizer/ or in {path.stem}.config/tokenizer/, or "
                    f"download '{hub}' into the Hugging Face cache once", field="text_encoder")
