"""DifferentialDiffusion (ComfyUI's core node; Levin and Fried's differential diffusion): a soft inpainting
mask becomes a per-step amount of change. At each step the mask is thresholded at the step's place in the
run (1 at the first timestep, 0 at the end): a pixel is repainted from the step its mask value reaches that
place on, so grey areas change less than white ones. The wrapper records the strength; the mask blend of
the denoise loop (nodes/sampling.py `differential_mask`) applies it, so the input model never changes."""
from __future__ import annotations

import dataclasses
from typing import Any


def run_differential_diffusion(ctx: Any, unet: Any, strength: float = 1.0) -> dict[str, Any]:
    return {"unet": dataclasses.replace(unet, differential_diffusion=float(strength))}
