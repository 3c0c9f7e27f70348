"""IC-Light (lllyasviel's relighting UNets for SD 1.5) as kijai's ComfyUI-IC-Light nodes LoadAndApplyICLightUnet and
ICLightConditioning.

An IC-Light file (lllyasviel/ic-light's iclight_sd15_fc.safetensors, iclight_sd15_fbc.safetensors, in diffusers' UNet
names, or a conversion to LDM names such as huchenlei's *_unet_ldm.safetensors) holds offsets for every weight of an
SD 1.5 UNet: the IC-Light UNet is the checkpoint's UNet plus them. Its conv_in takes more channels than the latent
(fc: 8, the latent then the foreground's latent; fbc: 12, then the background's too): the checkpoint's conv_in is
widened with zeros for the new channels before its offset is added. The offsets are a full-diff LoRA on the model
(nodes/wrappers.py applies them inside `patched()` and restores the weights after) and the widened conv_in is swapped in
there too, so the checkpoint's model is never changed.

ICLightConditioning puts the foreground's latent (and the background's, resized to it) times `multiplier` on both
prompts as the UNet's extra input (the InstructPix2Pix path, nodes/ip2p.py), in ComfyUI's latent values (the VAE's own,
NodeForge's latents unscaled): with the default 0.18215 an SD 1.5 VAE's latent is the scaled latent IC-Light was
trained with.
"""
from __future__ import annotations

import contextlib
import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import torch
import torch.nn.functional as F

from nodeforge.core.errors import NodeError
from nodeforge.core.types import FileKind
from nodeforge.lora_format import unet_ldm_name

from .conditioning import entries
from .lora_variants import VariantDelta
from .wrappers import LoraPatch

CONV_IN = "conv_in"
_LDM_CONV_IN = "input_blocks.0.0"
_LDM_PREFIXES = ("model.diffusion_model.", "diffusion_model.")
FIX = "use iclight_sd15_fc.safetensors or iclight_sd15_fbc.safetensors from lllyasviel/ic-light"


@dataclass(frozen=True, eq=False)
class ICLightInput:
    """The offsets an IC-Light file adds to conv_in, which take more channels than the checkpoint's conv_in."""

    name: str
    weight: torch.Tensor          # [out, in_channels, k, k]
    bias: torch.Tensor | None     # [out]

    @property
    def in_channels(self) -> int:
        return int(self.weight.shape[1])


@contextlib.contextmanager
def widened_conv_in(unet: torch.nn.Module, offset: ICLightInput) -> Iterator[None]:
    """`unet.conv_in` swapped for one that takes `offset.in_channels`: the current weight (LoRAs already added) on the
    first channels, zeros on the rest, plus the offset; the original module back on exit."""
    base = unet.conv_in
    weight = base.weight
    wide = torch.nn.Conv2d(offset.in_channels, base.out_channels, base.kernel_size, stride=base.stride,
                           padding=base.padding, dilation=base.dilation, bias=base.bias is not None,
                           device=weight.device, dtype=weight.dtype)
    with torch.no_grad():
        padded = F.pad(weight.float(), (0, 0, 0, 0, 0, offset.in_channels - weight.shape[1]))
        wide.weight.copy_(padded + offset.weight.to(weight.device).float())
        if base.bias is not None:
            bias = base.bias.float() + (0 if offset.bias is None else offset.bias.to(weight.device).float())
            wide.bias.copy_(bias)
    wide.requires_grad_(False)
    unet.conv_in = wide
    try:
        yield
    finally:
        unet.conv_in = base


def _diffusers_names(state: dict[str, torch.Tensor], unet: torch.nn.Module, source: str) -> dict[str, torch.Tensor]:
    """The file's tensors under diffusers' parameter names (an LDM file's renamed through lora_format)."""
    if f"{CONV_IN}.weight" in state:
        return state
    for prefix in _LDM_PREFIXES:
        if f"{prefix}{_LDM_CONV_IN}.weight" in state:
            state = {key[len(prefix):]: value for key, value in state.items() if key.startswith(prefix)}
            break
    if f"{_LDM_CONV_IN}.weight" not in state:
        raise NodeError(f"{source} is not an IC-Light file (it has no conv_in / input_blocks.0.0 weight): {FIX}",
                        field="iclight")
    names = {unet_ldm_name(name, unet.config): name for name, _ in unet.named_parameters()}
    return {names.get(key, key): value for key, value in state.items()}


def read_offsets(state: dict[str, torch.Tensor], unet: Any, source: str) -> tuple[LoraPatch, ICLightInput]:
    """The file's offsets as a full-diff patch on every layer but conv_in, and conv_in's widened offset; refused in
    one line when the file does not fit this UNet."""
    module = unet.unet
    state = _diffusers_names(state, module, source)
    conv = state.get(f"{CONV_IN}.weight")
    base = module.conv_in.weight
    if conv is None or conv.ndim != 4 or conv.shape[0] != base.shape[0] or conv.shape[2:] != base.shape[2:]:
        got = "none" if conv is None else tuple(conv.shape)
        raise NodeError(f"{source}'s conv_in weight is {got} but this {unet.family} UNet's is {tuple(base.shape)}: the "
                        f"file was made for another model; IC-Light needs an SD 1.5 checkpoint and {FIX}",
                        field="iclight")
    extra = conv.shape[1] - unet.latent_channels
    if extra <= 0 or extra % unet.latent_channels:
        raise NodeError(f"{source}'s conv_in takes {conv.shape[1]} channels, not the latent's {unet.latent_channels} "
                        f"plus whole latents (fc: {2 * unet.latent_channels}, fbc: {3 * unet.latent_channels}): it is "
                        f"not an IC-Light file; {FIX}", field="iclight")
    params = dict(module.named_parameters())
    layers: dict[str, dict[str, torch.Tensor]] = {}
    for key, value in state.items():
        if key.startswith(f"{CONV_IN}."):
            continue
        path, _, kind = key.rpartition(".")
        target = params.get(key)
        if target is None or kind not in ("weight", "bias"):
            raise NodeError(f"{source} has {key}, which this {unet.family} UNet lacks: the file was made for another "
                            f"model; IC-Light needs an SD 1.5 checkpoint and {FIX}", field="iclight")
        if tuple(value.shape) != tuple(target.shape):
            raise NodeError(f"{source}'s {key} is {tuple(value.shape)} but this UNet's is {tuple(target.shape)}: the "
                            f"file was made for another model; IC-Light needs an SD 1.5 checkpoint and {FIX}",
                            field="iclight")
        layers.setdefault(path, {})["diff" if kind == "weight" else "diff_b"] = value.to(target.device)
    deltas = {}
    for path, tensors in layers.items():
        tensors.setdefault("diff", torch.zeros(0))
        deltas[path] = VariantDelta("full", tensors, 1.0, path)
    bias = state.get(f"{CONV_IN}.bias")
    return LoraPatch(f"IC-Light {source}", deltas, 1.0), ICLightInput(source, conv.to(base.device), bias)


def run_load_iclight(ctx: Any, unet: Any, iclight: str) -> dict[str, Any]:
    from .loading import read_state_dict

    if getattr(unet, "family", None) != "sd1" or not hasattr(getattr(unet, "unet", None), "conv_in"):
        raise NodeError(f"IC-Light is made for SD 1.5 models and this is a {getattr(unet, 'family', '?')} model: "
                        "load an SD 1.5 checkpoint", field="unet")
    if unet.iclight is not None:
        raise NodeError(f"this model already has IC-Light {unet.iclight.name} applied: apply one IC-Light file to the "
                        "checkpoint's model", field="unet")
    path = Path(ctx.resolve_file(FileKind.DIFFUSION_MODEL, iclight))
    state, _ = read_state_dict(path, field="iclight")
    patch, conv_in = read_offsets(state, unet, path.name)
    return {"unet": dataclasses.replace(unet.with_lora(patch), iclight=conv_in)}


def _vae_values(latent: dict[str, Any], vae: Any, field: str) -> torch.Tensor:
    """A latent's samples as ComfyUI holds them: the VAE's own values (NodeForge's are scaled and shifted)."""
    samples = latent.get("samples")
    if samples is None:
        raise NodeError(f"{field} is an empty latent: connect the VAE Encode of the picture", field=field)
    if samples.shape[1] != vae.latent_channels:
        raise NodeError(f"{field} has {samples.shape[1]} channels but this VAE makes {vae.latent_channels}: encode it "
                        "with this VAE", field=field)
    return samples.float() / float(vae.scaling_factor) + float(vae.shift_factor or 0.0)


def run_iclight_conditioning(ctx: Any, positive: Any, negative: Any, vae: Any, foreground: dict[str, Any],
                             multiplier: float, opt_background: dict[str, Any] | None = None) -> dict[str, Any]:
    """Both prompts with the foreground's latent (then the background's) times `multiplier` for the UNet's extra
    channels, and an empty latent of the foreground's size (see the module)."""
    front = _vae_values(foreground, vae, "foreground")
    concat = front
    if opt_background is not None:
        back = _vae_values(opt_background, vae, "opt_background")
        if back.shape[-2:] != front.shape[-2:]:
            back = F.interpolate(back, size=front.shape[-2:], mode="bilinear", align_corners=False)
        # kijai's batch rule: the smaller batch repeated when it divides the larger
        if back.shape[0] > front.shape[0] and back.shape[0] % front.shape[0] == 0:
            front = front.repeat(back.shape[0] // front.shape[0], 1, 1, 1)
        elif front.shape[0] > back.shape[0] and front.shape[0] % back.shape[0] == 0:
            back = back.repeat(front.shape[0] // back.shape[0], 1, 1, 1)
        if back.shape[0] != front.shape[0]:
            raise NodeError(f"opt_background has {back.shape[0]} latents and foreground {front.shape[0]}: give as many, "
                            "or one of them", field="opt_background")
        concat = torch.cat([front, back], dim=1)
    image = {"concat_latent": concat * float(multiplier), "concat_scale": None}
    batch, _, height, width = front.shape
    return {"positive": [dict(entry, **image) for entry in entries(positive)],
            "negative": [dict(entry, **image) for entry in entries(negative)],
            "empty_latent": {"samples": None, "width": width * vae.factor, "height": height * vae.factor,
                             "batch_size": batch}}
