"""Stable Cascade (Würstchen v3) as a family: two StableCascadeUNets that sample one after the other.
Stage C (the prior) draws a small 16-channel latent (the image's EfficientNet features, width //
compression: 42 for 1024 px -> 24) from the prompt and optional CLIP image embeddings; stage B (the
decoder) draws stage A's 4-channel latent (width // 4) guided by stage C's result (StageB
Conditioning) and the prompt's pooled vector; stage A (Paella's VQ-GAN) decodes it to pixels.

Files: diffusers folders in StableCascadePriorPipeline's layout (prior, text_encoder = CLIP-G with
projection, tokenizer, optional image_encoder + feature_extractor) and StableCascadeDecoderPipeline's
(decoder, vqgan = stage A, text_encoder, tokenizer); ComfyUI's single files: the bundled
stable_cascade_stage_c.safetensors (UNet + CLIP-G + CLIP-L image encoder + EfficientNet) and
stable_cascade_stage_b.safetensors (UNet + stage A), or a stage's UNet alone (stage_c.safetensors,
stage_b_lite.safetensors ...), the UNet converted by diffusers' own single-file converter, its config from
`<name>.config/` beside it or the shipped full / lite one (resources/configs/cascade/).
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


def absent_encoder_fields(name: str, bundled: bool = False) -> dict[str, Any]:
    """Stage C's VAE where the checkpoint has no EfficientNet encoder (ComfyUI's c_vae; diffusers' prior folder
    has none): encoding or decoding with it is refused in one line."""
    from .cascade_nodes import AbsentStageCCoder

    return dict(vae=AbsentStageCCoder(name, bundled), scaling_factor=1.0, shift_factor=0.0, factor=32,
                latent_channels=16)


def absent_stage_a_fields(name: str) -> dict[str, Any]:
    """A stage B file without stage A: decoding with its VAE is refused in one line."""
    from .cascade_nodes import AbsentStageA

    return dict(vae=AbsentStageA(name), scaling_factor=1.0, shift_factor=0.0, factor=4, latent_channels=4)


# -- single files -------------------------------------------------------------------------------------------
# ComfyUI's bundled checkpoints (stabilityai/stable-cascade comfyui_checkpoints/stable_cascade_stage_c.safetensors
# and _stage_b) hold the UNet under "model.diffusion_model." beside these parts; the stage files alone
# (stage_c.safetensors, stage_b_bf16.safetensors, the _lite ones) hold only the UNet, without a prefix.
UNET_PREFIX = "model.diffusion_model."
TEXT_PREFIX, VISION_PREFIX, VAE_PREFIX = "text_encoder.", "clip_l_vision.", "vae."
PART_PREFIXES = (TEXT_PREFIX, VISION_PREFIX, VAE_PREFIX)


def load_file(path: Path, device: str, state: dict, metadata: dict) -> LoadedCheckpoint:
    """A stage C or stage B single file: its UNet (diffusers' own conversion of the original layout, the config
    from `<name>.config/` beside it or the shipped full / lite one its widths name), and whatever the file
    bundles: CLIP-G and the CLIP-L image encoder (stage C), stage A (stage B)."""
    from diffusers import StableCascadeUNet
    from diffusers.loaders.single_file_utils import convert_stable_cascade_unet_single_file_to_diffusers

    from ..loading import model_from_state

    parts = {prefix: {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)} for prefix in PART_PREFIXES}
    unet_state = {k[len(UNET_PREFIX):]: v for k, v in state.items() if k.startswith(UNET_PREFIX)} or \
        {k: v for k, v in state.items() if not k.startswith(PART_PREFIXES)}
    stage = "c" if STAGE_C_MARKER in unet_state else "b"
    converted = convert_stable_cascade_unet_single_file_to_diffusers(unet_state)
    beside = path.with_name(path.stem + ".config")
    _quiet_progress_bars()
    unet = model_from_state(StableCascadeUNet, _unet_config(beside, stage, converted), converted,
                            f"stage {stage.upper()} UNet")
    dtype = pick_dtype(device)
    tokenizer, encoder = _file_text_encoder(path, beside, parts[TEXT_PREFIX])
    _finish([m for m in (unet, encoder) if m is not None], device, dtype)
    clip = clip_fields(tokenizer, encoder) if encoder is not None else dict(
        tokenizer=None, text_encoder=None, family="cascade",
        missing=f"{path.name} holds no text encoder (only the stage {stage.upper()} UNet): link the clip of the stage C "
                "checkpoint (ComfyUI's comfyui_checkpoints/stable_cascade_stage_c.safetensors, or the "
                "StableCascadePriorPipeline folder)")
    extra: dict[str, Any] = {}
    if parts[VISION_PREFIX]:
        extra["clip_vision"] = _file_clip_vision(path, beside, parts[VISION_PREFIX], device)
    if stage == "b" and parts[VAE_PREFIX]:
        vae = stage_a_fields(_file_stage_a(beside, parts[VAE_PREFIX]))
    elif stage == "b":
        vae = absent_stage_a_fields(path.name)
    elif any(k.startswith("encoder.backbone.") for k in parts[VAE_PREFIX]):
        vae = stage_c_coder_fields(parts[VAE_PREFIX], path.name)
    else:
        vae = absent_encoder_fields(path.name, bundled=bool(parts[VAE_PREFIX]))
    return LoadedCheckpoint(model_fields(path.stem, unet), clip, vae, extra)


def stage_c_coder_fields(state: dict, name: str) -> dict[str, Any]:
    """Stage C's VAE from the file's `vae.` tensors: the EfficientNet encoder (ImageNet's mean and std where the
    file leaves them out) and the previewer where it has one (without, decoding is refused in one line)."""
    from .cascade_effnet import IMAGENET_MEAN, IMAGENET_STD, StageCCoder

    from ..loading import _load_into

    state = dict(state)
    state.setdefault("encoder.mean", torch.tensor(IMAGENET_MEAN))
    state.setdefault("encoder.std", torch.tensor(IMAGENET_STD))
    with torch.device("meta"):
        coder = StageCCoder()
    if not any(k.startswith("previewer.") for k in state):
        coder.previewer = None
    _load_into(coder, state, "stage C encoder (EfficientNet)")
    coder.eval().to(torch.float32)
    coder.name = name
    return dict(vae=coder, scaling_factor=1.0, shift_factor=0.0, factor=32, latent_channels=16)


def _unet_config(beside: Path, stage: str, state: dict) -> dict[str, Any]:
    """`<name>.config/`'s UNet config (its prior/ or decoder/ folder, or its own config.json), else the shipped
    one: full or lite, told by the width of stage C's text mapper (2048 / 1536) or stage B's level 1 (640 / 576)."""
    from diffusers import StableCascadeUNet

    from ..loading import configs_dir

    for folder in (beside / ("prior" if stage == "c" else "decoder"), beside):
        if (folder / "config.json").is_file():
            return StableCascadeUNet.load_config(str(folder))
    if stage == "c":
        lite = int(state["clip_txt_mapper.weight"].shape[0]) == 1536
    else:
        found = state.get("down_blocks.1.0.channelwise.0.weight")
        lite = found is not None and int(found.shape[-1]) == 576
    name = f"stage_{stage}" + ("_lite" if lite else "")
    return StableCascadeUNet.load_config(str(configs_dir() / "cascade" / name))


def _file_text_encoder(path: Path, beside: Path, state: dict) -> tuple[Any, Any]:
    """CLIP-G with its projection (transformers' layout under "text_encoder."), its config from `<name>.config/
    text_encoder` or SDXL's second encoder's (OpenCLIP bigG)."""
    if not state:
        return None, None
    from transformers import CLIPTextConfig, CLIPTextModelWithProjection

    from ..loading import configs_dir, load_tokenizer

    if "text_projection" in state and "text_projection.weight" not in state:   # OpenCLIP's (in, out) matrix
        state = dict(state, **{"text_projection.weight": state.pop("text_projection").t().contiguous()})
    own = beside / "text_encoder"
    config = CLIPTextConfig.from_pretrained(str(own if own.is_dir() else configs_dir() / "sdxl" / "text_encoder_2"))
    encoder = _transformers_model(CLIPTextModelWithProjection, config, state, "text encoder (CLIP-G)")
    # padded with <|endoftext|> (ComfyUI's Stable Cascade tokenizer pads with the end token, under an attention mask)
    tokenizer = load_tokenizer([beside / "tokenizer", path.parent / "tokenizer"], "<|endoftext|>",
                               "text encoder (CLIP-G)")
    return tokenizer, encoder


def _file_clip_vision(path: Path, beside: Path, state: dict, device: str) -> Any:
    """The bundled CLIP-L image encoder (transformers' layout under "clip_l_vision.") as a CLIP_VISION."""
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    from ..ipadapter import ClipVision, _image_processor
    from ..loading import configs_dir

    own = beside / "image_encoder"
    config = CLIPVisionConfig.from_pretrained(str(own if own.is_dir() else configs_dir() / "clip_vision" / "vit-l-14"))
    model = _transformers_model(CLIPVisionModelWithProjection, config, state, "CLIP vision encoder")
    _finish([model], device, pick_dtype(device))
    processor = beside / "feature_extractor"
    return ClipVision(model, _image_processor(processor if processor.is_dir() else None, int(config.image_size)),
                      path.stem)


def _transformers_model(cls: Any, config: Any, state: dict, what: str) -> Any:
    """A transformers model built on the meta device and given the file's tensors (loading.py's checks)."""
    from ..loading import _load_into

    with torch.device("meta"):
        model = cls(config)
    _load_into(model, state, what)
    return model.eval()


def _file_stage_a(beside: Path, state: dict) -> Any:
    """Stage A (Paella's VQ-GAN, the original names: diffusers calls the codebook `embedding`)."""
    from diffusers.pipelines.deprecated.wuerstchen import PaellaVQModel

    from ..loading import configs_dir, model_from_state

    state = {k.replace("vquantizer.codebook.", "vquantizer.embedding."): v for k, v in state.items()}
    own = beside / "vqgan"
    config = PaellaVQModel.load_config(str(own if own.is_dir() else configs_dir() / "cascade" / "vqgan"))
    vqgan = model_from_state(PaellaVQModel, config, state, "stage A (VQ-GAN)")
    vqgan.to(torch.float32)
    return vqgan


# -- text -------------------------------------------------------------------------------------------------------
def encode(clip: Any, text: str, embeddings: Any = None, **texts: str) -> dict[str, Any]:
    """As StableCascadePriorPipeline.encode_prompt: CLIP-G's last hidden state over the 77 tokens padded with
    their attention mask, and its projected pooled output."""
    from ..placement import device_of

    tok, encoder = clip.tokenizer, clip.text_encoder
    if encoder is None:
        raise NodeError(clip.missing or "this CLIP holds no text encoder; link the stage C checkpoint's clip",
                        field="clip")
    tokens = tok(text, padding="max_length", max_length=tok.model_max_length, truncation=True, return_tensors="pt")
    device = device_of(encoder)
    with torch.inference_mode(), clip.patched():
        out = encoder(tokens.input_ids.to(device), attention_mask=tokens.attention_mask.to(device),
                      output_hidden_states=True)
    return {"embeds": out.hidden_states[-1].float().cpu(), "pooled": out.text_embeds.float().cpu(),
            "family": "cascade"}
