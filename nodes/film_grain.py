"""FilmGrain: RES4LYF's Film Grain (its rewrite of WAS Node Suite's Image Film Grain), the same noise model.

Per image, in 8 bits as the pack works on Pillow images:
1. the image's luma (Pillow's "L": ITU-R 601 weights) is enlarged `supersample_factor` times (bilinear);
2. `density` x its pixel count positions, drawn with replacement, get a uniform random grey 0..255
   (so about 1 - e^-density of the pixels change);
3. that grey layer (as RGB) is blurred with a Gaussian of radius 0.125, shrunk back (Lanczos) and
   sharpened with Pillow's EDGE_ENHANCE_MORE (the 3x3 kernel 9 at the centre, -1 around): fine grain;
4. the image is mixed with it: image x (1 - intensity) + grain x intensity;
5. the brightness is multiplied by `highlights` (clipped to 255).
`repeats` repeats the batch first (each copy gets its own grain). RES4LYF draws from torch's global
random state (new grain each run); NodeForge draws from a CPU generator seeded with `seed` + the image's
index, so a graph gives the same picture twice (the seed is NodeForge's own: ComfyUI's node has none).
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

from nodeforge.core.errors import NodeError

MAX_SUPERSAMPLED = 2 ** 28   # pixels of the enlarged grey layer (a 4096-square image at factor 4)


def sprinkle(gray: np.ndarray, density: float, generator: torch.Generator) -> np.ndarray:
    """`gray` (uint8, any shape) with int(density x size) positions, drawn with replacement, set to
    uniform random values 0..255."""
    flat = gray.reshape(-1).copy()
    count = int(density * flat.size)
    where = torch.randint(0, flat.size, (count,), generator=generator).numpy()
    flat[where] = torch.randint(0, 256, (count,), generator=generator).numpy().astype(np.uint8)
    return flat.reshape(gray.shape)


def grain_layer(rgb: np.ndarray, density: float, supersample_factor: int, generator: torch.Generator) -> np.ndarray:
    """The grey grain (uint8 [h, w, 3]) for one 8-bit RGB image: steps 1-3 of the module's recipe."""
    from PIL import Image, ImageFilter

    height, width = rgb.shape[:2]
    luma = Image.fromarray(rgb, "RGB").convert("L")
    big = luma.resize((width * supersample_factor, height * supersample_factor), Image.Resampling.BILINEAR)
    speckled = Image.fromarray(sprinkle(np.asarray(big), density, generator), "L").convert("RGB")
    fine = speckled.filter(ImageFilter.GaussianBlur(radius=0.125)).resize((width, height), Image.Resampling.LANCZOS)
    return np.asarray(fine.filter(ImageFilter.EDGE_ENHANCE_MORE))


def film_grain(rgb: np.ndarray, density: float, intensity: float, highlights: float, supersample_factor: int,
               generator: torch.Generator) -> np.ndarray:
    """One 8-bit RGB image with film grain (uint8 [h, w, 3])."""
    from PIL import Image, ImageEnhance

    grain = grain_layer(rgb, density, supersample_factor, generator)
    mixed = Image.blend(Image.fromarray(rgb, "RGB"), Image.fromarray(grain, "RGB"), float(intensity))
    return np.asarray(ImageEnhance.Brightness(mixed).enhance(float(highlights)))


def run_film_grain(ctx: Any, image: torch.Tensor, density: float = 1.0, intensity: float = 1.0,
                   highlights: float = 1.0, supersample_factor: int = 4, repeats: int = 1,
                   seed: int = 0) -> dict[str, Any]:
    channels, height, width = image.shape[-1], image.shape[1], image.shape[2]
    if channels not in (3, 4):
        raise NodeError(f"the image has {channels} channel(s); Film Grain takes RGB or RGBA images: convert it "
                        "(a mask through MaskToImage)", field="image")
    if height * width * supersample_factor ** 2 > MAX_SUPERSAMPLED:
        raise NodeError(f"a {width}x{height} image enlarged {supersample_factor} times is over {MAX_SUPERSAMPLED:,} "
                        "pixels; lower supersample_factor or scale the image down first", field="supersample_factor")
    images = image.repeat(int(repeats), 1, 1, 1)
    # 8 bits as the pack's Pillow round trip: 255 x value, clipped, cut to an integer
    pixels = (255.0 * images.detach().float().cpu().numpy()).clip(0, 255).astype(np.uint8)
    out = []
    for index, picture in enumerate(pixels):
        generator = torch.Generator().manual_seed(int(seed) + index)
        grained = film_grain(np.ascontiguousarray(picture[..., :3]), density, intensity, highlights,
                             int(supersample_factor), generator)
        if channels == 4:      # the alpha channel is kept as it was
            grained = np.concatenate([grained, picture[..., 3:]], axis=-1)
        out.append(torch.from_numpy(grained.astype(np.float32) / 255.0))
    return {"image": torch.stack(out).to(image.device)}
