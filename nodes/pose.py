"""Pose maps: a person's body drawn as OpenPose's 18-point skeleton (comfyui_controlnet_aux's OpenPose
preprocessor), the control image for an OpenPose ControlNet.

The pose is estimated by a transformers ViTPose model folder in models/pose/ (config.json, the weights,
preprocessor_config.json), as its Hugging Face repository gives it, or that repository in the Hugging Face
cache (usyd-community/vitpose-base-simple and its sizes; VitPoseForPoseEstimation reads them). ViTPose is a
top-down estimator: it finds one person's 17 COCO keypoints inside a box. NodeForge has no person detector, so
the box is the whole image: one person per image (crop to each person first for several).

The drawing follows OpenPose's body format as the preprocessors draw it: the 17 COCO points reordered to
OpenPose's 18 (the neck added halfway between the shoulders, only when both are seen), a point seen when its
score is at least `threshold`; on black, each of the 17 limbs (both ends seen) is an ellipse from end to end,
`stick` pixels wide on each side of the line, in its colour times 0.6; then each seen point a disc of radius 4
in its full colour. The colours and the limb order are OpenPose's (red at the nose-neck limb's start, through
the spectrum). `xinsir_sticks` widens the sticks for large maps as comfyui_controlnet_aux's
scale_stick_for_xinsr_cn does (1x below 500 px on the longer side, else 2 + longer // 1000, at most 7x).
Hands and face are not estimated.
"""
from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from nodeforge.core.errors import NodeError, first_line
from nodeforge.core.models import snapshot_name
from nodeforge.core.types import FileKind

from .depth import output_size
from .loading import load_shared

_KEY = "nodes.pose_models"
_lock = threading.Lock()
STICK, RADIUS = 4, 4
# OpenPose's 18 points from COCO's 17 (None: the neck, made from the shoulders 5 and 6).
OPENPOSE_FROM_COCO = (0, None, 6, 8, 10, 5, 7, 9, 12, 14, 16, 11, 13, 15, 2, 1, 4, 3)
# OpenPose's limbs (pairs of its points, 0-based), drawn in this order with COLORS[i].
LIMBS = ((1, 2), (1, 5), (2, 3), (3, 4), (5, 6), (6, 7), (1, 8), (8, 9), (9, 10), (1, 11), (11, 12), (12, 13),
         (1, 0), (0, 14), (14, 16), (0, 15), (15, 17))
COLORS = ((255, 0, 0), (255, 85, 0), (255, 170, 0), (255, 255, 0), (170, 255, 0), (85, 255, 0), (0, 255, 0),
          (0, 255, 85), (0, 255, 170), (0, 255, 255), (0, 170, 255), (0, 85, 255), (0, 0, 255), (85, 0, 255),
          (170, 0, 255), (255, 0, 255), (255, 0, 170), (255, 0, 85))
Point = tuple[float, float]


@dataclass(eq=False)
class PoseModel:
    """A transformers ViTPose model and its image processor."""

    name: str
    model: Any
    processor: Any


def read_pose_model(path: Path, device: str) -> PoseModel:
    if not path.is_dir() or not (path / "config.json").is_file():
        raise NodeError(f"{path.name} is not a transformers pose model folder: put the whole folder of its Hugging "
                        "Face repository (config.json, the weights, preprocessor_config.json; e.g. "
                        "usyd-community/vitpose-base-simple) in models/pose/", field="model")
    from transformers import AutoImageProcessor, VitPoseForPoseEstimation

    try:
        model = VitPoseForPoseEstimation.from_pretrained(str(path), local_files_only=True)
        processor = AutoImageProcessor.from_pretrained(str(path), local_files_only=True)
    except (OSError, ValueError, KeyError) as exc:
        first = first_line(exc)
        raise NodeError(f"{path.name} is not a ViTPose model folder transformers can read ({first}); use one such "
                        "as usyd-community/vitpose-base-simple", field="model") from None
    if model.config.num_labels < 17:
        raise NodeError(f"{path.name} finds {model.config.num_labels} keypoints, not COCO's 17 body points; use a "
                        "COCO ViTPose model (usyd-community/vitpose-base-simple)", field="model")
    return PoseModel(snapshot_name(path), model.to(device).eval(), processor)


def load_pose_model(path: Path, device: str, shared: dict[str, Any] | None = None) -> PoseModel:
    return load_shared(shared, _KEY, path, device, _lock, lambda: read_pose_model(path, device))


def estimate(model: PoseModel, image: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Each image's 17 COCO keypoints [17, 2] (x, y in its pixels) and their scores [17]: one person per
    image, the whole image its box."""
    height, width = image.shape[1], image.shape[2]
    pictures = [frame[..., :3].float().cpu().numpy() for frame in image]
    boxes = [[[0.0, 0.0, float(width), float(height)]] for _ in pictures]
    inputs = model.processor(images=pictures, boxes=boxes, do_rescale=False, return_tensors="pt")
    device = next(model.model.parameters()).device
    with torch.no_grad():
        outputs = model.model(pixel_values=inputs["pixel_values"].to(device, model.model.dtype))
    outputs.heatmaps = outputs.heatmaps.float().cpu()
    found = model.processor.post_process_pose_estimation(outputs, boxes=boxes)
    return [(people[0]["keypoints"][:17].float(), people[0]["scores"][:17].float()) for people in found]


def openpose_points(keypoints: torch.Tensor, scores: torch.Tensor, threshold: float) -> list[Point | None]:
    """COCO's 17 keypoints as OpenPose's 18 points, None where not seen (score below `threshold`)."""
    seen = [(float(x), float(y)) if float(s) >= threshold else None for (x, y), s in zip(keypoints.tolist(), scores)]
    left, right = seen[5], seen[6]
    neck = ((left[0] + right[0]) / 2, (left[1] + right[1]) / 2) if left and right else None
    return [neck if coco is None else seen[coco] for coco in OPENPOSE_FROM_COCO]


def stick_width(height: int, width: int, xinsir_sticks: bool) -> int:
    longer = max(height, width)
    return STICK * ((1 if longer < 500 else min(2 + longer // 1000, 7)) if xinsir_sticks else 1)


def _ellipse(a: Point, b: Point, half_width: float) -> list[Point]:
    """The polygon of the ellipse from `a` to `b` (its long axis), `half_width` its short half-axis."""
    cx, cy = (a[0] + b[0]) / 2, (a[1] + b[1]) / 2
    half_length = math.hypot(b[0] - a[0], b[1] - a[1]) / 2
    angle = math.atan2(b[1] - a[1], b[0] - a[0])
    cos, sin = math.cos(angle), math.sin(angle)
    out = []
    for degree in range(0, 360, 5):
        ex, ey = half_length * math.cos(math.radians(degree)), half_width * math.sin(math.radians(degree))
        out.append((cx + ex * cos - ey * sin, cy + ex * sin + ey * cos))
    return out


def draw_pose(points: list[Point | None], height: int, width: int, stick: int = STICK) -> torch.Tensor:
    """OpenPose's body drawing of 18 points (in this map's pixels) on black: IMAGE [height, width, 3]."""
    import numpy
    from PIL import Image, ImageDraw

    canvas = Image.new("RGB", (width, height))
    draw = ImageDraw.Draw(canvas)
    for (i, j), color in zip(LIMBS, COLORS):
        if points[i] is not None and points[j] is not None:
            draw.polygon(_ellipse(points[i], points[j], stick), fill=tuple(int(c * 0.6) for c in color))
    for point, color in zip(points, COLORS):
        if point is not None:
            x, y = int(point[0]), int(point[1])
            draw.ellipse((x - RADIUS, y - RADIUS, x + RADIUS, y + RADIUS), fill=color)
    return torch.from_numpy(numpy.asarray(canvas, dtype="float32") / 255.0)


def pose_maps(model: PoseModel, image: torch.Tensor, resolution: int, threshold: float,
              xinsir_sticks: bool = False) -> torch.Tensor:
    """IMAGE [B, H, W, C] -> the pose maps [B, h, w, 3] (h, w: the shorter side at `resolution`)."""
    height, width = output_size(image.shape[1], image.shape[2], resolution)
    sx, sy = width / image.shape[2], height / image.shape[1]
    stick = stick_width(height, width, xinsir_sticks)
    maps = []
    for keypoints, scores in estimate(model, image):
        points = openpose_points(keypoints, scores, threshold)
        scaled = [(p[0] * sx, p[1] * sy) if p is not None else None for p in points]
        maps.append(draw_pose(scaled, height, width, stick))
    return torch.stack(maps)


def run_pose_map(ctx: Any, image: torch.Tensor, model: str, resolution: int, threshold: float = 0.3,
                 xinsir_sticks: bool = False) -> dict[str, Any]:
    loaded = load_pose_model(Path(ctx.resolve_file(FileKind.POSE, model)), ctx.device, ctx.shared)
    return {"image": pose_maps(loaded, image, int(resolution), float(threshold), bool(xinsir_sticks))}
