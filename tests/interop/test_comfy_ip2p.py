"""CosXL Edit's graph: InstructPixToPixConditioning and DualCFGGuider come in as NodeForge's nodes of the same
names with their wiring (the image's latent and both prompts out of the conditioning; three prompts into the
guider) and go back as the same classes, in an API prompt and a UI file (comfy-ip2p-edit-*.json, with newer
ComfyUI's style widget; corpus file 027 has the older two widgets and imports the same)."""
from __future__ import annotations

import pytest

from nodeforge.interop import export_comfyui_api, export_comfyui_ui

FORMATS = ["comfy-ip2p-edit-0.4.json", "comfy-ip2p-edit-api.json"]


@pytest.mark.parametrize("name", FORMATS)
def test_the_edit_graph_comes_in_wired_as_in_comfyui(read, name):
    imported = read(name)
    nodes = imported.workflow.nodes
    assert (nodes["5"].type, nodes["5"].inputs) == ("InstructPixToPixConditioning", {
        "positive": ("2", "conditioning"), "negative": ("3", "conditioning"), "vae": ("1", "vae"),
        "pixels": ("4", "image")})
    assert (nodes["6"].type, nodes["6"].params, nodes["6"].inputs) == (
        "DualCFGGuider", {"cfg_conds": 3.0, "cfg_cond2_negative": 1.5},
        {"unet": ("1", "unet"), "cond1": ("5", "positive"), "cond2": ("5", "negative"), "negative": ("3", "conditioning")})
    assert nodes["10"].inputs["latent"] == ("5", "latent") and nodes["10"].inputs["guider"] == ("6", "guider")
    assert not [line for line in imported.warnings if not line.startswith("missing ")]


@pytest.mark.parametrize("name", FORMATS)
def test_the_edit_graph_exports_as_the_same_classes(read, registry, name):
    workflow = read(name).workflow
    prompt = export_comfyui_api(workflow, registry=registry)
    assert (prompt["6"]["class_type"], prompt["6"]["inputs"]) == ("DualCFGGuider", {
        "cfg_conds": 3.0, "cfg_cond2_negative": 1.5, "style": "regular", "model": ["1", 0], "cond1": ["5", 0],
        "cond2": ["5", 1], "negative": ["3", 0]})
    assert (prompt["5"]["class_type"], prompt["5"]["inputs"]) == ("InstructPixToPixConditioning", {
        "positive": ["2", 0], "negative": ["3", 0], "vae": ["1", 2], "pixels": ["4", 0]})
    assert prompt["10"]["inputs"]["latent_image"] == ["5", 2]
    ui = {node["id"]: node for node in export_comfyui_ui(workflow, registry=registry)["nodes"]}
    assert (ui[6]["type"], ui[6]["widgets_values"]) == ("DualCFGGuider", [3.0, 1.5, "regular"])
    assert [o["type"] for o in ui[5]["outputs"]] == ["CONDITIONING", "CONDITIONING", "LATENT"]


def test_a_nested_style_is_said_once_and_guides_as_regular(read, tmp_path):
    """Newer ComfyUI's style widget: 'nested' is not NodeForge's combination, and the import says so."""
    import json
    from pathlib import Path

    ui = json.loads((Path(__file__).resolve().parent / "data" / "comfy-ip2p-edit-0.4.json").read_text())
    next(n for n in ui["nodes"] if n["type"] == "DualCFGGuider")["widgets_values"][2] = "nested"
    (tmp_path / "nested.json").write_text(json.dumps(ui))
    imported = read(tmp_path / "nested.json")
    assert imported.workflow.nodes["6"].params == {"cfg_conds": 3.0, "cfg_cond2_negative": 1.5}
    assert [line for line in imported.warnings if not line.startswith("missing ")] == [
        "node 6 (DualCFGGuider): style 'nested' is not supported: it guides as regular (negative + cfg_cond2_negative "
        "x (cond2 - negative) + cfg_conds x (cond1 - cond2)), so the result differs from ComfyUI's"]
