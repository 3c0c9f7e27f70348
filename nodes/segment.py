"""Masks from a text prompt (comfyui_segment_anything's GroundingDinoSAMSegment): Grounding DINO finds the boxes
the prompt names, Segment Anything turns them into a mask.

Both models are transformers folders (config.json, the weights and the processor's files), as their Hugging Face
repositories give them, in models/grounding-dino/ and models/sams/ (or in the Hugging Face cache by the
repository's name or id): IDEA-Research/grounding-dino-tiny (the pack's GroundingDINO_SwinT_OGC) or -base (SwinB),
facebook/sam-vit-base, -large, -huge (the pack's sam_vit_b, _l, _h). As the pack does, per image: the prompt is
lower-cased and ends with ".", each of DINO's queries whose best token score (sigmoid) is above `threshold` gives
a box (its centre and size in fractions of the image, turned into pixel corners), SAM predicts one mask per box
(no multimask), thresholded at 0 on its logits resized to the image, and the image's mask is their union; the
image output is the picture with everything outside the mask black. Where DINO finds nothing the mask is empty
and the image black (the pack stops at such an image and returns nothing for it or the images after).
"""
from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from nodeforge.core.errors import NodeError
from nodeforge.core.types import FileKind

from .loading import load_shared

_lock = threading.Lock()


@dataclass(eq=False)
class TransformersPair:
    """A transformers model and its processor, loaded from one folder."""

    name: str
    model: Any
    processor: Any


def _read(path: Path, device: str, what: str, folder: str, example: str, classes: tuple[str, str]) -> TransformersPair:
    if not path.is_dir() or not (path / "config.json").is_file():
        raise NodeError(f"{path.name} is not a transformers {what} folder: put the whole folder of its Hugging Face "
                        f"repository (config.json, the weights and the processor's files, e.g. {example}) in "
                        f"models/{folder}/", field="model")
    import transformers

    model_class, processor_class = (getattr(transformers, name) for name in classes)
    try:
        model = model_class.from_pretrained(str(path), local_files_only=True)
        processor = processor_class.from_pretrained(str(path), local_files_only=True)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise NodeError(f"{path.name} is not a {what} transformers can read ({first[:200]}); use the folder of "
                        f"{example}", field="model") from None
    return TransformersPair(path.name, model.to(device).eval(), processor)


def load_detector(path: Path, device: str, shared: dict[str, Any] | None = None) -> TransformersPair:
    return load_shared(shared, "nodes.grounding_dino", path, device, _lock, lambda: _read(
        path, device, "Grounding DINO", "grounding-dino", "IDEA-Research/grounding-dino-tiny",
        ("GroundingDinoForObjectDetection", "GroundingDinoProcessor")))


def load_segmenter(path: Path, device: str, shared: dict[str, Any] | None = None) -> TransformersPair:
    return load_shared(shared, "nodes.sam", path, device, _lock, lambda: _read(
        path, device, "Segment Anything", "sams", "facebook/sam-vit-base", ("SamModel", "SamProcessor")))


def run_grounding_dino_loader(ctx: Any, model: str) -> dict[str, Any]:
    return {"grounding_dino": load_detector(Path(ctx.resolve_file(FileKind.GROUNDING_DINO, model)), ctx.device,
                                            ctx.shared)}


def run_sam_loader(ctx: Any, model: str) -> dict[str, Any]:
    return {"sam": load_segmenter(Path(ctx.resolve_file(FileKind.SAM, model)), ctx.device, ctx.shared)}


def caption(prompt: str) -> str:
    """The pack's caption: lower case, trimmed, ending with '.'."""
    text = prompt.lower().strip()
    return text if text.endswith(".") else text + "."


def box_corners(boxes: torch.Tensor, width: int, height: int) -> torch.Tensor:
    """DINO's boxes (centre x, centre y, width, height in fractions of the image) as pixel corners x0 y0 x1 y1."""
    scaled = boxes.float() * torch.tensor([width, height, width, height], dtype=torch.float32)
    return torch.cat([scaled[:, :2] - scaled[:, 2:] / 2, scaled[:, :2] + scaled[:, 2:] / 2], dim=1)


def detect(detector: TransformersPair, picture: Any, prompt: str, threshold: float) -> torch.Tensor:
    """The boxes (pixel corners) of DINO's queries whose best token score is above `threshold`."""
    inputs = detector.processor(images=picture, text=caption(prompt), return_tensors="pt")
    device = next(detector.model.parameters()).device
    with torch.no_grad():
        outputs = detector.model(**{key: value.to(device) for key, value in inputs.items()})
    scores = outputs.logits.sigmoid()[0].float().cpu()
    keep = scores.max(dim=-1).values > threshold
    height, width = picture.shape[:2]
    return box_corners(outputs.pred_boxes[0].float().cpu()[keep], width, height)


def segment(segmenter: TransformersPair, picture: Any, boxes: torch.Tensor) -> torch.Tensor:
    """The union of SAM's masks for `boxes` (one mask a box), [H, W] bool at the picture's size."""
    inputs = segmenter.processor(images=picture, input_boxes=[boxes.tolist()], return_tensors="pt")
    device = next(segmenter.model.parameters()).device
    with torch.no_grad():
        outputs = segmenter.model(pixel_values=inputs["pixel_values"].to(device),
                                  input_boxes=inputs["input_boxes"].to(device), multimask_output=False)
    masks = segmenter.processor.image_processor.post_process_masks(
        outputs.pred_masks.float().cpu(), inputs["original_sizes"], inputs["reshaped_input_sizes"])[0]
    return masks.reshape(-1, *masks.shape[-2:]).any(dim=0)


def run_text_segment(ctx: Any, image: torch.Tensor, grounding_dino: TransformersPair, sam: TransformersPair,
                     prompt: str, threshold: float) -> dict[str, Any]:
    """Per image: the prompt's boxes, SAM's mask of them, and the picture black outside it (see the module)."""
    if not prompt.strip():
        raise NodeError("prompt: name what to mask, e.g. 'person' or 'cat . dog'", field="prompt")
    pictures = (image[..., :3].float().clamp(0, 1) * 255).to(torch.uint8).cpu()   # the pack's 8 bits (cut down)
    masks = []
    for index, picture in enumerate(pictures.numpy()):
        boxes = detect(grounding_dino, picture, prompt, threshold)
        if boxes.shape[0] == 0:
            ctx.warn(f"Grounding DINO found nothing it scores above {threshold} for {prompt.strip()[:60]!r} in image "
                     f"{index + 1}: its mask is empty (lower the threshold, or name the thing otherwise)")
            masks.append(torch.zeros(picture.shape[:2], dtype=torch.bool))
            continue
        masks.append(segment(sam, picture, boxes))
    mask = torch.stack(masks).float()
    return {"image": pictures.float() / 255 * mask.unsqueeze(-1), "mask": mask}
