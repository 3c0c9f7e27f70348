"""Which family a checkpoint is, told from its files without torch or its weights: a diffusers
folder's model_index.json / transformer/config.json, or a single .safetensors file's header (its
key names). Validation reads it through CheckpointLoader's `facts` (nodeforge/core/facts.py), so a
sampler a flow model cannot run is refused before anything loads. A file it cannot read says
nothing (an empty dict): the loader gives the real error when it runs.
"""
from __future__ import annotations

import json
import struct
from functools import lru_cache
from pathlib import Path
from typing import Any

FLOW_FAMILIES = frozenset({"sd3", "flux", "zimage", "qwenimage"})
# A key every file of the family has (original or diffusers layout), first match wins.
KEY_MARKERS: tuple[tuple[str, str], ...] = (
    ("transformer_blocks.0.img_mod.", "qwenimage"),   # before SD3's: it has add_q_proj too
    ("clip_txt_mapper.", "cascade"), ("effnet_mapper.", "cascade"),   # before "down_blocks.", which they have too
    ("joint_blocks.", "sd3"), ("transformer_blocks.0.attn.add_q_proj.", "sd3"),
    ("double_blocks.", "flux"), ("single_transformer_blocks.", "flux"),
    ("all_x_embedder.", "zimage"), ("layers.0.adaLN_modulation.0.", "zimage"),
    ("input_blocks.", "unet"), ("down_blocks.", "unet"),
)
# Which UNet model a single file in the original layout is, by its text encoders' keys (first match wins), as
# nodes/loading.py's detect_family tells them apart: an SDXL refiner (only OpenCLIP bigG) loads as "sdxl" too.
UNET_MODEL_MARKERS: tuple[tuple[str, str], ...] = (
    ("conditioner.embedders.", "sdxl"), ("cond_stage_model.model.", "sd2"), ("cond_stage_model.transformer.", "sd1"),
)
# Words in a diffusers folder's pipeline or transformer class name.
CLASS_MARKERS: tuple[tuple[str, str], ...] = (("StableDiffusion3", "sd3"), ("SD3", "sd3"), ("Flux", "flux"),
                                              ("ZImage", "zimage"), ("QwenImage", "qwenimage"),
                                              ("StableCascade", "cascade"))
MAX_HEADER = 100 * 2 ** 20


def model_facts(path: Path) -> dict[str, Any]:
    """{"family": ..., "flow": bool} for a checkpoint folder or file, or {} when not known. A UNet
    checkpoint (family "unet", the module that loads it) adds "model_family" where its files tell:
    the family the loaded model names (sd1, sd2, sdxl), which messages give."""
    try:
        stat = path.stat()
        family, model_family = _family_cached(str(path), stat.st_mtime_ns, stat.st_size)
    except OSError:
        return {}
    if not family:
        return {}
    return {"family": family, "flow": family in FLOW_FAMILIES, **({"model_family": model_family} if model_family else {})}


@lru_cache(maxsize=64)
def _family_cached(path: str, mtime_ns: int, size: int) -> tuple[str | None, str | None]:
    where = Path(path)
    family = _folder_family(where) if where.is_dir() else _file_family(where)
    if family != "unet":
        return family, None
    return family, _folder_unet_model(where) if where.is_dir() else _file_unet_model(where)


def _folder_unet_model(path: Path) -> str | None:
    """As nodes/loading.py's finish_folder: sdxl with a second text encoder, else sd2 for a UNet that reads
    1024-wide prompts, else sd1; None when the UNet's config cannot be read."""
    if (path / "text_encoder_2").is_dir():
        return "sdxl"
    try:
        config = json.loads((path / "unet" / "config.json").read_text(encoding="utf-8"))
        width = config.get("cross_attention_dim")
    except (OSError, ValueError, AttributeError):
        return None
    return "sd2" if width == 1024 else "sd1"


def _file_unet_model(path: Path) -> str | None:
    keys = safetensors_keys(path)
    return next((model for marker, model in UNET_MODEL_MARKERS if any(k.startswith(marker) for k in keys)), None)


def has_unclip_encoder(path: Path) -> bool | None:
    """Whether a checkpoint holds an SD 2.1 unCLIP image encoder (a StableUnCLIPImg2ImgPipeline folder's
    image_encoder/, a single file's `embedder.model.visual.` keys); None when its files do not tell (a .ckpt)."""
    if path.is_dir():
        return (path / "image_encoder").is_dir() if (path / "model_index.json").is_file() else None
    keys = safetensors_keys(path)
    return any(k.startswith("embedder.model.visual.") for k in keys) if keys else None


def controlnet_facts(path: Path) -> dict[str, Any]:
    """{"flow": True, "family": "sd3" | "flux", "latents": bool} for an SD3 or Flux ControlNet (diffusers'
    SD3ControlNetModel / FluxControlNetModel folder or file; "latents": it reads its image as VAE
    latents, as all SD3 and InstantX's Flux ones do), {"flow": False} for another readable ControlNet,
    {} when not known."""
    if path.is_dir():
        try:
            config = json.loads((path / "config.json").read_text(encoding="utf-8"))
            name = str(config.get("_class_name") or "")
        except (OSError, ValueError, AttributeError):
            return {}
        if name == "FluxControlNetModel":
            return {"flow": True, "family": "flux", "latents": config.get("conditioning_embedding_channels") is None}
        return {"flow": name == "SD3ControlNetModel", **({"family": "sd3", "latents": True}
                                                          if name == "SD3ControlNetModel" else {})} if name else {}
    keys = safetensors_keys(path)
    if not keys:
        return {}
    if any(k.startswith(("controlnet_x_embedder.", "controlnet_single_blocks.")) for k in keys):
        return {"flow": True, "family": "flux", "latents": not any(k.startswith("input_hint_block.") for k in keys)}
    if any(k.startswith(("pos_embed_input.", "controlnet_blocks.")) for k in keys):
        return {"flow": True, "family": "sd3", "latents": True}
    return {"flow": False}


def _folder_family(path: Path) -> str | None:
    for config in (path / "model_index.json", path / "transformer" / "config.json"):
        name = class_name(config)
        found = next((fam for word, fam in CLASS_MARKERS if word in name), None)
        if found:
            return found
    return "unet" if (path / "unet").is_dir() else None


def class_name(config: Path) -> str:
    """A diffusers config file's `_class_name`; "" when it is missing or unreadable."""
    try:
        return str(json.loads(config.read_text(encoding="utf-8")).get("_class_name") or "")
    except (OSError, ValueError, AttributeError):
        return ""


def safetensors_keys(path: Path) -> list[str]:
    """The tensor names in a .safetensors header (reads only the header); [] if it is not one."""
    if path.suffix.lower() != ".safetensors":
        return []
    try:
        with path.open("rb") as handle:
            size = struct.unpack("<Q", handle.read(8))[0]
            if size > MAX_HEADER:
                return []
            header = json.loads(handle.read(size))
    except (OSError, ValueError, struct.error):
        return []
    return [k for k in header if k != "__metadata__"] if isinstance(header, dict) else []


def _file_family(path: Path) -> str | None:
    keys = safetensors_keys(path)
    for marker, family in KEY_MARKERS:
        if any(marker in k for k in keys):
            return family
    return None
