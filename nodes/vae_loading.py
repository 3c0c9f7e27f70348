"""VAELoader: a separate VAE (diffusers folder or single file) in place of a checkpoint's own.

A single file may be in the original (LDM) layout, bare or with the `first_stage_model.` / `vae.`
prefix it has inside a checkpoint (so a full checkpoint gives its VAE too), or in diffusers'
layout. A file has no config, and the config carries the latent scaling factor, which SD 1.x/2.x
(0.18215) and SDXL (0.13025) VAEs of the same shape do not share: a `<name>.config/` diffusers
folder beside the file decides; otherwise a standard-shaped VAE is SDXL's when its metadata or file
name says "xl" (sdxl_vae.safetensors, sdxl-vae-fp16-fix), else SD's.
"""
from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import torch

from nodeforge.core.errors import NodeError
from nodeforge.core.types import FileKind

from .loading import _finish, _load_into, check_finite, configs_dir, load_shared, read_state_dict, vae_dtype
from .wrappers import VAEModel, loaded_modules

_REGISTRY_KEY = "nodes.vaes"
_lock = threading.Lock()
PREFIXES = ("first_stage_model.", "vae.")
PARTS = ("encoder.", "decoder.", "quant_conv.", "post_quant_conv.")


class LoadedVAE:
    """What one VAE file gives; the shared registry holds it weakly, wrappers keep it alive."""

    def __init__(self, fields: dict[str, Any]) -> None:
        self.fields = fields

    def nodeforge_holds(self) -> list[Any]:
        return loaded_modules(self.fields)

    def wrapper(self) -> VAEModel:
        return VAEModel(**self.fields, owner=self)


def vae_tensors(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The VAE's tensors of a file, without the prefix a checkpoint gives them."""
    for prefix in PREFIXES:
        if any(k.startswith(prefix + "encoder.") for k in state):
            state = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
            break
    return {k: v for k, v in state.items() if k.startswith(PARTS)}


def standard_config(path: Path, state: dict[str, torch.Tensor], metadata: dict[str, str]) -> Path:
    """The shipped config folder for a VAE of SD's standard shape: SDXL's or SD's (see the module)."""
    conv_in = state.get("encoder.conv_in.weight")
    conv_out = state.get("encoder.conv_out.weight")
    said = " ".join([path.stem, *(f"{k} {v}" for k, v in metadata.items())]).lower()
    if conv_in is not None and conv_out is not None and conv_in.shape[0] == 128 and conv_out.shape[0] == 32:
        return configs_dir() / ("sd3" if "sd3" in said else "flux") / "vae"   # 16 channels: Flux's ae, SD3's
    if conv_in is None or conv_out is None or conv_in.shape[0] != 128 or conv_out.shape[0] != 8:
        channels = "?" if conv_out is None else conv_out.shape[0] // 2
        raise NodeError(f"{path.name} is not a VAE of Stable Diffusion's standard shape (latent channels "
                        f"{channels}); put a diffusers-layout config folder named '{path.stem}.config' beside it",
                        field="vae")
    return configs_dir() / ("sdxl" if "xl" in said else "sd1") / "vae"


def _config_beside(path: Path) -> Path | None:
    beside = path.with_name(path.stem + ".config")
    for folder in (beside, beside / "vae"):
        if (folder / "config.json").is_file():
            return folder
    return None


def load_vae_file(path: Path, state: dict[str, torch.Tensor], metadata: dict[str, str]) -> Any:
    from diffusers.models.autoencoders.autoencoder_kl import AutoencoderKL
    from diffusers.loaders import single_file_utils as sfu

    state = vae_tensors(state)
    if not any(k.startswith("decoder.") for k in state):
        raise NodeError(f"{path.name} holds no VAE (no encoder/decoder weights); it may be a LoRA, an "
                        "embedding or another kind of model", field="vae")
    config = _config_beside(path) or standard_config(path, state, metadata)
    with torch.device("meta"):
        vae = AutoencoderKL.from_config(AutoencoderKL.load_config(str(config)))
    if not any(k.startswith("encoder.down_blocks.") for k in state):   # the original layout
        state = sfu.convert_ldm_vae_checkpoint(state, vae.config)
    _load_into(vae, state, "VAE", field="vae")
    return vae


def load_vae_folder(path: Path) -> Any:
    from diffusers.models.autoencoders.autoencoder_kl import AutoencoderKL

    folder = path if (path / "config.json").is_file() else path / "vae"
    if not (folder / "config.json").is_file():
        raise NodeError(f"{path.name} is a folder without a VAE config.json (nor a vae/ folder with one)",
                        field="vae")
    files = list(folder.glob("*.safetensors"))
    variant = "fp16" if files and all(f.name.endswith(".fp16.safetensors") for f in files) else None
    try:
        model = AutoencoderKL.from_pretrained(str(folder), local_files_only=True, variant=variant)
    except (OSError, ValueError) as exc:
        raise NodeError(f"cannot load the VAE in {path.name}: {exc}", field="vae") from None
    check_finite(model.state_dict().items(), f"the VAE in {path.name}", "vae")
    return model


def load_vae(path: Path, device: str, shared: dict[str, Any] | None = None) -> LoadedVAE:
    """Load (or reuse from `shared`) the VAE at `path` onto `device`."""
    return load_shared(shared, _REGISTRY_KEY, path, device, _lock, lambda: _read_vae(path, device))


def _read_vae(path: Path, device: str) -> LoadedVAE:
    if path.is_dir():
        from .families.probe import class_name

        folder = path if (path / "config.json").is_file() else path / "vae"
        if class_name(folder / "config.json") == "AutoencoderKLQwenImage":   # Qwen-Image's own VAE folder
            from .families.qwenimage_file import read_vae_folder

            return LoadedVAE(read_vae_folder(folder, device))
        vae = load_vae_folder(path)
    else:
        state, metadata = read_state_dict(path, field="vae")
        from .families.qwenimage_file import is_qwen_vae, read_vae

        if is_qwen_vae(state):   # Qwen-Image's (Wan 2.1's) VAE, qwen_image_vae.safetensors
            return LoadedVAE(read_vae(path, state, device))
        vae = load_vae_file(path, state, metadata)
    _finish([vae], device, vae_dtype(device, bool(getattr(vae.config, "force_upcast", False))))
    shift = getattr(vae.config, "shift_factor", None) or 0.0
    return LoadedVAE(dict(vae=vae, scaling_factor=float(vae.config.scaling_factor), shift_factor=float(shift),
                          factor=2 ** (len(vae.config.block_out_channels) - 1),
                          latent_channels=vae.config.latent_channels))


def run_vae_loader(ctx: Any, vae: str) -> dict[str, Any]:
    path = ctx.resolve_file(FileKind.VAE, vae)
    return {"vae": load_vae(Path(path), ctx.device, ctx.shared).wrapper()}
