"""Depth maps from a transformers depth model (comfyui_controlnet_aux's MiDaS, Zoe and Depth Anything
preprocessors): a control image for a depth ControlNet.

The model is a transformers folder in models/depth/ (config.json, the weights, preprocessor_config.json),
as its Hugging Face repository gives it, or that repository in the Hugging Face cache (found by its name or
id: nodeforge/core/models.py `hub_snapshot`): Intel/dpt-hybrid-midas (MiDaS v3 hybrid, what ComfyUI's
MiDaS preprocessor runs), Intel/zoedepth-nyu-kitti, LiheYoung/depth-anything-*-hf,
depth-anything/Depth-Anything-V2-*-hf; AutoModelForDepthEstimation reads any of them. The image is
prepared by the model's own image processor, its prediction resized back by the processor's
post-processing to the requested resolution (the shorter side, as the preprocessors' `resolution`;
the aspect ratio kept; 0 keeps the image's own size, as WAS's MiDaS Depth Approximation does) and
normalised per image to 0..1 with near bright: a relative model's prediction
(inverse depth: MiDaS, Depth Anything) from its minimum to its maximum, a metric
model's (ZoeDepth, metric Depth Anything: metres, far large) from its 2nd to 85th percentile and
turned over, as comfyui_controlnet_aux shows Zoe's. The map is grey in three channels.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from nodeforge.core.errors import NodeError, first_line
from nodeforge.core.models import snapshot_name
from nodeforge.core.types import FileKind

from .loading import load_shared

_KEY = "nodes.depth_models"
_lock = threading.Lock()
_FILES = "config.json, the model weights and preprocessor_config.json"


@dataclass(eq=False)
class DepthModel:
    """A transformers depth-estimation model and its image processor; `metric`: it predicts distance."""

    name: str
    model: Any
    processor: Any
    metric: bool


def read_depth_model(path: Path, device: str) -> DepthModel:
    if not path.is_dir() or not (path / "config.json").is_file():
        raise NodeError(f"{path.name} is not a transformers depth model folder: put the whole folder of its Hugging "
                        f"Face repository ({_FILES}, e.g. Intel/dpt-hybrid-midas) in models/depth/", field="model")
    from transformers import AutoImageProcessor, AutoModelForDepthEstimation

    try:
        model = AutoModelForDepthEstimation.from_pretrained(str(path), local_files_only=True)
    except (OSError, ValueError, KeyError) as exc:
        first = first_line(exc)
        raise NodeError(f"{path.name} is not a depth-estimation model transformers can read ({first}); use a DPT, "
                        "ZoeDepth or Depth Anything folder", field="model") from None
    try:
        processor = AutoImageProcessor.from_pretrained(str(path), local_files_only=True)
    except (OSError, ValueError, KeyError):
        raise NodeError(f"{path.name} has no image processor (preprocessor_config.json); copy that file from the "
                        "model's repository into the folder", field="model") from None
    config = model.config
    metric = config.model_type == "zoedepth" or getattr(config, "depth_estimation_type", "relative") == "metric"
    return DepthModel(snapshot_name(path), model.to(device).eval(), processor, metric)


def load_depth_model(path: Path, device: str, shared: dict[str, Any] | None = None) -> DepthModel:
    return load_shared(shared, _KEY, path, device, _lock, lambda: read_depth_model(path, device))


def output_size(height: int, width: int, resolution: int) -> tuple[int, int]:
    """The map's size: the shorter side at `resolution`, the aspect ratio kept (rounded); 0: the image's own."""
    if resolution <= 0:
        return height, width
    scale = resolution / min(height, width)
    return max(1, round(height * scale)), max(1, round(width * scale))


def normalised(depth: torch.Tensor, metric: bool) -> torch.Tensor:
    """One prediction as 0..1 with near bright (see the module note); a flat prediction is black."""
    depth = depth.float()
    if metric:
        low, high = torch.quantile(depth.flatten(), torch.tensor([0.02, 0.85], dtype=depth.dtype))
        span = float(high - low)
        return (1.0 - (depth - low) / span).clamp(0.0, 1.0) if span > 0 else torch.zeros_like(depth)
    span = float(depth.max() - depth.min())
    return (depth - depth.min()) / span if span > 0 else torch.zeros_like(depth)


def depth_map(model: DepthModel, image: torch.Tensor, resolution: int) -> torch.Tensor:
    """IMAGE [B, H, W, C] in 0..1 -> the depth maps [B, h, w, 3] (h, w: `output_size`)."""
    size = output_size(image.shape[1], image.shape[2], resolution)
    pictures = [frame[..., :3].float().cpu().numpy() for frame in image]
    inputs = model.processor(images=pictures, do_rescale=False, return_tensors="pt")
    device = next(model.model.parameters()).device
    with torch.no_grad():
        outputs = model.model(pixel_values=inputs["pixel_values"].to(device, model.model.dtype))
    outputs.predicted_depth = outputs.predicted_depth.float().cpu()
    found = model.processor.post_process_depth_estimation(outputs, target_sizes=[size] * len(pictures))
    maps = torch.stack([normalised(entry["predicted_depth"], model.metric) for entry in found])
    return maps.unsqueeze(-1).expand(-1, -1, -1, 3).contiguous()


def run_depth_map(ctx: Any, image: torch.Tensor, model: str, resolution: int) -> dict[str, Any]:
    loaded = load_depth_model(Path(ctx.resolve_file(FileKind.DEPTH, model)), ctx.device, ctx.shared)
    return {"image": depth_map(loaded, image, int(resolution))}
