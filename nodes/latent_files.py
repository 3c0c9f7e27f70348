"""SaveLatent and LoadLatent: LATENT values in ComfyUI's .latent files (safetensors).

A .latent file holds `latent_tensor`, the VAE's own values (ComfyUI keeps latents unscaled and
scales them inside the model), and an empty `latent_format_version_0` marking that. NodeForge's
latents are already multiplied by the VAE's scaling factor (after its shift), so saving divides by
it and loading multiplies: with the VAE connected, by that VAE's factors; else SaveLatent uses
SD 1.x/2.x's 0.18215, and LoadLatent the factors NodeForge wrote in the file, or SD's. Files
written before ComfyUI's version marker hold scaled values already and are read as they are.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

import torch

from nodeforge.core.errors import NodeError
from nodeforge.core.files import write_new_file
from nodeforge.core.types import FileKind

from .images import free_names

SD_SCALE = (0.18215, 0.0)           # SD 1.x/2.x VAE: scaling factor, shift
TENSOR, VERSION = "latent_tensor", "latent_format_version_0"
SCALE_KEY, SHIFT_KEY = "nodeforge_scaling_factor", "nodeforge_shift_factor"


def _scale_of(vae: Any) -> tuple[float, float]:
    return (float(vae.scaling_factor), float(vae.shift_factor or 0.0)) if vae is not None else SD_SCALE


def latent_names(folder: Path, prefix: str) -> Iterator[Path]:
    """ComfyUI's names, `prefix_NNNNN_.latent`, from the first number after those already there."""
    return free_names(folder, prefix, "_.latent", "latents")


def run_save_latent(ctx: Any, latent: dict[str, Any], prefix: str, vae: Any = None) -> list[str]:
    from safetensors.torch import save

    samples = latent.get("samples")
    if samples is None:
        raise NodeError("an empty latent has no values to save yet; denoise or encode it first", field="latent")
    scale, shift = _scale_of(vae)
    raw = (samples.float() / scale + shift).contiguous()
    data = save({TENSOR: raw, VERSION: torch.tensor([])}, metadata={SCALE_KEY: repr(scale), SHIFT_KEY: repr(shift)})
    path = write_new_file(latent_names(Path(ctx.output_dir), prefix), lambda handle: handle.write(data))
    return [str(path)]


def _read(file: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    from safetensors import safe_open

    try:
        with safe_open(str(file), framework="pt") as handle:
            return {k: handle.get_tensor(k) for k in handle.keys()}, dict(handle.metadata() or {})
    except Exception as exc:   # not a safetensors file, truncated
        raise NodeError(f"cannot read {file.name} as a .latent file (safetensors): {exc}; save it again with "
                        "SaveLatent", field="path") from None


def run_load_latent(ctx: Any, path: str, vae: Any = None) -> dict[str, Any]:
    if not str(path).strip():
        raise NodeError("name a .latent file (SaveLatent writes them to the output folder)", field="path")
    file = ctx.resolve_file(FileKind.IMAGE, path)
    tensors, metadata = _read(Path(file))
    if TENSOR not in tensors:
        raise NodeError(f"{Path(file).name} has no '{TENSOR}' (found: {', '.join(sorted(tensors)) or 'nothing'}); "
                        "it is not a latent saved by ComfyUI or NodeForge", field="path")
    raw = tensors[TENSOR].float()
    if VERSION not in tensors:     # ComfyUI's first format: the values are already scaled
        return {"latent": {"samples": raw}}
    if vae is not None:
        scale, shift = _scale_of(vae)
    elif SCALE_KEY in metadata:
        scale, shift = float(metadata[SCALE_KEY]), float(metadata.get(SHIFT_KEY, 0.0))
    else:
        scale, shift = SD_SCALE
    out = {"samples": (raw - shift) * scale}
    if vae is not None:
        out["factor"] = vae.factor
    return {"latent": out}
