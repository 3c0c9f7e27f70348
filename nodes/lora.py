"""LoRALoader: kohya and diffusers/PEFT LoRA files as patches on a model, never on the model itself.

Formats read:
- kohya: `lora_unet_<module path with _>.lora_down.weight / .lora_up.weight / .alpha`, `lora_te_`,
  and `lora_te1_` / `lora_te2_` for SDXL; LoCon conv layers (3x3 down, 1x1 up); UNet names in
  either diffusers or original-SD (LDM, `lora_unet_input_blocks_4_1_proj_in`) form.
- diffusers/PEFT: `unet.<path>.lora_A.weight / .lora_B.weight`, `text_encoder.` / `text_encoder_2.`,
  plain PEFT `base_model.model.<path>`, and the older `.lora.down.weight` spelling. lora_alpha
  comes from the file's metadata or an adapter_config.json beside it (else alpha = rank).
The delta is W' = W + strength * (alpha / rank) * up @ down. LoHa, LoKr, DoRA and full diffs, in
kohya (LyCORIS) or PEFT names, are read too (nodes/lora_variants.py).
"""
from __future__ import annotations

import json
import logging
import re
import warnings
from pathlib import Path
from typing import Any

import torch

from nodeforge.core.errors import NodeError
from nodeforge.core.types import FileKind

from .ldm_names import unet_ldm_name
from .loading import read_state_dict
from .lora_variants import VariantDelta, make_variant
from .wrappers import ClipModel, LoraPatch, UNetModel

log = logging.getLogger(__name__)

_SUFFIXES = (  # (suffix, role)
    (".lora_down.weight", "down"), (".lora_up.weight", "up"), (".lora_A.weight", "down"),
    (".lora_B.weight", "up"), (".lora.down.weight", "down"), (".lora.up.weight", "up"),
    (".down.weight", "down"), (".up.weight", "up"), (".alpha", "alpha"),
    # LoRA variants (nodes/lora_variants.py), named alike by LyCORIS/kohya and PEFT
    *((f".{n}", n) for n in ("hada_w1_a", "hada_w1_b", "hada_w2_a", "hada_w2_b", "hada_t1", "hada_t2",
                             "lokr_w1", "lokr_w1_a", "lokr_w1_b", "lokr_w2", "lokr_w2_a", "lokr_w2_b", "lokr_t2",
                             "diff", "diff_b")),
    (".dora_scale", "magnitude"), (".lora_magnitude_vector.weight", "magnitude"),
    (".lora_magnitude_vector", "magnitude"),
)
_PREFIXES = (  # (key prefix, part, names are underscored)
    ("lora_unet_", "unet", True), ("lora_te1_", "te", True), ("lora_te2_", "te2", True),
    ("lora_te_", "te", True), ("unet.", "unet", False), ("text_encoder_2.", "te2", False),
    ("text_encoder.", "te", False), ("base_model.model.", "auto", False),
)


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
        role = next(((s, r) for s, r in _SUFFIXES if key.endswith(s)), None)
        prefix = next(((p, part, u) for p, part, u in _PREFIXES if key.startswith(p)), None)
        if role is None or prefix is None:
            ignored.append(key)
            continue
        name = key[len(prefix[0]):-len(role[0])]
        name = re.sub(r"\.processor\.(to_(?:q|k|v|out))_lora$", r".\1", name)   # old diffusers attn procs
        name = name.replace("to_out_lora", "to_out.0")
        part = prefix[1]
        if part == "auto":
            part = "te" if name.startswith("text_model.") else "unet"
        entry = parts.setdefault(part, {}).setdefault(name, {})
        entry[role[1]] = tensor
    for part, entries in parts.items():
        peft_part = {"unet": "unet", "te": "text_encoder", "te2": "text_encoder_2"}[part]
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
            table[path.replace(".", "_")] = path
            # CLIP layers are named with or without "text_model." depending on the transformers
            # version; LoRA files use the prefixed form.
            if path.startswith("encoder.") or path.startswith("embeddings.") or path == "final_layer_norm":
                table["text_model_" + path.replace(".", "_")] = path
            if unet_config is not None:
                table[unet_ldm_name(path, unet_config).replace(".", "_")] = path
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
            unet_config: Any = None) -> tuple[LoraPatch, int]:
    """A patch for `root` and the number of LoRA modules that matched nothing in it."""
    table = _lookup(root, unet_config)
    device = next(root.parameters()).device
    deltas = {}
    unmatched = 0
    for module_name, entry in entries.items():
        path = table.get(module_name.replace(".", "_"))
        variant = make_variant(module_name, entry, entry.get("config_rank")) if path is not None else None
        if variant is not None:
            variant.diff(tuple(root.get_submodule(path).weight.shape))   # refuses a layer of another shape
            deltas[path] = _on_device(variant, device)
            continue
        if path is None or "down" not in entry or "up" not in entry:
            unmatched += 1
            continue
        down, up = entry["down"].float(), entry["up"].float()
        weight = root.get_submodule(path).weight
        _check_shapes(module_name, down, up, tuple(weight.shape))
        rank = down.shape[0]
        alpha = float(entry["alpha"]) if "alpha" in entry else float(rank)
        deltas[path] = (down.to(device), up.to(device), alpha / rank)
    return LoraPatch(name, deltas, strength), unmatched


def _on_device(variant: VariantDelta, device: torch.device) -> VariantDelta:
    return VariantDelta(variant.kind, {k: v.to(device) for k, v in variant.tensors.items()}, variant.scale,
                        variant.name)


def run_lora_loader(ctx: Any, unet: UNetModel, clip: ClipModel, lora: str, strength_unet: float,
                    strength_clip: float) -> dict[str, Any]:
    path = Path(ctx.resolve_file(FileKind.LORA, lora))
    state, metadata = read_state_dict(path, field="lora")
    parts, ignored = parse_lora(state, _alpha_settings(path, metadata))
    if not parts:
        raise NodeError(f"{path.name} holds no LoRA weights in a known format (kohya or diffusers/PEFT)",
                        field="lora")
    matched = unmatched = 0
    new_unet, new_clip = unet, clip
    if "unet" in parts:
        patch, missed = resolve(parts["unet"], unet.unet, path.stem, strength_unet, unet.unet.config)
        matched, unmatched = matched + len(patch.deltas), unmatched + missed
        new_unet = unet.with_lora(patch)
    clip_patches = []
    for part, module in (("te", clip.text_encoder), ("te2", clip.text_encoder_2)):
        if part in parts:
            if module is None:
                unmatched += len(parts[part])
                continue
            patch, missed = resolve(parts[part], module, path.stem, strength_clip)
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
        log.warning(message)
        warnings.warn(message, stacklevel=2)
    return {"unet": new_unet, "clip": new_clip}
