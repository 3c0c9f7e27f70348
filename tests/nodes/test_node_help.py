"""Node help (issue 31): every node type, param and port the built-in pack registers says what it
is for, and `nodeforge nodes` prints it. A node added without descriptions fails here."""
from __future__ import annotations

import json

import pytest

from nodeforge.core.registry import load_registry


def _registered():
    registry = load_registry()
    assert not registry.failures, registry.failures
    return [registry[name] for name in registry.types()]


def _says_more_than_its_name(description: str, *names: str) -> bool:
    text = description.strip().rstrip(".").lower()
    plain = {n.lower() for n in names} | {n.replace("_", " ").lower() for n in names}
    return bool(text) and text not in plain and len(text) >= 8


def _undescribed() -> list[str]:
    missing = []
    for spec in _registered():
        if not _says_more_than_its_name(spec.description, spec.type, spec.title):
            missing.append(f"{spec.type}: the node")
        for kind, items in (("param", spec.params), ("input", spec.inputs), ("output", spec.outputs)):
            missing += [f"{spec.type}.{item.name}: {kind}" for item in items
                        if not _says_more_than_its_name(item.description, item.name)]
    return missing


def test_every_registered_node_param_and_port_has_a_description_that_is_not_its_name():
    missing = _undescribed()
    assert not missing, ("give these a description= in their NodeSpec (nodes/__init__.py or the family's "
                         "specs): it is the tooltip on the canvas, the quick-add help and `nodeforge nodes`:\n  "
                         + "\n  ".join(missing))


def test_the_check_catches_a_name_posing_as_a_description():
    assert not _says_more_than_its_name("Steps", "steps")
    assert not _says_more_than_its_name("batch size", "batch_size")
    assert not _says_more_than_its_name("", "seed")
    assert _says_more_than_its_name("how many denoising steps", "steps")


def test_nodes_command_prints_each_description(capsys, monkeypatch):
    from nodeforge.cli import main
    from nodeforge.core import registry

    monkeypatch.delenv("NODEFORGE_NODE_PATH", raising=False)
    registry.reset_default_registry()
    try:
        assert main(["nodes", "UNetDenoise"]) == 0
        out = capsys.readouterr().out
        spec = load_registry()["UNetDenoise"]
        assert "UNetDenoise (UNet Denoise)" in out and spec.description in out
        assert f"param steps: INT (min 1, max 1000) = 20  - {spec.param('steps').description}" in out
        assert f"in   positive: CONDITIONING  - {spec.input('positive').description}" in out
        assert "LoadImage" not in out    # only the type asked for
        assert main(["nodes", "--json", "LoadImage"]) == 0
        (data,) = json.loads(capsys.readouterr().out)
        assert data["outputs"][1]["description"] == load_registry()["LoadImage"].output("mask").description
    finally:
        registry.reset_default_registry()


def test_nodes_command_refuses_an_unknown_type_in_one_line(capsys):
    from nodeforge.cli import main

    assert main(["nodes", "UNetDenoize"]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["error: unknown node type 'UNetDenoize': `nodeforge nodes` lists them all"]


@pytest.mark.parametrize("name", ["UNetDenoise", "LoadImage", "CheckpointLoader"])
def test_the_common_nodes_describe_their_params_for_an_artist(name):
    spec = load_registry()[name]
    for param in spec.params:
        assert len(param.description.split()) >= 3, (name, param.name, param.description)
