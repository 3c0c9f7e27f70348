"""ComfyUI's edit-model classes (issue 30, corpus 042/045/047): ReferenceLatent, FluxKontextMultiReferenceLatentMethod,
FluxKontextImageScale and CFGNorm come in as NodeForge's nodes of those jobs from a UI 0.4 file and an API prompt
alike (comfy-kontext-*.json: a FLUX.1 Kontext edit with two reference images, our own graph), validate, and go back
under their ComfyUI names with the same values and links."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from nodeforge.interop import comfy_packs, comfy_table

DATA = Path(__file__).resolve().parent / "data"

FORMATS = ["comfy-kontext-0.4.json", "comfy-kontext-api.json"]
EDIT_CLASSES = ("ReferenceLatent", "FluxKontextMultiReferenceLatentMethod", "FluxKontextImageScale", "CFGNorm")


@pytest.mark.parametrize("name", FORMATS)
def test_the_kontext_edit_comes_in_with_its_references_method_scale_and_cfg_norm(read, name):
    imported = read(name)
    nodes = imported.workflow.nodes
    assert all(n.type != "comfyui.Placeholder" for n in nodes.values())
    assert (nodes["5"].type, nodes["5"].inputs) == ("FluxKontextImageScale", {"image": ("4", "image")})
    assert (nodes["8"].type, nodes["8"].inputs) == (
        "ReferenceLatent", {"conditioning": ("7", "conditioning"), "latent": ("6", "latent")})
    assert nodes["11"].inputs == {"conditioning": ("8", "conditioning"), "latent": ("10", "latent")}
    assert (nodes["12"].type, nodes["12"].params) == ("ReferenceLatentMethod", {"reference_latents_method": "index"})
    assert nodes["15"].inputs == {"conditioning": ("14", "conditioning"), "latent": ("6", "latent")}
    assert (nodes["16"].type, nodes["16"].params, nodes["16"].inputs) == ("CFGNorm", {"strength": 0.9},
                                                                          {"unet": ("1", "unet")})
    assert nodes["18"].inputs["unet"] == ("16", "unet") and nodes["18"].inputs["negative"] == ("15", "conditioning")
    assert not [line for line in imported.warnings if not line.startswith("missing ")]


@pytest.mark.parametrize("name", FORMATS)
def test_the_kontext_edit_validates_and_exports_back_with_the_same_values(exported_back, name):
    back = exported_back(name, "comfy-kontext-api.json", valid=True)
    back.assert_kept(["5", "8", "11", "12", "15", "16", "18"])


def test_cfg_norm_with_pre_cfg_on_warns_that_nodeforge_normalises_after_cfg(read, tmp_path):
    workflow = json.loads((DATA / "comfy-kontext-0.4.json").read_text())
    for node in workflow["nodes"]:
        if node["type"] == "CFGNorm":
            assert node["widgets_values"] == [0.9, False]   # newer ComfyUI files carry pre_cfg (off)
            node["widgets_values"] = [0.9, True]
    source = tmp_path / "pre.json"
    source.write_text(json.dumps(workflow))
    warnings = [line for line in read(source).warnings if not line.startswith("missing ")]
    assert warnings == ["node 16 (CFGNorm): pre_cfg on is not supported: NodeForge normalises after CFG (pre_cfg "
                        "off), so the result differs from ComfyUI's"]


def test_the_edit_classes_are_mapped_and_no_longer_listed_as_unsupported():
    for name in EDIT_CLASSES:
        assert name in comfy_table.BY_COMFY and name not in comfy_packs.CORE
