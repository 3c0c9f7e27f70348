"""The control image of an inpaint ControlNet (comfyui_controlnet_aux's Inpaint Preprocessor): the picture with
its masked pixels set to -1 in every channel, the value lllyasviel's inpaint ControlNet (and diffusers'
inpaint-ControlNet recipe) reads as "fill this in"; xinsir's union/inpaint ControlNets expect 0 (black) there.

The mask is resized to the picture by bilinear interpolation (no antialiasing, pixel centres aligned as torch's
align_corners=False) and a pixel is masked where it is above 0.5. The -1 reaches the ControlNet as it is: Apply
ControlNet passes the control image on without clamping it (a preview shows those pixels black).
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from nodeforge.core.errors import NodeError


def masked_where(mask: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """MASK [B, h, w] (or [h, w]) -> bool [B, height, width]: above 0.5 after a bilinear resize."""
    mask = mask.float().reshape(-1, 1, mask.shape[-2], mask.shape[-1])
    if tuple(mask.shape[-2:]) != (height, width):
        mask = F.interpolate(mask, size=(height, width), mode="bilinear", align_corners=False)
    return mask[:, 0] > 0.5


def inpaint_control(image: torch.Tensor, mask: torch.Tensor, xinsir_black: bool = False) -> torch.Tensor:
    """IMAGE [B, H, W, C] with the masked pixels at -1 (0 with `xinsir_black`); a single mask serves every picture
    and a single picture every mask."""
    where = masked_where(mask, image.shape[1], image.shape[2])
    if where.shape[0] != image.shape[0] and 1 not in (where.shape[0], image.shape[0]):
        raise NodeError(f"the mask holds {where.shape[0]} masks for {image.shape[0]} pictures: give one mask, or one "
                        "per picture", field="mask")
    batch = max(where.shape[0], image.shape[0])
    out = image.float().expand(batch, -1, -1, -1).clone()
    out[where.expand(batch, -1, -1)] = 0.0 if xinsir_black else -1.0
    return out


def run_inpaint_control(ctx: Any, image: torch.Tensor, mask: torch.Tensor, xinsir_black: bool) -> dict[str, Any]:
    return {"image": inpaint_control(image, mask, bool(xinsir_black))}
