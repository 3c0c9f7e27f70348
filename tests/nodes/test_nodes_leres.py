"""LeReS Depth Map (comfyui_controlnet_aux's LeReS-DepthMapPreprocessor, nodes/leres.py): res101.pth's layout, a
hand-made file read in the pack's form, what the network is fed and how its prediction becomes the map."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from nodeforge.core.errors import NodeError
from nodes import leres


def test_the_network_has_res101s_layout():
    model = leres.LeReS()
    shapes = {key: tuple(value.shape) for key, value in model.state_dict().items()}
    head = "encoder_modules.encoder."
    assert shapes[head + "conv1.weight"] == (64, 3, 7, 7)
    assert shapes[head + "layer1.0.conv2.weight"] == (256, 8, 3, 3)          # ResNeXt 32x8d: 32 groups of 8
    assert shapes[head + "layer1.0.downsample.0.weight"] == (256, 64, 1, 1)
    assert head + "layer3.22.conv3.weight" in shapes and head + "layer3.23.conv1.weight" not in shapes
    assert shapes[head + "layer4.2.conv3.weight"] == (2048, 2048, 1, 1)
    assert shapes["decoder_modules.conv.conv1.weight"] == (512, 2048, 3, 3)
    assert shapes["decoder_modules.conv.conv_branch.2.running_var"] == (512,)
    assert shapes["decoder_modules.ffm0.ftb1.conv1.weight"] == (256, 256, 3, 3)
    assert shapes["decoder_modules.outconv.adapt_conv.3.weight"] == (1, 128, 3, 3)
    encoder = sum(p.numel() for p in model.encoder_modules.parameters())
    assert encoder + 2048 * 1000 + 1000 == 88_791_336          # torchvision's resnext101_32x8d with its classifier


def _small() -> leres.LeReS:
    torch.manual_seed(0)
    model = leres.LeReS(leres.ResNetEncoder((1, 2, 1, 1), (64, 128, 256, 512), groups=1))   # a ResNet-50's widths
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.uniform_(-0.1, 0.1)
            module.running_var.uniform_(0.5, 1.5)
    return model.eval()


def test_a_hand_made_file_in_the_packs_form_loads_with_its_shape_read_from_it():
    source = _small()
    data = {"depth_model": {f"module.depth_model.{k}": v for k, v in source.state_dict().items()}, "epoch": 3}
    model = leres.build_leres(data, "tiny.pth")
    assert len(model.encoder_modules.encoder.layer2) == 2
    assert model.encoder_modules.encoder.layer1[0].conv2.groups == 1
    x = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        out = model(x)
        assert out.shape == (1, 1, 64, 96)
        assert torch.equal(out, source(x))


def test_the_network_is_fed_blue_green_red_levels_normalised_by_imagenets_statistics():
    seen = []

    class Spy(nn.Module):
        def __init__(self):
            super().__init__()
            self.weight = nn.Parameter(torch.zeros(1))

        def forward(self, x):
            seen.append(x)
            return x[:, :1]

    levels = torch.zeros(3, 32, 32)
    levels[0], levels[1], levels[2] = 200.0, 100.0, 50.0          # red, green, blue
    leres.predict(Spy(), levels)
    fed = seen[0][0, :, 0, 0]
    expected = torch.tensor([(50 - 0.485) / 0.229, (100 - 0.456) / 0.224, (200 - 0.406) / 0.225])
    assert torch.allclose(fed, expected)


def test_the_prediction_becomes_near_bright_levels_with_the_cut_offs():
    depth = torch.tensor([[0.0, 1.0], [2.0, 4.0]])          # far large
    # 16 bits: 0, 16383 (16383.75 truncated), 32767, 65535; 8 bits rounded: 0, 64, 127, 255; turned over
    assert leres.depth_levels(depth, 0, 0).tolist() == [[255.0, 191.0], [128.0, 0.0]]
    # rm_nearest 30%: levels up to 76.5 (the nearest) set to 0 before turning over, so they come out white
    assert leres.depth_levels(depth, 30, 0).tolist() == [[255.0, 255.0], [128.0, 0.0]]
    # rm_background 60%: map levels up to 153 (the farthest) set to black
    assert leres.depth_levels(depth, 0, 60).tolist() == [[255.0, 191.0], [0.0, 0.0]]
    assert leres.depth_levels(torch.full((2, 2), 3.0), 0, 0).tolist() == [[255.0, 255.0], [255.0, 255.0]]


def test_a_file_that_is_no_leres_model_is_refused_in_one_line():
    with pytest.raises(NodeError) as caught:
        leres.build_leres({"conv_in.weight": torch.zeros(4, 3, 3, 3)}, "other.pth")
    assert "\n" not in str(caught.value) and "res101.pth" in str(caught.value) and caught.value.field == "model"
    state = {k: v for k, v in _small().state_dict().items() if not k.startswith("decoder_modules.ffm0")}
    with pytest.raises(NodeError, match="lacks decoder_modules.ffm0"):
        leres.build_leres(state, "cut.safetensors")


def test_the_node_reads_a_pth_without_running_code_and_gives_the_map_at_the_resolution(tmp_path):
    path = tmp_path / "res101.pth"
    torch.save({"depth_model": {f"module.depth_model.{k}": v for k, v in _small().state_dict().items()}}, path)

    class Ctx:
        device, shared = "cpu", {}

        def resolve_file(self, kind, name):
            assert kind.value == "leres"
            return str(tmp_path / name)

    out = leres.run_leres_depth_map(Ctx(), torch.rand(1, 40, 60, 3), "res101.pth", 0, 0, 64)["image"]
    assert out.shape == (1, 64, 96, 3) and 0 <= float(out.min()) <= float(out.max()) <= 1


def test_a_transfer_block_adds_its_branch_to_the_rectified_convolution_as_the_original_does():
    # The original's branch opens with an in-place ReLU, which rectifies the convolution's output the sum then reads.
    import torch.nn.functional as F

    torch.manual_seed(0)
    block = leres._Transfer(4, 6).eval()
    branch = block.conv_branch
    branch["2"].running_mean.uniform_(-0.5, 0.5)
    x = torch.randn(1, 4, 8, 8)
    with torch.no_grad():
        c = F.relu(block.conv1(x))
        norm = branch["2"]
        y = F.batch_norm(branch["1"](c), norm.running_mean, norm.running_var, norm.weight, norm.bias, eps=norm.eps)
        expected = F.relu(c + branch["4"](F.relu(y)))
        assert torch.allclose(block(x), expected, atol=1e-6)
        naive = F.relu(block.conv1(x) + branch["4"](F.relu(norm(branch["1"](F.relu(block.conv1(x)))))))
        assert not torch.allclose(block(x), naive, atol=1e-4)        # the sum with conv1's negatives kept differs
