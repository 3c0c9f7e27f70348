"""An API prompt's widget linked from a node NodeForge cannot run (a placeholder) takes that node's own value of the
same name (corpus 037: KSampler's steps, cfg, sampler and scheduler from Image Saver's Input Parameters), so the graph
runs with the file's settings and exports back, API prompt and UI file, as the file had it
(comfy-widget-from-placeholder-api.json)."""
from __future__ import annotations

import json

DATA = __import__("pathlib").Path(__file__).resolve().parent / "data"


def test_a_widget_fed_by_an_unrunnable_node_takes_that_nodes_value_of_the_same_name(read):
    imported = read("comfy-widget-from-placeholder-api.json")
    sampler = imported.workflow.nodes["6"]
    assert sampler.params == {"seed": 3, "steps": 28, "cfg": 6, "sampler": "euler_ancestral", "schedule": "normal",
                              "denoise": 1}
    assert "node 6 (KSampler), sampler_name: its value comes from node 5, which NodeForge cannot run; using " \
           "'euler_ancestral', node 5's sampler (the link is kept for export)" in imported.warnings


def test_it_exports_back_as_the_file_had_it(read, registry):
    from nodeforge.interop import export_comfyui_api, export_comfyui_ui

    original = json.loads((DATA / "comfy-widget-from-placeholder-api.json").read_text())
    workflow = read("comfy-widget-from-placeholder-api.json").workflow
    assert export_comfyui_api(workflow, registry=registry)["6"]["inputs"] == original["6"]["inputs"]
    ui = export_comfyui_ui(workflow, registry=registry)
    ksampler = next(n for n in ui["nodes"] if n["id"] == 6)
    assert ksampler["widgets_values"][2:] == [28, 6, "euler_ancestral", "normal", 1]
    again = read(json.loads(json.dumps(ui))).workflow
    assert again.nodes["6"].params == workflow.nodes["6"].params


def test_without_a_value_of_that_name_the_default_stays_and_says_so(read):
    prompt = json.loads((DATA / "comfy-widget-from-placeholder-api.json").read_text())
    del prompt["5"]["inputs"]["cfg"]
    imported = read(prompt)
    assert "cfg" not in imported.workflow.nodes["6"].params
    assert "node 6 (KSampler), cfg: its value comes from node 5, which NodeForge cannot run; using NodeForge's " \
           "default (the link is kept for export)" in imported.warnings
