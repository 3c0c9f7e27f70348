"""Z-Image (Tongyi-MAI's Z-Image, Z-Image-Turbo) as a family: a 6B single-stream diffusion
transformer (S3-DiT) over 16-channel latents, rectified flow, a Qwen3-4B text encoder, the Flux VAE.

Files: a diffusers folder in ZImagePipeline's layout (transformer, vae, text_encoder = Qwen3,
tokenizer, scheduler), or ComfyUI's separate files (nodes/families/zimage_file.py): the
transformer alone in diffusion_models (z_image_turbo_bf16.safetensors; DiffusionModelLoader,
ComfyUI's UNETLoader), Qwen3-4B in text_encoders (qwen_3_4b.safetensors; TextEncoderLoader with
type lumina2, ComfyUI's CLIPLoader) and the Flux VAE (ae.safetensors; VAELoader). Configs come from
`resources/configs/zimage/`. Text is encoded as ZImagePipeline.encode_prompt does
(nodes/families/zimage_text.py); sampling is flow matching with Z-Image's model call
(nodes/families/zimage_sampling.py); LoRAs in the layouts diffusers reads (`lora_state`). The MODEL
is the pack's UNetModel holding the transformer (family "zimage", prediction "flow"), so LoRA
patching, memory accounting, the cache and UNetDenoise treat it as any other model.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from nodeforge.core.errors import NodeError

from ..loading import _finish, _from_pretrained, _quiet_progress_bars, configs_dir, pick_dtype, vae_dtype
from ..wrappers import LoadedCheckpoint
from .zimage_sampling import ZIMAGE_SAMPLING
from .flow import check_pipeline_folder, folder_text_encoders
from .probe import class_name

MODEL_FAMILIES = ("zimage",)
TRANSFORMER_CLASS = "ZImageTransformer2DModel"
PIPELINES = ("ZImagePipeline", "ZImageImg2ImgPipeline", "ZImageInpaintPipeline")
FOLDER_PARTS = (("vae", "the VAE"), ("text_encoder", "the Qwen3 text encoder"),
                ("tokenizer", "Qwen3's tokenizer"))
# Keys of Z-Image's transformer in diffusers' layout and in the original (ComfyUI's) one.
STATE_MARKERS = ("all_x_embedder.", "layers.0.adaLN_modulation.0.")
SEPARATE = ("load it with DiffusionModelLoader, qwen_3_4b.safetensors with TextEncoderLoader (type lumina2) and "
            "ae.safetensors with VAELoader (ComfyUI's UNETLoader, CLIPLoader, VAELoader), or pick the "
            "ZImagePipeline folder")


def claims_folder(path: Path) -> bool:
    return class_name(path / "transformer" / "config.json") == TRANSFORMER_CLASS


def claims_state(keys: Any) -> bool:
    return any(marker in k for k in keys for marker in STATE_MARKERS)


def shipped_configs() -> Path:
    return configs_dir() / "zimage"


def scheduler_config(folder: Path | None) -> dict[str, Any]:
    """The folder's scheduler config, else the shipped Z-Image-Turbo one (shift 3)."""
    own = folder / "scheduler" / "scheduler_config.json" if folder is not None else None
    found = own if own is not None and own.exists() else shipped_configs() / "scheduler" / "scheduler_config.json"
    return json.loads(found.read_text())


# -- diffusers folders ------------------------------------------------------------------------------------
def load_folder(path: Path, device: str) -> LoadedCheckpoint:
    from diffusers import AutoencoderKL, ZImageTransformer2DModel

    _check_folder(path)
    _quiet_progress_bars()
    dtype = pick_dtype(device)
    transformer = _from_pretrained(ZImageTransformer2DModel, path, "transformer", torch_dtype=dtype)
    vae = _from_pretrained(AutoencoderKL, path, "vae")
    tokenizer, encoder = _folder_text_encoder(path, dtype)
    return assemble(path.name, scheduler_config(path), transformer, vae, tokenizer, encoder, device, dtype)


def _check_folder(path: Path) -> None:
    """A Z-Image transformer in another pipeline's folder, or a folder without a part, in one line."""
    check_pipeline_folder(path, TRANSFORMER_CLASS, "ZImagePipeline", "Z-Image", FOLDER_PARTS,
                          "copy the whole ZImagePipeline folder (e.g. Tongyi-MAI/Z-Image-Turbo), or load "
                          "qwen_3_4b.safetensors with TextEncoderLoader (type lumina2)")


def _folder_text_encoder(path: Path, dtype: torch.dtype) -> tuple[Any, Any]:
    from transformers import AutoTokenizer, Qwen3Model

    found = folder_text_encoders(path, dtype, (("", Qwen3Model, AutoTokenizer),), checked=("tokenizer",))
    return found["tokenizer"], found["text_encoder"]


def model_fields(name: str, sched: dict, transformer: Any, factor: int) -> dict[str, Any]:
    """The MODEL wrapper's fields for a Z-Image transformer."""
    return dict(unet=transformer, scheduler_config=dict(sched), prediction_type="flow",
                latent_channels=transformer.config.in_channels, vae_factor=factor, family="zimage", name=name,
                sampling_behaviour=ZIMAGE_SAMPLING)


def clip_fields(tokenizer: Any, encoder: Any) -> dict[str, Any]:
    """The CLIP wrapper's fields for Z-Image's Qwen3 text encoder."""
    return dict(tokenizer=tokenizer, text_encoder=encoder, family="zimage",
                context_width=int(encoder.config.hidden_size))


def assemble(name: str, sched: dict, transformer: Any, vae: Any, tokenizer: Any, encoder: Any, device: str,
             dtype: torch.dtype) -> LoadedCheckpoint:
    """The MODEL, CLIP and VAE fields of a Z-Image model from its loaded parts."""
    from .flux import vae_fields

    _finish([transformer, encoder], device, dtype)
    _finish([vae], device, vae_dtype(device, bool(getattr(vae.config, "force_upcast", False))))
    factor = 2 ** (len(vae.config.block_out_channels) - 1)
    return LoadedCheckpoint(model_fields(name, sched, transformer, factor), clip_fields(tokenizer, encoder),
                            vae_fields(vae, factor))


# -- single files -------------------------------------------------------------------------------------------
def load_file(path: Path, device: str, state: dict, metadata: dict) -> LoadedCheckpoint:
    """Z-Image's files come apart (transformer, Qwen3, VAE), not as one checkpoint: say which loaders take them."""
    raise NodeError(f"{path.name} is a Z-Image transformer alone, which CheckpointLoader cannot load: {SEPARATE}",
                    field="checkpoint")


# -- LoRAs ------------------------------------------------------------------------------------------------------
BLOCKS = ("layers.", "noise_refiner.", "context_refiner.", "all_x_embedder.", "all_final_layer.", "cap_embedder.",
          "t_embedder.")


def lora_state(state: dict[str, torch.Tensor], source: str) -> dict[str, torch.Tensor]:
    """A Z-Image LoRA in diffusers' names, as ZImagePipeline.load_lora_weights reads it: kohya / musubi
    (`lora_unet_layers_0_attention_to_q`, alpha folded in), ai-toolkit's `diffusion_model.` names and
    diffusers' / PEFT's own (`transformer.` names, or the bare module names, which get the prefix)."""
    from diffusers.loaders import ZImageLoraLoaderMixin

    if any(k.startswith(("base_model.model.", "transformer.", "text_encoder.")) for k in state):
        return state
    try:
        converted = ZImageLoraLoaderMixin.lora_state_dict(dict(state))
    except Exception as exc:   # diffusers' converters raise bare KeyError/ValueError on layouts they half know
        line = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
        raise NodeError(f"LoRA {source} is not in a Z-Image LoRA layout diffusers can read ({line}); use a kohya, "
                        "ai-toolkit or diffusers/PEFT Z-Image LoRA", field="lora") from None
    return {("transformer." + k if k.startswith(BLOCKS) else k): v for k, v in converted.items()}


# -- text -------------------------------------------------------------------------------------------------------
def encode(clip: Any, text: str, embeddings: Any = None, **texts: str) -> dict[str, Any]:
    from .zimage_text import encode_zimage

    return encode_zimage(clip, text)
