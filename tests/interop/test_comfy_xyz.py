"""hnmr293's XYZ plot nodes (KSamplerSetting, KSamplerXYZ, VAEDecodeBatched, GridImage; corpus 039) come in as
Sampler Settings, Sampler XYZ Plot, VAE Decode (Batched) and Save Image Grid from a UI 0.4 file and an API prompt
alike, go back as the same classes with the same values (comfy-xyz-*.json, one graph in both forms), and a list
NodeForge cannot read is refused in one line naming the node, the list and how to write it. What the nodes compute:
tests/nodes/test_nodes_xyz.py."""
from __future__ import annotations

import json

import pytest

from nodeforge.interop import comfy_packs, comfy_table

DATA = __import__("pathlib").Path(__file__).resolve().parent / "data"
FORMATS = ["comfy-xyz-0.4.json", "comfy-xyz-api.json"]
CLASSES = ("KSamplerSetting", "KSamplerXYZ", "VAEDecodeBatched", "GridImage")


@pytest.mark.parametrize("name", FORMATS)
def test_the_xyz_classes_come_in_as_nodeforge_nodes_with_their_values(read, validate, name):
    nodes = read(name).workflow.nodes
    assert {nid: (n.type, n.params, dict(n.inputs)) for nid, n in nodes.items() if int(nid) >= 5} == {
        "5": ("SamplerSettings", {"seed": 7, "steps": 20, "cfg": 7.5, "sampler": "dpmpp_2m", "schedule": "karras",
                                  "denoise": 1},
              {"unet": ("1", "unet"), "positive": ("2", "conditioning"), "negative": ("3", "conditioning"),
               "latent": ("4", "latent")}),
        "6": ("SamplerXYZ", {"seeds": "1,2", "steps": "10-20(+5)", "cfgs": "4,6", "samplers": "euler, dpmpp_2m",
                             "schedules": ""}, {"setting": ("5", "setting"), "unet": ("1", "unet")}),
        "7": ("VAEDecodeBatched", {"per_batch": 4}, {"latent": ("6", "latent"), "vae": ("1", "vae")}),
        "8": ("SaveImageGrid", {"prefix": "xyz", "columns": 6, "gap": 2}, {"image": ("7", "image")})}
    assert validate(read(name).workflow) == []


@pytest.mark.parametrize("name", FORMATS)
def test_they_export_back_as_the_same_classes_with_the_same_values(exported_back, name):
    exported_back(name, "comfy-xyz-api.json").assert_kept(["5", "6", "7", "8"])


def test_the_ui_file_goes_back_with_the_same_widgets_links_and_dict_wire(read, registry):
    from nodeforge.interop import export_comfyui_ui

    original = json.loads((DATA / "comfy-xyz-0.4.json").read_text())
    ui = export_comfyui_ui(read("comfy-xyz-0.4.json").workflow, registry=registry)
    ours = {n["id"]: n for n in ui["nodes"]}
    for node in original["nodes"]:
        assert (ours[node["id"]]["type"], ours[node["id"]]["widgets_values"]) == (node["type"], node["widgets_values"])
    assert {tuple(link[1:6]) for link in ui["links"]} == {tuple(link[1:6]) for link in original["links"]}
    assert ours[5]["outputs"][0]["type"] == "DICT"         # KSamplerSetting's wire, as ComfyUI types it
    again = read(json.loads(json.dumps(ui))).workflow
    first = read("comfy-xyz-0.4.json").workflow
    assert {k: (n.type, n.params, n.inputs) for k, n in again.nodes.items()} == \
        {k: (n.type, n.params, n.inputs) for k, n in first.nodes.items()}


def _api_with(**xyz) -> dict:
    prompt = json.loads((DATA / "comfy-xyz-api.json").read_text())
    prompt["6"]["inputs"].update(xyz)
    return prompt


def test_sampler_lists_are_mapped_name_by_name_and_back(read, registry):
    from nodeforge.interop import export_comfyui_api

    imported = read(_api_with(sampler_name="euler,dpmpp_2m_sde_gpu, dpmpp_3m_sde", scheduler="karras, simple"))
    params = imported.workflow.nodes["6"].params
    assert (params["samplers"], params["schedules"]) == ("euler, dpmpp_2m_sde, dpmpp_2m_sde", "karras, simple")
    assert any("sampler 'dpmpp_3m_sde' is not in NodeForge; using the nearest, 'dpmpp_2m_sde'" in w
               for w in imported.warnings)
    back = export_comfyui_api(imported.workflow, registry=registry)["6"]["inputs"]
    assert (back["sampler_name"], back["scheduler"]) == ("euler, dpmpp_2m_sde, dpmpp_2m_sde", "karras, simple")


@pytest.mark.parametrize("field, comfy, text, expected", [
    ("steps", "steps", "20,x", "node 6 (SamplerXYZ), steps: 'x' in '20,x' is not a whole number; write whole numbers "
                               "separated by commas (20,30,40 or 20-40(+10))"),
    ("cfgs", "cfg", "4,five", "node 6 (SamplerXYZ), cfgs: 'five' in '4,five' is not a number; write numbers "
                              "separated by commas (4,5.5,7 or 4-7(+1.5))"),
    ("seeds", "seed", "9-3", "node 6 (SamplerXYZ), seeds: the range '9-3' holds no value (its start is past its "
                             "end); write the smaller number first, e.g. 1,2,3 or 100-104"),
    ("steps", "steps", "0,20", "node 6 (SamplerXYZ), steps: 0 steps is out of range; write 1 to 1000 steps"),
    ("seeds", "seed", "0-99999999999", "node 6 (SamplerXYZ), seeds: the range '0-99999999999' holds 100000000000 "
                                       "values, more than the 4096 samplings one Sampler XYZ draws; shorten it"),
])
def test_a_list_nodeforge_cannot_read_is_one_line_naming_node_list_and_fix(read, validate, field, comfy, text,
                                                                          expected):
    problems = validate(read(_api_with(**{comfy: text})).workflow)
    assert [(p.node_id, p.field, str(p)) for p in problems] == [("6", field, expected)]
    assert "\n" not in str(problems[0])


def test_hnmrs_batch_size_name_fills_per_batch(read):
    prompt = _api_with()
    prompt["7"]["inputs"] = {"batch_size": 3, "samples": ["6", 0], "vae": ["1", 2]}
    imported = read(prompt)
    assert imported.workflow.nodes["7"].params == {"per_batch": 3}
    assert not any("node 7" in w for w in imported.warnings), imported.warnings


def test_the_classes_are_mapped_and_no_longer_placeholders():
    for name in CLASSES:
        assert name in comfy_table.BY_COMFY and name not in comfy_packs.CORE and name not in comfy_packs.EQUIVALENTS
