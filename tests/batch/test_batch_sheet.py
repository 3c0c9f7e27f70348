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
