"""A constant node linked to an input that is no widget (KJNodes' Simple Calculator's variables.b, as corpus
file 041's upscale factor reaches it) comes in as a Math Expression giving that number, wired where the
constant was (before, the value was dropped without a word and the calculator said 'unknown name b'); a text
constant on such an input is said in one line (issue 30)."""
from __future__ import annotations

import json

PROMPT = {
    "1": {"class_type": "PrimitiveFloat", "inputs": {"value": 1.5}},
    "2": {"class_type": "PrimitiveInt", "inputs": {"value": 3}},
    "3": {"class_type": "SimpleCalculatorKJ",
          "inputs": {"expression": "a * b", "variables.a": ["1", 0], "variables.b": ["2", 0]}},
    "4": {"class_type": "PrimitiveString", "inputs": {"value": "two"}},
    "5": {"class_type": "SimpleCalculatorKJ", "inputs": {"expression": "a + 1", "variables.a": ["4", 0]}},
    "6": {"class_type": "EmptyLatentImage", "inputs": {"width": ["3", 1], "height": 64, "batch_size": 1}},
    "7": {"class_type": "EmptyLatentImage", "inputs": {"width": ["5", 1], "height": 64, "batch_size": 1}},
}


def test_a_number_on_an_input_comes_in_as_a_math_expression_giving_it(read, validate, tmp_path):
    path = tmp_path / "constants-api.json"
    path.write_text(json.dumps(PROMPT))
    imported = read(path)
    nodes = imported.workflow.nodes
    assert nodes["3"].inputs == {"a": ("3.variables.a", "float"), "b": ("3.variables.b", "int")}
    assert (nodes["3.variables.a"].type, nodes["3.variables.a"].params) == (
        "MathExpression", {"expression": "1.5", "style": "ComfyUI"})
    assert nodes["3.variables.b"].params["expression"] == "3"
    assert "a" not in nodes["5"].inputs
    said = [line for line in imported.warnings if line.startswith("node 5 ")]
    assert said == ["node 5 (SimpleCalculatorKJ), variables.a: its value 'two' comes from a constant, which "
                    "NodeForge cannot pass into this input; the input is left unconnected"]
    assert [p for p in validate(imported.workflow) if p.node_id is not None] == []   # (no output node: one line)


def test_the_math_expression_gives_the_constant_so_the_calculator_works_it_out(read, tmp_path):
    from nodeforge import Engine

    path = tmp_path / "constants-api.json"
    path.write_text(json.dumps({k: v for k, v in PROMPT.items() if k in ("1", "2", "3")}))
    workflow = read(path).workflow
    out = Engine(device="cpu").run(workflow, outputs=["3"]).outputs["3"]
    assert (out["float"], out["int"]) == (4.5, 4)
