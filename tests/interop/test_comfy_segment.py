"""comfyui_segment_anything's GroundingDinoModelLoader, SAMModelLoader and GroundingDinoSAMSegment come in as
NodeForge's Load Grounding DINO, Load Segment Anything and Mask from Text, their model names as the transformers
folders of the same checkpoints (GroundingDINO_SwinT_OGC -> grounding-dino-tiny, sam_vit_b -> sam-vit-base), from a
UI 0.4 file and an API prompt alike (comfy-segment-*.json), validate, and go back under their names."""
from __future__ import annotations

import pytest

from nodeforge.interop import comfy_table

NODES = {
    "2": ("GroundingDinoLoader", {"model": "grounding-dino-tiny"}, {}),
    "3": ("SegmentAnythingLoader", {"model": "sam-vit-base"}, {}),
    "4": ("TextSegment", {"prompt": "person", "threshold": 0.35},
          {"image": ("1", "image"), "grounding_dino": ("2", "grounding_dino"), "sam": ("3", "sam")}),
    "6": ("InvertMask", {}, {"mask": ("4", "mask")}),
}


@pytest.mark.parametrize("name", ["comfy-segment-0.4.json", "comfy-segment-api.json"])
def test_the_three_classes_import_as_nodeforge_nodes_and_validate(read, validate, name):
    imported = read(name)
    nodes = imported.workflow.nodes
    for nid, (node_type, params, inputs) in NODES.items():
        assert (nodes[nid].type, nodes[nid].params, nodes[nid].inputs) == (node_type, params, inputs), nid
    assert [line.split(" (node")[0] for line in imported.warnings] == [
        "missing image 'street.png'", "missing Grounding DINO model 'grounding-dino-tiny'",
        "missing Segment Anything model 'sam-vit-base'"]
    assert "--model-map 'grounding_dino:*=NAME'" in imported.warnings[1]
    assert validate(imported.workflow) == []


@pytest.mark.parametrize("name", ["comfy-segment-0.4.json", "comfy-segment-api.json"])
def test_they_export_back_under_the_packs_names(exported_back, name):
    back = exported_back(name, "comfy-segment-api.json")
    back.assert_kept(["2", "3", "4", "5", "6", "7", "8"])


def test_sam_hq_and_mobile_sam_keep_their_names():
    load = comfy_table.BY_COMFY["SAMModelLoader (segment anything)"].widgets[0].load
    assert load("sam_hq_vit_h (2.57GB)", comfy_table.Notes()) == "sam_hq_vit_h (2.57GB)"
    assert load("sam_vit_l", comfy_table.Notes()) == "sam-vit-large"
