"""The value nodes (nodes/values.py) on values a user cares about: an image batch's size, math expressions as
ComfyUI's Math Expression, pysssss' and essentials' Simple Math give them (and refused where they are no
arithmetic), text joined and rewritten as ComfyUI's Concatenate and Regex Replace do, and a graph where Get Image
Size feeds Empty Latent's width and height."""
from __future__ import annotations

import pytest
import torch

from nodeforge import Engine, Workflow
from nodeforge.core.errors import NodeError, NodeExecutionError
from nodes import values


def test_get_image_size_of_a_batch_of_three_64_high_48_wide():
    assert values.run_image_size(None, torch.zeros(3, 64, 48, 3)) == {"width": 48, "height": 64, "batch_size": 3}


@pytest.mark.parametrize("expression, names, expected", [
    ("a*2+b", {"a": 3, "b": 1}, 7),
    ("min(b,max(c,a))", {"a": 900, "b": 768, "c": 512}, 768),          # corpus 030's clamp
    ("a / 2", {"a": 5}, 2.5),
    ("a // 2 + a % 3 - 2 ** 3", {"a": 7}, 3 + 1 - 8),
    ("round(a/2)", {"a": 5}, 2),                                         # Python's round: half to even
    ("sqrt(a) + floor(2.7) + ceil(0.2) + abs(-1)", {"a": 16}, 8),
    ("iif(a > b, a, b)", {"a": 2, "b": 5}, 5),
    ("a if a < 3 and b else 9", {"a": 2, "b": 1}, 2),
    ("1 < a <= 3", {"a": 3}, True),
    ("not a or 4", {"a": 1}, 4),
])
def test_math_expression_values(expression, names, expected):
    assert values.evaluate(expression, names) == expected


def test_image_and_latent_sizes_in_an_expression():
    image = torch.zeros(2, 64, 48, 3)
    latent = {"samples": torch.zeros(1, 4, 8, 12)}                      # SD's factor 8: 96 x 64
    lazy = {"samples": None, "width": 80, "height": 40, "batch_size": 2}
    assert values.evaluate("max(a.width/b,0)", {"a": image, "b": 2}) == 24.0           # corpus 030, pysssss
    assert values.evaluate("a.height + b.width + c.width", {"a": image, "b": latent, "c": lazy}) == 64 + 96 + 80
    assert values.evaluate("a.batch_size", {"a": image}) == 2


@pytest.mark.parametrize("style, expected", [
    ("ComfyUI", {"float": 3.5, "int": 3, "bool": True}),
    ("essentials", {"float": 3.5, "int": 4, "bool": True}),             # round(3.5) = 4 (half to even)
])
def test_the_int_output_by_style(style, expected):
    assert values.run_math_expression(None, "a / 2", style, a=7) == expected


def test_essentials_reads_unconnected_inputs_and_nan_as_zero_comfyui_refuses_them():
    assert values.run_math_expression(None, "24.0 + b", "essentials") == {"float": 24.0, "int": 24, "bool": True}
    assert values.run_math_expression(None, "a * 0.0 * float('nan')" .replace("float('nan')", "(a - a)"),
                                      "essentials", a=1.0)["int"] == 0
    with pytest.raises(NodeError, match=r"b is not connected: link a number to input b"):
        values.run_math_expression(None, "24.0 + b", "ComfyUI")
    with pytest.raises(NodeError, match="which is no number a node can take"):
        values.run_math_expression(None, "a * 10.0 ** 308 * 10", "ComfyUI", a=10.0)


@pytest.mark.parametrize("expression, message", [
    ("__import__('os').system('true')", "the function \"__import__('os').system\" is not one of min, max"),
    ("open('x')", "the function 'open' is not one of min, max"),
    ("a.__class__", "'a.__class__' is not allowed"),
    ("(1).real", "is not allowed"),
    ("[a, b]", "is not allowed"),
    ("x + 1", "unknown name 'x': use a, b, c, d for the inputs"),
    ("a / b", "division by zero (1 / 0)"),
    ("2 ** 99999", "the exponent 99999 is above 4000"),
    ("pow(9, 4000)", "9 ** 4000 is too large a number"),
    ("a +", "is not a valid expression"),
    ("", "it is empty"),
    ("sqrt(-1)", "sqrt(-1): math domain error"),
    ("a" + " + a" * 600, "characters is more than 1000"),
])
def test_what_is_no_arithmetic_is_refused_in_one_line(expression, message):
    with pytest.raises(NodeError) as err:
        values.evaluate(expression, {"a": 1, "b": 0})
    assert message in str(err.value) and err.value.field == "expression" and "\n" not in str(err.value)


def test_join_text_and_regex_replace_as_comfyui():
    assert values.run_join_text(None, "a red", "circle", " ") == {"string": "a red circle"}
    # corpus 037: the leading and trailing commas cut off, case-insensitive, every match
    rewrite = dict(case_insensitive=True, multiline=False, dotall=False, count=0)
    assert values.run_regex_replace(None, ",cat, dog,", "^,|,$", "", **rewrite) == {"string": "cat, dog"}
    assert values.run_regex_replace(None, "Cat cat", "cat", "dog", **{**rewrite, "count": 1}) == {"string": "dog cat"}
    assert values.run_regex_replace(None, "ab", "(a)(b)", r"\2\1", **rewrite) == {"string": "ba"}
    assert values.run_regex_replace(None, "a\nb", "a.b", "-", **{**rewrite, "dotall": True}) == {"string": "-"}


def test_regex_errors_name_the_field_in_one_line():
    rewrite = dict(case_insensitive=True, multiline=False, dotall=False, count=0)
    with pytest.raises(NodeError) as err:
        values.run_regex_replace(None, "text", "(unclosed", "", **rewrite)
    assert err.value.field == "regex_pattern" and str(err.value).startswith(
        "regex_pattern '(unclosed' is not a regular expression: missing )")
    with pytest.raises(NodeError) as err:
        values.run_regex_replace(None, "text", "t", r"\9", **rewrite)
    assert err.value.field == "replace" and "invalid group reference" in str(err.value)


def test_a_regex_that_backtracks_without_end_is_stopped_with_a_one_line_error(monkeypatch):
    monkeypatch.setattr(values, "REGEX_SECONDS", 0.2)
    rewrite = dict(case_insensitive=False, multiline=False, dotall=False, count=0)
    with pytest.raises(NodeError) as err:      # Python's re takes longer than the universe's age on this
        values.run_regex_replace(None, "a" * 60 + "b", "(a|aa)+$", "", **rewrite)
    message = str(err.value)
    assert err.value.field == "regex_pattern" and "still matching after 0.2 s on a text of 61 characters" in message
    assert "\n" not in message


def test_show_value_says_what_arrives():
    assert values.run_show_value(None, 7) == {"text": "7"}
    assert values.run_show_value(None, torch.zeros(1, 4, 5, 3)) == {"text": "image 5x4, batch 1"}
    assert values.run_show_value(None, torch.zeros(2, 4, 5)) == {"text": "mask 5x4, batch 2"}
    assert values.run_show_value(None, torch.zeros(7)) == {"text": "Tensor of shape [7]"}


def _size_graph(width: int = 48, height: int = 64) -> Workflow:
    wf = Workflow()
    wf.add("EmptyImage", {"width": width, "height": height, "batch_size": 3}, node_id="1")
    wf.add("GetImageSize", {}, {"image": ("1", "image")}, node_id="2")
    wf.add("MathExpression", {"expression": "a * 2", "style": "ComfyUI"}, {"a": ("2", "width")}, node_id="3")
    wf.add("EmptyLatent", {"width": 512, "height": 512}, {"width": ("3", "int"), "height": ("2", "height"),
                                                          "batch_size": ("2", "batch_size")}, node_id="4")
    wf.add("ShowValue", {}, {"value": ("4", "latent")}, node_id="5")
    return wf


def test_get_image_size_feeds_empty_latents_width_through_a_math_expression(tmp_path):
    engine = Engine(device="cpu", output_dir=tmp_path)
    assert engine.validate(_size_graph()) == []
    result = engine.run(_size_graph(), outputs=["4", "5"])
    latent = result.outputs["4"]["latent"]
    assert (latent["width"], latent["height"], latent["batch_size"]) == (96, 64, 3)
    assert result.outputs["5"] == {"text": "latent 96x64, batch 3"}


def test_a_size_the_latent_refuses_is_named_with_its_wire(tmp_path):
    engine = Engine(device="cpu", output_dir=tmp_path)
    with pytest.raises(NodeExecutionError) as err:
        engine.run(_size_graph(height=62), outputs=["4"])
    assert (err.value.node_id, err.value.field) == ("4", "height")
    assert "height from 2.height (GetImageSize): 62 is not a multiple of 4" in str(err.value)


def test_nodeforge_run_prints_what_show_value_shows(tmp_path, capsys):
    from nodeforge.cli import main
    from nodeforge.core.workflow import save_workflow

    wf = Workflow()
    wf.add("EmptyImage", {"width": 48, "height": 64, "batch_size": 3}, node_id="1")
    wf.add("GetImageSize", {}, {"image": ("1", "image")}, node_id="2")
    wf.add("MathExpression", {"expression": "a * b"}, {"a": ("2", "width"), "b": ("2", "height")}, node_id="3")
    wf.add("ShowValue", {}, {"value": ("3", "int")}, node_id="4", title="pixels")
    path = tmp_path / "size.json"
    save_workflow(wf, path)
    assert main(["run", str(path), "--out", str(tmp_path / "out"), "-q"]) == 0
    assert capsys.readouterr().err == "4 ShowValue (pixels): 3072\n"     # said even with -q; nothing to write


@pytest.mark.parametrize("width, height, longer, size", [(64, 48, 32, (32, 24)), (48, 64, 32, (24, 32)),
                                                         (30, 20, 16, (16, 10)), (20, 20, 7, (7, 7))])
def test_resize_images_by_longer_edge_sizes_and_lanczos(width, height, longer, size):
    from PIL import Image

    from nodes import geometry

    image = torch.rand(1, height, width, 3)
    out = geometry.run_resize_images_by_longer_edge(None, image, longer)["image"]
    assert tuple(out.shape) == (1, size[1], size[0], 3)       # 20 x 16 / 30 = 10.67: cut down to 10, as ComfyUI
    pil = Image.fromarray((image[0].numpy() * 255).round().astype("uint8")).resize(size, Image.Resampling.LANCZOS)
    assert torch.equal(out[0], torch.from_numpy(__import__("numpy").asarray(pil).astype("float32") / 255))


def test_image_concatenate_as_kjnodes_joins_them():
    from nodeforge.core.errors import NodeError as Error
    from nodes import geometry

    a = torch.full((2, 4, 6, 3), 0.2)                        # a batch of two, 6 wide and 4 high
    b = torch.rand(1, 8, 4, 3)                               # one image, 4 wide and 8 high
    right = geometry.run_image_concat(None, 2, "right", True, image_1=a, image_2=b)["image"]
    assert right.shape == (2, 4, 6 + 2, 3)                   # b at a's height 4: 4 x 4 / 8 = 2 wide
    assert torch.equal(right[:, :, :6], a) and torch.equal(right[0, :, 6:], right[1, :, 6:])   # b's last repeated
    assert torch.equal(right[0, :, 6:], geometry.scale_image(b, 2, 4, "lanczos", "disabled")[0])
    down = geometry.run_image_concat(None, 2, "down", True, image_1=a, image_2=b)["image"]
    assert down.shape == (2, 4 + 12, 6, 3)                   # b at a's width 6: 6 / (4 / 8) = 12 high
    up = geometry.run_image_concat(None, 3, "up", True, image_1=a, image_2=a, image_3=a)["image"]
    assert up.shape == (2, 12, 6, 3) and torch.equal(up[:, 8:], a)
    rgba = torch.cat([a, torch.zeros(2, 4, 6, 1)], -1)
    mixed = geometry.run_image_concat(None, 2, "left", False, image_1=rgba, image_2=a)["image"]
    assert mixed.shape == (2, 4, 12, 4) and torch.equal(mixed[..., :6, 3], torch.ones(2, 4, 6))  # opaque alpha added
    with pytest.raises(Error, match="the images' heights differ \\(4 and 8 pixels\\); turn match_image_size on"):
        geometry.run_image_concat(None, 2, "right", False, image_1=a, image_2=b)
    with pytest.raises(Error, match="image_3 is not connected but inputcount is 3"):
        geometry.run_image_concat(None, 3, "right", True, image_1=a, image_2=b)
