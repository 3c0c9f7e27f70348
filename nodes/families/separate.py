"""Models kept as separate files, as ComfyUI users keep Flux: the transformer alone in
models/diffusion_models (DiffusionModelLoader; ComfyUI's UNETLoader), CLIP-L and T5-XXL in
models/text_encoders (DualTextEncoderLoader; DualCLIPLoader with type flux), the VAE in models/vae
(VAELoader); an SD3/SD3.5 transformer alone (original keys) loads in DiffusionModelLoader too, its
text encoders from TextEncoderLoaderSD3. Each gives one wire (MODEL, CLIP); they are read once while used (engine's shared
registry), as checkpoints are.

A transformer file is .safetensors (Black Forest Labs' or diffusers' keys; float8 upcast on read)
or .gguf (quantised: diffusers' GGUF support, the optional `gguf` package; its weights stay
quantised in memory and are dequantised layer by layer as it runs). Configs: a `<file name>.config/`
FluxPipeline-layout folder beside the file (its transformer/, scheduler/, vae/ for the latent
factor, text_encoder/, text_encoder_2/, tokenizer_2/), else the shipped resources/configs/flux.
"""
from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import torch

from nodeforge.core.errors import NodeError
from nodeforge.core.types import FileKind

from ..loading import _finish, load_shared, model_from_state, pick_dtype, read_state_dict
from ..placement import place
from ..wrappers import ClipModel, UNetModel, loaded_modules
from . import flux_file as ff
from .flux import scheduler_config, shipped_configs
from .flux_sampling import FLUX_SAMPLING

_lock = threading.Lock()
GGUF_INSTALL = "pip install gguf (or pip install 'nodeforge[gguf]')"
ZIMAGE_TYPES = ("lumina2", "z_image")   # CLIPLoader's type for Z-Image's Qwen3-4B, and our own name
QWEN_TYPES = ("qwen_image",)            # CLIPLoader's type for Qwen-Image's Qwen2.5-VL-7B


class LoadedPart:
    """What one separate file gives; the shared registry holds it weakly, wrappers keep it alive."""

    def __init__(self, cls: type, fields: dict[str, Any]) -> None:
        self.cls, self.fields = cls, fields

    def nodeforge_holds(self) -> list[Any]:
        return loaded_modules(self.fields)

    def wrapper(self) -> Any:
        return self.cls(**self.fields, owner=self)


# -- DiffusionModelLoader ------------------------------------------------------------------------------------
def run_diffusion_model_loader(ctx: Any, model: str) -> dict[str, Any]:
    path = Path(ctx.resolve_file(FileKind.DIFFUSION_MODEL, model))
    loaded = load_shared(ctx.shared, "nodes.diffusion_models", path, ctx.device, _lock,
                         lambda: _read_diffusion_model(path, ctx.device))
    return {"unet": loaded.wrapper()}


def _read_diffusion_model(path: Path, device: str) -> LoadedPart:
    cfg = ff.config_folder(path)
    dtype = pick_dtype(device)
    if path.suffix.lower() == ".gguf":
        transformer = load_gguf_transformer(path, cfg, dtype)
    else:
        state, _ = read_state_dict(path, field="model")
        kind = _check_transformer_only(path, state)
        if kind == "sd3":
            return _read_sd3_transformer(path, state, device, dtype)
        if kind == "zimage":
            from .zimage_file import read_transformer

            return read_transformer(path, state, device, dtype)
        if kind == "qwenimage":
            from .qwenimage_file import read_transformer as read_qwenimage

            return read_qwenimage(path, state, device, dtype)
        transformer = ff.transformer_from_state(ff.split_parts(state)["transformer"], cfg, path.name, "model")
        _finish([transformer], device, dtype)
    place(transformer, device)
    transformer.eval().requires_grad_(False)
    sched = scheduler_config(cfg if cfg != shipped_configs() else None, not transformer.config.guidance_embeds)
    vae_config = cfg / "vae" / "config.json"
    factor = 8
    if vae_config.is_file():
        import json

        factor = 2 ** (len(json.loads(vae_config.read_text())["block_out_channels"]) - 1)
    return LoadedPart(UNetModel, dict(
        unet=transformer, scheduler_config=dict(sched), prediction_type="flow",
        latent_channels=transformer.config.in_channels // 4, vae_factor=factor, family="flux", name=path.stem,
        sampling_behaviour=FLUX_SAMPLING))


def _check_transformer_only(path: Path, state: dict[str, torch.Tensor]) -> str:
    from . import for_state

    family = for_state(state.keys())
    if family is not None and family.name == "sd3" and not any(k.startswith(("first_stage_model.", "text_encoders."))
                                                               for k in state):
        return "sd3"
    if family is not None and family.name in ("zimage", "qwenimage"):
        return family.name
    if family is None or family.name != "flux":
        kind = "no known diffusion model" if family is None else f"a {family.name} model"
        raise NodeError(f"{path.name} holds {kind}; DiffusionModelLoader loads Flux, SD3, Z-Image and Qwen-Image "
                        "transformers alone (flux1-dev, sd3.5_large without clips, z_image_turbo, qwen_image); load other checkpoints with "
                        "CheckpointLoader", field="model")
    return "flux"


def _read_sd3_transformer(path: Path, state: dict[str, torch.Tensor], device: str, dtype: torch.dtype) -> LoadedPart:
    """An SD3/SD3.5 transformer alone in the original layout (ComfyUI's UNETLoader on an SD3 file); its
    shape from the keys, the scheduler and latent factor from `<name>.config/` or the shipped SD3 configs."""
    import json

    from diffusers import SD3Transformer2DModel
    from diffusers.loaders import single_file_utils as sfu

    from .flow import FLOW_SAMPLING
    from .sd3 import FILE_PREFIX
    from .sd3 import shipped_configs as sd3_configs
    from .sd3_file import transformer_config

    beside = path.with_name(path.stem + ".config")
    cfg = beside if beside.is_dir() else sd3_configs()
    original = {k.removeprefix(FILE_PREFIX): v for k, v in state.items()}
    try:
        converted = sfu.convert_sd3_transformer_checkpoint_to_diffusers(original)
    except (KeyError, IndexError, ValueError) as exc:   # diffusers names a key, not the file
        raise NodeError(f"{path.name} is an incomplete SD3 transformer (no {exc}); the download may be damaged: "
                        "download it again, or load the whole checkpoint with CheckpointLoader", field="model") from None
    config = transformer_config(converted, SD3Transformer2DModel.load_config(str(cfg / "transformer")))
    transformer = model_from_state(SD3Transformer2DModel, config, converted, "SD3 transformer", field="model")
    _finish([transformer], device, dtype)
    place(transformer, device)
    transformer.eval().requires_grad_(False)
    sched = dict(json.loads((cfg / "scheduler" / "scheduler_config.json").read_text()))
    sched.setdefault("shift", 1.0)
    blocks = json.loads((cfg / "vae" / "config.json").read_text())["block_out_channels"]
    return LoadedPart(UNetModel, dict(
        unet=transformer, scheduler_config=sched, prediction_type="flow", latent_channels=transformer.config.out_channels,
        vae_factor=2 ** (len(blocks) - 1), family="sd3", name=path.stem, sampling_behaviour=FLOW_SAMPLING))


def load_gguf_transformer(path: Path, cfg: Path, dtype: torch.dtype) -> Any:
    """A GGUF-quantised Flux transformer through diffusers' GGUF support (BFL or diffusers keys)."""
    try:
        import gguf  # noqa: F401
        from diffusers import FluxTransformer2DModel, GGUFQuantizationConfig
    except ImportError:
        raise NodeError(f"{path.name} is a GGUF file, which needs the optional gguf package: {GGUF_INSTALL}",
                        field="model") from None
    _check_gguf_header(path)
    try:
        return FluxTransformer2DModel.from_single_file(
            str(path), config=str(cfg), subfolder="transformer", local_files_only=True, torch_dtype=dtype,
            quantization_config=GGUFQuantizationConfig(compute_dtype=dtype))
    except Exception as exc:   # gguf's and diffusers' errors name neither the file nor the fix
        line = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
        raise NodeError(f"cannot load {path.name} as a Flux transformer: {line}; the file may be damaged or "
                        f"another model (a <name>.config/ folder beside it gives a non-standard shape)",
                        field="model") from None


def _check_gguf_header(path: Path) -> None:
    with path.open("rb") as handle:
        head = handle.read(8)
    if head[:4] != b"GGUF" or int.from_bytes(head[4:8], "little") not in (1, 2, 3):
        raise NodeError(f"{path.name} is not a GGUF file (its header is {head[:4]!r}, not b'GGUF' version 1-3); "
                        "the download may be incomplete or it is another format: download it again",
                        field="model")


# -- DualTextEncoderLoader -----------------------------------------------------------------------------------
def run_dual_text_encoder_loader(ctx: Any, text_encoder_1: str, text_encoder_2: str, family: str) -> dict[str, Any]:
    paths = tuple(Path(ctx.resolve_file(FileKind.TEXT_ENCODER, name)) for name in (text_encoder_1, text_encoder_2))
    if family != "flux":
        raise NodeError(f"family {family!r}: two separate text encoders load for Flux (CLIP-L + T5-XXL) so far",
                        field="family")
    if paths[0].resolve() == paths[1].resolve():
        raise NodeError(f"{paths[1].name} is text_encoder_1 again; Flux needs CLIP-L and T5-XXL "
                        "(clip_l.safetensors and t5xxl_fp16.safetensors)", field="text_encoder_2")
    # one registry per second file: the pair is the key
    loaded = load_shared(ctx.shared, f"nodes.text_encoders:{paths[1].resolve()}", paths[0], ctx.device, _lock,
                         lambda: _read_flux_text_encoders(paths, ctx.device))
    return {"clip": loaded.wrapper()}


def _read_flux_text_encoders(paths: tuple[Path, Path], device: str) -> LoadedPart:
    states = {}
    for index, path in enumerate(paths, 1):
        field = f"text_encoder_{index}"
        if path.suffix.lower() == ".gguf":
            raise NodeError(f"{path.name}: GGUF text encoders are not supported; use t5xxl_fp16.safetensors or "
                            "t5xxl_fp8_e4m3fn.safetensors", field=field)
        state, _ = read_state_dict(path, field=field)
        kind = "T5-XXL" if any(".block.0.layer." in k for k in state) else \
            "CLIP-L" if any("encoder.layers.0." in k for k in state) else None
        if kind is None or kind in states:
            what = "no CLIP or T5 text encoder" if kind is None else f"a second {kind}"
            raise NodeError(f"{path.name} holds {what}; Flux takes CLIP-L (clip_l.safetensors) and T5-XXL "
                            "(t5xxl_fp16 or t5xxl_fp8_e4m3fn.safetensors) from the text_encoders folder", field=field)
        states[kind] = (path, field, state)
    clip_path, clip_field, clip_state = states["CLIP-L"]
    t5_path, t5_field, t5_state = states["T5-XXL"]
    clip_cfg, t5_cfg = ff.config_folder(clip_path), ff.config_folder(t5_path)
    tok, tok2 = ff.clip_tokenizer(clip_path, clip_cfg), ff.t5_tokenizer(t5_path, t5_cfg, t5_field)
    te = ff.clip_l_from_state(clip_state, clip_cfg, clip_field)
    te2 = ff.t5_from_state(t5_state, t5_cfg, t5_field)
    _finish([te, te2], device, pick_dtype(device))
    return LoadedPart(ClipModel, dict(tokenizer=tok, text_encoder=te, family="flux", tokenizer_2=tok2,
                                      text_encoder_2=te2, context_width=int(te2.config.d_model)))


# -- TextEncoderLoader ---------------------------------------------------------------------------------------
def run_text_encoder_loader(ctx: Any, text_encoder: str, type: str) -> dict[str, Any]:
    """One text encoder file (ComfyUI's CLIPLoader): a CLIP-L for SD 1.x (type stable_diffusion), Qwen3-4B
    for Z-Image (type lumina2), Qwen2.5-VL-7B for Qwen-Image (type qwen_image)."""
    path = Path(ctx.resolve_file(FileKind.TEXT_ENCODER, text_encoder))
    if type in ZIMAGE_TYPES:   # Z-Image's Qwen3-4B (ComfyUI loads it as type lumina2)
        from .zimage_file import read_text_encoder

        loaded = load_shared(ctx.shared, "nodes.text_encoders:zimage", path, ctx.device, _lock,
                             lambda: read_text_encoder(path, ctx.device))
        return {"clip": loaded.wrapper()}
    if type in QWEN_TYPES:   # Qwen-Image's Qwen2.5-VL-7B (ComfyUI's type qwen_image)
        from .qwenimage_file import read_text_encoder as read_qwen25

        loaded = load_shared(ctx.shared, "nodes.text_encoders:qwenimage", path, ctx.device, _lock,
                             lambda: read_qwen25(path, ctx.device))
        return {"clip": loaded.wrapper()}
    if type != "stable_diffusion":
        from .specs import single_encoder_refusal

        raise NodeError(single_encoder_refusal(type), field="type")
    loaded = load_shared(ctx.shared, "nodes.text_encoders:single", path, ctx.device, _lock,
                         lambda: _read_sd1_text_encoder(path, ctx.device))
    return {"clip": loaded.wrapper()}


def _read_sd1_text_encoder(path: Path, device: str) -> LoadedPart:
    if path.suffix.lower() == ".gguf":
        raise NodeError(f"{path.name}: GGUF text encoders are not supported; use the .safetensors file",
                        field="text_encoder")
    state, _ = read_state_dict(path, field="text_encoder")
    state = {k.removeprefix("cond_stage_model.transformer."): v for k, v in state.items()}
    if not any("encoder.layers.0." in k for k in state):
        qwen = any("self_attn.q_norm." in k for k in state)
        raise NodeError(f"{path.name} holds " + ("Qwen3 (Z-Image's text encoder): set type lumina2" if qwen else
                        "no CLIP text encoder; type stable_diffusion takes an SD 1.x CLIP-L (clip_l.safetensors)"),
                        field="text_encoder")
    cfg = ff.config_folder(path)
    encoder = ff.clip_l_from_state(state, cfg, "text_encoder")
    _finish([encoder], device, pick_dtype(device))
    return LoadedPart(ClipModel, dict(tokenizer=ff.clip_tokenizer(path, cfg), text_encoder=encoder, family="sd1"))
