"""Contact sheets with Pillow: a labelled grid for grid batches, a thumbnail sheet for lists.

For a grid the first grid axis runs across (its values label the columns) and every other
combination (further grid axes, the zip index, the count repeat) is a row, labelled on the left.
A list batch (zip or count only) gets thumbnails in reading order, each captioned with its job
number. A job that failed or made no image gets a grey cell saying so.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from nodeforge.batch.spec import BatchSpec, Job

SHEET_NAME = "contact_sheet.png"
MAX_CELL = 192          # largest thumbnail side, px
MIN_CELL = 128          # images smaller than this are enlarged by a whole factor (pixels kept sharp)
MAX_COLUMN = 260        # widest column: a long column label widens its column up to this
PAD = 4
LABEL_H = 18            # height of a column label / caption band
MAX_ROW_LABEL = 260     # widest row label band, px
BACKGROUND = (30, 30, 30)
TEXT = (230, 230, 230)
EMPTY = (70, 70, 70)


@dataclass
class SheetLayout:
    """Where everything went: each job's cell box, and the labels drawn on the edges."""

    size: tuple[int, int]
    cells: dict[int, tuple[int, int, int, int]] = field(default_factory=dict)   # job -> (x0, y0, x1, y1)
    column_labels: list[str] = field(default_factory=list)
    row_labels: list[str] = field(default_factory=list)
    captions: dict[int, str] = field(default_factory=dict)


def _font(size: int = 12) -> Any:
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except TypeError:   # Pillow < 10.1: the bitmap font has one size
        return ImageFont.load_default()


def _fit(draw: Any, text: str, width: int, font: Any) -> str:
    """`text`, cut with an ellipsis to fit `width` pixels."""
    if draw.textlength(text, font=font) <= width:
        return text
    while text and draw.textlength(text + "…", font=font) > width:
        text = text[:-1]
    return text + "…"


def _value_text(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def grid_labels(spec: BatchSpec, jobs: Sequence[Job]) -> tuple[list[str], list[tuple[int, ...]], list[str]]:
    """Column labels, the row keys (coords after the first axis) in order, and their labels."""
    first = spec.grid[0]
    columns = [f"{first.label}={_value_text(v)}" for v in first.values]
    keys = sorted({job.coords[1:] for job in jobs})
    labels = []
    for key in keys:
        parts = [f"{axis.label}={_value_text(axis.values[i])}" for axis, i in zip(spec.grid[1:], key)]
        parts += [f"{axis.label}={_value_text(axis.values[key[-2]])}" for axis in spec.zip]
        if spec.count > 1:
            parts.append(f"#{key[-1] + 1}")
        labels.append(", ".join(parts))
    return columns, keys, labels


def _thumbnail(path: Path | None, cell: int, factor: int = 1) -> Any:
    """The image at `path` enlarged `factor` times (nearest neighbour), then fitted into `cell`."""
    from PIL import Image

    if path is None:
        return None
    try:
        with Image.open(path) as img:
            img = img.convert("RGB")
            if factor > 1:
                img = img.resize((img.width * factor, img.height * factor), Image.Resampling.NEAREST)
            img.thumbnail((cell, cell))
            return img
    except OSError:
        return None


def _cell_size(images: Mapping[int, Path | None]) -> tuple[int, int]:
    """(cell side, enlargement): the largest image's side, capped at MAX_CELL; a batch of small
    images (the demo model's 64 px) is enlarged by one whole factor for all, so their sizes stay
    comparable and their labels have room."""
    from PIL import Image

    side = 32
    for path in images.values():
        if path is not None:
            try:
                with Image.open(path) as img:
                    side = max(side, *img.size)
            except OSError:
                continue
    factor = max(1, -(-MIN_CELL // side)) if side < MIN_CELL else 1
    return min(side * factor, max(MAX_CELL, MIN_CELL)), factor


def _paste(sheet: Any, draw: Any, box: tuple[int, int, int, int], thumb: Any, font: Any) -> None:
    x0, y0, x1, y1 = box
    if thumb is None:
        draw.rectangle(box, fill=EMPTY)
        draw.text((x0 + 4, y0 + 4), "no image", fill=TEXT, font=font)
        return
    sheet.paste(thumb, (x0 + (x1 - x0 - thumb.width) // 2, y0 + (y1 - y0 - thumb.height) // 2))


def grid_sheet(spec: BatchSpec, jobs: Sequence[Job], images: Mapping[int, Path | None]) -> tuple[Any, SheetLayout]:
    """A labelled grid: columns from the first grid axis, rows from everything else."""
    from PIL import Image, ImageDraw

    font = _font()
    columns, keys, row_texts = grid_labels(spec, jobs)
    cell, factor = _cell_size(images)
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    left = min(MAX_ROW_LABEL, max((int(probe.textlength(t, font=font)) + 2 * PAD for t in row_texts), default=0))
    column = max(cell, min(MAX_COLUMN, max((int(probe.textlength(t, font=font)) + PAD for t in columns), default=0)))
    width = left + len(columns) * (column + PAD) + PAD
    height = LABEL_H + len(keys) * (cell + PAD) + PAD
    sheet = Image.new("RGB", (width, height), BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    layout = SheetLayout((width, height))
    for c, text in enumerate(columns):
        x = left + PAD + c * (column + PAD)
        shown = _fit(draw, text, column, font)
        draw.text((x, 2), shown, fill=TEXT, font=font)
        layout.column_labels.append(shown)
    row_of = {key: r for r, key in enumerate(keys)}
    for r, text in enumerate(row_texts):
        shown = _fit(draw, text, left - 2 * PAD, font) if text else ""
        y = LABEL_H + PAD + r * (cell + PAD)
        draw.text((PAD, y + cell // 2 - 7), shown, fill=TEXT, font=font)
        layout.row_labels.append(shown)
    for job in jobs:
        x = left + PAD + job.coords[0] * (column + PAD) + (column - cell) // 2
        y = LABEL_H + PAD + row_of[job.coords[1:]] * (cell + PAD)
        box = (x, y, x + cell, y + cell)
        _paste(sheet, draw, box, _thumbnail(images.get(job.number), cell, factor), font)
        layout.cells[job.number] = box
    return sheet, layout


def list_sheet(jobs: Sequence[Job], images: Mapping[int, Path | None]) -> tuple[Any, SheetLayout]:
    """Thumbnails in job order, about square, each captioned `#N`."""
    from PIL import Image, ImageDraw

    font = _font()
    ordered = sorted(jobs, key=lambda j: j.number)
    cols = max(1, math.ceil(math.sqrt(len(ordered))))
    rows = max(1, math.ceil(len(ordered) / cols))
    cell, factor = _cell_size(images)
    width = cols * (cell + PAD) + PAD
    height = rows * (cell + LABEL_H + PAD) + PAD
    sheet = Image.new("RGB", (width, height), BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    layout = SheetLayout((width, height))
    for i, job in enumerate(ordered):
        x = PAD + (i % cols) * (cell + PAD)
        y = PAD + (i // cols) * (cell + LABEL_H + PAD)
        box = (x, y, x + cell, y + cell)
        _paste(sheet, draw, box, _thumbnail(images.get(job.number), cell, factor), font)
        caption = f"#{job.number}"
        draw.text((x, y + cell + 2), caption, fill=TEXT, font=font)
        layout.cells[job.number] = box
        layout.captions[job.number] = caption
    return sheet, layout


def contact_sheet(spec: BatchSpec, jobs: Sequence[Job], images: Mapping[int, Path | None],
                  path: Path | None = None) -> tuple[Any, SheetLayout]:
    """The right sheet for the batch; written to `path` (atomically) when one is given."""
    sheet, layout = grid_sheet(spec, jobs, images) if spec.grid else list_sheet(jobs, images)
    if path is not None:
        from nodeforge.core.files import atomic_write

        atomic_write(path, lambda handle: sheet.save(handle, format="PNG"))
    return sheet, layout


def first_images(out_dir: Path, records: Mapping[int, Mapping[str, Any]]) -> dict[int, Path | None]:
    """Each finished job's first PNG (None for a failed job or one that made no image)."""
    found: dict[int, Path | None] = {}
    for number, record in records.items():
        pngs = [p for p in record.get("outputs", []) if str(p).lower().endswith(".png")]
        found[number] = out_dir / pngs[0] if record.get("status") == "done" and pngs else None
    return found
