"""Remove Background (BRIA RMBG-1.4; ComfyUI-Video-Matting's BRIAAI Matting, corpus 009/013): the network has
RMBG-1.4's parameter names and shapes (44,046,790 parameters: its 176 MB model.safetensors), a hand-made state dict
in that layout loads, the mask is the matte min-max normalised per picture at the picture's size, the image is the
picture over bg_color by it, and files or colours that do not fit are refused in one line."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

from nodeforge.core.errors import NodeError
from nodeforge.core.registry import builtin_module


def _rmbg():
    return builtin_module("background_removal")


def test_the_network_has_rmbg_14s_layout():
    state = _rmbg().BriaRMBG().state_dict()
    assert sum(v.numel() for k, v in state.items() if "running" not in k and "num_batches" not in k) == 44_046_790
    shapes = {"conv_in.weight": (64, 3, 3, 3), "stage1.rebnconvin.conv_s1.weight": (64, 64, 3, 3),
              "stage1.rebnconv7.conv_s1.weight": (32, 32, 3, 3), "stage1.rebnconv6d.bn_s1.running_mean": (32,),
              "stage5.rebnconv4.conv_s1.weight": (256, 256, 3, 3), "stage5d.rebnconvin.conv_s1.weight": (512, 1024, 3, 3),
              "stage1d.rebnconv1d.conv_s1.weight": (64, 32, 3, 3), "side1.weight": (1, 64, 3, 3),
              "side6.weight": (1, 512, 3, 3)}
    for key, shape in shapes.items():
        assert tuple(state[key].shape) == shape, key
    assert "stage6.rebnconv5.conv_s1.weight" not in state and "stage4.rebnconv5.conv_s1.weight" not in state
    net = _rmbg().BriaRMBG()
    assert net.stage5.rebnconv4.conv_s1.dilation == (8, 8) and net.stage1.rebnconv7.conv_s1.dilation == (2, 2)


def _tiny_state(seed: int = 0, width: int = 8) -> dict[str, torch.Tensor]:
    """A hand-made state dict in RMBG-1.4's layout at a small width (every key of the network, random values)."""
    g = torch.Generator().manual_seed(seed)
    out = {}
    for key, value in _rmbg().BriaRMBG(width).state_dict().items():
        if key.endswith("num_batches_tracked"):
            out[key] = torch.tensor(0)
        elif key.endswith("running_var"):
            out[key] = torch.rand(value.shape, generator=g) + 0.5
        else:
            out[key] = torch.randn(value.shape, generator=g) * 0.3
    return out


def test_a_hand_made_state_dict_loads_and_the_mask_is_normalised_per_picture():
    rmbg = _rmbg()
    state = _tiny_state()
    net = rmbg.build(state, "tiny.safetensors")
    assert not net.training and net.conv_in.out_channels == 8
    torch.testing.assert_close(net.state_dict()["stage2.rebnconv3.bn_s1.running_var"],
                               state["stage2.rebnconv3.bn_s1.running_var"])
    pictures = torch.rand(2, 40, 30, 3)
    mask = rmbg.matte(net, pictures, size=64)
    assert mask.shape == (2, 40, 30)
    for m in mask:   # stretched to 0..1 at 64 px; the nearest resize keeps some of those pixels
        assert 0 <= m.min() < 0.1 and 0.9 < m.max() <= 1
    # the matte at 64 px, min-max normalised, resized back nearest
    x = torch.nn.functional.interpolate(pictures[1:].permute(0, 3, 1, 2), size=(64, 64), mode="bilinear",
                                       align_corners=False) - 0.5
    with torch.no_grad():
        raw = net(x)
    raw = (raw - raw.min()) / (raw.max() - raw.min())
    torch.testing.assert_close(mask[1], torch.nn.functional.interpolate(raw, size=(40, 30), mode="nearest")[0, 0])


def test_a_flat_matte_gives_its_value_and_the_picture_over_the_colour(tmp_path):
    rmbg = _rmbg()
    state = {k: torch.zeros_like(v) for k, v in _tiny_state().items()}
    for key in state:
        if key.endswith("running_var"):
            state[key] = torch.ones_like(state[key])
    state["side1.bias"] = torch.tensor([2.0])
    (tmp_path / "rmbg").mkdir()
    save_file(state, str(tmp_path / "rmbg" / "flat.safetensors"))
    ctx = SimpleNamespace(resolve_file=lambda kind, name: str(tmp_path / "rmbg" / name), device="cpu", shared=None)
    picture = torch.rand(1, 24, 16, 3)
    out = rmbg.run_remove_background(ctx, picture, "flat.safetensors", "#FF8000")
    alpha = torch.sigmoid(torch.tensor(2.0))
    torch.testing.assert_close(out["mask"], torch.full((1, 24, 16), float(alpha)))
    colour = torch.tensor([1.0, 128 / 255, 0.0])
    torch.testing.assert_close(out["image"], picture * alpha + colour * (1 - alpha))


def test_the_node_runs_in_a_graph_from_the_rmbg_folder(make_engine, tmp_path):
    from nodeforge import Workflow

    folder = tmp_path / "rmbg" / "RMBG-1.4"
    folder.mkdir(parents=True)
    save_file(_tiny_state(), str(folder / "model.safetensors"))
    Image.fromarray((np.random.default_rng(0).random((20, 28, 3)) * 255).astype(np.uint8)).save(tmp_path / "p.png")
    wf = Workflow()
    wf.add("LoadImage", {"path": str(tmp_path / "p.png")}, node_id="img")
    wf.add("RemoveBackground", {"model": "RMBG-1.4", "bg_color": "green"}, {"image": ("img", "image")}, node_id="cut")
    out = make_engine(tmp_path / "out", tmp_path).run(wf, outputs=["cut"]).outputs["cut"]
    assert out["image"].shape == (1, 20, 28, 3) and out["mask"].shape == (1, 20, 28)
    assert 0 <= float(out["mask"].min()) < float(out["mask"].max()) <= 1


def _refused(tmp_path, state):
    path = tmp_path / "bad.safetensors"
    save_file(state, str(path))
    with pytest.raises(NodeError) as info:
        _rmbg().load_rmbg(path, "cpu")
    assert info.value.field == "model" and "\n" not in str(info.value)
    return str(info.value)


def test_files_that_are_not_rmbg_are_refused_in_one_line(tmp_path):
    assert "is not an RMBG-1.4 model (no 3-channel conv_in.weight)" in _refused(tmp_path, {"x": torch.zeros(2)})
    state = _tiny_state()
    assert "has an unknown stage7.weight" in _refused(tmp_path, dict(state, **{"stage7.weight": torch.zeros(1)}))
    del state["side3.bias"]
    assert "lacks side3.bias (1 missing" in _refused(tmp_path, state)
    state = dict(_tiny_state(), **{"side1.weight": torch.zeros(1, 4, 3, 3)})
    assert "has a misshapen side1.weight" in _refused(tmp_path, state)
    with pytest.raises(NodeError, match="bg_color 'not a colour' is not a colour"):
        _rmbg().colour("not a colour")
