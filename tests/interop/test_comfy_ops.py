"""ComfyUI's core latent, mask and image operations (issue 30, item 2) come in as NodeForge nodes
with every value and link, in a UI file and an API prompt alike, and go back under their ComfyUI
names (comfy-ops-*.json, one graph in both forms)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from nodeforge.interop import comfy_export, comfy_packs, comfy_table

DATA = Path(__file__).resolve().parent / "data"
FORMATS = ["comfy-ops-0.4.json", "comfy-ops-api.json"]

OPS = {
    "7": ("LatentComposite", {"x": 64, "y": 0, "feather": 16},
          {"destination": ("6", "latent"), "source": ("5", "latent")}),
    "8": ("LatentCrop", {"width": 64, "height": 64, "x": 32, "y": 0}, {"latent": ("7", "latent")}),
    "9": ("LatentAdd", {}, {"latent_1": ("8", "latent"), "latent_2": ("5", "latent")}),
    "10": ("LatentSubtract", {}, {"latent_1": ("9", "latent"), "latent_2": ("5", "latent")}),
    "11": ("LatentMultiply", {"multiplier": 1.25}, {"latent": ("10", "latent")}),
    "12": ("LatentFlip", {"flip_method": "y-axis: horizontally"}, {"latent": ("11", "latent")}),
    "13": ("LatentRotate", {"rotation": "90 degrees"}, {"latent": ("12", "latent")}),
    "14": ("VAEDecode", {}, {"latent": ("13", "latent"), "vae": ("1", "vae")}),
    "17": ("FeatherMask", {"left": 4, "top": 0, "right": 8, "bottom": 2}, {"mask": ("16", "mask")}),
    "18": ("ThresholdMask", {"value": 0.3}, {"mask": ("17", "mask")}),
    "19": ("MaskComposite", {"x": 8, "y": 16, "operation": "xor"},
           {"destination": ("17", "mask"), "source": ("18", "mask")}),
    "20": ("CropMask", {"x": 0, "y": 0, "width": 32, "height": 32}, {"mask": ("19", "mask")}),
}


@pytest.mark.parametrize("name", FORMATS)
def test_each_operation_comes_in_with_its_values_and_links(read, name):
    imported = read(name)
    nodes = imported.workflow.nodes
    for nid, (node_type, params, inputs) in OPS.items():
        assert (nodes[nid].type, nodes[nid].params, nodes[nid].inputs) == (node_type, params, inputs), nid
    assert all(n.type != "comfyui.Placeholder" for n in nodes.values())
    assert [line for line in imported.warnings if not line.startswith("missing ")] == []


@pytest.mark.parametrize("name", FORMATS)
def test_the_graph_validates_and_exports_back_under_comfyuis_names(read, registry, name):
    from nodeforge import Engine
    from nodeforge.core.models import ModelPaths

    workflow = read(name).workflow
    engine = Engine(device="cpu", registry=registry, model_paths=ModelPaths(roots=[], include_builtin=False))
    assert engine.validate(workflow, check_files=False) == []
    prompt = comfy_export.export_comfyui_api(workflow, registry=registry)
    original = json.loads((DATA / "comfy-ops-api.json").read_text())
    for nid in original:
        assert prompt[nid]["class_type"] == original[nid]["class_type"], nid
        assert prompt[nid]["inputs"] == original[nid]["inputs"], nid


def test_no_class_is_both_mapped_and_listed_as_unsupported():
    assert not comfy_packs.CORE & set(comfy_table.BY_COMFY)
