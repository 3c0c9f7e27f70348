"""LoadImage, Preview and SaveImage: images in and out, PNGs that carry their workflow."""
from __future__ import annotations

import itertools
import os
import re
import warnings
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch

from nodeforge.core.errors import NodeError
from nodeforge.core.files import write_new_file
from nodeforge.core.types import FileKind
from nodeforge.core.workflow import PNG_PARAMETERS_KEY, PNG_WORKFLOW_KEY, Workflow

from .schedulers import SAMPLERS, SCHEDULES

MODEL_SUFFIXES = {".safetensors", ".ckpt", ".pt", ".pth", ".bin"}


MAX_IMAGE_PIXELS = 8192 * 8192
"""Default for the `max_image_pixels` setting (or NODEFORGE_MAX_IMAGE_PIXELS): a 140 KB PNG can
claim 12000x12000 pixels, which decodes to gigabytes; such images are refused before decoding."""


def max_image_pixels(settings: dict[str, Any]) -> int:
    value = settings.get("max_image_pixels") or os.environ.get("NODEFORGE_MAX_IMAGE_PIXELS") or MAX_IMAGE_PIXELS
    try:
        return int(value)
    except (TypeError, ValueError):
        raise NodeError(f"the max_image_pixels setting must be a whole number, got {value!r}") from None


def _too_large(name: str, size: str, limit: int) -> NodeError:
    return NodeError(f"{name} is {size} pixels, over the limit of {limit:,} pixels ({limit / 1e6:.1f} megapixels); "
                     "use a smaller image, or raise the limit with the max_image_pixels setting "
                     "(environment variable NODEFORGE_MAX_IMAGE_PIXELS)", field="path")


def run_load_image(ctx: Any, path: str) -> dict[str, Any]:
    from PIL import Image, ImageOps, UnidentifiedImageError

    file = ctx.resolve_file(FileKind.IMAGE, path)
    limit = max_image_pixels(ctx.settings)
    try:
        with warnings.catch_warnings():
            # Pillow's own bomb check warns (or raises at twice its limit); ours comes first and says what to do.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            opened_file = Image.open(file)
        with opened_file as opened:
            width, height = opened.size
            if width * height > limit:
                raise _too_large(Path(file).name, f"{width}x{height}", limit)
            opened.seek(0)   # first frame of an animation
            img = ImageOps.exif_transpose(opened)
            img.load()
    except Image.DecompressionBombError:
        raise _too_large(Path(file).name, "more than twice Pillow's limit of "
                         f"{Image.MAX_IMAGE_PIXELS:,}", limit) from None
    except (UnidentifiedImageError, OSError) as exc:
        raise NodeError(f"cannot read {Path(file).name} as an image ({exc})", field="path") from None
    has_alpha = "A" in img.getbands() or (img.mode == "P" and "transparency" in img.info)
    rgba = img.convert("RGBA") if has_alpha else None
    rgb = np.asarray(img.convert("RGB"), dtype=np.float32) / 255.0
    image = torch.from_numpy(rgb)[None]
    if rgba is not None:   # transparent = 1 = repaint, as ComfyUI
        alpha = np.asarray(rgba, dtype=np.float32)[..., 3] / 255.0
        mask = 1.0 - torch.from_numpy(alpha)[None]
    else:
        mask = torch.zeros(image.shape[:3])
    return {"image": image, "mask": mask}


def to_pil(image: torch.Tensor) -> list[Any]:
    from PIL import Image

    arrays = (image.detach().float().clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()
    return [Image.fromarray(a[..., :3] if a.shape[-1] >= 3 else a[..., 0]) for a in arrays]


def free_png_names(folder: Path, prefix: str) -> Iterator[Path]:
    """`prefix_NNNNN.png` names from the first number after those already there, upwards."""
    stem = Path(prefix).name
    target = folder / Path(prefix).parent
    target.mkdir(parents=True, exist_ok=True)
    pattern = re.compile(re.escape(stem) + r"_(\d+)\.png$")
    taken = [int(m.group(1)) for p in target.iterdir() if (m := pattern.match(p.name))]
    return (target / f"{stem}_{number:05d}.png" for number in itertools.count(max(taken, default=0) + 1))


def generation_parameters(workflow: Workflow, node_id: str, size: tuple[int, int], index: int = 0) -> str:
    """A1111-style parameters, gathered by walking the workflow upstream from `node_id`.

    `index` is the image's place in its batch: item i was drawn from seed + i (see sampling.py),
    so that is the seed that reproduces it as a batch of one.
    """
    nodes = workflow.nodes
    seen: set[str] = set()
    queue = [node_id]
    denoise = None
    while queue and denoise is None:
        nid = queue.pop(0)
        if nid in seen or nid not in nodes:
            continue
        seen.add(nid)
        if nodes[nid].type == "UNetDenoise":
            denoise = nid
        queue.extend(src for src, _ in nodes[nid].inputs.values())

    def upstream_param(start: str | None, input_name: str, node_type: str, param: str) -> Any:
        if start is None or input_name not in nodes[start].inputs:
            return None
        stack, visited = [nodes[start].inputs[input_name][0]], set()
        while stack:
            nid = stack.pop()
            if nid in visited or nid not in nodes:
                continue
            visited.add(nid)
            if nodes[nid].type == node_type:
                return nodes[nid].params.get(param)
            stack.extend(src for src, _ in nodes[nid].inputs.values())
        return None

    if denoise is None:
        return f"Size: {size[0]}x{size[1]}"
    params = nodes[denoise].params
    positive = upstream_param(denoise, "positive", "TextEncoder", "text") or ""
    negative = upstream_param(denoise, "negative", "TextEncoder", "text") or ""
    model = upstream_param(denoise, "unet", "CheckpointLoader", "checkpoint")
    loras = []
    stack = [nodes[denoise].inputs["unet"][0]] if "unet" in nodes[denoise].inputs else []
    while stack:
        nid = stack.pop()
        if nid in nodes and nodes[nid].type == "LoRALoader":
            p = nodes[nid].params
            loras.append(f"<lora:{Path(str(p.get('lora', ''))).stem}:{p.get('strength_unet', 1.0):g}>")
        if nid in nodes:
            stack.extend(src for src, _ in nodes[nid].inputs.values())
    if loras:
        positive = (positive + " " + " ".join(reversed(loras))).strip()
    sampler = SAMPLERS.get(str(params.get("sampler", "euler")))
    schedule = SCHEDULES.get(str(params.get("schedule", "default")))
    fields = [("Steps", params.get("steps", 20)), ("Sampler", sampler.a1111 if sampler else params.get("sampler"))]
    if schedule is not None and schedule.a1111:
        fields.append(("Schedule type", schedule.a1111))
    fields += [("CFG scale", params.get("cfg", 7.0)), ("Seed", (int(params.get("seed", 0)) + index) % 2 ** 64),
              ("Size", f"{size[0]}x{size[1]}")]
    if model:
        name = Path(str(model).replace("\\", "/")).name
        fields.append(("Model", Path(name).stem if Path(name).suffix.lower() in MODEL_SUFFIXES else name))
    if params.get("denoise", 1.0) != 1.0:
        fields.append(("Denoising strength", params["denoise"]))
    line = ", ".join(f"{k}: {v:g}" if isinstance(v, float) else f"{k}: {v}" for k, v in fields)
    text = positive + "\n"
    if negative:
        text += f"Negative prompt: {negative}\n"
    return text + line


def save_pngs(ctx: Any, image: torch.Tensor, prefix: str) -> list[str]:
    from PIL.PngImagePlugin import PngInfo

    folder = Path(ctx.output_dir)
    folder.mkdir(parents=True, exist_ok=True)
    workflow_text = ctx.workflow.dumps() if ctx.workflow is not None else None
    height, width = image.shape[1], image.shape[2]
    written = []
    for index, pil in enumerate(to_pil(image)):
        info = PngInfo()
        if workflow_text is not None:   # each image names its own seed, seed + index
            info.add_itxt(PNG_WORKFLOW_KEY, workflow_text)
            info.add_itxt(PNG_PARAMETERS_KEY,
                          generation_parameters(ctx.workflow, ctx.node_id, (width, height), index))
        # Complete or absent: a kill or a full disk mid-write never leaves a truncated PNG.
        path = write_new_file(free_png_names(folder, prefix),
                              lambda handle, pil=pil, info=info: pil.save(handle, format="PNG", pnginfo=info, compress_level=4))
        written.append(str(path))
    return written


def run_save_image(ctx: Any, image: torch.Tensor, prefix: str) -> list[str]:
    return save_pngs(ctx, image, prefix)


def run_preview(ctx: Any, image: torch.Tensor) -> list[Any]:
    if ctx.settings.get("previews"):
        save_pngs(ctx, image, "preview")
    return to_pil(image)
