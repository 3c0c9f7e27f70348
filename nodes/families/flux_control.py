"""Flux ControlNets (diffusers' FluxControlNetModel: InstantX's, Shakker-Labs', XLabs' in diffusers
form) as FluxControlNetPipeline drives them.

Loading: a diffusers folder whose config.json names FluxControlNetModel, or a single file in
diffusers' layout (`controlnet_x_embedder.`, `controlnet_blocks.`). A single file's config is
`<name>.config/config.json` beside it, else it is read from the weights (depths, widths, the
guidance input, an XLabs-style input_hint_block), with Flux.1's rotary axes (16, 56, 56), which
only fit its 128-wide attention heads; other head widths need the config. XLabs' original files
(Black Forest Labs' `double_blocks.` names) and Union ControlNets (`num_mode`: they need a
control type) are refused in one line naming the fix.

Applying: ControlNetApply links the checkpoint's VAE for the ControlNets without an
input_hint_block (InstantX's): the control image at the generated size is encoded to latents (the
distribution's mean, where the pipeline samples it with the seed's generator before drawing the
noise; a test pins the pipeline to the mean too), shifted and scaled as any Flux latent, and packed.
XLabs-style ControlNets read the image itself (-1..1) through their input_hint_block.

At each step where a control is active it runs once, on the positive prompt when the positive side
carries it (FluxControlNetPipeline reuses those outputs for the true-CFG negative call), on the
negative prompt otherwise; its outputs, times the strength, are spread over the transformer's
blocks as FluxTransformer2DModel does (every n-th block, or repeated for XLabs') and summed with
the other controls of that side, so controls of different depths stack.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import torch

from nodeforge.core.errors import NodeError

from .sd3_control import SideControls, encoded_image

CONTROLNET_CLASS = "FluxControlNetModel"
FLUX_AXES = [16, 56, 56]     # Flux.1's rotary axes: 128-wide heads


def is_flux_config(config: dict[str, Any]) -> bool:
    return config.get("_class_name") == CONTROLNET_CLASS


def is_flux_state(keys: Any) -> bool:
    return any(k.startswith(("controlnet_x_embedder.", "controlnet_single_blocks.")) for k in keys)


def is_xlabs_original(keys: Any) -> bool:
    keys = list(keys)
    return any(k.startswith("controlnet_blocks.") for k in keys) and any(k.startswith("double_blocks.") for k in keys)


def _refuse_union(name: str, config: Any) -> None:
    if config.get("num_mode") is not None:
        raise NodeError(f"{name} is a Flux Union ControlNet ({config['num_mode']} control types), which needs the "
                        "control type of its image and NodeForge cannot set one yet; use a single-type Flux "
                        "ControlNet (canny, depth, ...)", field="controlnet")


def load_flux_folder(path: Path) -> Any:
    from diffusers import FluxControlNetModel

    _refuse_union(path.name, json.loads((path / "config.json").read_text()))
    return FluxControlNetModel.from_pretrained(str(path), local_files_only=True)


def config_from_state(path: Path, state: dict[str, torch.Tensor]) -> dict[str, Any]:
    """A FluxControlNetModel config from its weights (Flux.1's rotary axes: 128-wide heads only)."""
    def count(prefix: str) -> int:
        return len({k.split(".")[1] for k in state if k.startswith(prefix)})

    inner, in_channels = state["x_embedder.weight"].shape
    head = state["transformer_blocks.0.attn.norm_q.weight"].shape[0] if "transformer_blocks.0.attn.norm_q.weight" \
        in state else state.get("single_transformer_blocks.0.attn.norm_q.weight", torch.empty(0)).shape[0]
    if head != sum(FLUX_AXES):
        raise NodeError(f"{path.name} is a Flux ControlNet with {head}-wide attention heads, not Flux.1's 128, so its "
                        f"rotary axes are unknown: put its config.json in a folder named '{path.stem}.config' beside "
                        "it", field="controlnet")
    hint = state.get("input_hint_block.conv_out.weight")
    return {"_class_name": CONTROLNET_CLASS, "patch_size": 2 if hint is not None else 1,
            "in_channels": int(in_channels), "num_layers": count("transformer_blocks."),
            "num_single_layers": count("single_transformer_blocks."), "attention_head_dim": int(head),
            "num_attention_heads": int(inner) // int(head),
            "joint_attention_dim": int(state["context_embedder.weight"].shape[1]),
            "pooled_projection_dim": int(state["time_text_embed.text_embedder.linear_1.weight"].shape[1]),
            "guidance_embeds": any(k.startswith("time_text_embed.guidance_embedder.") for k in state),
            "axes_dims_rope": list(FLUX_AXES),
            "num_mode": int(state["controlnet_mode_embedder.weight"].shape[0])
            if "controlnet_mode_embedder.weight" in state else None,
            "conditioning_embedding_channels": int(hint.shape[0]) if hint is not None else None}


def load_flux_state(path: Path, state: dict[str, torch.Tensor]) -> Any:
    from diffusers import FluxControlNetModel

    from ..loading import model_from_state

    config_file = path.with_name(path.stem + ".config") / "config.json"
    config = json.loads(config_file.read_text()) if config_file.is_file() else config_from_state(path, state)
    _refuse_union(path.name, config)
    return model_from_state(FluxControlNetModel, config, state, "Flux ControlNet", field="controlnet")


def refuse_xlabs_original(path: Path) -> None:
    raise NodeError(f"{path.name} is an XLabs Flux ControlNet in Black Forest Labs' layout (double_blocks.), which "
                    "NodeForge does not convert; use its diffusers version (XLabs-AI/flux-controlnet-*-diffusers) "
                    "as a folder", field="controlnet")


def spread(samples: Any, blocks: int, repeat: bool) -> list[torch.Tensor] | None:
    """A ControlNet's outputs, one per transformer block, as FluxTransformer2DModel assigns them."""
    if not samples:
        return None
    if repeat:
        return [samples[i % len(samples)] for i in range(blocks)]
    interval = int(math.ceil(blocks / len(samples)))
    return [samples[i // interval] for i in range(blocks)]


class FluxControls(SideControls):
    """The Flux controls of the positive and negative side, run per step as the pipeline runs them."""

    family = "flux"

    def __init__(self, positive: tuple[Any, ...], negative: tuple[Any, ...] | None, model: Any) -> None:
        super().__init__([positive] if negative is None else [positive, negative], model)

    def prepare(self, control: Any, height: int, width: int) -> torch.Tensor:
        """InstantX's: packed VAE latents [1, h/2 x w/2, 64]; XLabs': the image in -1..1 [1, 3, H, W]."""
        from .flux_sampling import pack

        net = control.controlnet
        if net.model.input_hint_block is None:
            return pack(encoded_image(control, height, width))
        factor = self.model.vae_factor
        return control.hint(1, height * factor, width * factor) * 2 - 1

    def step(self, packed: torch.Tensor, t: torch.Tensor, shape: tuple[int, int], sides: list[dict[str, Any]],
             call: Any) -> list[dict[str, Any]]:
        """The transformer's ControlNet arguments for each side (`sides` in the order of `self.sides`);
        `call(net, side, packed, t, cond, strength)` runs one ControlNet."""
        blocks = self.model.unet.config.num_layers, self.model.unet.config.num_single_layers
        totals: list[list[Any]] = [[None, None] for _ in self.sides]
        for control in self.unique:
            if not control.active(float(t.reshape(-1)[0])):
                continue
            net = control.controlnet
            cond = self.prepared(control, *shape)
            runs_on = next(i for i, side in enumerate(self.sides) if control in side)
            double, single = call(net, sides[runs_on], packed, t, cond.expand(packed.shape[0], *cond.shape[1:]),
                                  control.strength)
            repeat = net.model.input_hint_block is not None
            spread_out = (spread(double, blocks[0], repeat), spread(single, blocks[1], False))
            for i, side in enumerate(self.sides):
                if control in side:
                    totals[i] = [b if a is None else a if b is None else [x + y for x, y in zip(a, b)]
                                 for a, b in zip(totals[i], spread_out)]
        return [{"controlnet_block_samples": d, "controlnet_single_block_samples": s} for d, s in totals]
