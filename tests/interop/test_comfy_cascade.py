"""Stable Cascade's ComfyUI classes (StableCascade_EmptyLatentImage, _StageB_Conditioning, _StageC_VAEEncode,
ModelSamplingStableCascade and Inspire's StableCascade_CheckpointLoader): the UI and API fixtures import as the
same NodeForge graph and go back to ComfyUI with every mapped field (the values are tested in
tests/nodes/test_nodes_cascade.py)."""
from __future__ import annotations

import json
from pathlib import Path

DATA = Path(__file__).parent / "data"
CASCADE = ("52", "53", "49", "34", "36")


def _graph(wf):
    return {nid: (n.type, n.params, dict(n.inputs)) for nid, n in wf.nodes.items()}


def test_the_ui_and_api_forms_import_as_the_same_cascade_graph(registry):
    from nodeforge.interop import read_workflow

    api = read_workflow(DATA / "comfy-cascade-api.json", registry=registry).workflow
    ui = read_workflow(DATA / "comfy-cascade-0.4.json", registry=registry).workflow
    assert _graph(ui) == _graph(api)
    assert _graph(api)["52"] == ("CascadeCheckpointLoader", {"stage_b": "stable_cascade_stage_b.safetensors",
                                                             "stage_c": "stable_cascade_stage_c.safetensors"}, {})
    assert _graph(api)["49"] == ("StageCVAEEncode", {"compression": 32},
                                 {"image": ("48", "image"), "vae": ("52", "c_vae")})
    assert _graph(api)["34"][:2] == ("EmptyLatentCascade",
                                     {"width": 1024, "height": 768, "compression": 42, "batch_size": 1})
    assert _graph(api)["36"] == ("StageBConditioning", {}, {"conditioning": ("6", "conditioning"),
                                                            "stage_c": ("3", "latent")})
    assert _graph(api)["53"] == ("ModelSamplingStableCascade", {"shift": 2.5}, {"unet": ("52", "c_model")})
    assert api.nodes["33"].inputs["latent"] == ("49", "stage_b") and api.nodes["3"].inputs["unet"] == ("53", "unet")


def test_cascade_classes_export_back_to_the_same_api_prompt_and_ui_workflow(registry):
    from nodeforge.interop import export_comfyui_api, export_comfyui_ui, read_workflow

    original = json.loads((DATA / "comfy-cascade-api.json").read_text())
    wf = read_workflow(DATA / "comfy-cascade-api.json", registry=registry).workflow
    exported = export_comfyui_api(wf, registry=registry)
    for nid in CASCADE:
        assert exported[nid]["class_type"] == original[nid]["class_type"], nid
        assert exported[nid]["inputs"] == original[nid]["inputs"], nid
    ui = export_comfyui_ui(wf, registry=registry)
    again = read_workflow(ui, registry=registry).workflow
    assert _graph(again) == _graph(wf)
