"""Import -> export -> import gives the same workflow; exporting refuses what ComfyUI cannot take."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from nodeforge.core.errors import WorkflowError
from nodeforge.interop import ExportError, export_comfyui_api, read_workflow
from nodeforge.paths import builtin_dir

DATA = Path(__file__).resolve().parent / "data"


def graph_of(workflow):
    return {nid: (n.type, n.params, n.inputs, n.title) for nid, n in workflow.nodes.items()}


def comfy_records(workflow):
    """The per-node records re-export reads, for the nodes NodeForge maps (placeholders' port types
    are what each file could tell, so they are left out)."""
    return {nid: n.extra.get("comfyui") for nid, n in workflow.nodes.items() if n.type != "comfyui.Placeholder"}


@pytest.mark.parametrize("name", ["all-nodes-0.4.json", "all-nodes-1.json", "all-nodes-api.json",
                                  "txt2img-0.4.json", "subgraph-1.json", "controlnet-0.4.json",
                                  "controlnet-api.json", "comfy-extras-0.4.json", "comfy-extras-api.json",
                                  "sdxl-refiner-0.4.json", "sdxl-refiner-api.json", "comfy-batch-api.json",
                                  "comfy-sd3-0.4.json", "comfy-sd3-api.json"])
def test_import_export_import_is_identical(read, registry, no_models, name):
    first = read(name).workflow
    prompt = export_comfyui_api(first, registry=registry)
    # What ComfyUI's /prompt takes: every node a class and inputs, every link [id, slot] to a node.
    for nid, entry in prompt.items():
        assert set(entry) == {"class_type", "inputs", "_meta"}
        for value in entry["inputs"].values():
            if isinstance(value, list) and len(value) == 2 and isinstance(value[1], int):
                assert value[0] in prompt, (nid, value)
    again = read_workflow(json.loads(json.dumps(prompt)), registry=registry, model_paths=no_models).workflow
    muted = set(first.ui.get("muted", []))
    bypassed = set(first.ui.get("bypassed", []))
    # The API prompt is the graph as it runs: muted and bypassed nodes are not in it.
    expected = {nid: node for nid, node in graph_of(first).items() if nid not in muted | bypassed}
    if bypassed:
        expected["18"] = expected["18"][:2] + ({"image": ("16", "image")},) + expected["18"][3:]
    assert graph_of(again) == expected
    assert comfy_records(again) == {nid: r for nid, r in comfy_records(first).items() if nid in expected}


def test_export_then_import_then_export_is_a_fixed_point(read, registry, no_models):
    prompt = export_comfyui_api(read("all-nodes-api.json").workflow, registry=registry)
    again = export_comfyui_api(read_workflow(prompt, registry=registry, model_paths=no_models).workflow,
                               registry=registry)
    assert again == prompt


def test_the_api_prompt_carries_comfyui_names_and_values(read, registry):
    prompt = export_comfyui_api(read("all-nodes-0.4.json").workflow, registry=registry)
    assert prompt["10"] == {"class_type": "KSamplerAdvanced", "_meta": {"title": "KSampler (Advanced)"}, "inputs": {
        "add_noise": "enable", "noise_seed": 43, "steps": 25, "cfg": 6, "sampler_name": "euler_ancestral",
        "scheduler": "normal", "start_at_step": 20, "end_at_step": 10000, "return_with_leftover_noise": "disable",
        "model": ["3", 0], "positive": ["5", 0], "negative": ["6", 0], "latent_image": ["9", 0]}}
    assert prompt["3"] == {"class_type": "LoraLoaderModelOnly", "_meta": {"title": "LoraLoaderModelOnly"},
                           "inputs": {"lora_name": "style.safetensors", "strength_model": 0.5, "model": ["2", 0]}}
    assert prompt["25"] == {"class_type": "FooSharpen", "_meta": {"title": "FooSharpen"},
                            "inputs": {"radius": 3, "mode": "strong", "image": ["23", 0]}}
    assert prompt["26"]["inputs"] == {"images": ["25", 0]}
    assert prompt["15"]["inputs"] == {"image": "photo.png"}
    assert prompt["5"]["_meta"] == {"title": "positive"}


@pytest.mark.parametrize("name", ["comfy-extras-0.4.json", "comfy-extras-api.json"])
def test_sdxl_prompts_and_utility_classes_export_under_their_comfyui_names(exported_back, name):
    back = exported_back(name, "comfy-extras-api.json")
    back.assert_kept(["2", "3", "5", "6", "7", "9", "10", "12", "14", "15", "16", "17", "19", "20", "26", "27", "28",
                      "29", "30", "32", "33", "34", "35", "36", "37", "39", "40"])
    prompt = back.prompt
    assert prompt["18"] == {"class_type": "LoadImageMask", "_meta": {"title": "Load Image (as Mask)"},
                            "inputs": {"image": "mask.png", "channel": "red"}}
    # NodeForge loads a diff ControlNet as a plain one, and exports it so (without the model input)
    assert prompt["21"] == {"class_type": "ControlNetLoader", "_meta": {"title": "Load ControlNet Model"},
                            "inputs": {"control_net_name": "diff_control_sd15_canny_fp16.safetensors"}}
    assert prompt["24"]["class_type"] == "VAEDecode"


def test_export_names_every_node_without_a_comfyui_equivalent(registry):
    from nodeforge.core.workflow import Workflow

    wf = Workflow()
    wf.add("EmptyLatent", {"width": 64, "height": 64, "batch_size": 1}, node_id="1")
    wf.add("MyBlur", {}, {"latent": ("1", "latent")}, node_id="2")
    wf.add("MyGlow", {}, {"latent": ("2", "latent")}, node_id="3")
    with pytest.raises(ExportError) as caught:
        export_comfyui_api(wf, registry=registry)
    assert [str(p) for p in caught.value.problems] == [
        "node 2 (MyBlur): has no ComfyUI equivalent; remove it or replace it with a node ComfyUI has",
        "node 3 (MyGlow): has no ComfyUI equivalent; remove it or replace it with a node ComfyUI has"]
    assert str(caught.value) == ("node 2 (MyBlur): has no ComfyUI equivalent; remove it or replace it with a node "
                                 "ComfyUI has (and 1 more problem)")     # as ValidationError counts them
    assert caught.value.report().splitlines() == [str(p) for p in caught.value.problems]
    assert isinstance(caught.value, WorkflowError)


def test_a_placeholder_from_an_old_ui_file_cannot_be_named_and_says_so(registry):
    data = {"nodes": [{"id": 4, "type": "OldCustom", "pos": [0, 0], "size": [1, 1], "flags": {}, "order": 0,
                       "mode": 0, "properties": {}, "widgets_values": [1, "two"]}], "links": [], "version": 0.4}
    wf = read_workflow(data, registry=registry).workflow
    assert wf.nodes["4"].params == {"class_type": "OldCustom", "widgets_values": [1, "two"]}
    with pytest.raises(ExportError) as caught:
        export_comfyui_api(wf, registry=registry)
    assert str(caught.value).startswith("node 4 (OldCustom): its widget values cannot be named")


def test_staged_denoise_with_partial_strength_is_refused(registry):
    from nodeforge.core.workflow import Workflow

    wf = Workflow()
    wf.add("UNetDenoise", {"start_at_step": 5, "denoise": 0.5}, node_id="7")
    with pytest.raises(ExportError) as caught:
        export_comfyui_api(wf, registry=registry)
    assert str(caught.value).startswith("node 7 (UNetDenoise), denoise: denoise 0.5 with start/end steps has no "
                                        "ComfyUI equivalent")


@pytest.mark.parametrize("name", sorted(p.stem for p in builtin_dir("workflows").glob("*.json")))
def test_the_shipped_examples_export_and_come_back_valid(registry, name):
    from nodeforge import Engine, load_workflow
    from nodeforge.core.models import ModelPaths

    original = load_workflow(builtin_dir("workflows") / f"{name}.json")
    prompt = export_comfyui_api(original, registry=registry)
    again = read_workflow(prompt, registry=registry, model_paths=ModelPaths(roots=[])).workflow
    assert list(again.nodes) == list(original.nodes)
    for nid, node in original.nodes.items():
        assert again.nodes[nid].type == node.type
        assert again.nodes[nid].inputs == node.inputs, nid
    again.source = original.source   # images are found beside the example, as in the original
    engine = Engine(device="cpu", registry=registry, model_paths=ModelPaths(roots=[]))
    assert engine.validate(again) == []


def test_a_graph_left_at_its_defaults_exports_every_input_comfyui_requires(registry):
    """A workflow file holds only the params a user changed; ComfyUI refuses a KSampler (or any node)
    missing a required input, so export writes the defaults out. Expected: ComfyUI's KSampler,
    EmptyLatentImage, CheckpointLoaderSimple and SaveImage inputs, written out by hand."""
    from nodeforge.core.workflow import Workflow

    wf = Workflow()
    ckpt = wf.add("CheckpointLoader", {})
    pos = wf.add("TextEncoder", {}, inputs={"clip": (ckpt, "clip")})
    neg = wf.add("TextEncoder", {}, inputs={"clip": (ckpt, "clip")})
    empty = wf.add("EmptyLatent", {})
    denoise = wf.add("UNetDenoise", {}, inputs={"unet": (ckpt, "unet"), "positive": (pos, "conditioning"),
                                               "negative": (neg, "conditioning"), "latent": (empty, "latent")})
    decode = wf.add("VAEDecode", {}, inputs={"vae": (ckpt, "vae"), "latent": (denoise, "latent")})
    wf.add("SaveImage", {}, inputs={"image": (decode, "image")})
    assert all(node.params == {} for node in wf.nodes.values())
    warnings: list[str] = []
    prompt = export_comfyui_api(wf, registry=registry, warnings=warnings)
    assert prompt["5"]["class_type"] == "KSampler"
    # "default" (the model's own spacing) has no ComfyUI name: the nearest, said, never silent
    assert [w for w in warnings if "schedule 'default'" in w and "'simple'" in w and w.startswith("node 5")]
    assert prompt["5"]["inputs"] == {"seed": 0, "steps": 20, "cfg": 7.0, "sampler_name": "euler", "scheduler": "simple",
                                     "denoise": 1.0, "model": ["1", 0], "positive": ["2", 0], "negative": ["3", 0],
                                     "latent_image": ["4", 0]}
    assert prompt["1"]["inputs"] == {"ckpt_name": "nodeforge-shapes"}
    assert prompt["2"]["inputs"] == prompt["3"]["inputs"] == {"text": "", "clip": ["1", 1]}
    assert prompt["4"]["inputs"] == {"width": 512, "height": 512, "batch_size": 1}
    assert prompt["6"]["inputs"] == {"vae": ["1", 2], "samples": ["5", 0]}
    assert prompt["7"]["inputs"] == {"filename_prefix": "nodeforge", "images": ["6", 0]}
