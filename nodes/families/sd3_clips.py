"""SD3's three text encoders given as separate files (ComfyUI's TripleCLIPLoader): clip_l.safetensors,
clip_g.safetensors and t5xxl_fp16.safetensors from the `text_encoders/` model folder, for a
checkpoint that holds only the transformer and the VAE (sd3.5_large.safetensors and the like).

Each file is in transformers' layout (`text_model.*` + `text_projection.weight` for the CLIPs,
`encoder.block.*` + `shared.weight` for T5), or with an SD3 single file's prefix
(`text_encoders.clip_l.transformer.`). Its config is a `<name>.config/` folder beside it
(config.json, and the tokenizer's files), else the shipped `resources/configs/sd3/` one; the CLIP
tokenizers fall back to the bundled CLIP BPE, T5's to the Hugging Face cache. A file in the wrong
slot (T5 given as CLIP-G, CLIP-L as CLIP-G) is refused in one line naming the param and the file.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from nodeforge.core.errors import NodeError

from ..loading import _finish, _load_into, load_tokenizer, pick_dtype, read_state_dict
from ..wrappers import ClipModel
from .sd3 import shipped_configs

# param -> (diffusers part, tokenizer part, name in messages)
SLOTS = {"clip_l": ("text_encoder", "tokenizer", "CLIP-L"), "clip_g": ("text_encoder_2", "tokenizer_2", "CLIP-G"),
         "t5xxl": ("text_encoder_3", "tokenizer_3", "T5-XXL")}
PREFIXES = ("text_encoders.clip_l.transformer.", "text_encoders.clip_g.transformer.",
            "text_encoders.t5xxl.transformer.", "cond_stage_model.transformer.", "transformer.")


def load_sd3_clips(paths: dict[str, Path], device: str) -> ClipModel:
    """The SD3 CLIP from the three files (`paths` by param: clip_l, clip_g, t5xxl)."""
    dtype = pick_dtype(device)
    parts: dict[str, Any] = {}
    for param, path in paths.items():
        part, tok_part, what = SLOTS[param]
        parts[part] = _encoder(param, path, part)
        parts[tok_part] = _tokenizer(param, path, tok_part, what)
    _finish([parts["text_encoder"], parts["text_encoder_2"], parts["text_encoder_3"]], device, dtype)
    return ClipModel(parts["tokenizer"], parts["text_encoder"], "sd3", tokenizer_2=parts["tokenizer_2"],
                     text_encoder_2=parts["text_encoder_2"], tokenizer_3=parts["tokenizer_3"],
                     text_encoder_3=parts["text_encoder_3"],
                     context_width=int(parts["text_encoder_3"].config.d_model))


def _config_dir(path: Path, part: str) -> Path:
    beside = path.with_name(path.stem + ".config")
    return beside if (beside / "config.json").is_file() else shipped_configs() / part


def _encoder(param: str, path: Path, part: str) -> Any:
    from transformers import CLIPTextConfig, CLIPTextModelWithProjection, T5Config, T5EncoderModel

    state, _ = read_state_dict(path, field=param)
    state = _slot_state(param, path, state)
    t5 = part == "text_encoder_3"
    _check_kind(param, path, state, t5)
    config_dir = _config_dir(path, part)
    with torch.device("meta"):
        if t5:
            model = T5EncoderModel(T5Config.from_pretrained(str(config_dir)))
        else:
            model = CLIPTextModelWithProjection(CLIPTextConfig.from_pretrained(str(config_dir)))
    _check_width(param, path, state, model, t5)
    _load_into(model, state, f"{SLOTS[param][2]} text encoder", field=param)
    return model


def _slot_state(param: str, path: Path, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """This slot's encoder: its part of an SD3 file that includes it, or the file's tensors as they are;
    a whole checkpoint without that part is refused."""
    own = f"text_encoders.{param}.transformer."
    if any(k.startswith(own) for k in state):
        return {k[len(own):]: v for k, v in state.items() if k.startswith(own)}
    if any(k.startswith(("model.diffusion_model.", "first_stage_model.")) for k in state):
        raise NodeError(f"{path.name} is a whole checkpoint without a separate {SLOTS[param][2]} (no '{own}' keys); "
                        f"choose the {SLOTS[param][2]} text encoder file for {param}", field=param)
    return _unprefixed(state)


def _unprefixed(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    for prefix in PREFIXES:
        if state and all(k.startswith(prefix) for k in state):
            return {k[len(prefix):]: v for k, v in state.items()}
    return state


def _check_kind(param: str, path: Path, state: dict[str, torch.Tensor], t5: bool) -> None:
    is_clip = any("embeddings.token_embedding.weight" in k for k in state)
    is_t5 = any(k.startswith("encoder.block.") for k in state)
    what = SLOTS[param][2]
    if t5 and not is_t5 or not t5 and not is_clip:
        found = "a CLIP text encoder" if is_clip else "a T5 encoder" if is_t5 else "no text encoder"
        raise NodeError(f"{path.name} holds {found}, not {what}; choose the {what} file (e.g. "
                        f"{'t5xxl_fp16' if t5 else param}.safetensors) for {param}", field=param)


def _check_width(param: str, path: Path, state: dict[str, torch.Tensor], model: Any, t5: bool) -> None:
    key = "shared.weight" if t5 else next(k for k in state if k.endswith("embeddings.token_embedding.weight"))
    width = int(state[key].shape[1]) if key in state else None
    expected = int(model.config.d_model if t5 else model.config.hidden_size)
    if width is not None and width != expected:
        fix = (f"are clip_l and clip_g swapped? choose the {SLOTS[param][2]} file for {param}"
               if {width, expected} == {768, 1280} else
               f"choose the {SLOTS[param][2]} file for {param}, or for a model of another size put its config.json "
               f"in a folder named '{path.stem}.config' beside it")
        raise NodeError(f"{path.name} is a text encoder {width} wide, but {SLOTS[param][2]} here is {expected} "
                        f"wide: {fix}", field=param)


def _tokenizer(param: str, path: Path, part: str, what: str) -> Any:
    beside = path.with_name(path.stem + ".config")
    if part == "tokenizer_3":
        from transformers import AutoTokenizer

        from .sd3_file import _t5_tokenizer

        if (beside / "tokenizer_config.json").is_file():
            return AutoTokenizer.from_pretrained(str(beside), local_files_only=True)
        return _t5_tokenizer(path, shipped_configs())
    config = shipped_configs() / part / "tokenizer_config.json"
    pad = json.loads(config.read_text()).get("pad_token") if config.exists() else None
    beside_config = beside / "tokenizer_config.json"
    if beside_config.exists():
        pad = json.loads(beside_config.read_text()).get("pad_token", pad)
    return load_tokenizer([beside, shipped_configs() / part], pad, f"{what} text encoder ({param})")
