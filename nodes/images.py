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
from nodeforge.core.metadata import GenerationInfo, generation_info
from nodeforge.core.types import FileKind
from nodeforge.core.png_text import PNG_PARAMETERS_KEY, PNG_WORKFLOW_KEY, version_chunks

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


def _open_image(ctx: Any, path: str) -> Any:
    """The image file `path` names, decoded (first frame, EXIF orientation applied), within the size limit."""
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
        raise NodeError(_unreadable(Path(file), exc), field="path") from None
    return _eight_bit(img)


def _unreadable(file: Path, exc: Exception) -> str:
    """Why Pillow could not read an image file, and what to do, in one line."""
    from PIL import UnidentifiedImageError

    try:
        empty = file.stat().st_size == 0
    except OSError:
        empty = False
    if empty:
        return f"{file.name} is empty (0 bytes): the copy or download did not finish; copy it again or choose another image"
    if "truncated" in str(exc) or "broken data stream" in str(exc):
        return f"{file.name} is cut short (its image data ends early): copy or download it again"
    if isinstance(exc, UnidentifiedImageError):
        return (f"{file.name} is not an image NodeForge can read (PNG, JPEG, WebP, BMP, TIFF or GIF); the file is "
                "damaged or of another kind: choose an image file")
    return f"cannot read {file.name} as an image ({getattr(exc, 'strerror', None) or exc})"


_SIXTEEN_BIT = ("I", "I;16", "I;16B", "I;16L", "I;16N")


def _eight_bit(img: Any) -> Any:
    """16-bit greyscale (depth maps: Pillow's modes I;16 and I) as 8-bit grey, the whole range kept;
    convert("RGB") would clip every value above 255 to white."""
    from PIL import Image

    if img.mode not in _SIXTEEN_BIT:
        return img
    values = np.asarray(img, dtype=np.float32)
    scale = 65535.0 if img.mode != "I" or values.max(initial=0) > 255 else 255.0
    return Image.fromarray(np.clip(values / scale * 255 + 0.5, 0, 255).astype(np.uint8), "L")


def _painted_mask(ctx: Any, value: str, size: tuple[int, int]) -> torch.Tensor:
    """The mask painted in the editor (greyscale PNG data in the param), at the picture's size."""
    import io

    from PIL import Image

    from nodeforge.core import painted_mask

    try:
        with Image.open(io.BytesIO(painted_mask.decode(value))) as opened:
            if opened.size[0] * opened.size[1] > max_image_pixels(ctx.settings):
                raise _too_large("the painted mask", f"{opened.size[0]}x{opened.size[1]}", max_image_pixels(ctx.settings))
            grey = opened.convert("L")
    except (ValueError, OSError) as exc:
        raise NodeError(f"the painted mask cannot be read ({exc}); open Edit Mask on the node and paint it again, "
                        "or Clear it", field="mask") from None
    if grey.size != size:   # the picture was replaced by one of another size: stretch the mask to it
        ctx.warn(f"the painted mask is {grey.size[0]}x{grey.size[1]} but the picture is {size[0]}x{size[1]} (it was "
                 "replaced?): the mask is stretched to fit; open Edit Mask to check it")
        grey = grey.resize(size, Image.Resampling.BILINEAR)
    return torch.from_numpy(np.asarray(grey, dtype=np.float32) / 255.0)[None]


def run_load_image(ctx: Any, path: str, mask: str = "") -> dict[str, Any]:
    img = _open_image(ctx, path)
    has_alpha = "A" in img.getbands() or (img.mode == "P" and "transparency" in img.info)
    rgba = img.convert("RGBA") if has_alpha else None
    rgb = np.asarray(img.convert("RGB"), dtype=np.float32) / 255.0
    image = torch.from_numpy(rgb)[None]
    if mask:               # painted in the editor: it replaces the transparency's mask
        return {"image": image, "mask": _painted_mask(ctx, mask, img.size)}
    if rgba is not None:   # transparent = 1 = repaint, as ComfyUI
        alpha = np.asarray(rgba, dtype=np.float32)[..., 3] / 255.0
        return {"image": image, "mask": 1.0 - torch.from_numpy(alpha)[None]}
    return {"image": image, "mask": torch.zeros(image.shape[:3])}


_CHANNEL_INDEX = {"red": 0, "green": 1, "blue": 2, "alpha": 3}


def run_load_image_mask(ctx: Any, path: str, channel: str) -> dict[str, Any]:
    """ComfyUI's LoadImageMask: one channel of an image as a MASK; alpha is inverted (transparent =
    1 = repaint, as LoadImage's mask), an image without alpha has alpha 1 everywhere (a mask of 0)."""
    img = _open_image(ctx, path)
    if img.mode in ("I", "I;16", "I;16B", "I;16L"):   # 16-bit greyscale: scaled to 8 bits first (ComfyUI's)
        img = img.point(lambda v: v * (1 / 255))
    rgba = np.asarray(img.convert("RGBA"), dtype=np.float32) / 255.0
    if channel not in _CHANNEL_INDEX:
        raise NodeError(f"unknown channel {channel!r}; choose alpha, red, green or blue", field="channel")
    values = torch.from_numpy(rgba[..., _CHANNEL_INDEX[channel]].copy())[None]
    return {"mask": 1.0 - values if channel == "alpha" else values}


def run_invert_mask(ctx: Any, mask: torch.Tensor) -> dict[str, Any]:
    """1 - mask: what was repainted is kept and the other way round."""
    return {"mask": 1.0 - mask.float()}


def run_image_invert(ctx: Any, image: torch.Tensor) -> dict[str, Any]:
    """1 - image: a negative."""
    return {"image": 1.0 - image}


def to_pil(image: torch.Tensor, alpha: bool = False) -> list[Any]:
    """8-bit PIL images: RGB (grey for one channel); RGBA where `alpha` and the image has a 4th channel
    (JoinImageWithAlpha's), as saved PNGs keep it."""
    from PIL import Image

    arrays = (image.detach().float().clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()
    keep = 4 if alpha else 3
    return [Image.fromarray(a[..., :keep] if a.shape[-1] >= 3 else a[..., 0]) for a in arrays]


def free_png_names(folder: Path, prefix: str) -> Iterator[Path]:
    """`prefix_NNNNN.png` names from the first number after those already there, upwards."""
    return free_names(folder, prefix, ".png", "images")


def free_names(folder: Path, prefix: str, ending: str, what: str) -> Iterator[Path]:
    """`prefix_NNNNN<ending>` names in the output folder from the first number after those already there,
    upwards (SaveImage's `.png`, SaveLatent's `_.latent`); `what` is saved, for the error."""
    stem = Path(prefix).name
    target = folder / Path(prefix).parent
    # A sub-folder of the prefix that is a symlink may point anywhere: saving never follows it out.
    if not target.resolve().is_relative_to(folder.resolve()):
        raise NodeError(f"{target} leads outside the output folder {folder} (a symbolic link); {what} are saved "
                        "only inside it - remove the link or change the prefix", field="prefix")
    target.mkdir(parents=True, exist_ok=True)
    pattern = re.compile(re.escape(stem) + r"_(\d+)" + re.escape(ending) + "$")
    taken = [int(m.group(1)) for p in target.iterdir() if (m := pattern.match(p.name))]
    return (target / f"{stem}_{number:05d}{ending}" for number in itertools.count(max(taken, default=0) + 1))


def a1111_parameters(info: GenerationInfo, size: tuple[int, int]) -> str:
    """The A1111 `parameters` text for an image of `size` made as `info` says.

    The prompt line carries the LoRAs as <lora:name:strength> tags (in the order applied), as
    A1111 writes them; sampler and schedule use A1111's names (nodes/schedulers.py).
    """
    if info.sampler_node is None:
        return f"Size: {size[0]}x{size[1]}"
    loras = [f"<lora:{Path(lora.name).stem}:{1.0 if lora.strength is None else lora.strength:g}>"
             for lora in info.loras]
    positive = " ".join([info.prompt, *loras]).strip()
    sampler = SAMPLERS.get(str(info.sampler))
    schedule = SCHEDULES.get(str(info.schedule))
    fields: list[tuple[str, Any]] = [("Steps", info.steps),
                                     ("Sampler", sampler.a1111 if sampler else info.sampler)]
    if schedule is not None and schedule.a1111:
        fields.append(("Schedule type", schedule.a1111))
    fields += [("CFG scale", info.cfg), ("Seed", info.seed), ("Size", f"{size[0]}x{size[1]}")]
    if info.model:
        name = Path(info.model.replace("\\", "/")).name
        fields.append(("Model", Path(name).stem if Path(name).suffix.lower() in MODEL_SUFFIXES else name))
    if info.denoise is not None and info.denoise != 1.0:
        fields.append(("Denoising strength", info.denoise))
    line = ", ".join(f"{k}: {v:g}" if isinstance(v, float) else f"{k}: {v}" for k, v in fields if v is not None)
    text = positive + "\n"
    if info.negative:
        text += f"Negative prompt: {info.negative}\n"
    return text + line


def save_pngs(ctx: Any, image: torch.Tensor, prefix: str) -> list[str]:
    from PIL.PngImagePlugin import PngInfo

    folder = Path(ctx.output_dir)
    folder.mkdir(parents=True, exist_ok=True)
    workflow_text = ctx.workflow.dumps() if ctx.workflow is not None else None
    known = workflow_text is not None and ctx.registry is not None
    made = generation_info(ctx.workflow, ctx.registry, ctx.node_id) if known else GenerationInfo()
    height, width = image.shape[1], image.shape[2]
    written = []
    versions = version_chunks()    # what made the pixels: another version may draw others
    for index, pil in enumerate(to_pil(image, alpha=True)):
        info = PngInfo()
        for key, version in versions.items():
            info.add_text(key, version)
        if workflow_text is not None:   # each image names its own seed, seed + index
            info.add_itxt(PNG_WORKFLOW_KEY, workflow_text)
            info.add_itxt(PNG_PARAMETERS_KEY, a1111_parameters(made.for_item(index), (width, height)))
        # Complete or absent: a kill or a full disk mid-write never leaves a truncated PNG.
        path = write_new_file(free_png_names(folder, prefix),
                              lambda handle, pil=pil, info=info: pil.save(handle, format="PNG", pnginfo=info, compress_level=4))
        written.append(str(path))
    return written


def run_save_image(ctx: Any, image: torch.Tensor, prefix: str) -> list[str]:
    return save_pngs(ctx, image, prefix)


def _rgb(color: str, field: str) -> tuple[int, int, int]:
    text = str(color).strip()
    try:
        if text.startswith("#") and len(text) == 7:
            rgb = tuple(int(text[i:i + 2], 16) for i in (1, 3, 5))
        else:
            rgb = tuple(int(part) for part in text.split(","))
    except ValueError:
        rgb = ()
    if len(rgb) != 3:
        raise NodeError(f"{text[:40]!r} is not a colour: write #RRGGBB or R,G,B (0-255)", field=field)
    return rgb  # type: ignore[return-value]


def run_light_source(ctx: Any, light_position: str, multiplier: float, start_color: str, end_color: str, width: int,
                     height: int, batch_size: int = 1, prev_image: torch.Tensor | None = None) -> dict[str, Any]:
    """kijai's IC-Light LightSource: t = linspace(0, 1)^multiplier across the image from the light's side (a corner:
    the two sides' t combined as sqrt(tx^2 + ty^2) / sqrt(2)), each channel start + (end - start) x t cut to whole
    0-255 values; batch_size copies after prev_image's images."""
    start, end = _rgb(start_color, "start_color"), _rgb(end_color, "end_color")
    width, height = int(width), int(height)
    words = light_position.lower().split()
    xs = np.linspace(0, 1, width) if "left" in words else np.linspace(1, 0, width)
    ys = np.linspace(0, 1, height) if "top" in words else np.linspace(1, 0, height)
    xs, ys = xs ** multiplier, ys ** multiplier
    if words[:2] in (["left", "light"], ["right", "light"]):
        t = np.tile(xs, (height, 1))
    elif words[:2] in (["top", "light"], ["bottom", "light"]):
        t = np.tile(ys, (width, 1)).T
    else:
        x, y = np.meshgrid(xs, ys)
        t = np.sqrt(x ** 2 + y ** 2) / np.sqrt(2.0)
    picture = np.zeros((height, width, 3), dtype=np.float32)
    for i in range(3):
        picture[..., i] = start[i] + (end[i] - start[i]) * t
    maps = torch.from_numpy(np.clip(picture, 0, 255).astype(np.uint8).astype(np.float32) / 255.0)[None]
    maps = maps.repeat(int(batch_size), 1, 1, 1)
    return {"image": maps if prev_image is None else torch.cat((prev_image, maps.to(prev_image)), dim=0)}


WEBP_METHODS = {"default": 4, "fastest": 0, "slowest": 6}


def run_save_animated_webp(ctx: Any, images: torch.Tensor, prefix: str, fps: float, lossless: bool, quality: int,
                           method: str) -> list[str]:
    """ComfyUI's SaveAnimatedWEBP: every image of the batch a frame of one WebP (8-bit values cut down, as ComfyUI
    does), int(1000 / fps) ms each, the workflow in its EXIF (0x0110 as ComfyUI puts its prompt there)."""
    from PIL import Image

    frames = [Image.fromarray(a) for a in (images.detach().float().cpu().clamp(0, 1) * 255).to(torch.uint8).numpy()]
    exif = frames[0].getexif()
    if ctx.workflow is not None:
        exif[0x0110] = f"workflow:{ctx.workflow.dumps(indent=None)}"
    folder = Path(ctx.output_dir)
    folder.mkdir(parents=True, exist_ok=True)
    path = write_new_file(free_names(folder, prefix, "_.webp", "images"), lambda handle: frames[0].save(
        handle, format="WEBP", save_all=True, append_images=frames[1:], duration=int(1000.0 / fps), exif=exif,
        lossless=bool(lossless), quality=int(quality), method=WEBP_METHODS.get(method, 4)))
    return [str(path)]


def run_preview(ctx: Any, image: torch.Tensor) -> list[Any]:
    if ctx.settings.get("previews"):
        save_pngs(ctx, image, "preview")
    return to_pil(image)


_IMAGE_CHANNELS = {"red": 0, "green": 1, "blue": 2}


def run_join_image_with_alpha(ctx: Any, image: torch.Tensor, alpha: torch.Tensor) -> dict[str, Any]:
    """ComfyUI's JoinImageWithAlpha: RGBA images whose alpha is 1 - the mask (a mask's 1 = transparent, as
    Load Image gives a PNG's transparency), the mask resized bilinearly to the image; the batch is the shorter
    of the two."""
    import torch.nn.functional as F

    mask = alpha.float().reshape(-1, 1, alpha.shape[-2], alpha.shape[-1]).to(image.device)
    if tuple(mask.shape[-2:]) != tuple(image.shape[1:3]):
        mask = F.interpolate(mask, size=tuple(image.shape[1:3]), mode="bilinear")
    count = min(image.shape[0], mask.shape[0])
    opacity = (1.0 - mask[:count, 0]).unsqueeze(-1).to(image.dtype)
    return {"image": torch.cat([image[:count, ..., :3], opacity], dim=-1)}


def run_image_to_mask(ctx: Any, image: torch.Tensor, channel: str) -> dict[str, Any]:
    """ComfyUI's ImageToMask: one colour channel of the images as a MASK (values as they are)."""
    if channel not in _IMAGE_CHANNELS:
        raise NodeError(f"images carry no {channel!r} channel here; choose red, green or blue (LoadImage gives "
                        "an image's transparency as its mask output)", field="channel")
    return {"mask": image[..., _IMAGE_CHANNELS[channel]].clone()}


def run_mask_to_image(ctx: Any, mask: torch.Tensor) -> dict[str, Any]:
    """ComfyUI's MaskToImage: a grey image of the mask (1 = white)."""
    mask = mask.float()
    if mask.ndim == 2:
        mask = mask[None]
    return {"image": mask[..., None].expand(*mask.shape, 3).clone()}


def run_solid_mask(ctx: Any, value: float, width: int, height: int) -> dict[str, Any]:
    """ComfyUI's SolidMask: a width x height mask of one value."""
    return {"mask": torch.full((1, int(height), int(width)), float(value))}


def run_grow_mask(ctx: Any, mask: torch.Tensor, expand: int, tapered_corners: bool) -> dict[str, Any]:
    """ComfyUI's GrowMask: |expand| steps of grey dilation (expand > 0) or erosion (< 0) with a 3x3
    footprint, a cross when tapered_corners; edges repeat the border pixel."""
    import torch.nn.functional as F

    out = mask.float()
    squeeze = out.ndim == 2
    if squeeze:
        out = out[None]
    out = out[:, None]
    offsets = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if not (tapered_corners and dy and dx)]
    for _ in range(abs(int(expand))):
        padded = F.pad(out, (1, 1, 1, 1), mode="replicate")
        h, w = out.shape[-2:]
        shifted = torch.stack([padded[:, :, 1 + dy:1 + dy + h, 1 + dx:1 + dx + w] for dy, dx in offsets])
        out = shifted.amax(0) if expand > 0 else shifted.amin(0)
    out = out[:, 0]
    return {"mask": out[0] if squeeze else out}


def run_empty_image(ctx: Any, width: int, height: int, batch_size: int, color: int) -> dict[str, Any]:
    """ComfyUI's EmptyImage: images of one colour (0xRRGGBB)."""
    rgb = torch.tensor([(int(color) >> shift) & 0xFF for shift in (16, 8, 0)], dtype=torch.float32) / 255.0
    return {"image": rgb.expand(int(batch_size), int(height), int(width), 3).clone()}
