"""Generated training data for the demo model: one flat-coloured shape on a flat background.

Everything is drawn with PIL from a seeded numpy RNG, 4x supersampled and box-filtered down so
edges are anti-aliased while flat regions keep the exact palette values.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

PALETTE: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40),
    "green": (40, 180, 60),
    "blue": (40, 80, 220),
    "yellow": (240, 220, 40),
    "purple": (150, 60, 190),
    "orange": (245, 140, 30),
    "white": (245, 245, 245),
    "black": (20, 20, 20),
}
COLOURS: tuple[str, ...] = tuple(PALETTE)
SHAPES: tuple[str, ...] = ("circle", "square", "triangle")
# Radius of the circle / circumradius of the polygon, in pixels of the 64x64 image.
SIZES: dict[str, tuple[float, float]] = {"small": (12.5, 16.0), "large": (18.0, 24.0)}
IMAGE_SIZE = 64
SUPERSAMPLE = 4
STAR_INNER_RATIO = 0.42  # inner/outer radius of the five-pointed star (0.38 is a pentagram)
MARGIN = 1.5  # pixels kept free between the shape and the frame
# A crescent (not one of the base model's shapes: the DreamBooth demo teaches it) is a disc with a
# disc of the background's colour, CRESCENT_BITE times its radius, cut from it CRESCENT_OFFSET radii
# off its centre, towards its rotation.
CRESCENT_OFFSET, CRESCENT_BITE = 0.45, 0.85


@dataclass(frozen=True)
class ShapeSample:
    shape: str
    colour: str
    background: str
    size: str
    radius: float
    centre: tuple[float, float]
    rotation: float  # radians


def shape_outline(shape: str, radius: float, centre: tuple[float, float], rotation: float) -> list[tuple[float, float]]:
    """Polygon vertices of a shape (circles are handled by the caller)."""
    cx, cy = centre
    if shape == "square":
        angles = [rotation + math.pi / 4 + k * math.pi / 2 for k in range(4)]
        return [(cx + radius * math.cos(a), cy + radius * math.sin(a)) for a in angles]
    if shape == "triangle":
        angles = [rotation - math.pi / 2 + k * 2 * math.pi / 3 for k in range(3)]
        return [(cx + radius * math.cos(a), cy + radius * math.sin(a)) for a in angles]
    if shape == "star":
        points = []
        for k in range(10):
            r = radius if k % 2 == 0 else radius * STAR_INNER_RATIO
            a = rotation - math.pi / 2 + k * math.pi / 5
            points.append((cx + r * math.cos(a), cy + r * math.sin(a)))
        return points
    raise ValueError(f"unknown shape {shape!r}")


def render(sample: ShapeSample, size: int = IMAGE_SIZE) -> np.ndarray:
    """Draw a sample as an (size, size, 3) uint8 array."""
    s = SUPERSAMPLE
    scale = s * size / IMAGE_SIZE
    canvas = Image.new("RGB", (size * s, size * s), PALETTE[sample.background])
    draw = ImageDraw.Draw(canvas)
    fill = PALETTE[sample.colour]
    cx, cy = sample.centre[0] * scale, sample.centre[1] * scale
    if sample.shape in ("circle", "crescent"):
        r = sample.radius * scale
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=fill)
        if sample.shape == "crescent":   # a bite of the background's colour, off-centre towards `rotation`
            bx = cx + CRESCENT_OFFSET * r * math.cos(sample.rotation)
            by = cy + CRESCENT_OFFSET * r * math.sin(sample.rotation)
            b = CRESCENT_BITE * r
            draw.ellipse([bx - b, by - b, bx + b, by + b], fill=PALETTE[sample.background])
    else:
        pts = shape_outline(sample.shape, sample.radius * scale, (cx, cy), sample.rotation)
        draw.polygon(pts, fill=fill)
    return np.asarray(canvas.resize((size, size), Image.BOX))


def random_sample(rng: np.random.Generator, shapes: tuple[str, ...] = SHAPES) -> ShapeSample:
    shape = shapes[rng.integers(len(shapes))]
    colour_index, background_index = rng.choice(len(COLOURS), size=2, replace=False)
    size = "small" if rng.random() < 0.5 else "large"
    lo, hi = SIZES[size]
    radius = float(rng.uniform(lo, hi))
    rotation = float(rng.uniform(0, 2 * math.pi))
    # Keep the whole shape inside the frame: bound it by its circumradius plus a margin.
    lo_c, hi_c = radius + MARGIN, IMAGE_SIZE - radius - MARGIN
    centre = (float(rng.uniform(lo_c, hi_c)), float(rng.uniform(lo_c, hi_c)))
    return ShapeSample(shape, COLOURS[colour_index], COLOURS[background_index], size, radius, centre, rotation)


def caption(sample: ShapeSample, rng: np.random.Generator, empty_rate: float = 0.1) -> str:
    """A caption with attributes dropped at random, or "" (for classifier-free guidance)."""
    if rng.random() < empty_rate:
        return ""
    words = []
    if rng.random() < 0.85:
        words.append("a")
    if rng.random() < 0.4:
        words.append(sample.size)
    if rng.random() < 0.85:
        words.append(sample.colour)
    words.append(sample.shape if rng.random() < 0.92 else "shape")
    if rng.random() < 0.75:
        words += ["on", "a", sample.background, "background"]
    return " ".join(words)


def class_prompt(colour: str, shape: str, background: str) -> str:
    """The full caption of a (colour, shape, background): the one wording the training captions,
    the prompt-following measure and the DreamBooth class prompts all use."""
    return f"a {colour} {shape} on a {background} background"


def full_caption(sample: ShapeSample) -> str:
    return class_prompt(sample.colour, sample.shape, sample.background)


def generate(n: int, seed: int, shapes: tuple[str, ...] = SHAPES) -> tuple[np.ndarray, list[ShapeSample]]:
    """n images (n, 64, 64, 3) uint8 and their samples, reproducible from the seed."""
    rng = np.random.default_rng(seed)
    samples = [random_sample(rng, shapes) for _ in range(n)]
    images = np.stack([render(s) for s in samples]) if samples else np.zeros((0, IMAGE_SIZE, IMAGE_SIZE, 3), np.uint8)
    return images, samples


def caption_corpus() -> list[str]:
    """Every word the captions use, for building the tokenizer's vocabulary."""
    words = ["a", "on", "background", "shape", *COLOURS, *SHAPES, *SIZES]
    return [" ".join(words)]


def write_folder(folder, n: int, seed: int, shapes: tuple[str, ...] = SHAPES) -> None:
    """Write n images as PNGs with same-named .txt captions ("a <colour> <shape> on a <colour>
    background"), the layout `nodeforge train-lora` reads."""
    from pathlib import Path

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    images, samples = generate(n, seed, shapes)
    for i, (image, sample) in enumerate(zip(images, samples)):
        Image.fromarray(image).save(folder / f"{i:05d}.png")
        (folder / f"{i:05d}.txt").write_text(full_caption(sample) + "\n", encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    """python -m nodeforge.training.data OUT_DIR --n 400 --shapes star --seed 0"""
    from nodeforge.training import common

    p = common.TrainerParser(prog="python -m nodeforge.training.data",
                             description="Write generated shape images with .txt captions.")
    p.add_argument("out")
    p.add_argument("--n", type=common.whole(0), default=400)
    p.add_argument("--seed", type=common.SEED, default=0)
    p.add_argument("--shapes", nargs="+", default=list(SHAPES), choices=[*SHAPES, "star", "crescent"])
    args = p.parse_args(argv)
    write_folder(args.out, args.n, args.seed, tuple(args.shapes))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
