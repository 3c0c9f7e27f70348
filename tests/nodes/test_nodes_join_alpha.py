"""JoinImageWithAlpha (ComfyUI's): alpha = 1 - the mask, resized bilinearly to the images, the shorter batch;
Save Image writes such images as RGBA PNGs."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from nodeforge import Workflow
from nodeforge.core.registry import builtin_module


def test_alpha_is_one_minus_the_mask_resized_and_the_batch_the_shorter():
    images = builtin_module("images")
    image = torch.rand(2, 4, 6, 3)
    mask = torch.tensor([[[0.0, 1.0, 0.25], [0.5, 0.75, 1.0], [1.0, 0.0, 0.5], [0.2, 0.4, 0.6]]])   # [1, 4, 3]
    out = images.run_join_image_with_alpha(None, image, mask)["image"]
    assert out.shape == (1, 4, 6, 4)
    assert torch.equal(out[0, ..., :3], image[0])
    resized = torch.nn.functional.interpolate(mask[:, None], size=(4, 6), mode="bilinear")[0, 0]
    torch.testing.assert_close(out[0, ..., 3], 1 - resized)
    same = images.run_join_image_with_alpha(None, image, torch.full((2, 4, 6), 0.25))["image"]
    assert same.shape == (2, 4, 6, 4) and torch.all(same[..., 3] == 0.75)


def test_save_image_writes_the_alpha_channel(make_engine, tmp_path):
    engine = make_engine(tmp_path)
    wf = Workflow()
    wf.add("EmptyImage", {"width": 16, "height": 8}, node_id="img")
    wf.add("SolidMask", {"value": 0.25, "width": 16, "height": 8}, node_id="mask")
    wf.add("JoinImageWithAlpha", {}, {"image": ("img", "image"), "alpha": ("mask", "mask")}, node_id="join")
    wf.add("SaveImage", {"prefix": "rgba"}, {"image": ("join", "image")}, node_id="save")
    engine.run(wf)
    [saved] = sorted(Path(tmp_path).glob("rgba_*.png"))
    with Image.open(saved) as png:
        assert png.mode == "RGBA" and png.size == (16, 8)
        assert np.all(np.asarray(png)[..., 3] == 191)                  # round(0.75 x 255)
