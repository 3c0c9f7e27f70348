"""Qwen-Image (and Qwen-Image-Edit 2509 / 2511) as a family: a 20B MMDiT over 16-channel latents packed
in 2x2 patches, rectified flow with a resolution-dependent shift, a Qwen2.5-VL-7B text encoder (which
also reads the edit models' reference pictures), and Qwen's own VAE (Wan 2.1's, with per-channel mean and
deviation).

Files: a diffusers folder in QwenImagePipeline's (or QwenImageEdit*Pipeline's) layout, or ComfyUI's
separate files (nodes/families/qwenimage_file.py): the transformer in diffusion_models
(qwen_image_fp8_e4m3fn.safetensors, qwen_image_edit_2509_fp8_e4m3fn.safetensors; DiffusionModelLoader,
ComfyUI's UNETLoader), Qwen2.5-VL in text_encoders (qwen_2.5_vl_7b_fp8_scaled.safetensors;
TextEncoderLoader with type qwen_image, ComfyUI's CLIPLoader) and the VAE (qwen_image_vae.safetensors;
VAELoader). Configs come from `resources/configs/qwenimage/`. Prompts are encoded as QwenImagePipeline
and QwenImageEditPlusPipeline do (nodes/families/qwenimage_text.py); sampling is Flux's flow matching
with Qwen-Image's model call and reference latents (nodes/families/qwenimage_sampling.py).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from nodeforge.core.errors import NodeError

from ..loading import _finish, _from_pretrained, _quiet_progress_bars, configs_dir, pick_dtype, vae_dtype
from ..wrappers import LoadedCheckpoint
from .flow import check_pipeline_folder, folder_text_encoders
from .probe import class_name

MODEL_FAMILIES = ("qwenimage",)
TRANSFORMER_CLASS = "QwenImageTransformer2DModel"
FOLDER_PARTS = (("vae", "the VAE"), ("text_encoder", "the Qwen2.5-VL text encoder"),
                ("tokenizer", "Qwen2.5-VL's tokenizer"))
# A key of Qwen-Image's transformer (ComfyUI's files use diffusers' names); it also has SD3's
# `transformer_blocks.0.attn.add_q_proj.`, so this family is asked before SD3.
STATE_MARKERS = ("transformer_blocks.0.img_mod.1.",)
SEPARATE = ("load it with DiffusionModelLoader, qwen_2.5_vl_7b.safetensors with TextEncoderLoader (type qwen_image) "
            "and qwen_image_vae.safetensors with VAELoader (ComfyUI's UNETLoader, CLIPLoader, VAELoader), or pick the "
            "QwenImagePipeline folder")


def claims_folder(path: Path) -> bool:
    return class_name(path / "transformer" / "config.json") == TRANSFORMER_CLASS


def claims_state(keys: Any) -> bool:
    return any(marker in k for k in keys for marker in STATE_MARKERS)


def transformer_dtype(device: str) -> torch.dtype:
    """bf16 where the device has it, else fp32: Qwen-Image's transformer and VAE overflow in fp16 (black pictures),
    so an fp16-only device (MPS, older NVIDIA GPUs) runs them in fp32, as ComfyUI does."""
    dtype = pick_dtype(device)
    return torch.float32 if dtype == torch.float16 else dtype


def shipped_configs() -> Path:
    return configs_dir() / "qwenimage"


def scheduler_config(folder: Path | None) -> dict[str, Any]:
    """The folder's scheduler config, else the shipped Qwen-Image one (dynamic shift, terminal 0.02)."""
    own = folder / "scheduler" / "scheduler_config.json" if folder is not None else None
    found = own if own is not None and own.exists() else shipped_configs() / "scheduler" / "scheduler_config.json"
    return json.loads(found.read_text())


# -- the VAE --------------------------------------------------------------------------------------------------------
class QwenImageVAE(torch.nn.Module):
    """Qwen-Image's video-shaped VAE as the image VAE the pack's VAEEncode / VAEDecode drive: pictures go in as
    one frame, and latents are normalised by the VAE's per-channel mean and deviation (as the pipelines do),
    so the wrapper's scaling factor is 1 and its shift 0."""

    def __init__(self, model: Any) -> None:
        super().__init__()
        self.model = model
        self.config = model.config

    def _stats(self, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean = torch.tensor(self.config.latents_mean).view(1, -1, 1, 1).to(like.device, like.dtype)
        std = torch.tensor(self.config.latents_std).view(1, -1, 1, 1).to(like.device, like.dtype)
        return mean, std

    def encode(self, pixels: torch.Tensor) -> Any:
        raw = self.model.encode(pixels.unsqueeze(2)).latent_dist.mode()[:, :, 0]
        mean, std = self._stats(raw)
        return _Encoded((raw - mean) / std)

    def decode(self, latents: torch.Tensor) -> Any:
        mean, std = self._stats(latents)
        return _Decoded(self.model.decode((latents * std + mean).unsqueeze(2)).sample[:, :, 0])


class _Encoded:
    """What AutoencoderKL.encode gives, as vae.py reads it (`latent_dist.mode()`)."""

    def __init__(self, latents: torch.Tensor) -> None:
        self.latent_dist = self
        self._latents = latents

    def mode(self) -> torch.Tensor:
        return self._latents


class _Decoded:
    def __init__(self, sample: torch.Tensor) -> None:
        self.sample = sample


def vae_fields(model: Any) -> dict[str, Any]:
    """The VAE wrapper's fields for Qwen-Image's VAE (8 pixels per latent pixel: 2 ** its temporal levels)."""
    return dict(vae=QwenImageVAE(model), scaling_factor=1.0, shift_factor=0.0,
                factor=2 ** len(model.config.temperal_downsample), latent_channels=int(model.config.z_dim))


# -- diffusers folders ------------------------------------------------------------------------------------------
def load_folder(path: Path, device: str) -> LoadedCheckpoint:
    from diffusers import AutoencoderKLQwenImage, QwenImageTransformer2DModel

    check_pipeline_folder(path, TRANSFORMER_CLASS, "QwenImagePipeline", "Qwen-Image", FOLDER_PARTS,
                          "copy the whole QwenImagePipeline folder (e.g. Qwen/Qwen-Image or Qwen/Qwen-Image-Edit-2509), "
                          "or load qwen_2.5_vl_7b.safetensors with TextEncoderLoader (type qwen_image)")
    _quiet_progress_bars()
    dtype = pick_dtype(device)
    transformer = _from_pretrained(QwenImageTransformer2DModel, path, "transformer", torch_dtype=dtype)
    vae = _from_pretrained(AutoencoderKLQwenImage, path, "vae")
    tokenizer, encoder = _folder_text_encoder(path, dtype)
    _finish([transformer], device, transformer_dtype(device))
    _finish([encoder], device, dtype)
    _finish([vae], device, vae_dtype(device, True))
    factor = 2 ** len(vae.config.temperal_downsample)
    return LoadedCheckpoint(model_fields(path.name, scheduler_config(path), transformer, factor),
                            clip_fields(tokenizer, encoder), vae_fields(vae))


def _folder_text_encoder(path: Path, dtype: torch.dtype) -> tuple[Any, Any]:
    from transformers import AutoTokenizer, Qwen2_5_VLForConditionalGeneration

    found = folder_text_encoders(path, dtype, (("", Qwen2_5_VLForConditionalGeneration, AutoTokenizer),),
                                 checked=("tokenizer",))
    return found["tokenizer"], found["text_encoder"]


def model_fields(name: str, sched: dict, transformer: Any, factor: int) -> dict[str, Any]:
    """The MODEL wrapper's fields for a Qwen-Image transformer."""
    from .qwenimage_sampling import QWENIMAGE_SAMPLING

    return dict(unet=transformer, scheduler_config=dict(sched), prediction_type="flow",
                latent_channels=transformer.config.in_channels // 4, vae_factor=factor, family="qwenimage",
                name=name, sampling_behaviour=QWENIMAGE_SAMPLING)


def clip_fields(tokenizer: Any, encoder: Any) -> dict[str, Any]:
    """The CLIP wrapper's fields for Qwen-Image's Qwen2.5-VL text encoder."""
    return dict(tokenizer=tokenizer, text_encoder=encoder, family="qwenimage",
                context_width=int(encoder.config.text_config.hidden_size))


# -- single files -------------------------------------------------------------------------------------------
def load_file(path: Path, device: str, state: dict, metadata: dict) -> LoadedCheckpoint:
    """Qwen-Image's files come apart (transformer, Qwen2.5-VL, VAE), not as one checkpoint: say which loaders
    take them."""
    raise NodeError(f"{path.name} is a Qwen-Image transformer alone, which CheckpointLoader cannot load: {SEPARATE}",
                    field="checkpoint")


# -- LoRAs ------------------------------------------------------------------------------------------------------
BLOCKS = ("transformer_blocks.", "img_in.", "txt_in.", "txt_norm.", "time_text_embed.", "norm_out.", "proj_out.")


def lora_state(state: dict[str, torch.Tensor], source: str) -> dict[str, torch.Tensor]:
    """A Qwen-Image LoRA in diffusers' names, as QwenImagePipeline.load_lora_weights reads it: kohya / musubi /
    ComfyUI's `diffusion_model.` names (lightx2v's Lightning LoRAs), alpha folded in, and diffusers' / PEFT's own
    (`transformer.` names, or the bare module names, which get the prefix)."""
    from diffusers.loaders import QwenImageLoraLoaderMixin

    if any(k.startswith(("base_model.model.", "transformer.")) for k in state):
        return state
    try:
        converted = QwenImageLoraLoaderMixin.lora_state_dict(dict(state))
    except Exception as exc:   # diffusers' converters raise bare KeyError/ValueError on layouts they half know
        line = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
        raise NodeError(f"LoRA {source} is not in a Qwen-Image LoRA layout diffusers can read ({line}); use a kohya, "
                        "ComfyUI (diffusion_model.) or diffusers/PEFT Qwen-Image LoRA", field="lora") from None
    return {("transformer." + k if k.startswith(BLOCKS) else k): v for k, v in converted.items()}


# -- text -------------------------------------------------------------------------------------------------------
def encode(clip: Any, text: str, embeddings: Any = None, **texts: str) -> dict[str, Any]:
    from .qwenimage_text import encode_qwenimage

    return encode_qwenimage(clip, text)
