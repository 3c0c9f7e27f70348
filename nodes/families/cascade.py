"""Stable Cascade (Würstchen v3) as a family: two StableCascadeUNets that sample one after the other.
Stage C (the prior) draws a small 16-channel latent (the image's EfficientNet features, width //
compression: 42 for 1024 px -> 24) from the prompt and optional CLIP image embeddings; stage B (the
decoder) draws stage A's 4-channel latent (width // 4) guided by stage C's result (StageB
Conditioning) and the prompt's pooled vector; stage A (Paella's VQ-GAN) decodes it to pixels.

Files: diffusers folders in StableCascadePriorPipeline's layout (prior, text_encoder = CLIP-G with
projection, tokenizer, optional image_encoder + feature_extractor) and StableCascadeDecoderPipeline's
(decoder, vqgan = stage A, text_encoder, tokenizer); a stage C or stage B UNet alone in the original
layout (stage_c.safetensors, stage_b.safetensors: converted by diffusers' own single-file converter,
its config from `<name>.config/` beside it) is refused by CheckpointLoader with the loader to use.
Both stages are MODELs of family "cascade" (the stage from the network's config); sampling is
nodes/families/cascade_sampling.py, the stage nodes nodes/families/cascade_nodes.py.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from nodeforge.core.errors import NodeError

from ..loading import _finish, _from_pretrained, _quiet_progress_bars, check_vocabulary, pick_dtype
from ..wrappers import LoadedCheckpoint
from .probe import class_name

MODEL_FAMILIES = ("cascade",)
UNET_CLASS = "StableCascadeUNet"
# Keys only each stage has, in diffusers' layout and the original one (with or without ComfyUI's
# "model.diffusion_model." prefix): stage C's text mapper, stage B's EfficientNet mapper.
STAGE_C_MARKER = "clip_txt_mapper.weight"
STAGE_B_MARKER = "effnet_mapper.0.weight"
NUM_TRAIN_TIMESTEPS = 1000
COSINE_S = 0.008
# ComfyUI samples stage C with its noise levels shifted by 2 (more steps at high noise), stage B unshifted.
STAGE_SHIFT = {"c": 2.0, "b": 1.0}
SEPARATE = ("load it with Stable Cascade Checkpoint Loader from its StableCascadePriorPipeline (stage C) or "
            "StableCascadeDecoderPipeline (stage B) folder")


def claims_folder(path: Path) -> bool:
    return any(class_name(path / part / "config.json") == UNET_CLASS for part in ("prior", "decoder"))


def claims_state(keys: Any) -> bool:
    return any(k.endswith((STAGE_C_MARKER, STAGE_B_MARKER)) for k in keys)


def stage_of(unet: Any) -> str:
    """"c" for a prior (it reads the prompt's tokens), "b" for a decoder (it reads stage C's latent)."""
    return "c" if unet.config.clip_text_in_channels else "b"


# -- the noise schedule ---------------------------------------------------------------------------------------
def alphas_cumprod(shift: float = 1.0) -> torch.Tensor:
    """Würstchen's cosine schedule at t = (i + 1) / 1000 for training step i, in float64: cos((t + s) /
    (1 + s) pi / 2)^2 over its value at 0, its log-SNR moved by -2 ln(shift), clamped to [1e-4, 0.9999]
    as diffusers' DDPMWuerstchenScheduler and ComfyUI clamp it."""
    t = torch.arange(1, NUM_TRAIN_TIMESTEPS + 1, dtype=torch.float64) / NUM_TRAIN_TIMESTEPS
    s = torch.tensor(COSINE_S, dtype=torch.float64)
    start = torch.cos(s / (1 + s) * torch.pi * 0.5) ** 2
    cumprod = torch.cos((t + s) / (1 + s) * torch.pi * 0.5) ** 2 / start
    if shift != 1.0:
        cumprod = (torch.logit(cumprod.clamp(1e-12, 1 - 1e-12)) - 2 * torch.log(torch.tensor(shift,
                                                                                           dtype=torch.float64))).sigmoid()
    return cumprod.clamp(1e-4, 0.9999)


def scheduler_config(stage: str) -> dict[str, Any]:
    """The MODEL's scheduler config: a discrete 1000-step schedule whose alphas' product is the cosine table
    (trained_betas), epsilon prediction, steps spaced from the top ("trailing": 1000 / steps apart, as the
    pipelines' linspace(1, 0)); `_shift` is the stage's sigma shift (cascade_sampling.py applies it)."""
    cumprod = alphas_cumprod()
    betas = 1 - cumprod / torch.cat([cumprod.new_ones(1), cumprod[:-1]])
    return {"num_train_timesteps": NUM_TRAIN_TIMESTEPS, "trained_betas": betas.tolist(),
            "prediction_type": "epsilon", "timestep_spacing": "trailing", "_shift": STAGE_SHIFT[stage],
            "_stage": stage}


# -- diffusers folders ------------------------------------------------------------------------------------
def load_folder(path: Path, device: str) -> LoadedCheckpoint:
    from diffusers import StableCascadeUNet

    part = "prior" if class_name(path / "prior" / "config.json") == UNET_CLASS else "decoder"
    for needed in ("text_encoder", "tokenizer") + (("vqgan",) if part == "decoder" else ()):
        if not (path / needed).is_dir():
            raise NodeError(f"{path.name} has a Stable Cascade {part} but no {needed}/ folder; copy the whole "
                            f"StableCascade{'Prior' if part == 'prior' else 'Decoder'}Pipeline folder",
                            field="checkpoint")
    _quiet_progress_bars()
    dtype = pick_dtype(device)
    unet = _from_pretrained(StableCascadeUNet, path, part, torch_dtype=dtype)
    tokenizer, encoder = _text_encoder(path, dtype)
    _finish([unet, encoder], device, dtype)
    stage = stage_of(unet)
    extra: dict[str, Any] = {}
    if stage == "c":
        from ..unclip_model import folder_clip_vision

        extra["clip_vision"] = folder_clip_vision(path, device)
        vae = absent_encoder_fields(path.name)
    else:
        from diffusers.pipelines.deprecated.wuerstchen import PaellaVQModel

        vqgan = _from_pretrained(PaellaVQModel, path, "vqgan")
        _finish([vqgan], device, torch.float32)
        vae = stage_a_fields(vqgan)
    return LoadedCheckpoint(model_fields(path.name, unet), clip_fields(tokenizer, encoder), vae, extra)


def _text_encoder(path: Path, dtype: torch.dtype) -> tuple[Any, Any]:
    from transformers import CLIPTextModelWithProjection, CLIPTokenizer

    encoder = _from_pretrained(CLIPTextModelWithProjection, path, "text_encoder", torch_dtype=dtype)
    tokenizer = CLIPTokenizer.from_pretrained(str(path), subfolder="tokenizer", local_files_only=True)
    check_vocabulary(path, "tokenizer", tokenizer)
    return tokenizer, encoder


def model_fields(name: str, unet: Any) -> dict[str, Any]:
    """The MODEL wrapper's fields for a stage C or stage B network."""
    from .cascade_sampling import CASCADE_SAMPLING

    stage = stage_of(unet)
    return dict(unet=unet, scheduler_config=scheduler_config(stage), prediction_type="epsilon",
                latent_channels=int(unet.config.in_channels), vae_factor=STAGE_FACTOR[stage], family="cascade",
                name=name, sampling_behaviour=CASCADE_SAMPLING)


# Pixels per latent pixel: stage C at ComfyUI's default compression 42, stage B's (stage A's) 4.
STAGE_FACTOR = {"c": 42, "b": 4}


def clip_fields(tokenizer: Any, encoder: Any) -> dict[str, Any]:
    return dict(tokenizer=tokenizer, text_encoder=encoder, family="cascade",
                context_width=int(encoder.config.hidden_size))


def stage_a_fields(vqgan: Any) -> dict[str, Any]:
    """Stage A as the VAE: latents scaled by 1 / its scale_factor (StableCascadeDecoderPipeline decodes
    `vqgan.decode(latents * scale_factor)`), pixels in -1..1 as the VAE nodes expect."""
    from .cascade_nodes import StageA

    module = StageA(vqgan)
    factor = int(vqgan.config.up_down_scale_factor) * 2 ** (int(vqgan.config.levels) - 1)
    return dict(vae=module, scaling_factor=1.0 / float(vqgan.config.scale_factor), shift_factor=0.0, factor=factor,
                latent_channels=int(vqgan.config.latent_channels))


def absent_encoder_fields(name: str) -> dict[str, Any]:
    """A stage C folder's VAE: diffusers' prior pipeline has no EfficientNet encoder (ComfyUI's c_vae), so
    encoding or decoding with it is refused in one line."""
    from .cascade_nodes import AbsentStageCCoder

    return dict(vae=AbsentStageCCoder(name), scaling_factor=1.0, shift_factor=0.0, factor=32, latent_channels=16)


# -- single files -------------------------------------------------------------------------------------------
def load_file(path: Path, device: str, state: dict, metadata: dict) -> LoadedCheckpoint:
    """A stage's UNet file alone has no text encoder or VAE: say what CheckpointLoader needs instead."""
    stage = "C" if any(k.endswith(STAGE_C_MARKER) for k in state) else "B"
    raise NodeError(f"{path.name} is a Stable Cascade stage {stage} UNet alone, which CheckpointLoader cannot "
                    f"load: {SEPARATE}", field="checkpoint")


# -- text -------------------------------------------------------------------------------------------------------
def encode(clip: Any, text: str, embeddings: Any = None, **texts: str) -> dict[str, Any]:
    """As StableCascadePriorPipeline.encode_prompt: CLIP-G's last hidden state over the 77 tokens padded with
    their attention mask, and its projected pooled output."""
    from ..placement import device_of

    tok, encoder = clip.tokenizer, clip.text_encoder
    tokens = tok(text, padding="max_length", max_length=tok.model_max_length, truncation=True, return_tensors="pt")
    device = device_of(encoder)
    with torch.inference_mode(), clip.patched():
        out = encoder(tokens.input_ids.to(device), attention_mask=tokens.attention_mask.to(device),
                      output_hidden_states=True)
    return {"embeds": out.hidden_states[-1].float().cpu(), "pooled": out.text_embeds.float().cpu(),
            "family": "cascade"}
