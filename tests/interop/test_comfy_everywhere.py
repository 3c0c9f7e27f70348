"""cg-use-everywhere's Anything Everywhere (issue 30): on import the node becomes the links it makes in
ComfyUI's editor, from the file's own record (`extra.ue_links`) or, without one, worked out by type
within the node's title/input/group/colour restrictions; the node is left out with one line saying
what it fed. comfy-everywhere.json is txt2img with the model, CLIP and VAE sent by one such node (and a
second VAE Decode in a group); it is not a *-0.4.json fixture, since the import adds links by design."""
from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from nodeforge.interop import read_workflow

DATA = Path(__file__).resolve().parent / "data"
FED = {("3", "unet"): ("4", "unet"), ("6", "clip"): ("4", "clip"), ("7", "clip"): ("4", "clip"),
       ("8", "vae"): ("4", "vae"), ("11", "vae"): ("4", "vae")}


def _file(**ue: object) -> dict:
    data = json.loads((DATA / "comfy-everywhere.json").read_text())
    sender = next(n for n in data["nodes"] if n["type"] == "Anything Everywhere")
    sender["properties"]["ue_properties"].update(ue)
    return data


def _worked_out(data: dict) -> dict:
    del data["extra"]["ue_links"]
    return data


def _fed(workflow) -> dict:
    return {(nid, name): workflow.nodes[nid].inputs.get(name) for nid, name in FED}


def test_the_recorded_links_replace_the_node_and_the_graph_validates(registry, validate):
    imported = read_workflow(_file(), registry=registry)
    workflow = imported.workflow
    assert _fed(workflow) == FED
    assert "10" not in workflow.nodes and all(n.type != "comfyui.Placeholder" for n in workflow.nodes.values())
    assert [w for w in imported.warnings if "Everywhere" in w] == [
        "node 10 (Anything Everywhere): its values now feed node 3's model, node 6's clip, node 7's clip, node 8's "
        "vae, node 11's vae directly (as cg-use-everywhere recorded when the file was saved); the node itself is "
        "left out"]
    assert validate(workflow) == []


def test_without_a_record_the_same_links_are_worked_out_by_type(registry):
    imported = read_workflow(_worked_out(_file()), registry=registry)
    assert _fed(imported.workflow) == FED
    assert any("(to every unconnected input of that type, as cg-use-everywhere does)" in w for w in imported.warnings)


@pytest.mark.parametrize("ue, fed", [
    ({"group_restricted": 1}, {("11", "vae")}),                       # only inside its group "Second decode"
    ({"group_restricted": 2}, {("3", "unet"), ("6", "clip"), ("7", "clip"), ("8", "vae")}),
    ({"title_regex": "Decode 2$"}, {("11", "vae")}),
    ({"title_regex": "Decode 2$", "title_regex_invert": True}, {("3", "unet"), ("6", "clip"), ("7", "clip"),
                                                                ("8", "vae")}),
    ({"input_regex": "^(vae|model)$"}, {("3", "unet"), ("8", "vae"), ("11", "vae")}),
    ({"group_regex": "decode"}, {("11", "vae")}),
])
def test_the_nodes_restrictions_choose_the_inputs_it_feeds(registry, ue, fed):
    workflow = read_workflow(_worked_out(_file(**ue)), registry=registry).workflow
    assert {key for key, source in _fed(workflow).items() if source is not None} == fed


def test_colour_restriction_keeps_to_nodes_of_the_senders_colour_or_the_others(registry):
    data = _worked_out(_file(color_restricted=1))
    for node in data["nodes"]:
        if node["id"] in (10, 8):
            node["color"] = "#223"
    assert {k for k, s in _fed(read_workflow(copy.deepcopy(data), registry=registry).workflow).items() if s} == \
        {("8", "vae")}
    next(n for n in data["nodes"] if n["id"] == 10)["properties"]["ue_properties"]["color_restricted"] = 2
    assert {k for k, s in _fed(read_workflow(data, registry=registry).workflow).items() if s} == \
        {("3", "unet"), ("6", "clip"), ("7", "clip"), ("11", "vae")}


def test_two_senders_of_one_type_are_left_to_the_user_with_a_line_naming_them(registry):
    data = _worked_out(_file())
    second = copy.deepcopy(next(n for n in data["nodes"] if n["id"] == 10))
    second.update(id=13, inputs=[dict(second["inputs"][2], link=15)])
    data["nodes"].append(second)
    data["links"].append([15, 4, 2, 13, 0, "VAE"])
    imported = read_workflow(data, registry=registry)
    assert {k for k, s in _fed(imported.workflow).items() if s} == {("3", "unet"), ("6", "clip"), ("7", "clip")}
    assert "nodes 10, 13 (Anything Everywhere) all send VAE: which one feeds an input is the pack's choice; link " \
           "those inputs yourself" in imported.warnings


def test_an_api_prompt_leaves_the_node_out_as_its_links_are_already_there(registry):
    prompt = {"1": {"class_type": "VAELoader", "inputs": {"vae_name": "vae.safetensors"}},
              "2": {"class_type": "Anything Everywhere", "inputs": {"anything": ["1", 0]}}}
    imported = read_workflow(prompt, registry=registry)
    assert list(imported.workflow.nodes) == ["1"]
    assert "node 2 (Anything Everywhere): left out; in an API prompt the inputs it fed are already linked" in \
        imported.warnings


def test_exported_back_the_links_are_plain_links(registry):
    from nodeforge.interop import export_comfyui_ui

    exported = export_comfyui_ui(read_workflow(_file(), registry=registry).workflow, registry=registry)
    assert "Anything Everywhere" not in {n["type"] for n in exported["nodes"]}
    decode = next(n for n in exported["nodes"] if n["id"] == 11)
    assert next(p for p in decode["inputs"] if p["name"] == "vae")["link"] is not None


def test_a_recorded_link_to_a_slot_the_node_lacks_is_passed_over(registry):
    data = _file()
    data["extra"]["ue_links"] += [{"downstream": 8, "downstream_slot": -1, "upstream": "4", "upstream_slot": 2,
                                   "controller": 10, "type": "VAE"},
                                  {"downstream": 8, "downstream_slot": 7, "upstream": "4", "upstream_slot": 2,
                                   "controller": 10, "type": "VAE"}]
    imported = read_workflow(data, registry=registry)
    assert _fed(imported.workflow) == FED
    assert imported.workflow.nodes["8"].inputs["latent"] == ("3", "latent")
