"""Contact sheets: a labelled grid for grid batches, a thumbnail sheet for lists."""
from __future__ import annotations

from PIL import Image

from nodeforge.batch import BatchSpec, expand, parse_axis
from nodeforge.batch.sheet import contact_sheet

from .conftest import seeded_workflow


def coloured(tmp_path, jobs):
    images = {}
    for job in jobs:
        path = tmp_path / f"img{job.number}.png"
        Image.new("RGB", (64, 64), (job.number * 20, 255 - job.number * 20, 7)).save(path)
        images[job.number] = path
    return images


def test_grid_sheet_has_a_cell_per_job_and_axis_labels_on_the_edges(batch_registry, tmp_path):
    spec = BatchSpec(seeded_workflow(), grid=[parse_axis("2.seed=1,2,3"), parse_axis("start.value=0.5,2")], count=2)
    jobs = expand(spec, batch_registry)
    images = coloured(tmp_path, jobs)
    images[5] = None                                  # a failed job
    sheet, layout = contact_sheet(spec, jobs, images, tmp_path / "sheet.png")
    assert layout.column_labels == ["2.seed=1", "2.seed=2", "2.seed=3"]
    assert layout.row_labels == ["start.value=0.5, #1", "start.value=0.5, #2", "start.value=2, #1", "start.value=2, #2"]
    assert len(layout.cells) == 12 and Image.open(tmp_path / "sheet.png").size == layout.size
    x0, y0, x1, y1 = layout.cells[1]
    assert sheet.getpixel((x0 + 32, y0 + 32)) == (20, 235, 7)
    job = next(j for j in jobs if j.coords == (2, 1, 0, 1))       # seed 3, value 2, second repeat
    x0, y0, _, _ = layout.cells[job.number]
    assert (x0, y0) > layout.cells[1][:2] and sheet.getpixel((x0 + 32, y0 + 32))[2] == 7
    assert x0 == max(box[0] for box in layout.cells.values())     # the last column
    assert y0 == max(box[1] for box in layout.cells.values())     # the last row
    fx, fy, _, _ = layout.cells[5]
    assert sheet.getpixel((fx + 40, fy + 40)) == (70, 70, 70)


def test_list_sheet_is_thumbnails_captioned_by_job_number(batch_registry, tmp_path):
    spec = BatchSpec(seeded_workflow(), zip=[parse_axis("2.seed=1..5")])
    jobs = expand(spec, batch_registry)
    sheet, layout = contact_sheet(spec, jobs, coloured(tmp_path, jobs))
    assert layout.captions == {n: f"#{n}" for n in range(1, 6)}
    assert len({box[0] for box in layout.cells.values()}) == 3      # 5 thumbnails: 3 columns, 2 rows
    x0, y0, _, _ = layout.cells[4]
    assert sheet.getpixel((x0 + 10, y0 + 10)) == (80, 175, 7)


def test_small_images_are_enlarged_alike_and_their_column_labels_are_not_cut(batch_registry, tmp_path):
    """The demo model's 64 px images: a 64 px column cut '2.seed=1' style labels to '2.s…'."""
    spec = BatchSpec(seeded_workflow(), grid=[parse_axis("start.value=0.125,0.25"), parse_axis("2.seed=1,2")])
    jobs = expand(spec, batch_registry)
    images = coloured(tmp_path, jobs)
    small = tmp_path / "small.png"
    Image.new("RGB", (32, 32), (200, 10, 10)).save(small)      # half the size of the others
    images[jobs[-1].number] = small
    sheet, layout = contact_sheet(spec, jobs, images)
    assert layout.column_labels == ["start.value=0.125", "start.value=0.25"]
    assert not any("…" in text for text in layout.column_labels + layout.row_labels)
    x0, y0, x1, y1 = layout.cells[1]
    assert x1 - x0 == 128 and y1 - y0 == 128                     # 64 px enlarged twice
    assert sheet.getpixel((x0 + 1, y0 + 1)) == sheet.getpixel((x1 - 2, y1 - 2)) == (20, 235, 7)
    sx, sy, _, _ = layout.cells[jobs[-1].number]                 # 32 px: 64 px, centred, sizes comparable
    assert sheet.getpixel((sx + 64, sy + 64)) == (200, 10, 10)
    assert sheet.getpixel((sx + 10, sy + 10)) == (30, 30, 30)
