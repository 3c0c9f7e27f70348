"""CheckpointLoader: diffusers folders and single-file checkpoints (SD 1.x, SD 2.x, SDXL base and
refiner), offline.

A single file is recognised from its keys; its model configs come from the shipped
`resources/configs/<family>/` (or a `<name>.config/` diffusers-layout folder beside it for models
of other shapes). Loaded checkpoints are kept in the engine's shared registry by file identity,
so a graph that asks for the same file again reuses the modules instead of reading the disk.
"""
from __future__ import annotations

import json
import logging
import re
import threading
import weakref
from pathlib import Path
from typing import Any

import torch

from nodeforge.core.errors import NodeError, first_line
from nodeforge.core.models import file_identity
from nodeforge.core.types import FileKind
from nodeforge.paths import builtin_dir

from .wrappers import LoadedCheckpoint

log = logging.getLogger(__name__)

_REGISTRY_KEY = "nodes.checkpoints"
_lock = threading.Lock()
load_count = 0   # checkpoints read from disk in this process (benchmarks and tests watch it)

# Key prefixes of the original (LDM) layout.
UNET_PREFIX = "model.diffusion_model."
SD1_CLIP_PREFIX = "cond_stage_model.transformer."
SD2_CLIP_PREFIX = "cond_stage_model.model."
XL_CLIP1_PREFIX = "conditioner.embedders.0.transformer."
XL_CLIP2_PREFIX = "conditioner.embedders.1.model."
REFINER_CLIP_PREFIX = "conditioner.embedders.0.model."   # an SDXL refiner's only encoder (OpenCLIP bigG)
HUB_TOKENIZER = "openai/clip-vit-large-patch14"   # the BPE every SD family uses


def configs_dir() -> Path:
    return builtin_dir("resources") / "configs"


def bundled_clip_vocabulary() -> Path:
    """OpenAI's CLIP BPE (vocab.json + merges.txt, MIT): every SD family's tokenizers use it."""
    return builtin_dir("resources") / "tokenizers" / "clip"


# -- detection -------------------------------------------------------------------------------------
def detect_family(state_dict: dict[str, Any], metadata: dict[str, str] | None = None) -> tuple[str, str]:
    """(family, prediction type) from an original-layout state dict: sd1, sd2, sdxl or sdxl-refiner
    (OpenCLIP bigG as its first and only embedder; its config set is configs/sdxl-refiner).

    SD 2.x v-prediction cannot be told from shapes: a `v_pred` key (ComfyUI's marker), the
    file's metadata, or else ComfyUI's heuristic on the final layer norm of OpenCLIP decide.
    """
    keys = state_dict.keys()
    has = lambda prefix: any(k.startswith(prefix) for k in keys)  # noqa: E731
    if not has(UNET_PREFIX):
        raise NodeError("this file holds no Stable Diffusion UNet (no 'model.diffusion_model.' keys); "
                        "it may be a LoRA, a VAE or another kind of model", field="checkpoint")
    first_conv = state_dict.get(UNET_PREFIX + "input_blocks.0.0.weight")
    if first_conv is not None and first_conv.ndim == 4 and first_conv.shape[1] not in (4, 8, 9):
        raise NodeError(f"this is a special model (its UNet takes {first_conv.shape[1]} input channels); "
                        "standard (4), InstructPix2Pix (8: CosXL Edit) and inpainting (9) models are supported",
                        field="checkpoint")
    if has(REFINER_CLIP_PREFIX) and not has(XL_CLIP1_PREFIX):
        return "sdxl-refiner", "epsilon"
    if has(XL_CLIP2_PREFIX):
        return "sdxl", "epsilon"
    if has(SD2_CLIP_PREFIX):
        meta = {k.lower(): str(v).lower() for k, v in (metadata or {}).items()}
        if "v_pred" in keys or "v" in (meta.get("modelspec.prediction_type", ""), meta.get("prediction_type", "")) \
                or "v_prediction" in meta.values():
            return "sd2", "v_prediction"
        bias = state_dict.get(SD2_CLIP_PREFIX + "ln_final.bias")
        if bias is not None and float(torch.std(bias.float(), unbiased=False)) > 0.09:
            return "sd2", "v_prediction"
        return "sd2", "epsilon"
    if has(SD1_CLIP_PREFIX):
        return "sd1", "epsilon"
    raise NodeError("cannot tell which Stable Diffusion version this checkpoint is (no known text encoder "
                    "keys); only SD 1.x, SD 2.x and SDXL (base and refiner) single files are supported",
                    field="checkpoint")


# -- reading files -----------------------------------------------------------------------------------
def check_finite(tensors: Any, what: str, field: str) -> None:
    """Refuse weights holding NaN or infinity ((name, tensor) pairs of the file or model `what`): they
    would draw a black or noise image many steps later, naming nothing."""
    for name, tensor in tensors:
        if isinstance(tensor, torch.Tensor) and tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise NodeError(f"{what} holds NaN or infinite weights ({name[:80]}): the file is damaged or was saved "
                            "from a training run that diverged, and would draw a black image; use another copy "
                            "or another file", field=field)


def read_state_dict(path: Path, field: str = "checkpoint") -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Tensors and metadata of a .safetensors file, or of a .ckpt read without running its code;
    float8 weights upcast; weights holding NaN or infinity are refused, naming the file."""
    state, metadata = _read_state_dict(path, field)
    state = upcast_float8(state)
    check_finite(state.items(), path.name, field)
    return state, metadata


FLOAT8 = tuple(getattr(torch, name) for name in ("float8_e4m3fn", "float8_e5m2", "float8_e4m3fnuz", "float8_e5m2fnuz")
               if hasattr(torch, name))


def upcast_float8(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """float8 weights (fp8 checkpoints: flux1-dev-fp8, t5xxl_fp8_e4m3fn) as bfloat16, which holds every
    e4m3/e5m2 value exactly; no layer computes in float8. A "scaled" fp8 file (ComfyUI's, with a
    `scaled_fp8` marker) keeps a `<layer>.scale_weight` per layer: the weight times it."""
    if not any(t.dtype in FLOAT8 for t in state.values()):
        return state
    out = {}
    for key, tensor in state.items():
        if key == "scaled_fp8" or key.endswith((".scale_weight", ".scale_input")):
            continue
        value = tensor.to(torch.bfloat16) if tensor.dtype in FLOAT8 else tensor
        scale = state.get(key[:-len("weight")] + "scale_weight") if key.endswith(".weight") else None
        out[key] = value * scale.to(torch.bfloat16) if scale is not None else value
    return out


def _read_state_dict(path: Path, field: str) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    from .weight_files import load_pickle, read_safetensors

    if path.suffix.lower() == ".safetensors":
        return read_safetensors(path, field)
    data = load_pickle(path, field)
    if isinstance(data, dict) and isinstance(data.get("state_dict"), dict):
        data = data["state_dict"]
    if not isinstance(data, dict):
        raise NodeError(f"{path.name} holds no state dict", field=field)
    return {k: v for k, v in data.items() if isinstance(v, torch.Tensor)}, {}


# -- devices and dtypes ---------------------------------------------------------------------------------
def pick_dtype(device: str) -> torch.dtype:
    """fp32 on CPU; bf16 on CUDA GPUs that support it, else fp16; fp16 on MPS."""
    if device.startswith("cuda"):
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device == "mps":
        return torch.float16
    return torch.float32


def vae_dtype(device: str, force_upcast: bool) -> torch.dtype:
    # The SDXL VAE overflows in fp16 (its config says force_upcast); bf16 has fp32's range.
    dtype = pick_dtype(device)
    if dtype == torch.float16 and force_upcast:
        return torch.float32
    return dtype


def _finish(modules: list[Any], device: str, dtype: torch.dtype) -> None:
    """Loaded modules in `dtype`, in eval mode, where nodes/placement.py keeps them for `device`."""
    from .placement import place

    for module in modules:
        if module is None:
            continue
        place(module, device, dtype)
        module.eval()
        module.requires_grad_(False)
    # Attention: diffusers and transformers use torch's SDPA by default on torch >= 2.


# -- tokenizers -----------------------------------------------------------------------------------------
def load_tokenizer(candidates: list[Path], pad_token: str | None, what: str) -> Any:
    """A CLIP tokenizer from the first folder holding its vocabulary, else the bundled CLIP BPE
    (so a single-file checkpoint needs no other file), else the HF cache."""
    from transformers.models.clip.tokenization_clip import CLIPTokenizer

    bundled = bundled_clip_vocabulary()
    for folder in candidates:
        if (folder / "tokenizer.json").exists() or (folder / "vocab.json").exists():
            tok = CLIPTokenizer.from_pretrained(str(folder), local_files_only=True)
            break
    else:
        try:
            if (bundled / "vocab.json").is_file() and (bundled / "merges.txt").is_file():
                # transformers 5 names these `vocab` and `merges` (`vocab_file=` is silently ignored).
                tok = CLIPTokenizer(vocab=str(bundled / "vocab.json"), merges=str(bundled / "merges.txt"),
                                    model_max_length=77)
            else:
                tok = CLIPTokenizer.from_pretrained(HUB_TOKENIZER, local_files_only=True)
            if not tokenizer_works(tok):   # transformers 5 returns an empty tokenizer instead of raising
                raise FileNotFoundError(HUB_TOKENIZER)
        except Exception:
            places = ", ".join(str(c) for c in candidates[:2])
            raise NodeError(
                f"no CLIP tokenizer vocabulary found for the {what}: the checkpoint file holds none and "
                f"it cannot be downloaded offline. Put a CLIP tokenizer (tokenizer.json, or vocab.json + "
                f"merges.txt) in {places}, or download '{HUB_TOKENIZER}' into the Hugging Face cache once",
                field="checkpoint") from None
        if pad_token:
            tok.pad_token = pad_token
    return tok


def family_tokenizers(cfg: Path, family: str, beside: Path) -> tuple[Any, Any]:
    """The tokenizer(s) of a single-file checkpoint: the config folder's settings (SD 1.x and
    SDXL's first encoder pad with <|endoftext|>, SD 2.x and SDXL's second with "!", id 0). An
    SDXL refiner has only the second: (None, tokenizer_2)."""
    if family == "sdxl-refiner":
        return None, load_tokenizer([cfg / "tokenizer_2", beside / "tokenizer_2"], "!", "text encoder")
    config = cfg / "tokenizer" / "tokenizer_config.json"
    pad = json.loads(config.read_text()).get("pad_token") if config.exists() else None
    tok = load_tokenizer([cfg / "tokenizer", beside / "tokenizer"], pad, "text encoder")
    tok2 = None
    if family == "sdxl":
        tok2 = load_tokenizer([cfg / "tokenizer_2", beside / "tokenizer_2", cfg / "tokenizer"], "!",
                              "second text encoder")
    return tok, tok2


def tokenizer_works(tok: Any) -> bool:
    """False for the empty tokenizer transformers builds when the vocabulary files are missing."""
    ids = tok("a photo", add_special_tokens=False)["input_ids"]
    return bool(ids) and any(i != tok.unk_token_id for i in ids)


def check_vocabulary(path: Path, part: str, tok: Any) -> None:
    """Refuse, naming the diffusers folder's part and the files it lacks (its class's: vocab.json and
    merges.txt for CLIP and Qwen, spiece.model for T5), a tokenizer built without its vocabulary files."""
    if not tokenizer_works(tok):
        files = [f for f in getattr(tok, "vocab_files_names", {}).values() if f != "tokenizer.json"]
        raise NodeError(f"{path.name}/{part} holds no usable vocabulary (tokenizer.json, or "
                        f"{' and '.join(files) or 'the vocabulary files'}); copy it from the model again",
                        field="checkpoint")


def _quiet_progress_bars() -> None:
    # The engine reports progress itself; library bars would only clutter the CLI and the log.
    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()
    diffusers_logging.disable_progress_bar()


# -- diffusers folders ------------------------------------------------------------------------------------
def _from_pretrained(cls: Any, path: Path, part: str, **kw: Any) -> Any:
    """A component of a diffusers folder; folders that only hold fp16 variant files work too.
    Pickled weights (.bin) are refused before diffusers would unpickle them, unreadable ones are
    one line, and NaN or infinite weights are refused naming the part."""
    files = list((path / part).glob("*.safetensors"))
    if not files and any((path / part).glob("*.bin")):
        raise NodeError(f"{path.name}/{part} holds its weights only as pickled .bin files, which NodeForge does "
                        "not load (they can run code); convert the model to .safetensors", field="checkpoint")
    variant = "fp16" if files and all(f.name.endswith(".fp16.safetensors") for f in files) else None
    from .weight_files import check_safetensors_header, refuse_if_out_of_memory

    for file in files:    # empty, cut short, a Git LFS pointer: said with the file's name and the fix
        check_safetensors_header(file, "checkpoint", what=f"{path.name}/{part}/")
    try:
        model = cls.from_pretrained(str(path), subfolder=part, local_files_only=True, variant=variant, **kw)
    except Exception as exc:   # a damaged file, a config that does not fit (libraries raise many kinds)
        refuse_if_out_of_memory(exc, f"{path.name}/{part}", "checkpoint")
        line = first_line(exc)[:200].rstrip(".")
        raise NodeError(f"cannot load {path.name}/{part}: {line}; the file may be incomplete or damaged",
                        field="checkpoint") from None
    check_finite(model.state_dict().items(), f"{path.name}/{part}", "checkpoint")
    return model


def load_diffusers_folder(path: Path, device: str) -> LoadedCheckpoint:
    from diffusers.models.autoencoders.autoencoder_kl import AutoencoderKL
    from diffusers.models.unets.unet_2d_condition import UNet2DConditionModel
    from transformers.models.clip.modeling_clip import CLIPTextModel, CLIPTextModelWithProjection
    from transformers.models.clip.tokenization_clip import CLIPTokenizer

    dtype = pick_dtype(device)
    _quiet_progress_bars()
    # An SDXL refiner (StableDiffusionXLImg2ImgPipeline) has only text_encoder_2 and tokenizer_2.
    refiner = not (path / "text_encoder").is_dir() and (path / "text_encoder_2").is_dir()
    needed = ("unet", "vae", "text_encoder_2", "tokenizer_2") if refiner else ("unet", "vae", "text_encoder", "tokenizer")
    for part in needed:
        if not (path / part).is_dir():
            raise NodeError(f"{path.name} is not a complete diffusers model: it has no '{part}' folder",
                            field="checkpoint")
    unet = _from_pretrained(UNet2DConditionModel, path, "unet", torch_dtype=dtype)
    vae = _from_pretrained(AutoencoderKL, path, "vae")
    kw = {"local_files_only": True}
    te = tok = te2 = tok2 = None
    if not refiner:
        te = _from_pretrained(CLIPTextModel, path, "text_encoder", torch_dtype=dtype)
        tok = CLIPTokenizer.from_pretrained(str(path), subfolder="tokenizer", **kw)
    if (path / "text_encoder_2").is_dir():
        te2 = _from_pretrained(CLIPTextModelWithProjection, path, "text_encoder_2", torch_dtype=dtype)
        tok2 = CLIPTokenizer.from_pretrained(str(path), subfolder="tokenizer_2", **kw)
    for part, found in (("tokenizer", tok), ("tokenizer_2", tok2)):
        if found is not None:
            check_vocabulary(path, part, found)
    loaded = finish_folder(path, unet, vae, te, tok, te2, tok2, device, dtype)
    from .unclip_model import AbsentClipVision, folder_augmentor, folder_clip_vision, is_unclip_folder

    if is_unclip_folder(path):   # SD 2.1 unCLIP (StableUnCLIPImg2ImgPipeline): its noise augmentor and image encoder
        loaded.unet_fields["unclip"] = folder_augmentor(path)
        loaded.extra["clip_vision"] = folder_clip_vision(path, device)
        vision = loaded.extra["clip_vision"]
        if not isinstance(vision, AbsentClipVision):
            loaded.extra["image_encoder"] = vision.model   # counted by the output cache
    return loaded


def finish_folder(path: Path, unet: Any, vae: Any, te: Any, tok: Any, te2: Any, tok2: Any, device: str,
                  dtype: torch.dtype) -> LoadedCheckpoint:
    """A diffusers folder's loaded parts on `device` with its scheduler config, family and preview map."""
    sched_file = path / "scheduler" / "scheduler_config.json"
    sched = json.loads(sched_file.read_text()) if sched_file.exists() else \
        json.loads((configs_dir() / "sd1" / "scheduler" / "scheduler_config.json").read_text())
    family = "sdxl" if te2 is not None else "sd2" if unet.config.cross_attention_dim == 1024 else "sd1"
    return _assemble(path.name, family, sched, unet, vae, te, tok, te2, tok2, device, dtype,
                     preview_rgb=read_preview_rgb(path / "latent_preview.json", unet.config.out_channels))


def read_preview_rgb(file: Path, channels: int) -> tuple | None:
    """A model's own latent -> RGB preview map: {"rgb_factors": [[r, g, b] per latent channel],
    "rgb_bias": [r, g, b]}, for values in -1..1, and optionally "layers": a tiny decoder that
    previews use instead (see latents.preview_image). Missing or malformed: None (the family's
    table). Returns (factors, bias), or (factors, bias, layers)."""
    if not file.is_file():
        return None
    try:
        spec = json.loads(file.read_text(encoding="utf-8"))
        factors = tuple(tuple(float(v) for v in row) for row in spec["rgb_factors"])
        bias = tuple(float(v) for v in spec.get("rgb_bias", (0.0, 0.0, 0.0)))
        if len(factors) != channels or any(len(row) != 3 for row in factors) or len(bias) != 3:
            raise ValueError(f"expected {channels} rows of 3 factors and 3 biases")
        layers = preview_layers(spec["layers"], channels) if "layers" in spec else None
    except (ValueError, KeyError, TypeError, RuntimeError) as exc:
        log.warning("ignoring %s: %s", file, exc)
        return None
    return (factors, bias) if layers is None else (factors, bias, layers)


def preview_layers(layers: list, channels: int) -> tuple:
    """latent_preview.json's "layers" as (weight, bias, padding, activation) tensors, checked to
    chain from `channels` latent channels to 3 (RGB)."""
    built, into = [], channels
    for layer in layers:
        weight = torch.tensor(layer["weight"], dtype=torch.float32)
        bias = torch.tensor(layer["bias"], dtype=torch.float32)
        k = int(layer.get("kernel", 1))
        if weight.shape[1:] != (into, k, k) or bias.shape != (weight.shape[0],) or k % 2 != 1:
            raise ValueError(f"a layer of shape {tuple(weight.shape)} does not follow {into} channels")
        padding, activation = layer.get("padding", "replicate"), layer.get("activation")
        if padding not in ("replicate", "zeros") or activation not in (None, "silu", "relu"):
            raise ValueError(f"unknown padding {padding!r} or activation {activation!r}")
        built.append((weight, bias, padding, activation))
        into = weight.shape[0]
    if into != 3:
        raise ValueError(f"the last layer gives {into} channels, not 3 (RGB)")
    return tuple(built)


def _assemble(name: str, family: str, sched: dict, unet: Any, vae: Any, te: Any, tok: Any, te2: Any,
              tok2: Any, device: str, dtype: torch.dtype, preview_rgb: tuple | None = None) -> LoadedCheckpoint:
    _finish([unet, te, te2], device, dtype)
    _finish([vae], device, vae_dtype(device, bool(getattr(vae.config, "force_upcast", False))))
    factor = 2 ** (len(vae.config.block_out_channels) - 1)
    shift = getattr(vae.config, "shift_factor", None) or 0.0
    return LoadedCheckpoint(
        dict(unet=unet, scheduler_config=dict(sched), prediction_type=sched.get("prediction_type", "epsilon"),
             latent_channels=unet.config.out_channels, vae_factor=factor, family=family, name=name,
             preview_rgb=preview_rgb),
        dict(tokenizer=tok, text_encoder=te, family=family, tokenizer_2=tok2, text_encoder_2=te2),
        dict(vae=vae, scaling_factor=float(vae.config.scaling_factor), shift_factor=float(shift), factor=factor,
             latent_channels=vae.config.latent_channels))


# -- single files -------------------------------------------------------------------------------------------
def _config_folder(path: Path, family: str, prediction: str) -> Path:
    beside = path.with_name(path.stem + ".config")
    if beside.is_dir():
        return beside
    name = "sd2-v" if family == "sd2" and prediction == "v_prediction" else family
    return configs_dir() / name


def _yaml_prediction(path: Path) -> str | None:
    # A1111 convention: model.yaml beside model.safetensors; `parameterization: "v"` means v-prediction.
    yaml = path.with_suffix(".yaml")
    if yaml.exists() and re.search(r"parameterization:\s*['\"]?v['\"]?\s*$", yaml.read_text(errors="replace"), re.M):
        return "v_prediction"
    return None


def _single_file_config(path: Path, state: dict, family: str, prediction: str | None,
                        unclip: bool) -> tuple[Path, str | None]:
    """The config folder a single file is built from, and its prediction type: an SD 2.1 unCLIP file's from
    `<name>.config/` beside it or the shipped -h/-l config; the others' as `_config_folder` picks it. A
    `<name>.yaml` beside the file (A1111) overrides the prediction."""
    from . import unclip_model

    if unclip:
        beside = path.with_name(path.stem + ".config")
        cfg = beside if beside.is_dir() else unclip_model.shipped_config(path, state)
        return cfg, _yaml_prediction(path) or json.loads(
            (cfg / "scheduler" / "scheduler_config.json").read_text()).get("prediction_type", prediction)
    prediction = _yaml_prediction(path) or prediction
    return _config_folder(path, family, prediction), prediction


def _load_text_encoders(state: dict, family: str, te: Any, te2: Any) -> None:
    """The file's CLIP weights into the family's text encoder(s), converted from the original layout."""
    from diffusers.loaders import single_file_utils as sfu

    if family == "sd1":
        _load_into(te, sfu.convert_ldm_clip_checkpoint(state), "text encoder")
    elif family == "sd2":
        _load_into(te, sfu.convert_open_clip_checkpoint(te, state, prefix=SD2_CLIP_PREFIX), "text encoder")
    elif family == "sdxl-refiner":
        _load_into(te2, sfu.convert_open_clip_checkpoint(te2, state, prefix=REFINER_CLIP_PREFIX), "text encoder")
    else:
        _load_into(te, sfu.convert_ldm_clip_checkpoint(state, remove_prefix=XL_CLIP1_PREFIX), "text encoder")
        _load_into(te2, sfu.convert_open_clip_checkpoint(te2, state, prefix=XL_CLIP2_PREFIX), "second text encoder")


def load_single_file(path: Path, device: str, read: tuple[dict, dict] | None = None) -> LoadedCheckpoint:
    """A single file of the UNet generation; `read` is its (state dict, metadata) when already read."""
    from diffusers.models.autoencoders.autoencoder_kl import AutoencoderKL
    from diffusers.models.unets.unet_2d_condition import UNet2DConditionModel
    from diffusers.loaders import single_file_utils as sfu
    from transformers.models.clip.configuration_clip import CLIPTextConfig
    from transformers.models.clip.modeling_clip import CLIPTextModel, CLIPTextModelWithProjection

    from . import unclip_model

    state, metadata = read if read is not None else read_state_dict(path)
    family, prediction = detect_family(state, metadata)
    unclip = family == "sd2" and unclip_model.is_unclip_state(state)   # SD 2.1 unCLIP (-h, -l)
    cfg, prediction = _single_file_config(path, state, family, prediction, unclip)
    dtype = pick_dtype(device)
    # The tokenizer first: a missing vocabulary should fail before gigabytes are read.
    tok, tok2 = family_tokenizers(cfg, family, path.parent)

    # Modules are built on the meta device (no random init of a billion weights) and take the
    # file's tensors as they are.
    first_conv = state.get(UNET_PREFIX + "input_blocks.0.0.weight")
    unet_config = UNet2DConditionModel.load_config(str(cfg / "unet"))
    if first_conv is not None and first_conv.ndim == 4:   # an inpainting model takes 9 (latent, mask, image)
        unet_config = dict(unet_config, in_channels=int(first_conv.shape[1]))
    with torch.device("meta"):
        unet = UNet2DConditionModel.from_config(unet_config)
        vae = AutoencoderKL.from_config(AutoencoderKL.load_config(str(cfg / "vae")))
        te = CLIPTextModel(CLIPTextConfig.from_pretrained(str(cfg / "text_encoder"))) \
            if family != "sdxl-refiner" else None
        te2 = CLIPTextModelWithProjection(CLIPTextConfig.from_pretrained(str(cfg / "text_encoder_2"))) \
            if family in ("sdxl", "sdxl-refiner") else None
    _load_into(unet, sfu.convert_ldm_unet_checkpoint(state, unet.config), "UNet")
    _load_into(vae, sfu.convert_ldm_vae_checkpoint(state, vae.config), "VAE")
    _load_text_encoders(state, family, te, te2)
    extra: dict[str, Any] = {}
    if unclip:
        extra["unclip"] = unclip_model.file_augmentor(state, cfg, unet.config.projection_class_embeddings_input_dim // 2)
        extra["clip_vision"] = unclip_model.file_clip_vision(path, state, cfg, device)
    del state

    sched = json.loads((cfg / "scheduler" / "scheduler_config.json").read_text())
    sched["prediction_type"] = prediction
    # A refiner is an SDXL model (same latent space and VAE); its UNet and CLIP tell it apart.
    loaded = _assemble(path.stem, "sdxl" if family == "sdxl-refiner" else family, sched, unet, vae, te, tok, te2,
                       tok2, device, dtype)
    if unclip:
        loaded.unet_fields["unclip"] = extra["unclip"]
        loaded.extra["clip_vision"] = extra["clip_vision"]
        loaded.extra["image_encoder"] = extra["clip_vision"].model   # counted by the output cache
    return loaded


def model_from_state(cls: Any, config: Any, state: dict[str, torch.Tensor], what: str, field: str = "checkpoint") -> Any:
    """A diffusers model of class `cls` built from `config` on the meta device (no memory spent on
    weights about to be replaced), holding `state`'s tensors (_load_into's checks)."""
    with torch.device("meta"):
        model = cls.from_config(config)
    _load_into(model, state, what, field=field)
    return model


def _load_into(module: torch.nn.Module, state: dict[str, torch.Tensor], what: str, field: str = "checkpoint") -> None:
    """Give a meta-device module the checkpoint's tensors, refusing a checkpoint of another shape."""
    expected = module.state_dict()
    # transformers 5 dropped the "text_model." prefix from CLIPTextModel's own keys; files keep it.
    state = {(k[len("text_model."):] if k.startswith("text_model.") and k not in expected
              and k[len("text_model."):] in expected else k): v for k, v in state.items()}
    # position_ids are derived, not learned: old files carry them, new models rebuild them.
    state = {k: v for k, v in state.items() if k in expected or not k.endswith("position_ids")}
    missing = [k for k in expected if k not in state and not k.endswith("position_ids")]
    unexpected = [k for k in state if k not in expected]
    wrong = [k for k in state if k in expected and tuple(state[k].shape) != tuple(expected[k].shape)]
    if missing or unexpected or wrong:
        sample = (wrong or missing or unexpected)[:3]
        owner = "the checkpoint" if field == "checkpoint" else f"the {field} file"
        raise NodeError(f"{owner}'s {what} does not match the expected model shape "
                        f"({len(missing)} missing, {len(unexpected)} unexpected, {len(wrong)} mis-shaped keys, "
                        f"e.g. {', '.join(sample)}); for a model of non-standard shape put a diffusers-layout "
                        f"config folder named '<{field} name>.config' beside the file", field=field)
    module.load_state_dict(state, strict=False, assign=True)
    for name, buffer in list(module.named_buffers()):
        if buffer.is_meta:
            if not name.endswith("position_ids"):
                raise NodeError(f"{'the checkpoint' if field == 'checkpoint' else f'the {field} file'}'s {what} "
                                f"lacks {name}", field=field)
            owner_path, _, attr = name.rpartition(".")
            owner = module.get_submodule(owner_path)
            owner.register_buffer(attr, torch.arange(buffer.shape[-1]).expand(buffer.shape).clone(),
                                  persistent=False)


# -- the node -------------------------------------------------------------------------------------------------
def load_shared(shared: dict[str, Any] | None, registry_key: str, path: Path, device: str,
                lock: threading.Lock, load: Any) -> Any:
    """What `load()` makes of the file at `path` for `device`, kept weakly (by file identity and
    device) in the engine's `shared[registry_key]`, so that the same file is read once while
    anything uses it. `lock` serialises the loads of one kind."""
    key = (file_identity(path), device)
    with lock:
        registry = (shared if shared is not None else {}).setdefault(registry_key, weakref.WeakValueDictionary())
        found = registry.get(key)
        if found is None:
            found = load()
            registry[key] = found
        return found


def load_checkpoint(path: Path, device: str, shared: dict[str, Any] | None = None) -> LoadedCheckpoint:
    """Load (or reuse from `shared`) the checkpoint at `path` onto `device`."""
    return load_shared(shared, _REGISTRY_KEY, path, device, _lock, lambda: _read_checkpoint(path, device))


def _read_checkpoint(path: Path, device: str) -> LoadedCheckpoint:
    from . import families

    if path.is_dir():
        family = families.for_folder(path)
        if family is None:
            raise NodeError(f"{path} is a folder but not a diffusers model (no model_index.json)",
                            field="checkpoint")
        loaded = family.impl().load_folder(path, device)
    elif path.suffix.lower() in (".safetensors", ".ckpt", ".pt", ".pth", ".bin"):
        state, metadata = read_state_dict(path)
        family = families.for_state(state.keys())
        if family is None:
            families.refuse_unknown(path, state.keys())
        loaded = (family or families.FAMILIES[-1]).impl().load_file(path, device, state, metadata)
    else:
        raise NodeError(f"{path.name}: unknown checkpoint format; use a diffusers folder or .safetensors",
                        field="checkpoint")
    global load_count
    load_count += 1
    return loaded


def lite_checkpoint(ctx: Any, path: Path) -> LoadedCheckpoint | None:
    """The lite modules of a diffusers folder (nodes/lite) when this run may use them and the
    folder is within what they implement; None otherwise. Kept for the run in `ctx.shared`."""
    from . import lite

    if not path.is_dir() or not lite.wanted(ctx):
        return None
    key = (file_identity(path), ctx.device)
    with _lock:
        found = (ctx.shared if ctx.shared is not None else {}).setdefault(_REGISTRY_KEY + ".lite", {})
        if key not in found:
            found[key] = lite.load_folder(path, ctx.device)
            if found[key] is not None:
                global load_count
                load_count += 1
        return found[key]


def run_checkpoint_loader(ctx: Any, checkpoint: str) -> dict[str, Any]:
    path = ctx.resolve_file(FileKind.CHECKPOINT, checkpoint)
    loaded = lite_checkpoint(ctx, Path(path)) or load_checkpoint(Path(path), ctx.device, ctx.shared)
    unet, clip, vae = loaded.wrappers()
    return {"unet": unet, "clip": clip, "vae": vae}
