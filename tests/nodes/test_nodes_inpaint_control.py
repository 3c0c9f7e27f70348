"""Inpaint Control Image (comfyui_controlnet_aux's InpaintPreprocessor, nodes/inpaint_control.py): -1 exactly where
the mask is above 0.5 after a bilinear resize, the picture unchanged elsewhere."""
from __future__ import annotations

import pytest
import torch

from nodeforge.core.errors import NodeError
from nodes.inpaint_control import inpaint_control, run_inpaint_control


def test_masked_pixels_are_minus_one_in_every_channel_and_the_rest_unchanged():
    image = torch.rand(1, 4, 5, 3)
    mask = torch.zeros(1, 4, 5)
    mask[0, 1, 2] = 1.0
    mask[0, 3, 0] = 0.6
    mask[0, 0, 0] = 0.5                       # not above 0.5: kept
    out = run_inpaint_control(None, image, mask, False)["image"]
    where = mask[0] > 0.5
    assert torch.equal(out[0][where], torch.full((2, 3), -1.0))
    assert torch.equal(out[0][~where], image[0][~where])
    assert torch.equal(image, image.clone()) and float(image.min()) >= 0     # the input is not changed


def test_xinsirs_black_puts_zero_there():
    out = inpaint_control(torch.ones(1, 2, 2, 3), torch.tensor([[[1.0, 0.0], [0.0, 0.0]]]), xinsir_black=True)
    assert out[0, 0, 0].tolist() == [0.0, 0.0, 0.0] and float(out[0, 1, 1, 0]) == 1.0


def test_a_smaller_mask_is_resized_bilinearly_to_the_picture():
    # 2x2 -> 4x4 bilinear (pixel centres aligned): the top-left corner 1, then 0.75, 0.5625 on the diagonal
    out = inpaint_control(torch.ones(1, 4, 4, 3), torch.tensor([[1.0, 0.0], [0.0, 0.0]]))
    masked = out[0, ..., 0] == -1
    expected = torch.zeros(4, 4, dtype=torch.bool)
    expected[:2, :2] = True
    assert torch.equal(masked, expected)


def test_one_mask_serves_a_batch_and_a_wrong_count_is_refused_in_one_line():
    out = inpaint_control(torch.rand(3, 2, 2, 3), torch.tensor([[[1.0, 0.0], [0.0, 0.0]]]))
    assert (out[:, 0, 0] == -1).all() and (out[:, 1, 1] >= 0).all()
    with pytest.raises(NodeError) as caught:
        inpaint_control(torch.rand(3, 2, 2, 3), torch.zeros(2, 2, 2))
    assert caught.value.field == "mask" and "\n" not in str(caught.value)
