"""A plain value on a wire feeds another node's param (ComfyUI's widget converted to an input): an INT output into
an INT param, an INT into a FLOAT, text into a choice; validate refuses mistyped wires, wires into file params and
unknown names, each naming the node and the field; the run checks the value as the param would (range, multiple,
choices) and names the wire; the cache follows the wire's value."""
from __future__ import annotations

import pytest

from nodeforge import Engine, Workflow
from nodeforge.core.errors import NodeExecutionError
from nodeforge.core.models import ModelPaths
from nodeforge.core.registry import Registry
from nodeforge.core.spec import Input, NodeSpec, Output, Param
from nodeforge.core.types import FileKind, ParamKind, feeds_param

CALLS: list[str] = []


def _number(ctx, value):
    CALLS.append("number")
    return {"int": value, "float": value / 2, "text": str(value)}


def _area(ctx, width, height, scale, mode):
    CALLS.append("area")
    return {"result": f"{width * height * scale} {mode}"}


SPECS = [
    NodeSpec("Number", "t", _number, params=(Param.int("value", 8),),
             outputs=(Output("int", "INT"), Output("float", "FLOAT"), Output("text", "STRING"))),
    NodeSpec("Area", "t", _area,
             params=(Param.int("width", 8, min=8, max=64, multiple_of=8), Param.int("height", 8, min=8, max=64),
                     Param.float("scale", 1.0), Param.choice("mode", ("8", "16"), default="8")),
             outputs=(Output("result", "STRING"),), output_node=True),
    NodeSpec("Loads", "t", lambda ctx, **kw: {"image": None},
             params=(Param.string("path", "x.png", file=FileKind.IMAGE),), outputs=(Output("image", "IMAGE"),)),
    NodeSpec("Shows", "t", lambda ctx, image: {}, inputs=(Input("image", "IMAGE"),), output_node=True),
]


@pytest.fixture
def engine(tmp_path):
    CALLS.clear()
    return Engine(device="cpu", output_dir=tmp_path, registry=Registry(SPECS),
                  model_paths=ModelPaths(roots=[tmp_path], include_builtin=False))


def graph(value: int = 16, **wires) -> Workflow:
    wf = Workflow()
    wf.add("Number", {"value": value}, node_id="1")
    wf.add("Area", {"width": 8, "height": 8}, {name: ("1", out) for name, out in wires.items()}, node_id="2")
    return wf


def test_the_kinds_a_wire_may_feed():
    assert feeds_param("INT", ParamKind.INT) and feeds_param("INT", ParamKind.FLOAT)
    assert not feeds_param("FLOAT", ParamKind.INT) and not feeds_param("STRING", ParamKind.INT)
    assert feeds_param("STRING", ParamKind.CHOICE) and feeds_param("*", ParamKind.INT)
    assert not feeds_param("IMAGE", ParamKind.STRING)


def test_an_int_output_feeds_int_and_float_params_and_text_a_choice(engine):
    result = engine.run(graph(16, width="int", height="int", scale="int", mode="text"), outputs=["2"])
    assert result.outputs["2"] == {"result": "4096.0 16"}     # 16 x 16 x 16.0, mode "16" from the text


def test_the_wires_value_replaces_the_saved_one_and_the_cache_follows_it(engine):
    assert engine.run(graph(16, width="int"), outputs=["2"]).outputs["2"] == {"result": "128.0 8"}
    assert engine.run(graph(16, width="int"), outputs=["2"]).cached == ["1", "2"]
    CALLS.clear()
    assert engine.run(graph(24, width="int"), outputs=["2"]).outputs["2"] == {"result": "192.0 8"}
    assert CALLS == ["number", "area"]


def test_validate_names_each_wrong_wire(engine):
    wf = graph(16, width="float", height="text")
    wf.nodes["2"].inputs["depth"] = ("1", "int")
    messages = sorted((p.node_id, p.field, p.message) for p in engine.validate(wf))
    assert messages == [
        ("2", "depth", "Area has no input or param 'depth' (inputs and params: width, height, scale, mode)"),
        ("2", "height", "an INT setting cannot take 1.text, which gives STRING; link an INT output to it or remove "
                        "the link"),
        ("2", "width", "an INT setting cannot take 1.float, which gives FLOAT; link an INT output to it or remove "
                       "the link"),
    ]


def test_a_file_param_is_never_fed_by_a_wire(engine):
    wf = Workflow()
    wf.add("Number", {}, node_id="1")
    wf.add("Loads", {"path": "x.png"}, {"path": ("1", "text")}, node_id="2")
    problems = [p for p in engine.validate(wf) if p.field == "path" and "wire" in p.message]
    assert [p.message for p in problems] == [
        "names a file, which NodeForge reads from the node's own setting, not from a wire: remove the link from "
        "1.text and choose the file on the node"]


@pytest.mark.parametrize("value, wire, message", [
    (12, "width", "width from 1.int (Number): 12 is not a multiple of 8"),
    (128, "height", "height from 1.int (Number): 128 is above the maximum 64"),
    (32, "mode", "mode from 1.text (Number): '32' is not one of: 8, 16"),
])
def test_the_run_checks_the_wires_value_as_the_param_would(engine, value, wire, message):
    out = {"width": "int", "height": "int", "mode": "text"}[wire]
    with pytest.raises(NodeExecutionError) as err:
        engine.run(graph(value, **{wire: out}), outputs=["2"])
    assert (err.value.node_id, err.value.field) == ("2", wire)
    assert str(err.value).count(message) == 1 and "set " + wire + " on the node" in str(err.value)


def test_a_saved_value_out_of_range_is_no_problem_while_a_wire_feeds_it(engine):
    wf = graph(16, width="int")
    wf.nodes["2"].params["width"] = 7          # not a multiple of 8: the wire's 16 is used instead
    assert engine.validate(wf) == []
    assert engine.run(wf, outputs=["2"]).outputs["2"] == {"result": "128.0 8"}
