"""What the fitting, cropping, calculating and saving nodes ComfyUI files bring give (issue 30), against the
values ComfyUI's documented code gives: Resize And Pad Image (scale by the smaller ratio, sides cut to whole
pixels, centred with offsets rounded down), essentials' Image Crop (a named position, round half to even for a
centre, offsets, edges cut), Resize Image/Mask on masks, KJNodes' Simple Calculator, Save Animated WEBP and
kijai's IC-Light Simple Light Source (a gradient light map)."""
from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch

from nodes import geometry, images, values


def _ramp(height: int, width: int, channels: int = 3) -> torch.Tensor:
    return torch.arange(height * width * channels, dtype=torch.float32).reshape(1, height, width, channels) / (
        height * width * channels)


@pytest.mark.parametrize("position, width, x_offset, y_offset, window", [
    ("left-center", 4, 1, 0, (1, 1, 5, 5)),    # x 0 + 1, y round((6 - 4) / 2) = 1
    ("center", 5, 0, 0, (2, 1, 7, 5)),         # x round((10 - 5) / 2) = round(2.5) = 2 (half to even)
    ("bottom-right", 4, 3, 0, (9, 2, 10, 6)),  # x 6 + 3 = 9, cut at the right edge: 1 wide
    ("top-left", 4, -2, -1, (0, 0, 2, 3)),     # the right/bottom edge cut before the left/top is raised to 0
])
def test_image_crop_at_position_is_essentials_image_crop(position, width, x_offset, y_offset, window):
    image = _ramp(6, 10)
    out = geometry.run_image_crop_at_position(None, image, width, 4, position, x_offset, y_offset)
    x, y, x2, y2 = window
    assert torch.equal(out["image"], image[:, y:y2, x:x2])
    assert (out["x"], out["y"]) == (x, y)


def test_image_crop_at_position_past_the_right_edge_gives_what_essentials_gives():
    # the window is the whole 10 x 6 image (min(ow, 2848)); moved 500 right it starts past the edge: nothing left
    image = _ramp(6, 10)
    out = geometry.run_image_crop_at_position(None, image, 2848, 1600, "left-center", 500, 0)
    assert out["image"].shape[1:3] == (6, 0) and (out["x"], out["y"]) == (500, 0)


def test_resize_and_pad_fits_inside_and_centres_on_black_or_white():
    image = _ramp(2, 4)
    out = geometry.run_resize_and_pad_image(None, image, 8, 8, "black", "nearest-exact")["image"]
    assert out.shape == (1, 8, 8, 3)
    scaled = image.repeat_interleave(2, dim=1).repeat_interleave(2, dim=2)     # x 2 = min(8 / 4, 8 / 2)
    assert torch.equal(out[:, 2:6], scaled)                                      # (8 - 4) // 2 = 2 rows above
    assert torch.equal(out[:, :2], torch.zeros(1, 2, 8, 3)) and torch.equal(out[:, 6:], torch.zeros(1, 2, 8, 3))
    out = geometry.run_resize_and_pad_image(None, image, 5, 5, "white", "nearest-exact")["image"]
    # scale min(5 / 4, 5 / 2) = 1.25: int(4 * 1.25) = 5 wide, int(2 * 1.25) = 2 high, (5 - 2) // 2 = 1 row above
    assert torch.equal(out[:, 1:3], geometry.scale_image(image, 5, 2, "nearest-exact", "disabled"))
    assert torch.equal(out[:, 0], torch.ones(1, 5, 3)) and torch.equal(out[:, 3:], torch.ones(1, 2, 5, 3))


def test_resize_image_mask_scales_a_mask_as_scale_image_scales_an_image():
    mask = torch.tensor([[[0.0, 1.0], [0.25, 0.5]]])
    out = geometry.run_resize_image_mask(None, mask, "scale dimensions", 4, 4, "disabled", "nearest-exact")["resized"]
    assert torch.equal(out, mask.repeat_interleave(2, dim=1).repeat_interleave(2, dim=2))
    image = _ramp(6, 10)
    for method, crop in (("bicubic", "center"), ("lanczos", "disabled"), ("area", "center")):
        ours = geometry.run_resize_image_mask(None, image, "scale dimensions", 4, 4, crop, method)["resized"]
        assert torch.equal(ours, geometry.run_image_scale(None, image, method, 4, 4, crop)["image"])
        grey = geometry.run_resize_image_mask(None, image[..., 0], "scale dimensions", 4, 0, crop, method)["resized"]
        as_image = geometry.scale_image(image[..., :1].expand(1, 6, 10, 3), 4, 0, method, crop)[..., 0]
        assert grey.shape == (1, 2, 4) and torch.equal(grey, as_image)      # height round(6 x 4 / 10) = 2
    assert geometry.run_resize_image_mask(None, mask, "scale dimensions", 0, 0, "center", "area")["resized"] is mask


@pytest.mark.parametrize("expression, names, expected", [
    ("a * b", {"a": 1500, "b": 0}, (0.0, 0, False)),            # corpus 041: the crop's x times its y
    ("a * b", {"a": 3, "b": 2.5}, (7.5, 7, True)),
    ("a and b", {"a": 2, "b": 3}, (1.0, 1, True)),             # all(): True, not Python's 3
    ("a or b", {"a": 0, "b": 0}, (0.0, 0, False)),
    ("2 << a", {"a": 3}, (16.0, 16, True)),
    ("exp(0) + pi", {}, (1.0 + math.pi, 4, True)),
    ("-a / 2", {"a": 5}, (-2.5, -2, True)),                     # int() cuts towards 0
    ("euler > a", {"a": 2}, (1.0, 1, True)),
])
def test_kj_calculator_gives_float_int_and_bool_of_the_value(expression, names, expected):
    out = values.run_math_expression(SimpleNamespace(warn=lambda m: None), expression, "KJNodes", **names)
    assert (out["float"], out["int"], out["bool"]) == expected


@pytest.mark.parametrize("expression, names", [
    ("a / b", {"a": 1, "b": 0}), ("c + 1", {}), ("a.width", {"a": torch.zeros(1, 2, 2, 3)}),
    ("sum(1, 2)", {}), ("1 if a else 2", {"a": 1}), ("a ** 0.5 * 1e400", {"a": 4}),
])
def test_kj_calculator_gives_zeros_and_a_warning_where_kjnodes_fails(expression, names):
    said: list[str] = []
    out = values.run_math_expression(SimpleNamespace(warn=said.append), expression, "KJNodes", **names)
    assert (out["float"], out["int"], out["bool"]) == (0.0, 0, False)
    assert len(said) == 1 and "as KJNodes' Simple Calculator does on an error" in said[0]


def test_save_animated_webp_writes_one_file_of_every_frame(tmp_path):
    from PIL import Image

    from nodeforge.core.workflow import Workflow

    frames = torch.stack([torch.full((8, 8, 3), v) for v in (0.0, 0.5, 0.999)])
    wf = Workflow()
    wf.add("EmptyImage", node_id="1")
    ctx = SimpleNamespace(output_dir=tmp_path, workflow=wf)
    paths = images.run_save_animated_webp(ctx, frames, "clip/anim", 16, True, 80, "default")
    assert paths == [str(tmp_path / "clip" / "anim_00001_.webp")]
    with Image.open(paths[0]) as webp:
        assert webp.n_frames == 3
        got = []
        for i in range(3):
            webp.seek(i)
            got.append(set(webp.convert("RGB").getdata()))
            assert webp.info["duration"] == 62                       # int(1000 / 16)
        assert "workflow:" in str(webp.getexif().get(0x0110))
    assert got == [{(0, 0, 0)}, {(127, 127, 127)}, {(254, 254, 254)}]   # 255 x value cut down, as ComfyUI does
    again = images.run_save_animated_webp(ctx, frames[:1], "clip/anim", 6, False, 50, "fastest")
    assert again == [str(tmp_path / "clip" / "anim_00002_.webp")]


def test_light_source_left_is_a_linear_gradient_from_start_to_end_cut_to_8_bits():
    out = images.run_light_source(None, "Left Light", 1.0, "#FFFFFF", "#000000", 5, 2)["image"]
    row = [255, 191, 127, 63, 0]               # 255 - 255 x (0, .25, .5, .75, 1), cut down
    assert out.shape == (1, 2, 5, 3)
    assert torch.equal(out, torch.tensor(row, dtype=torch.float32).div(255).view(1, 1, 5, 1).expand(1, 2, 5, 3))


def test_light_source_corner_combines_both_sides_and_batches_after_prev_image():
    prev = torch.full((1, 3, 4, 3), 0.5)
    out = images.run_light_source(None, "Top Right Light", 2.0, "#FF8000", "0,0,64", 4, 3, 2, prev)["image"]
    assert out.shape == (3, 3, 4, 3) and torch.equal(out[0], prev[0]) and torch.equal(out[1], out[2])
    for yi in range(3):
        for xi in range(4):
            tx, ty = (1 - xi / 3) ** 2, (yi / 2) ** 2              # right: 1 to 0 across; top: 0 to 1 down
            t = math.sqrt(tx * tx + ty * ty) / math.sqrt(2.0)
            want = [int(min(255.0, max(0.0, float(torch.tensor(s + (e - s) * t, dtype=torch.float32)))))
                    for s, e in ((255, 0), (128, 0), (0, 64))]
            assert [round(v * 255) for v in out[1, yi, xi].tolist()] == want, (yi, xi)


def test_light_source_refuses_a_colour_it_cannot_read_naming_the_field():
    from nodeforge.core.errors import NodeError

    with pytest.raises(NodeError) as caught:
        images.run_light_source(None, "Left Light", 1.0, "white", "#000000", 8, 8)
    assert caught.value.field == "start_color" and "#RRGGBB or R,G,B" in str(caught.value)


def test_switch_passes_on_true_when_on_else_on_false_or_the_one_linked():
    from nodeforge.core.errors import NodeError

    a, b = torch.zeros(1), torch.ones(1)
    assert values.run_switch(None, True, a, b)["output"] is b
    assert values.run_switch(None, False, a, b)["output"] is a
    assert values.run_switch(None, True, on_false=a)["output"] is a          # only on_false linked
    assert values.run_switch(None, False, on_true=b)["output"] is b
    with pytest.raises(NodeError):
        values.run_switch(None, True)


def test_switch_runs_in_a_graph_fed_by_a_boolean_wire(tmp_path):
    from nodeforge import Engine
    from nodeforge.core.workflow import Workflow

    wf = Workflow()
    wf.add("EmptyImage", {"width": 8, "height": 8, "color": 0}, node_id="black")
    wf.add("EmptyImage", {"width": 8, "height": 8, "color": 0xFFFFFF}, node_id="white")
    wf.add("MathExpression", {"expression": "1 > 0"}, node_id="test")
    wf.add("Switch", {}, {"on_false": ("black", "image"), "on_true": ("white", "image"), "switch": ("test", "bool")},
           node_id="pick")
    wf.add("Preview", {}, {"image": ("pick", "output")}, node_id="shown")
    engine = Engine(device="cpu", output_dir=tmp_path)
    assert engine.validate(wf) == []
    assert torch.equal(engine.run(wf, outputs=["pick"]).outputs["pick"]["output"], torch.ones(1, 8, 8, 3))
