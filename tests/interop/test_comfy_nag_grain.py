"""Corpus file 041's ComfyUI NAGuidance, KJNodes' VisualizeSigmasKJ and RES4LYF's Film Grain come in as
NodeForge's Normalized Attention Guidance, Visualize Sigmas and Film Grain with their values (041's), from a
UI 0.4 file and an API prompt alike, on a Z-Image custom-sampling graph that validates, and go back under
their class names with the same values (comfy-zimage-nag-grain-*.json; issue 30)."""
from __future__ import annotations

import pytest

from nodeforge.interop import comfy_table

FORMATS = ["comfy-zimage-nag-grain-0.4.json", "comfy-zimage-nag-grain-api.json"]


@pytest.mark.parametrize("name", FORMATS)
def test_the_three_come_in_with_their_values_and_validate(read, validate, name):
    imported = read(name)
    nodes = imported.workflow.nodes
    assert (nodes["9"].type, nodes["9"].params, nodes["9"].inputs) == (
        "NormalizedAttentionGuidance", {"nag_scale": 5, "nag_alpha": 0.5, "nag_tau": 1.5}, {"unet": ("4", "unet")})
    assert (nodes["14"].type, nodes["14"].params, nodes["14"].inputs) == (
        "VisualizeSigmas", {"start_step": 0, "end_step": -1}, {"sigmas": ("8", "sigmas")})
    assert nodes["11"].inputs["sigmas"] == ("14", "sigmas")
    assert (nodes["15"].type, nodes["15"].params, nodes["15"].inputs) == (
        "FilmGrain", {"density": 0.1, "intensity": 0.2, "highlights": 1, "supersample_factor": 4, "repeats": 1},
        {"image": ("12", "image")})
    assert nodes["13"].inputs["image"] == ("15", "image")
    assert sum(line.startswith("node 15 (Film Grain): the grain is drawn from a CPU generator seeded")
               for line in imported.warnings) == 1
    assert all(n.type != "comfyui.Placeholder" for n in nodes.values())
    assert validate(imported.workflow) == []


@pytest.mark.parametrize("name", FORMATS)
def test_the_three_export_back_with_the_same_values(exported_back, name):
    back = exported_back(name, "comfy-zimage-nag-grain-api.json")
    back.assert_kept(["9", "14", "15", "11", "13"])


def test_the_classes_are_mapped():
    assert {c: comfy_table.BY_COMFY[c].nodeforge for c in ("NAGuidance", "VisualizeSigmasKJ", "Film Grain")} == {
        "NAGuidance": "NormalizedAttentionGuidance", "VisualizeSigmasKJ": "VisualizeSigmas",
        "Film Grain": "FilmGrain"}


@pytest.mark.parametrize("name", ["comfy-glsl-shader-0.4.json", "comfy-glsl-shader-api.json"])
def test_glsl_shader_comes_in_with_its_shader_and_the_constants_linked_to_its_sockets(read, validate, name):
    """ComfyUI's GLSLShader (041's Hue and Saturation subgraph holds one): Autogrow sockets images.imageN are
    inputs, floats.u_floatN / ints.u_intN take the PrimitiveFloat / PrimitiveInt linked to them, and no warning
    asks for the width and height that from_input mode leaves out (comfy-glsl-shader-*.json)."""
    imported = read(name)
    node = imported.workflow.nodes["4"]
    assert node.type == "GLSLShader" and node.inputs == {"image0": ("1", "image")}
    assert {k: v for k, v in node.params.items() if k != "fragment_shader"} == {
        "size_mode": "from_input", "u_float0": 0.5, "u_int0": 2}
    assert node.params["fragment_shader"].startswith("#version 300 es\nprecision highp float;")
    assert imported.workflow.nodes["5"].inputs["image"] == ("4", "image0")
    assert not [line for line in imported.warnings if line.startswith("node 4 ")]
    assert validate(imported.workflow) == []


def test_glsl_shader_exports_back_with_its_links_and_values(read, registry):
    from nodeforge.interop import export_comfyui_api

    prompt = export_comfyui_api(read("comfy-glsl-shader-0.4.json").workflow, registry=registry)
    node = prompt["4"]
    assert node["class_type"] == "GLSLShader" and node["inputs"]["images.image0"] == ["1", 0]
    assert (node["inputs"]["size_mode"], node["inputs"]["floats.u_float0"], node["inputs"]["ints.u_int0"]) == (
        "from_input", 0.5, 2)
    assert prompt["5"]["inputs"]["images"] == ["4", 0]


def test_glsl_shader_goes_back_to_a_ui_file_with_constants_on_its_sockets_and_custom_size_widgets(read, registry):
    """ComfyUI's UI has no widget for floats.u_floatN / ints.u_intN: a value away from 0 goes back as a
    PrimitiveFloat / PrimitiveInt linked to the socket (read back as the same value); width and height are
    listed only in custom mode, after size_mode, as ComfyUI's DynamicCombo lists them."""
    from nodeforge.interop import export_comfyui_ui, read_workflow

    workflow = read("comfy-glsl-shader-0.4.json").workflow
    ui = export_comfyui_ui(workflow, registry=registry)
    nodes = {n["id"]: n for n in ui["nodes"]}
    assert nodes[4]["widgets_values"][1:] == ["from_input"]
    linked = {i["name"]: i["link"] for i in nodes[4]["inputs"] if i["link"] is not None}
    assert set(linked) == {"images.image0", "floats.u_float0", "ints.u_int0"}
    sources = {link[0]: nodes[link[1]] for link in ui["links"]}
    assert (sources[linked["floats.u_float0"]]["type"], sources[linked["floats.u_float0"]]["widgets_values"]) == (
        "PrimitiveFloat", [0.5])
    assert (sources[linked["ints.u_int0"]]["type"], sources[linked["ints.u_int0"]]["widgets_values"]) == (
        "PrimitiveInt", [2, "fixed"])
    back = read(_saved(ui)).workflow.nodes["4"]
    assert back.params == workflow.nodes["4"].params
    workflow.nodes["4"].params.update(size_mode="custom", width=320, height=200)
    custom = {n["id"]: n for n in export_comfyui_ui(workflow, registry=registry)["nodes"]}[4]
    assert custom["widgets_values"][1:] == ["custom", 320, 200]
    assert read_workflow(_saved({**ui, "nodes": [custom if n["id"] == 4 else n for n in ui["nodes"]]}),
                         registry=registry).workflow.nodes["4"].params["width"] == 320


def _saved(data):
    import json
    import tempfile
    from pathlib import Path

    path = Path(tempfile.mkdtemp()) / "exported.json"
    path.write_text(json.dumps(data))
    return path
