"""ControlNetLoader and ControlNetApply: ControlNets that travel with the conditioning.

ControlNetApply adds a `Control` (the ControlNet, its image, strength and the part of the schedule
it acts in) to every entry of the positive and the negative conditioning, after any it already
has, so several ControlNets stack (ComfyUI's design). UNetDenoise (conditioning.Guidance) runs each
active control once per batched UNet call and adds the residuals of all of them.

Files: a diffusers folder (config.json), or a single file in the original layout
(`control_model.*` as in ControlNet 1.0/1.1, or bare `input_blocks.*` / `zero_convs.*`) or in
diffusers' layout. A single file's config is `<name>.config/` beside it, else the standard
ControlNet of the family its cross-attention width gives (768 SD 1.x, 1024 SD 2.x, 2048 SDXL).
"""
from __future__ import annotations

import inspect
import json
import threading
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from nodeforge.core.errors import NodeError
from nodeforge.core.models import file_identity
from nodeforge.core.types import FileKind

from .conditioning import entries
from .loading import _finish, _load_into, configs_dir, pick_dtype, read_state_dict

_REGISTRY_KEY = "nodes.controlnets"
_lock = threading.Lock()
ORIGINAL_PREFIX = "control_model."
FAMILY_BY_CONTEXT = {768: "sd1", 1024: "sd2", 2048: "sdxl"}


@dataclass(frozen=True, eq=False)
class ControlNet:
    """CONTROLNET: a diffusers ControlNetModel and what driving it needs."""

    model: Any
    name: str
    owner: Any = field(default=None, repr=False)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.model.parameters()).dtype

    @property
    def hint_factor(self) -> int:
        """Control image pixels per latent pixel (its conditioning embedding's downsampling)."""
        return 2 ** (len(self.model.config.conditioning_embedding_out_channels) - 1)

    def nodeforge_nbytes(self) -> int:
        return sum(p.nelement() * p.element_size() for p in self.model.parameters())


@dataclass(frozen=True, eq=False)
class Control:
    """One ControlNetApply: which ControlNet, on which image, how strongly, when."""

    controlnet: ControlNet
    image: torch.Tensor            # IMAGE [B, H, W, 3] in 0..1
    strength: float
    start_percent: float
    end_percent: float

    def active(self, timestep: float) -> bool:
        """Whether the control acts at this timestep: ComfyUI's percent range over the model's
        1000-step noise schedule (0 = pure noise, 1 = clean), compared in timesteps."""
        if self.strength == 0 or self.end_percent <= 0:
            return False
        first = float("inf") if self.start_percent <= 0 else (1 - self.start_percent) * 999
        last = float("-inf") if self.end_percent >= 1 else (1 - self.end_percent) * 999
        return last <= timestep <= first

    def hint(self, batch: int, height: int, width: int) -> torch.Tensor:
        """The image as the ControlNet takes it: [batch, 3, height, width] in 0..1 (ComfyUI scales
        it to the image size with nearest-exact after a centre crop to its aspect)."""
        from .geometry import scale_image

        image = self.image[..., :3].float()
        if tuple(image.shape[1:3]) != (height, width):
            image = scale_image(image, width, height, "nearest-exact", "center")
        if image.shape[0] != batch:
            image = image.repeat((batch + image.shape[0] - 1) // image.shape[0], 1, 1, 1)[:batch]
        return image.permute(0, 3, 1, 2)


# -- loading ------------------------------------------------------------------------------------------------
def _config_beside(path: Path) -> dict | None:
    beside = path.with_name(path.stem + ".config")
    for file in (beside / "config.json", beside / "controlnet" / "config.json"):
        if file.is_file():
            return json.loads(file.read_text())
    return None


def config_from_unet(unet_config: dict[str, Any]) -> dict[str, Any]:
    """A ControlNet config of the same shape as a UNet (the encoder half and the middle block)."""
    from diffusers import ControlNetModel

    accepted = set(inspect.signature(ControlNetModel.__init__).parameters) - {"self"}
    return {k: v for k, v in unet_config.items() if k in accepted}


def standard_config(path: Path, state: dict[str, torch.Tensor]) -> dict[str, Any]:
    widths = {v.shape[1] for k, v in state.items() if k.endswith("attn2.to_k.weight") and v.ndim == 2}
    family = FAMILY_BY_CONTEXT.get(next(iter(widths))) if len(widths) == 1 else None
    if family is None:
        raise NodeError(f"{path.name}: cannot tell which model this ControlNet is for (cross-attention width "
                        f"{sorted(widths) or 'unknown'}); put a diffusers-layout config folder named "
                        f"'{path.stem}.config' beside it", field="controlnet")
    return config_from_unet(json.loads((configs_dir() / family / "unet" / "config.json").read_text()))


def load_controlnet_file(path: Path) -> Any:
    from diffusers import ControlNetModel
    from diffusers.loaders import single_file_utils as sfu

    state, _ = read_state_dict(path, field="controlnet")
    if any(k.startswith(ORIGINAL_PREFIX) for k in state):
        state = {k[len(ORIGINAL_PREFIX):]: v for k, v in state.items() if k.startswith(ORIGINAL_PREFIX)}
    original = "input_hint_block.0.weight" in state
    if not original and "controlnet_cond_embedding.conv_in.weight" not in state:
        raise NodeError(f"{path.name} holds no ControlNet (no input_hint_block or controlnet_cond_embedding "
                        "weights); it may be a checkpoint, a LoRA or a T2I-Adapter", field="controlnet")
    config = _config_beside(path) or standard_config(path, state)
    with torch.device("meta"):
        model = ControlNetModel.from_config(config)
    if original:
        state = sfu.convert_controlnet_checkpoint(state, model.config)
    _load_into(model, state, "ControlNet", field="controlnet")
    return model


def load_controlnet(path: Path, device: str, shared: dict[str, Any] | None = None) -> ControlNet:
    from diffusers import ControlNetModel

    key = (file_identity(path), device)
    with _lock:
        registry = (shared if shared is not None else {}).setdefault(_REGISTRY_KEY, weakref.WeakValueDictionary())
        found = registry.get(key)
        if found is not None:
            return ControlNet(found.model, path.stem if path.is_file() else path.name, owner=found)
        if path.is_dir():
            if not (path / "config.json").is_file():
                raise NodeError(f"{path.name} is a folder without a ControlNet config.json", field="controlnet")
            model = ControlNetModel.from_pretrained(str(path), local_files_only=True)
        else:
            model = load_controlnet_file(path)
        _finish([model], device, pick_dtype(device))
        holder = _Loaded(model)
        registry[key] = holder
        return ControlNet(model, path.stem if path.is_file() else path.name, owner=holder)


class _Loaded:
    """Keeps a loaded ControlNet alive while any wrapper uses it (the registry holds it weakly)."""

    def __init__(self, model: Any) -> None:
        self.model = model


# -- the nodes ----------------------------------------------------------------------------------------------
def run_controlnet_loader(ctx: Any, controlnet: str) -> dict[str, Any]:
    path = ctx.resolve_file(FileKind.CONTROLNET, controlnet)
    return {"controlnet": load_controlnet(Path(path), ctx.device, ctx.shared)}


def run_controlnet_apply(ctx: Any, positive: Any, negative: Any, controlnet: ControlNet, image: torch.Tensor,
                         strength: float, start_percent: float, end_percent: float) -> dict[str, Any]:
    if strength == 0:   # as ComfyUI: nothing to add, the conditioning passes through unchanged
        return {"positive": positive, "negative": negative}
    if start_percent > end_percent:
        raise NodeError("start_percent is after end_percent: the control would never act", field="start_percent")
    control = Control(controlnet, image.detach().cpu().float(), float(strength), float(start_percent),
                      float(end_percent))

    def add(value: Any) -> list[dict[str, Any]]:
        return [dict(e, control=tuple(e.get("control", ())) + (control,)) for e in entries(value)]

    return {"positive": add(positive), "negative": add(negative)}
