"""SD3 ControlNets (diffusers' SD3ControlNetModel: InstantX's and Stability's SD3/SD3.5 ControlNets)
as StableDiffusion3ControlNetPipeline drives them.

Loading: a diffusers folder whose config.json names SD3ControlNetModel, or a single file in
diffusers' layout (`pos_embed_input.`, `controlnet_blocks.`) with its config.json in a
`<name>.config/` folder beside it. Applying: ControlNetApply links the checkpoint's VAE too; the
control image, scaled to the generated size, is encoded to latents by it (the distribution's
mean; shifted by the VAE's shift factor unless the ControlNet's config says
force_zeros_for_pooled_projection, as the pipeline does). At each step where a control is active
the ControlNet runs once on the batched [negative, positive] latents with the prompts (zero pooled
vectors if its config says so) and its block outputs, times the strength, are summed into the
transformer's `block_controlnet_hidden_states`; a side without the control gets zeros there.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from nodeforge.core.errors import NodeError

CONTROLNET_CLASS = "SD3ControlNetModel"


def is_sd3_config(config: dict[str, Any]) -> bool:
    return config.get("_class_name") == CONTROLNET_CLASS


def is_sd3_state(keys: Any) -> bool:
    return any(k.startswith(("pos_embed_input.", "controlnet_blocks.")) for k in keys)


def load_sd3_folder(path: Path) -> Any:
    from diffusers import SD3ControlNetModel

    return SD3ControlNetModel.from_pretrained(str(path), local_files_only=True)


def load_sd3_state(path: Path, state: dict[str, torch.Tensor]) -> Any:
    from diffusers import SD3ControlNetModel

    from ..loading import model_from_state

    config_file = path.with_name(path.stem + ".config") / "config.json"
    if not config_file.is_file():
        raise NodeError(f"{path.name} is an SD3 ControlNet in diffusers' layout, whose shape needs its config: put "
                        f"the config.json from its repository in a folder named '{path.stem}.config' beside it, or "
                        "use the whole diffusers folder", field="controlnet")
    config = json.loads(config_file.read_text())
    return model_from_state(SD3ControlNetModel, config, state, "SD3 ControlNet", field="controlnet")


def encoded_image(control: Any, height: int, width: int) -> torch.Tensor:
    """The control image at the generated size as VAE latents [1, C, h, w] (shifted and scaled; the
    distribution's mean), for the ControlNets that read latents (SD3's, InstantX's Flux ones)."""
    from ..vae import encode

    net = control.controlnet
    if control.vae is None:
        raise NodeError(f"ControlNet {net.name} is {net.article} {net.label} ControlNet, which reads its image as "
                        "latents: link the checkpoint's VAE to ControlNetApply's vae input", field="positive")
    vae = control.vae
    image = control.hint(1, height * vae.factor, width * vae.factor).permute(0, 2, 3, 1)
    return encode(vae, image)


def control_latents(control: Any, height: int, width: int) -> torch.Tensor:
    """The control image at the generated size as an SD3 ControlNet reads it: VAE latents [1, C, h, w]."""
    latents = encoded_image(control, height, width)
    if control.controlnet.model.config.force_zeros_for_pooled_projection:
        vae = control.vae
        latents = latents + vae.shift_factor * vae.scaling_factor   # InstantX's: no shift
    return latents


class SideControls:
    """The controls of each side of a transformer family's guided call (shared by SD3 and Flux,
    nodes/families/flux_control.py): the unique controls, each refused unless it is this family's
    ControlNet, and each one's image as its ControlNet reads it, prepared once per run."""

    family = "sd3"

    def __init__(self, sides: list[tuple[Any, ...]], model: Any) -> None:
        self.sides = sides
        self.model = model
        self.unique = list({id(c): c for side in sides for c in side}.values())
        self._prepared: dict[int, torch.Tensor] = {}
        for control in self.unique:
            family = getattr(control.controlnet, "family", None)
            if family != self.family:
                label = LABELS[self.family]
                raise NodeError(f"ControlNet {control.controlnet.name} is for {LABELS.get(family, 'UNet')} models; "
                                f"{'an' if label == 'SD3' else 'a'} {label} model needs {'an' if label == 'SD3' else 'a'} "
                                f"{label} ControlNet ({CLASSES[self.family]})", field="positive")

    def prepared(self, control: Any, height: int, width: int) -> torch.Tensor:
        """The control's image for a latent `height` x `width`, made once (`prepare`)."""
        if id(control) not in self._prepared:
            self._prepared[id(control)] = self.prepare(control, height, width)
        return self._prepared[id(control)]

    def prepare(self, control: Any, height: int, width: int) -> torch.Tensor:
        return control_latents(control, height, width)


LABELS = {"sd3": "SD3", "flux": "Flux"}
CLASSES = {"sd3": "diffusers' SD3ControlNetModel", "flux": "diffusers' FluxControlNetModel"}


class FlowControls(SideControls):
    """The controls of each side of a batched [negative, positive] SD3 call, and their latents."""

    def residuals(self, x: torch.Tensor, t: torch.Tensor, embeds: torch.Tensor,
                  pooled: torch.Tensor) -> list[torch.Tensor] | None:
        """The summed block outputs of the controls active at `t`, or None when none is."""
        total: list[torch.Tensor] | None = None
        per_side = x.shape[0] // len(self.sides)
        for control in self.unique:
            if not control.active(float(t.reshape(-1)[0])):
                continue
            net = control.controlnet
            cond = self.prepared(control, x.shape[-2], x.shape[-1]).to(net.device, net.dtype).expand(
                x.shape[0], -1, -1, -1)
            blocks = net.model(hidden_states=x.to(net.device, net.dtype), timestep=t.to(net.device),
                               encoder_hidden_states=embeds.to(net.device, net.dtype)
                               if net.model.config.joint_attention_dim is not None else None,
                               pooled_projections=(torch.zeros_like(pooled) if net.model.config.
                                                   force_zeros_for_pooled_projection else pooled).to(net.device, net.dtype),
                               controlnet_cond=cond, conditioning_scale=control.strength, return_dict=False)[0]
            if any(control not in side for side in self.sides):
                mask = torch.tensor([float(control in side) for side in self.sides for _ in range(per_side)])
                blocks = [b * mask.to(b.device, b.dtype).view(-1, *[1] * (b.ndim - 1)) for b in blocks]
            total = list(blocks) if total is None else [a + b for a, b in zip(total, blocks)]
        return None if total is None else [b.to(self.model.device, self.model.dtype) for b in total]
