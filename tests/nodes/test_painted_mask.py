"""LoadImage's painted mask (issue 31): a mask painted in the editor travels in the workflow as PNG
data and becomes the node's MASK output, replacing the picture's transparency."""
from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image

import nodeforge
from nodeforge import Workflow
from nodeforge.core import painted_mask


def _png(array: np.ndarray) -> str:
    buffer = io.BytesIO()
    Image.fromarray(array.astype(np.uint8), "L").save(buffer, format="PNG")
    return painted_mask.encode(buffer.getvalue())


def _load(engine, path, mask):
    wf = Workflow()
    wf.add("LoadImage", {"path": str(path), "mask": mask}, node_id="load")
    wf.add("Preview", {}, {"image": ("load", "image")}, node_id="preview")
    return engine.run(wf, outputs=["load"]).outputs["load"]


@pytest.fixture
def picture(tmp_path):
    rgba = np.full((16, 24, 4), 200, np.uint8)
    rgba[:, :, 3] = 255
    rgba[:4, :, 3] = 0                       # a transparent top band: the mask without painting
    Image.fromarray(rgba, "RGBA").save(tmp_path / "photo.png")
    return tmp_path / "photo.png"


def test_a_painted_mask_is_the_mask_output_instead_of_the_transparency(fresh_engine, picture):
    painted = np.zeros((16, 24), np.uint8)
    painted[8:, 12:] = 255                   # the bottom-right quarter: repaint
    painted[8:, 11] = 128                    # a feathered edge keeps its grey
    out = _load(fresh_engine, picture, _png(painted))
    mask = out["mask"]
    assert mask.shape == (1, 16, 24)
    assert torch.all(mask[0, 8:, 12:] == 1) and torch.all(mask[0, :8] == 0) and torch.all(mask[0, 8:, :11] == 0)
    assert torch.allclose(mask[0, 8:, 11], torch.full((8,), 128 / 255))
    unpainted = _load(fresh_engine, picture, "")["mask"]
    assert torch.all(unpainted[0, :4] == 1) and torch.all(unpainted[0, 4:] == 0)


def test_a_mask_painted_at_another_size_is_stretched_to_the_picture(fresh_engine, picture):
    painted = np.zeros((8, 12), np.uint8)
    painted[:, 6:] = 255                     # the right half
    with pytest.warns(UserWarning, match=r"the painted mask is 12x8 but the picture is 24x16 \(it was replaced\?\): "
                                         r"the mask is stretched to fit; open Edit Mask to check it"):
        mask = _load(fresh_engine, picture, _png(painted))["mask"]
    assert mask.shape == (1, 16, 24)
    assert mask[0, :, 14:].min() == 1 and mask[0, :, :10].max() == 0


def test_damaged_mask_data_is_refused_before_running_naming_the_field_and_the_fix(fresh_engine, picture):
    with pytest.raises(nodeforge.WorkflowError) as info:
        _load(fresh_engine, picture, painted_mask.PREFIX + "not*base64")
    text = str(info.value)
    assert "mask" in text and "damaged" in text and "Edit Mask" in text


def test_painted_mask_text_form_round_trips_and_names_what_is_wrong():
    data = _png(np.zeros((2, 2), np.uint8))
    assert painted_mask.check(data) is None and painted_mask.check("") is None
    assert painted_mask.decode(data).startswith(b"\x89PNG")
    assert painted_mask.summary("") == "none" and painted_mask.summary(data).startswith("painted (")
    assert "should start with" in painted_mask.check("mask.png")
    with pytest.raises(ValueError):
        painted_mask.encode(b"GIF89a")


def test_exporting_to_comfyui_says_the_painted_mask_stays_behind():
    from nodeforge.core.registry import load_registry
    from nodeforge.interop.comfy_export import export_comfyui_api

    wf = Workflow()
    wf.add("LoadImage", {"path": "photo.png", "mask": _png(np.full((4, 4), 255, np.uint8))}, node_id="load")
    wf.add("Preview", {}, {"image": ("load", "image")}, node_id="preview")
    warnings: list[str] = []
    prompt = export_comfyui_api(wf, registry=load_registry(), warnings=warnings)
    assert prompt["load"]["inputs"]["image"] == "photo.png"
    assert warnings == ["node load (LoadImage): its mask painted in the editor is not exported (ComfyUI reads a Load "
                        "Image mask from the picture's transparency): save the picture with the mask as transparent "
                        "pixels, or mask it in ComfyUI"]
    wf.nodes["load"].params["mask"] = ""
    warnings.clear()
    export_comfyui_api(wf, registry=load_registry(), warnings=warnings)
    assert warnings == []
