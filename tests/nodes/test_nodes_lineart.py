"""Standard Lineart and Realistic Lineart (comfyui_controlnet_aux's LineartStandardPreprocessor and LineArtPreprocessor,
nodes/lineart.py) and the pack's sizing of a picture (nodes/annotator_size.py), on hand-made pictures and weights."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from nodeforge.core.errors import NodeError
from nodes import annotator_size, lineart


def _picture(levels: np.ndarray) -> torch.Tensor:
    """8-bit levels [H, W, 3] as one IMAGE picture (exact after the pack's truncation to levels)."""
    return torch.from_numpy(levels.astype(np.float32) / 255 + 1e-6).clamp(0, 1)


def test_a_dark_line_on_white_is_127_where_it_is_and_black_elsewhere():
    # Blur minus picture is positive only on the line (its surround is white); every line pixel has the same
    # intensity, so the median is that intensity and the line comes out at 127.
    levels = np.full((64, 64, 3), 255, np.uint8)
    levels[:, 32] = 0
    out = lineart.run_lineart_standard(None, _picture(levels)[None], 6.0, 8, 64)["image"]
    assert out.shape == (1, 64, 64, 3)
    expected = np.zeros((64, 64), np.float32)
    expected[:, 32] = 127 / 255
    assert torch.equal(out[0, ..., 0], torch.from_numpy(expected))
    assert torch.equal(out[..., 0], out[..., 2])


def test_standard_lineart_is_the_blur_minus_the_picture_normalised_by_the_median():
    from scipy.ndimage import gaussian_filter1d     # OpenCV's kernel: radius 4 sigma, mirrored border

    rng = np.random.default_rng(0)
    levels = rng.integers(0, 256, size=(64, 128, 3)).astype(np.uint8)
    sigma, threshold = 2.5, 4
    x = levels.astype(np.float64)
    g = gaussian_filter1d(gaussian_filter1d(x, sigma, axis=0, mode="mirror", truncate=4.0), sigma, axis=1,
                          mode="mirror", truncate=4.0)
    intensity = np.min(g - x, axis=2).clip(0, 255)
    intensity = intensity / max(16, np.median(intensity[intensity > threshold])) * 127
    expected = np.floor(intensity.clip(0, 255)) / 255
    out = lineart.run_lineart_standard(None, _picture(levels)[None], sigma, threshold, 64)["image"][0, ..., 0]
    differ = np.abs(out.numpy() - expected) > 1e-6
    assert differ.mean() < 0.002          # float32 sums may land an exact whole number on the other side


def test_no_line_above_the_threshold_divides_by_16():
    levels = np.full((64, 64, 3), 200, np.uint8)
    levels[10, 10] = 196                     # intensity about 4 there, nothing above 8
    out = lineart.standard_lineart(torch.from_numpy(levels).permute(2, 0, 1).float(), 1.0, 8)
    g_minus_x = out[10, 10] / 127 * 16
    assert 3.0 < float(g_minus_x) <= 4.0 and out.sum() == out[10, 10]


def test_the_picture_is_resized_by_its_shorter_side_and_padded_to_64():
    picture = torch.rand(100, 150, 3)
    levels, size = annotator_size.prepared(picture, 64)
    assert size == (64, 96) and tuple(levels.shape) == (3, 64, 128)
    assert torch.equal(levels[:, :, 96:], levels[:, :, 95:96].expand(-1, -1, 32))   # the edge repeated
    assert annotator_size.resized_size(3, 5, 64) == (64, 107)          # 106.67
    assert annotator_size.resized_size(10, 25, 4) == (4, 10)
    assert annotator_size.resized_size(2, 5, 1) == (1, 2)              # 2.5 rounds half to even
    assert annotator_size.detect_resolution(0) == 512


def test_shrinking_averages_the_area_each_pixel_covers():
    picture = torch.tensor([[0.0, 30.0, 60.0], [90.0, 120.0, 150.0], [180.0, 210.0, 240.0]])[None]
    half = annotator_size.resize_levels(picture, 2, 2)[0]
    # output pixel (0, 0) covers rows and columns 0..1.5: weights 1 and 0.5 of the 1.5 each way
    expected = (0 * 1 + 30 * 0.5 + 90 * 0.5 + 120 * 0.25) / 2.25
    assert half[0, 0] == round(expected)
    quarter = annotator_size.resize_levels(torch.arange(16.0).view(1, 4, 4), 2, 2)[0]
    assert torch.equal(quarter, torch.tensor([[2.0, 4.0], [10.0, 12.0]]))     # 2.5 and 12.5 to even


def _reference_generator(width: int, blocks: int) -> nn.Sequential:
    """The informative-drawings generator as plain torch layers (instance norm without weights)."""
    def residual() -> nn.Module:
        class Residual(nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.conv_block = nn.Sequential(
                    nn.ReflectionPad2d(1), nn.Conv2d(4 * width, 4 * width, 3), nn.InstanceNorm2d(4 * width), nn.ReLU(),
                    nn.ReflectionPad2d(1), nn.Conv2d(4 * width, 4 * width, 3), nn.InstanceNorm2d(4 * width))

            def forward(self, x):
                return x + self.conv_block(x)
        return Residual()

    net = nn.Module()
    net.model0 = nn.Sequential(nn.ReflectionPad2d(3), nn.Conv2d(3, width, 7), nn.InstanceNorm2d(width), nn.ReLU())
    net.model1 = nn.Sequential(nn.Conv2d(width, 2 * width, 3, 2, 1), nn.InstanceNorm2d(2 * width), nn.ReLU(),
                               nn.Conv2d(2 * width, 4 * width, 3, 2, 1), nn.InstanceNorm2d(4 * width), nn.ReLU())
    net.model2 = nn.Sequential(*[residual() for _ in range(blocks)])
    net.model3 = nn.Sequential(nn.ConvTranspose2d(4 * width, 2 * width, 3, 2, 1, 1), nn.InstanceNorm2d(2 * width),
                               nn.ReLU(), nn.ConvTranspose2d(2 * width, width, 3, 2, 1, 1), nn.InstanceNorm2d(width),
                               nn.ReLU())
    net.model4 = nn.Sequential(nn.ReflectionPad2d(3), nn.Conv2d(width, 1, 7), nn.Sigmoid())
    return nn.Sequential(net.model0, net.model1, net.model2, net.model3, net.model4), net


def test_the_generator_has_sk_models_layout_and_size():
    shapes = {key: tuple(value.shape) for key, value in lineart.LineartGenerator().state_dict().items()}
    assert shapes["model0.1.weight"] == (64, 3, 7, 7)
    assert shapes["model1.0.weight"] == (128, 64, 3, 3) and shapes["model1.3.weight"] == (256, 128, 3, 3)
    assert shapes["model2.2.conv_block.5.weight"] == (256, 256, 3, 3) and "model2.3.conv_block.1.weight" not in shapes
    assert shapes["model3.0.weight"] == (256, 128, 3, 3) and shapes["model3.3.weight"] == (128, 64, 3, 3)
    assert shapes["model4.1.weight"] == (1, 64, 7, 7)
    assert sum(np.prod(s) for s in shapes.values()) == 4_290_945        # sk_model.pth: 17.2 MB of float32


def test_a_hand_made_state_dict_loads_and_computes_as_the_generator():
    torch.manual_seed(0)
    run, reference = _reference_generator(4, 2)
    state = reference.state_dict()
    model = lineart.build_generator(state, "tiny.safetensors")
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(model(x), run(x), atol=1e-6)


def test_a_constant_generator_gives_255_minus_its_levels():
    _, reference = _reference_generator(4, 1)
    state = {key: torch.zeros_like(value) for key, value in reference.state_dict().items()}
    model = lineart.build_generator(state, "zero.pth")          # sigmoid(0) = 0.5 everywhere: 127 levels of line
    levels, _ = annotator_size.prepared(torch.rand(64, 64, 3), 64)
    assert torch.equal(lineart.lineart(model, levels), torch.full((64, 64), 128.0))


def test_a_file_that_is_no_lineart_model_is_refused_in_one_line(tmp_path):
    with pytest.raises(NodeError) as caught:
        lineart.build_generator({"conv_in.weight": torch.zeros(4, 3, 3, 3)}, "other.safetensors")
    assert "\n" not in str(caught.value) and "sk_model.pth" in str(caught.value) and caught.value.field == "model"
    _, reference = _reference_generator(4, 1)
    state = reference.state_dict()
    state["model4.1.weight"] = torch.zeros(2, 4, 7, 7)
    with pytest.raises(NodeError, match="misshapen model4.1.weight"):
        lineart.build_generator(state, "bad.pth")


def test_the_node_reads_a_pth_without_running_code_and_gives_the_map_at_the_resolution(tmp_path):
    _, reference = _reference_generator(4, 1)
    path = tmp_path / "sk_model.pth"
    torch.save(reference.state_dict(), path)

    class Ctx:
        device, shared = "cpu", {}

        def resolve_file(self, kind, name):
            assert kind.value == "lineart"
            return str(tmp_path / name)

    out = lineart.run_lineart(Ctx(), torch.rand(2, 50, 80, 3), "sk_model.pth", 64)["image"]
    assert out.shape == (2, 64, 102, 3) and 0 <= float(out.min()) and float(out.max()) <= 1
