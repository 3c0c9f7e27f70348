"""LoRALoader: kohya and diffusers/PEFT LoRA files as patches on a model, never on the model itself.

The formats (key names, the alpha/rank scale, LDM names) are `nodeforge.lora_format`, shared
with the trainer. For diffusers/PEFT files lora_alpha comes from the file's metadata or an
adapter_config.json beside it (else alpha = rank). LoHa, LoKr, DoRA and full diffs, in kohya
(LyCORIS) or PEFT names, are read too (nodes/lora_variants.py).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from nodeforge.core.errors import NodeError
from nodeforge.core.types import FileKind
from nodeforge.lora_format import PARTS, read_key, scale, underscored, unet_ldm_name

from .families import of_model
from .loading import read_state_dict
from .lora_variants import VariantDelta, make_variant
from .wrappers import ClipModel, LoraPatch, UNetModel, weight_shape


def _alpha_settings(path: Path, metadata: dict[str, str]) -> dict[str, float]:
    """lora_alpha and r by part ("" for all) from safetensors metadata or adapter_config.json."""
    found: dict[str, Any] = {}
    raw = metadata.get("lora_adapter_metadata")
    if raw:
        try:
            found.update(json.loads(raw))
        except ValueError:
            pass
    config = path.with_name("adapter_config.json")
    if config.exists():
        try:
            found.update(json.loads(config.read_text()))
        except ValueError:
            pass
    out = {}
    for key, value in found.items():
        part = key.rsplit(".", 1)[0] if "." in key else ""
        name = key.rsplit(".", 1)[-1]
        if name in ("lora_alpha", "alpha", "r") and isinstance(value, (int, float)):   # alpha: LoHa/LoKr
            out[f"{part}:{'lora_alpha' if name == 'alpha' else name}"] = float(value)
    return out


def parse_lora(state: dict[str, torch.Tensor], settings: dict[str, float] | None = None
               ) -> tuple[dict[str, dict[str, dict[str, Any]]], list[str]]:
    """Group a LoRA state dict into {part: {module name: {"down", "up", "alpha"}}}, plus ignored keys."""
    settings = settings or {}
    parts: dict[str, dict[str, dict[str, Any]]] = {}
    ignored = []
    for key, tensor in state.items():
        read = read_key(key)
        if read is None:
            ignored.append(key)
            continue
        parts.setdefault(read.part, {}).setdefault(read.module, {})[read.tensor] = tensor
    for part, entries in parts.items():
        peft_part = PARTS[part]
        for entry in entries.values():
            if "alpha" not in entry:
                alpha = settings.get(f"{peft_part}:lora_alpha", settings.get(":lora_alpha"))
                if alpha is not None:
                    entry["alpha"] = torch.tensor(alpha)
                    entry["alpha_from_config"] = True
                rank = settings.get(f"{peft_part}:r", settings.get(":r"))
                if rank is not None:
                    entry["config_rank"] = rank
    return parts, ignored


def _lookup(root: torch.nn.Module, unet_config: Any = None) -> dict[str, str]:
    """Underscored module name (diffusers, and LDM for a UNet) -> module path, for weighted layers."""
    table = {}
    for path, module in root.named_modules():
        if isinstance(getattr(module, "weight", None), torch.Tensor) and module.weight.ndim in (2, 4):
            table[underscored(path)] = path
            # CLIP layers are named with or without "text_model." depending on the transformers
            # version; LoRA files use the prefixed form.
            if path.startswith("encoder.") or path.startswith("embeddings.") or path == "final_layer_norm":
                table["text_model_" + underscored(path)] = path
            if unet_config is not None:
                table[underscored(unet_ldm_name(path, unet_config))] = path
    return table


def _check_shapes(module_name: str, down: torch.Tensor, up: torch.Tensor, weight: tuple[int, ...]) -> None:
    """Refuse up/down that do not make exactly this layer's shape.

    Comparing only element counts let transposed matrices (same count, wrong layout) through,
    and they were applied as noise; a file like that is broken, so it is an error, not a warning.
    """
    rank = down.shape[0]
    expected_down, expected_up = (rank, *weight[1:]), (weight[0], rank)
    if _squeezed(tuple(down.shape)) != _squeezed(expected_down) or _squeezed(tuple(up.shape)) != expected_up:
        raise NodeError(f"LoRA module {module_name}: down {tuple(down.shape)} and up {tuple(up.shape)} do not "
                        f"fit the layer's weight {weight} (expected down {expected_down}, up {expected_up}); "
                        f"the file is damaged, has its matrices swapped or was made for another base model",
                        field="lora")


def _squeezed(shape: tuple[int, ...]) -> tuple[int, ...]:
    """A shape without trailing 1x1 kernel dims: a 1x1 conv and a linear layer hold the same matrix."""
    return shape[:2] if all(d == 1 for d in shape[2:]) else shape


def resolve(entries: dict[str, dict[str, Any]], root: torch.nn.Module, name: str, strength: float,
            unet_config: Any = None, source: str = "") -> tuple[LoraPatch, int]:
    """A patch for `root` and the number of LoRA modules that matched nothing in it (`source`: the
    file's name for errors)."""
    table = _lookup(root, unet_config)
    device = next(root.parameters()).device
    deltas = {}
    unmatched = 0
    for module_name, entry in entries.items():
        path = table.get(underscored(module_name))
        variant = make_variant(module_name, entry, entry.get("config_rank")) if path is not None else None
        if variant is not None:
            reason = variant.misfit(weight_shape(root.get_submodule(path).weight))
            if reason:
                raise NodeError(f"LoRA {source or name}: the {variant.kind} factors of layer {module_name} do not "
                                f"fit it ({reason}); the file is damaged or made for another base model: use "
                                "one made for this model", field="lora")
            deltas[path] = _on_device(variant, device)
            continue
        if path is None or "down" not in entry or "up" not in entry:
            unmatched += 1
            continue
        down, up = entry["down"].float(), entry["up"].float()
        weight = root.get_submodule(path).weight
        _check_shapes(module_name, down, up, weight_shape(weight))
        alpha = float(entry["alpha"]) if "alpha" in entry else None
        deltas[path] = (down.to(device), up.to(device), scale(alpha, down.shape[0]))
    return LoraPatch(name, deltas, strength), unmatched


def _on_device(variant: VariantDelta, device: torch.device) -> VariantDelta:
    return VariantDelta(variant.kind, {k: v.to(device) for k, v in variant.tensors.items()}, variant.scale,
                        variant.name)


def _check_quantized(root: torch.nn.Module, patch: LoraPatch, source: str) -> None:
    """Quantised (GGUF) layers take plain LoRA layers only (added to their output, nodes/wrappers.py)."""
    from .wrappers import is_quantized

    for path, value in patch.deltas.items():
        if is_quantized(root.get_submodule(path).weight) and (not isinstance(value, tuple) or value[0].ndim != 2):
            kind = getattr(value, "kind", "conv")
            raise NodeError(f"{source} changes {path} as a {kind} LoRA, which cannot be added to a quantised (GGUF) "
                            "layer (only plain down/up LoRA layers can); load the safetensors transformer to use it",
                            field="lora")


def run_lora_loader(ctx: Any, unet: UNetModel, clip: ClipModel, lora: str, strength_unet: float,
                    strength_clip: float) -> dict[str, Any]:
    path = Path(ctx.resolve_file(FileKind.LORA, lora))
    state, metadata = read_state_dict(path, field="lora")
    convert = getattr(of_model(unet.family), "lora_state", None)   # a family's LoRA layouts (Flux: diffusers')
    if convert is not None:
        state = convert(state, path.name)
    parts, ignored = parse_lora(state, _alpha_settings(path, metadata))
    if not parts:
        raise NodeError(f"{path.name} holds no LoRA weights in a known format (kohya or diffusers/PEFT)",
                        field="lora")
    matched = unmatched = 0
    new_unet, new_clip = unet, clip
    if "unet" in parts:
        rename = getattr(of_model(unet.family), "lora_entries", None)   # a family's own module names (SD3)
        entries = rename(parts["unet"], unet.unet, path.name) if rename else parts["unet"]
        patch, missed = resolve(entries, unet.unet, path.stem, strength_unet, None if rename else unet.unet.config,
                                path.name)
        matched, unmatched = matched + len(patch.deltas), unmatched + missed
        _check_quantized(unet.unet, patch, path.name)
        new_unet = unet.with_lora(patch)
    clip_patches = []
    for part, module in (("te", clip.text_encoder), ("te2", clip.text_encoder_2), ("te3", clip.text_encoder_3)):
        if part in parts:
            if module is None:
                unmatched += len(parts[part])
                continue
            patch, missed = resolve(parts[part], module, path.stem, strength_clip, source=path.name)
            matched, unmatched = matched + len(patch.deltas), unmatched + missed
            clip_patches.append((part, patch))
    if clip_patches:
        new_clip = clip.with_lora(tuple(clip_patches))
    if matched == 0:
        raise NodeError(f"{path.name} matches no layer of this model ({unmatched} LoRA modules checked); "
                        f"it was probably made for another base model than {unet.family.upper()}", field="lora")
    if unmatched or ignored:
        message = (f"LoRA {path.name}: {unmatched} of {matched + unmatched} modules matched no layer of "
                   f"this model and {len(ignored)} keys were not understood; they are ignored")
        ctx.warn(message)
    return {"unet": new_unet, "clip": new_clip}
