"""Golden images: what each shipped example (workflows/*.json) draws, kept as small PNGs in
tests/workflows/golden/, so an update that changes the picture a seed gives fails the tests.

A saved image is compared pixel by pixel (RGB, 0..255) with its golden image. Other machines
do not give bit-identical floats (BLAS kernels, thread counts, CPU vector widths), so the
comparison has a tolerance: the largest difference of any channel of any pixel at most
MAX_DIFF and the mean difference at most MEAN_DIFF. Measured on the CI machine: 1 or 2 threads,
AVX-512 or plain kernels (ATEN_CPU_CAPABILITY=default) differ by at most 1 level, mean <= 0.002;
a real change (another schedule, a CFG or step-count slip, a LoRA not applied) moves the mean
by 0.3 levels or more.

A deliberate change: regenerate with

    NODEFORGE_UPDATE_GOLDEN=1 python -m pytest tests/workflows/test_examples.py -k golden

look at the new images, commit them and say why in CHANGELOG.md.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image

GOLDEN = Path(__file__).resolve().parent / "golden"
MAX_DIFF = 12        # of 255: one channel of one pixel
MEAN_DIFF = 0.25     # of 255: over every channel of every pixel
UPDATE = "NODEFORGE_UPDATE_GOLDEN"


def golden_path(name: str, index: int = 0) -> Path:
    return GOLDEN / (f"{name}.png" if index == 0 else f"{name}-{index}.png")


def difference(image: Image.Image, golden: Image.Image) -> tuple[int, float]:
    """(largest, mean) absolute difference of two RGB images of the same size, in levels of 255."""
    a = np.asarray(image.convert("RGB"), dtype=np.int16)
    b = np.asarray(golden.convert("RGB"), dtype=np.int16)
    assert a.shape == b.shape, f"the image is {a.shape[1]}x{a.shape[0]}, its golden image {b.shape[1]}x{b.shape[0]}"
    diff = np.abs(a - b)
    return int(diff.max()), float(diff.mean())


def check_golden(image: Image.Image, name: str, index: int = 0, what: str = "") -> None:
    """Fail unless `image` is example `name`'s golden image within the tolerance (or, with
    NODEFORGE_UPDATE_GOLDEN=1, write it as the new golden image)."""
    path = golden_path(name, index)
    if os.environ.get(UPDATE) == "1":
        GOLDEN.mkdir(exist_ok=True)
        image.convert("RGB").save(path, format="PNG", optimize=True)   # no text chunks: pixels only
        return
    assert path.is_file(), (f"{path} is missing: every shipped example has a golden image; make it with "
                            f"{UPDATE}=1 (see tests/workflows/golden.py)")
    largest, mean = difference(image, Image.open(path))
    assert largest <= MAX_DIFF and mean <= MEAN_DIFF, (
        f"{what or name}: the image differs from {path.name} by up to {largest} and on average {mean:.3f} "
        f"levels of 255 (tolerance {MAX_DIFF} and {MEAN_DIFF}); if the change is deliberate, regenerate "
        f"with {UPDATE}=1 and say why in CHANGELOG.md")
