"""ControlNetLoader and ControlNetApply: ControlNets and T2I-Adapters that travel with the conditioning.

ControlNetApply adds a `Control` (the ControlNet or T2I-Adapter, its image, strength and the part of
the schedule it acts in) to every entry of the positive and the negative conditioning, after any it
already has, so several stack (ComfyUI's design). UNetDenoise (conditioning.Guidance) runs each
active ControlNet once per batched UNet call and adds the residuals of all of them; a T2I-Adapter
runs once per denoise on its image, and its features, times the strength, are added inside the
UNet's down blocks (`down_intrablock_additional_residuals`) at the steps where it is active.

ControlNet files: a diffusers folder (config.json), or a single file in the original layout
(`control_model.*` as in ControlNet 1.0/1.1, or bare `input_blocks.*` / `zero_convs.*`) or in
diffusers' layout. A single file's config is `<name>.config/` beside it, else the standard
ControlNet of the family its cross-attention width gives (768 SD 1.x, 1024 SD 2.x, 2048 SDXL).

T2I-Adapter files: a diffusers T2IAdapter folder (config.json, any adapter type), or a single file in
diffusers' layout (`adapter.*`) or TencentARC's original one (`conv_in`, `body.N.block1`, as the
t2iadapter_*_sd14v1 files). Without a `<name>.config/` beside it, a single file is read as a full
adapter whose shape the weights give (channels, blocks; 8x pixel unshuffle for SD, 16x for SDXL).
A config.json of the other kind (a T2I-Adapter's over ControlNet weights, or the reverse, told apart by
the weights' key names) is refused in one line naming the config and the fix.
"""
from __future__ import annotations

import inspect
import json
import math
import re
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
from .loading import _finish, _load_into, check_finite, configs_dir, pick_dtype, read_state_dict
from .wrappers import OnModule

_REGISTRY_KEY = "nodes.controlnets"
_lock = threading.Lock()
ORIGINAL_PREFIX = "control_model."
FAMILY_BY_CONTEXT = {768: "sd1", 1024: "sd2", 2048: "sdxl"}


@dataclass(frozen=True, eq=False)
class _Control(OnModule):
    """What travels on a CONTROLNET wire: the loaded model, its name, and what keeps it loaded."""

    model: Any
    name: str
    owner: Any = field(default=None, repr=False)
    module_field = "model"
    flow = False       # an SD3 or Flux ControlNet (nodes/families/sd3_control.py, flux_control.py)
    family = None      # the transformer family it steers ("sd3", "flux"); None: UNet models


@dataclass(frozen=True, eq=False)
class ControlNet(_Control):
    """CONTROLNET: a diffusers ControlNetModel and what driving it needs."""

    is_adapter = False

    @property
    def hint_factor(self) -> int:
        """Control image pixels per latent pixel (its conditioning embedding's downsampling)."""
        return 2 ** (len(self.model.config.conditioning_embedding_out_channels) - 1)


@dataclass(frozen=True, eq=False)
class FlowControlNet(ControlNet):
    """CONTROLNET holding diffusers' SD3ControlNetModel (nodes/families/sd3_control.py)."""

    flow = True
    family = "sd3"
    label = "SD3"
    article = "an"

    @property
    def reads_latents(self) -> bool:
        """Whether it reads its image as VAE latents (ControlNetApply then needs the VAE)."""
        return True


@dataclass(frozen=True, eq=False)
class FluxControlNet(FlowControlNet):
    """CONTROLNET holding diffusers' FluxControlNetModel (nodes/families/flux_control.py)."""

    family = "flux"
    label = "Flux"
    article = "a"

    @property
    def reads_latents(self) -> bool:
        return self.model.input_hint_block is None    # InstantX's; XLabs' read the image itself


@dataclass(frozen=True, eq=False)
class T2IAdapter(_Control):
    """CONTROLNET holding a diffusers T2IAdapter: run once on the control image, not per step."""

    is_adapter = True

    @property
    def hint_factor(self) -> int:
        """Control image pixels per latent pixel: the adapter's first features are at the latent's
        size (full and light adapters), or half of it (SDXL's, which unshuffle 16x)."""
        factor = self.model.config.downscale_factor
        return factor // 2 if self.model.config.adapter_type == "full_adapter_xl" else factor

    def features(self, hints: torch.Tensor, strength: float) -> list[torch.Tensor]:
        """The adapter's features for control images [B, 3, H, W] in 0..1, times `strength`."""
        channels = self.model.config.in_channels
        if channels == 1:   # a greyscale adapter (canny, sketch) takes one channel
            hints = hints.mean(dim=1, keepdim=True)
        factor = self.model.config.downscale_factor
        if hints.shape[-2] % factor or hints.shape[-1] % factor:
            raise NodeError(f"T2I-Adapter {self.name} needs an image whose sides are multiples of {factor} pixels "
                            f"(this one is {hints.shape[-1]}x{hints.shape[-2]}); change the image size",
                            field="latent")
        return [f * strength for f in self.model(hints.to(self.device, self.dtype))]


@dataclass(frozen=True, eq=False)
class Control:
    """One ControlNetApply: which ControlNet or T2I-Adapter, on which image, how strongly, when."""

    controlnet: ControlNet | T2IAdapter
    image: torch.Tensor            # IMAGE [B, H, W, 3] in 0..1
    strength: float
    start_percent: float
    end_percent: float
    vae: Any = None                # the VAE an SD3 or InstantX Flux ControlNet encodes its image with

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
        warn_if_other_shape(image.shape[2], image.shape[1], width, height)
        if tuple(image.shape[1:3]) != (height, width):
            image = scale_image(image, width, height, "nearest-exact", "center")
        if image.shape[0] != batch:
            image = image.repeat((batch + image.shape[0] - 1) // image.shape[0], 1, 1, 1)[:batch]
        return image.permute(0, 3, 1, 2)


def warn_if_other_shape(width: int, height: int, target_width: int, target_height: int) -> None:
    """Tell the user (the running node's warning) when a control image is not the shape of the image
    being made: its centre is cropped to that shape, which ComfyUI does without a word."""
    from nodeforge.core.context import current_context

    from .latents import other_shape

    ctx = current_context()
    if ctx is None or not other_shape(width, height, target_width, target_height):
        return
    ctx.warn(f"the ControlNet image is {width}x{height} but the image being made is {target_width}x{target_height}: "
             "its centre is cropped to that shape, so the control misses its edges; give a control image of the "
             "same shape")


# -- loading ------------------------------------------------------------------------------------------------
def _config_beside(path: Path, adapter: bool) -> dict | None:
    """The config in the '<stem>.config' folder beside a single file, refused if it is the other kind's."""
    beside = path.with_name(path.stem + ".config")
    for file in (beside / "config.json", beside / "controlnet" / "config.json"):
        if file.is_file():
            config = json.loads(file.read_text())
            _refuse_other_kind(f"{beside.name}/{file.relative_to(beside).as_posix()}", config, adapter,
                               f"{path.name}'s")
            return config
    return None


def _is_adapter_config(config: dict) -> bool:
    return config.get("_class_name") == "T2IAdapter" or "adapter_type" in config


def _refuse_other_kind(where: str, config: dict, adapter: bool, whose: str) -> None:
    """A T2I-Adapter config over ControlNet weights, or the reverse, builds the wrong model: say so."""
    if _is_adapter_config(config) != adapter:
        weights, other = ("a T2I-Adapter", "a ControlNet") if adapter else ("a ControlNet", "a T2I-Adapter")
        raise NodeError(f"{where} describes {other}, but {whose} weights are {weights}'s; put the config.json "
                        f"that came with these weights there (or the weights that go with this config)",
                        field="controlnet")


def _folder_holds_adapter(path: Path) -> bool | None:
    """Whether a diffusers folder's weights are a T2I-Adapter's (from the key names only), None if unknown."""
    from safetensors import safe_open

    for file in sorted(path.glob("diffusion_pytorch_model*.safetensors")):
        try:
            with safe_open(str(file), "pt") as f:
                keys = dict.fromkeys(f.keys())
        except Exception:    # a damaged file: from_pretrained says what is wrong with it
            return None
        return is_adapter_state(keys)
    return None


def config_from_unet(unet_config: dict[str, Any]) -> dict[str, Any]:
    """A ControlNet config of the same shape as a UNet (the encoder half and the middle block)."""
    from diffusers.models.controlnets.controlnet import ControlNetModel

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
    from diffusers.models.controlnets.controlnet import ControlNetModel
    from diffusers.loaders import single_file_utils as sfu

    from .families import flux_control
    from .families.sd3_control import is_sd3_state, load_sd3_state

    state, _ = read_state_dict(path, field="controlnet")
    if flux_control.is_flux_state(state):
        return flux_control.load_flux_state(path, state)
    if flux_control.is_xlabs_original(state):
        flux_control.refuse_xlabs_original(path)
    if is_sd3_state(state):
        return load_sd3_state(path, state)
    if is_adapter_state(state):
        return load_adapter_state(path, state)
    if any(k.startswith(ORIGINAL_PREFIX) for k in state):
        state = {k[len(ORIGINAL_PREFIX):]: v for k, v in state.items() if k.startswith(ORIGINAL_PREFIX)}
    original = "input_hint_block.0.weight" in state
    if not original and "controlnet_cond_embedding.conv_in.weight" not in state:
        raise NodeError(f"{path.name} holds no ControlNet (no input_hint_block or controlnet_cond_embedding "
                        "weights, nor T2I-Adapter ones); it may be a checkpoint or a LoRA", field="controlnet")
    config = _config_beside(path, adapter=False) or standard_config(path, state)
    with torch.device("meta"):
        model = ControlNetModel.from_config(config)
    if original:
        state = sfu.convert_controlnet_checkpoint(state, model.config)
    _load_into(model, state, "ControlNet", field="controlnet")
    return model


def load_controlnet(path: Path, device: str, shared: dict[str, Any] | None = None) -> ControlNet:
    from diffusers.models.controlnets.controlnet import ControlNetModel

    key = (file_identity(path), device)
    with _lock:
        registry = (shared if shared is not None else {}).setdefault(_REGISTRY_KEY, weakref.WeakValueDictionary())
        found = registry.get(key)
        if found is not None:
            return _wrap(found.model, path.stem if path.is_file() else path.name, found)
        if path.is_dir():
            if not (path / "config.json").is_file():
                raise NodeError(f"{path.name} is a folder without a ControlNet config.json", field="controlnet")
            config = json.loads((path / "config.json").read_text())
            holds_adapter = _folder_holds_adapter(path)
            if holds_adapter is not None:
                _refuse_other_kind(f"{path.name}/config.json", config, holds_adapter, "the folder's")
            from .families.flux_control import is_flux_config, load_flux_folder
            from .families.sd3_control import is_sd3_config, load_sd3_folder

            if is_sd3_config(config):
                model = load_sd3_folder(path)
            elif is_flux_config(config):
                model = load_flux_folder(path)
            elif _is_adapter_config(config):
                from diffusers.models.adapter import T2IAdapter as DiffusersT2IAdapter

                model = DiffusersT2IAdapter.from_pretrained(str(path), local_files_only=True)
            else:
                model = ControlNetModel.from_pretrained(str(path), local_files_only=True)
            check_finite(model.state_dict().items(), path.name, "controlnet")
        else:
            model = load_controlnet_file(path)
        _finish([model], device, pick_dtype(device))
        holder = _Loaded(model)
        registry[key] = holder
        return _wrap(model, path.stem if path.is_file() else path.name, holder)


def _wrap(model: Any, name: str, holder: "_Loaded") -> ControlNet | T2IAdapter:
    from diffusers.models.adapter import T2IAdapter as DiffusersT2IAdapter

    if type(model).__name__ == "SD3ControlNetModel":
        return FlowControlNet(model, name, owner=holder)
    if type(model).__name__ == "FluxControlNetModel":
        return FluxControlNet(model, name, owner=holder)
    return (T2IAdapter if isinstance(model, DiffusersT2IAdapter) else ControlNet)(model, name, owner=holder)


# -- T2I-Adapters ---------------------------------------------------------------------------------------------
_BODY = re.compile(r"body\.(\d+)\.(block1|block2|in_conv|skep|down_opt)\.(weight|bias)$")


def is_adapter_state(state: dict[str, torch.Tensor]) -> bool:
    return any(k.startswith("adapter.body.") for k in state) or \
        ("conv_in.weight" in state and "body.0.block1.weight" in state)


def adapter_from_original(state: dict[str, torch.Tensor], num_res_blocks: int) -> dict[str, torch.Tensor]:
    """TencentARC's full-adapter names in diffusers' layout: body[i * blocks + j] is the j-th
    resnet of level i, the first of a level carrying the 1x1 in_conv when the width changes."""
    out = {}
    for key, value in state.items():
        if key.startswith("conv_in."):
            out["adapter." + key] = value
            continue
        m = _BODY.match(key)
        if m is None or m.group(2) in ("skep", "down_opt"):
            raise NodeError(f"a T2I-Adapter key {key!r} has no diffusers equivalent (only full adapters with "
                            "identity skips, as TencentARC's sd14v1 files, convert); use its diffusers folder",
                            field="controlnet")
        level, j = divmod(int(m.group(1)), num_res_blocks)
        if m.group(2) == "in_conv":
            out[f"adapter.body.{level}.in_conv.{m.group(3)}"] = value
        else:
            out[f"adapter.body.{level}.resnets.{j}.{m.group(2)}.{m.group(3)}"] = value
    return out


def adapter_config(path: Path, state: dict[str, torch.Tensor], original: bool) -> dict[str, Any]:
    """A full adapter's config from its weights (channels per level, resnets per level, and the
    pixel unshuffle from conv_in's input: channels x factor^2, with 3 or 1 image channels)."""
    if original:
        blocks = sorted({int(m.group(1)) for m in map(_BODY.match, state) if m})
        widths = [int(state[f"body.{b}.block1.weight"].shape[0]) for b in blocks]
        starts = {i for i, b in enumerate(blocks) if f"body.{b}.in_conv.weight" in state}
        # resnets per level: the most that keeps every level one width and starts a level wherever
        # the width changes (sd14v1: 320 320 640 640 1280 1280 1280 1280 is 4 levels of 2)
        per = max(n for n in range(1, len(blocks) + 1) if len(blocks) % n == 0
                  and all(widths[i] == widths[i - i % n] for i in range(len(blocks)))
                  and all(i % n == 0 for i in starts))
        channels = widths[::per]
    elif "adapter.conv_in.weight" not in state:
        raise NodeError(f"{path.name} is a light T2I-Adapter, whose shape its weights do not give; put its "
                        f"diffusers config.json in a folder named '{path.stem}.config' beside it", field="controlnet")
    else:
        levels = sorted({int(k.split(".")[2]) for k in state if k.startswith("adapter.body.")})
        channels = [state[f"adapter.body.{i}.resnets.0.block1.weight"].shape[0] for i in levels]
        per = len({k.split(".")[4] for k in state if k.startswith("adapter.body.0.resnets.")})
    conv_in = state["adapter.conv_in.weight" if not original else "conv_in.weight"].shape[1]
    for image_channels in (3, 1):
        factor = math.isqrt(conv_in // image_channels)
        if conv_in % image_channels == 0 and factor * factor * image_channels == conv_in and factor & (factor - 1) == 0:
            break
    else:
        raise NodeError(f"{path.name}: cannot tell this T2I-Adapter's image channels from its first layer "
                        f"({conv_in} inputs); put a diffusers-layout config folder named '{path.stem}.config' "
                        "beside it", field="controlnet")
    return {"in_channels": image_channels, "channels": [int(c) for c in channels], "num_res_blocks": per,
            "downscale_factor": factor, "adapter_type": "full_adapter_xl" if factor == 16 else "full_adapter"}


def load_adapter_state(path: Path, state: dict[str, torch.Tensor]) -> Any:
    from diffusers.models.adapter import T2IAdapter as DiffusersT2IAdapter

    original = not any(k.startswith("adapter.") for k in state)
    config = _config_beside(path, adapter=True) or adapter_config(path, state, original)
    with torch.device("meta"):
        model = DiffusersT2IAdapter.from_config(config)
    if original:
        state = adapter_from_original(state, model.config.num_res_blocks)
    _load_into(model, state, "T2I-Adapter", field="controlnet")
    return model


class _Loaded:
    """Keeps a loaded ControlNet alive while any wrapper uses it (the registry holds it weakly)."""

    def __init__(self, model: Any) -> None:
        self.model = model


# -- the nodes ----------------------------------------------------------------------------------------------
def run_controlnet_loader(ctx: Any, controlnet: str) -> dict[str, Any]:
    path = ctx.resolve_file(FileKind.CONTROLNET, controlnet)
    return {"controlnet": load_controlnet(Path(path), ctx.device, ctx.shared)}


def run_controlnet_apply(ctx: Any, positive: Any, negative: Any, controlnet: ControlNet, image: torch.Tensor,
                         strength: float, start_percent: float, end_percent: float, vae: Any = None) -> dict[str, Any]:
    if strength == 0:   # as ComfyUI: nothing to add, the conditioning passes through unchanged
        return {"positive": positive, "negative": negative}
    if start_percent > end_percent:
        raise NodeError("start_percent is after end_percent: the control would never act", field="start_percent")
    if end_percent <= 0 or start_percent >= 1:
        ctx.warn(f"the control acts from {start_percent:g} to {end_percent:g} of the steps, which is no step: it "
                 "never acts; set start_percent 0 and end_percent 1 to use it all the way")
    latents = controlnet.flow and controlnet.reads_latents
    if latents and vae is None:
        raise NodeError(f"{controlnet.name} is {controlnet.article} {controlnet.label} ControlNet, which reads its image as latents: "
                        "link the checkpoint's VAE to vae", field="vae")
    control = Control(controlnet, image.detach().cpu().float(), float(strength), float(start_percent),
                      float(end_percent), vae if latents else None)

    def add(value: Any) -> list[dict[str, Any]]:
        return [dict(e, control=tuple(e.get("control", ())) + (control,)) for e in entries(value)]

    return {"positive": add(positive), "negative": add(negative)}
