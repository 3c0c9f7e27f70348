"""ComfyUI's three forms of one graph (UI 0.4, UI 1, API prompt) read into the same NodeForge nodes.

The all-nodes fixtures are written by hand from the format descriptions; between them they use
every ComfyUI class the table maps, a Reroute, a PrimitiveNode, notes, a group, a muted and a
bypassed node and one class NodeForge does not have.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from interop_expected import all_nodes, unet_params
from nodeforge.core.errors import WorkflowFileError
from nodeforge.interop import comfy_table

DATA = Path(__file__).resolve().parent / "data"
FORMATS = ["all-nodes-0.4.json", "all-nodes-1.json", "all-nodes-api.json"]


def nodes_of(workflow):
    return {nid: (n.type, n.params, n.inputs, n.title) for nid, n in workflow.nodes.items()}


def test_the_fixtures_use_every_class_the_table_maps():
    # every UI 0.4 fixture and every API prompt fixture (each new mapping adds its pair of files)
    ui = [n["type"] for f in sorted(DATA.glob("*-0.4.json")) for n in json.loads(f.read_text())["nodes"]]
    api = [n["class_type"] for f in sorted(DATA.glob("*-api.json")) for n in json.loads(f.read_text()).values()]
    assert set(comfy_table.BY_COMFY) <= set(ui)
    assert set(comfy_table.BY_COMFY) <= set(api)


CONTROLNET = {
    "4": ("LoadImage", {"path": "pose.png"}, {}),
    "5": ("ImageToEdges", {"low_threshold": 0.3, "high_threshold": 0.7}, {"image": ("4", "image")}),
    "6": ("ControlNetLoader", {"controlnet": "control_v11p_sd15_canny.safetensors"}, {}),
    "7": ("ControlNetApply", {"strength": 0.9, "start_percent": 0.0, "end_percent": 0.8},
          {"positive": ("2", "conditioning"), "negative": ("3", "conditioning"), "controlnet": ("6", "controlnet"),
           "image": ("5", "image")}),
    # The one-prompt form also steers the negative pass in ComfyUI: the negative runs through it.
    "8": ("ControlNetApply", {"strength": 0.5, "start_percent": 0.0, "end_percent": 1.0},
          {"positive": ("7", "positive"), "negative": ("7", "negative"), "controlnet": ("6", "controlnet"),
           "image": ("5", "image")}),
    "10": ("UNetDenoise", {"seed": 1, "steps": 20, "cfg": 5, "sampler": "euler", "schedule": "normal", "denoise": 1},
           {"unet": ("1", "unet"), "positive": ("8", "positive"), "negative": ("8", "negative"),
            "latent": ("9", "latent")}),
    "13": ("UpscaleModelLoader", {"upscale_model": "4x-UltraSharp.pth"}, {}),
    "14": ("ImageUpscaleWithModel", {}, {"upscale_model": ("13", "upscale_model"), "image": ("11", "image")}),
}


@pytest.mark.parametrize("name", ["controlnet-0.4.json", "controlnet-api.json"])
def test_controlnets_canny_and_upscale_models_field_by_field(read, name):
    imported = read(name)
    nodes = imported.workflow.nodes
    for nid, (node_type, params, inputs) in CONTROLNET.items():
        assert (nodes[nid].type, nodes[nid].params, nodes[nid].inputs) == (node_type, params, inputs), nid
    assert [line.split(":")[0] for line in imported.warnings] == [
        "missing checkpoint 'v1-5-pruned-emaonly.safetensors' (node 1)", "missing image 'pose.png' (node 4)",
        "missing ControlNet 'control_v11p_sd15_canny.safetensors' (node 6)",
        "missing upscale model '4x-UltraSharp.pth' (node 13)"]


SDXL_SIZES = {"width": 4096, "height": 4096, "crop_w": 64, "crop_h": 32, "target_width": 1024, "target_height": 768}
EXTRAS = {
    "2": ("TextEncoderSDXL", dict(SDXL_SIZES, text_g="a red circle", text_l="a circle"), {"clip": ("1", "clip")}),
    "5": ("TextEncoderSDXLRefiner", {"aesthetic_score": 6.5, "width": 2048, "height": 1536, "text": "a red circle"},
          {"clip": ("4", "clip")}),
    "6": ("ConditioningZeroOut", {}, {"conditioning": ("3", "conditioning")}),
    "7": ("ConditioningAverage", {"conditioning_to_strength": 0.75},
          {"conditioning_to": ("2", "conditioning"), "conditioning_from": ("8", "conditioning")}),
    "9": ("ConditioningConcat", {}, {"conditioning_to": ("7", "conditioning"), "conditioning_from": ("8", "conditioning")}),
    "10": ("ConditioningSetAreaPercentage", {"width": 0.5, "height": 1.0, "x": 0.25, "y": 0.0, "strength": 1.2},
           {"conditioning": ("9", "conditioning")}),
    "12": ("RepeatLatentBatch", {"amount": 4}, {"latent": ("11", "latent")}),
    "14": ("LatentFromBatch", {"batch_index": 2, "length": 1}, {"latent": ("13", "latent")}),
    "15": ("VAEDecode", {}, {"latent": ("14", "latent"), "vae": ("1", "vae")}),
    "16": ("ImageInvert", {}, {"image": ("15", "image")}),
    "17": ("VAEEncode", {}, {"image": ("16", "image"), "vae": ("1", "vae")}),
    "18": ("LoadImageMask", {"path": "mask.png", "channel": "red"}, {}),
    "19": ("InvertMask", {}, {"mask": ("18", "mask")}),
    "20": ("SetLatentMask", {}, {"latent": ("17", "latent"), "mask": ("19", "mask")}),
    "21": ("ControlNetLoader", {"controlnet": "diff_control_sd15_canny_fp16.safetensors"}, {}),
    "26": ("ImageScaleToTotalPixels", {"upscale_method": "bicubic", "megapixels": 0.25, "resolution_steps": 8},
           {"image": ("24", "image")}),
    "27": ("ImageToMask", {"channel": "green"}, {"image": ("26", "image")}),
    "28": ("GrowMask", {"expand": -3, "tapered_corners": False}, {"mask": ("27", "mask")}),
    "29": ("MaskToImage", {}, {"mask": ("28", "mask")}),
    "30": ("SolidMask", {"value": 0.25, "width": 64, "height": 48}, {}),
    "32": ("ConditioningSetTimestepRange", {"start": 0.1, "end": 0.9}, {"conditioning": ("8", "conditioning")}),
    "33": ("ConditioningSetAreaStrength", {"strength": 0.7}, {"conditioning": ("8", "conditioning")}),
    "34": ("EmptyImage", {"width": 64, "height": 48, "batch_size": 2, "color": 16711680}, {}),
    "35": ("ImageCrop", {"width": 32, "height": 32, "x": 8, "y": 8}, {"image": ("34", "image")}),
    "36": ("ImageBatch", {}, {"image1": ("35", "image"), "image2": ("26", "image")}),
    "37": ("LatentBlend", {"blend_factor": 0.3}, {"latent_1": ("17", "latent"), "latent_2": ("20", "latent")}),
    "39": ("ImageCompositeMasked", {"x": 16, "y": 8, "resize_source": False},
           {"destination": ("34", "image"), "source": ("35", "image"), "mask": ("28", "mask")}),
    "40": ("LatentCompositeMasked", {"x": 64, "y": 0, "resize_source": True},
           {"destination": ("37", "latent"), "source": ("17", "latent")}),
}


@pytest.mark.parametrize("name", ["comfy-extras-0.4.json", "comfy-extras-api.json"])
def test_sdxl_prompts_and_utility_classes_field_by_field(read, name):
    imported = read(name)
    nodes = imported.workflow.nodes
    for nid, (node_type, params, inputs) in EXTRAS.items():
        assert (nodes[nid].type, nodes[nid].params, nodes[nid].inputs) == (node_type, params, inputs), nid
    assert nodes["15"].extra == {"comfyui": {"class_type": "VAEDecodeTiled"}}
    assert nodes["17"].extra == {"comfyui": {"class_type": "VAEEncodeTiled"}}
    assert nodes["21"].extra == {} and nodes["24"].extra == {}
    notes = [line for line in imported.warnings if not line.startswith("missing ")]
    assert [line.split(":")[0] for line in notes] == ["node 15 (VAEDecodeTiled)", "node 17 (VAEEncodeTiled)",
                                                      "node 21 (DiffControlNetLoader)"]
    assert "tile_size and overlap are not used" in notes[0] and "tile_size and overlap are not used" in notes[1]
    assert "the model input is ignored" in notes[2] and "use the full ControlNet file" in notes[2]


def test_sdxl_prompts_and_utility_classes_validate_without_placeholders(read, registry):
    from nodeforge import Engine
    from nodeforge.core.models import ModelPaths

    engine = Engine(device="cpu", registry=registry, model_paths=ModelPaths(roots=[], include_builtin=False))
    for name in ("comfy-extras-0.4.json", "comfy-extras-api.json", "sdxl-refiner-0.4.json", "sdxl-refiner-api.json"):
        workflow = read(name).workflow
        assert all(n.type != "comfyui.Placeholder" for n in workflow.nodes.values()), name
        assert engine.validate(workflow, check_files=False) == [], name


@pytest.mark.parametrize("name", FORMATS)
def test_every_mapped_node_keeps_its_id_values_links_and_title(read, registry, name):
    imported = read(name)
    expected = all_nodes(registry)
    got = nodes_of(imported.workflow)
    assert list(got) == list(expected), "node ids are kept, folded nodes (reroute, primitive, notes) go"
    for nid, (node_type, params, inputs, title) in expected.items():
        assert got[nid][0] == node_type, nid
        assert got[nid][1] == params, nid
        assert got[nid][2] == inputs, nid
        assert got[nid][3] == title, nid


@pytest.mark.parametrize("name", FORMATS)
def test_each_approximation_is_one_warning_naming_the_node(read, name):
    lines = read(name).warnings
    assert "node 22 (KSampler): sampler 'dpmpp_2s_ancestral' is not in NodeForge; using the nearest, " \
           "'euler_ancestral'" in lines
    assert "node 22 (KSampler): schedule 'kl_optimal' is not in NodeForge; using the nearest, 'normal'" in lines
    assert any(line.startswith("node 24 (SaveImage): file name prefix '%date:yyyy-MM-dd%/inpaint'") for line in lines)
    assert "node 25 (FooSharpen): a ComfyUI node with no NodeForge equivalent (NodeForge cannot run other tools' " \
           "node packs); replace or bypass it; kept as a placeholder (its widgets and links are kept for export, but " \
           "the graph cannot run until it is replaced or bypassed)" in lines
    missing = [line for line in lines if line.startswith("missing ")]
    assert [line.split(":")[0] for line in missing] == [
        "missing checkpoint 'sd15/v1-5-pruned-emaonly.safetensors' (node 1)",
        "missing LoRA 'detail-tweaker.safetensors' (node 2)",
        "missing LoRA 'style.safetensors' (node 3)",
        "missing embedding 'goodstyle' (node 5)",
        "missing image 'photo.png' (node 15)",
        "missing VAE 'vae-ft-mse-840000.safetensors' (node 34)",
    ]
    assert len(lines) == len(set(lines))


@pytest.mark.parametrize("name", ["all-nodes-0.4.json", "all-nodes-1.json"])
def test_the_ui_files_keep_the_canvas(read, name):
    ui = read(name).workflow.ui
    assert ui["positions"]["8"] == [1160.0, 0.0] and ui["sizes"]["8"] == [315.0, 262.0]
    assert ui["positions"]["15"] == [0.0, 800.0] and ui["sizes"]["15"] == [315.0, 314.0]
    assert ui["collapsed"] == ["6"]
    assert ui["muted"] == ["14"] and ui["bypassed"] == ["17"]
    assert ui["groups"] == [{"title": "Inpaint", "bounding": [-20.0, 740.0, 3000.0, 420.0], "color": "#3f789e",
                             "font_size": 24}]
    assert ui["notes"] == [
        {"id": "27", "text": "Models: put the checkpoint in models/checkpoints.", "markdown": False,
         "pos": [0.0, 400.0], "size": [300.0, 120.0], "color": "#432"},
        {"id": "28", "text": "# Hires fix\nTwo passes.", "markdown": True, "pos": [0.0, 560.0], "size": [300.0, 120.0]},
    ]
    # The reroute on the second sampler's model wire is a NodeForge reroute dot at the same place.
    [(rid, dot)] = ui["reroutes"].items()
    assert dot == {"pos": [1637.5, 313.0], "links": [["10", "unet"]]}
    assert ui["viewport"] == {"center": [1500.0, 950.0], "zoom": 0.5}


def test_the_api_prompt_has_no_layout(read):
    assert read("all-nodes-api.json").workflow.ui == {}


@pytest.mark.parametrize("name", FORMATS)
def test_validate_names_the_placeholder_by_its_comfyui_class(read, registry, name):
    from nodeforge import Engine
    from nodeforge.core.models import ModelPaths

    engine = Engine(device="cpu", registry=registry, model_paths=ModelPaths(roots=[], include_builtin=False))
    problems = [str(p) for p in engine.validate(read(name).workflow, check_files=False)]
    assert problems == ["node 25 (FooSharpen): a ComfyUI node with no NodeForge equivalent (NodeForge cannot run "
                        "other tools' node packs); replace or bypass it (its widgets and links are kept, so exporting "
                        "back to ComfyUI keeps it)"]


@pytest.mark.parametrize("name", FORMATS)
def test_a_bypassed_placeholder_passes_its_image_through_as_in_comfyui(read, registry, name):
    from nodeforge import Engine
    from nodeforge.core import graph
    from nodeforge.core.models import ModelPaths

    workflow = read(name).workflow
    workflow.ui.setdefault("bypassed", []).append("25")
    engine = Engine(device="cpu", registry=registry, model_paths=ModelPaths(roots=[], include_builtin=False))
    assert engine.validate(workflow, check_files=False) == []
    running = graph.apply_switches(workflow, registry)
    assert running.nodes["26"].inputs == {"image": ("23", "image")}


def test_subgraphs_are_expanded_into_plain_nodes(read, registry):
    imported = read("subgraph-1.json")
    wf = imported.workflow
    assert list(wf.nodes) == ["1", "10:1", "10:2", "10:3", "10:4", "11", "12"]
    assert wf.nodes["10:1"].inputs == {"clip": ("1", "clip")} and wf.nodes["10:1"].title == "positive"
    sampler = wf.nodes["10:4"]
    assert sampler.params == unet_params(registry, "euler", "normal", seed=77, steps=20, cfg=5, denoise=1), \
        "the instance's promoted seed widget (77) wins over the inner default"
    assert sampler.inputs == {"unet": ("1", "unet"), "positive": ("10:1", "conditioning"),
                              "negative": ("10:2", "conditioning"), "latent": ("10:3", "latent")}
    assert wf.nodes["11"].inputs == {"latent": ("10:4", "latent"), "vae": ("1", "vae")}
    assert wf.ui["groups"][0]["title"] == "Prompt and sample"
    assert wf.ui["positions"]["10:1"] == [400.0, 0.0], "the subgraph's nodes sit where its instance was"


def _ui(nodes, links, **extra):
    return {"last_node_id": 9, "last_link_id": 9, "nodes": nodes, "links": links, "version": 0.4, **extra}


def _node(nid, class_type, widgets=None, inputs=(), outputs=(), **extra):
    node = {"id": nid, "type": class_type, "pos": [0, 0], "size": [100, 50], "flags": {}, "order": 0, "mode": 0,
            "inputs": [{"name": n, "type": t, "link": link} for n, t, link in inputs],
            "outputs": [{"name": n, "type": t, "links": links} for n, t, links in outputs], "properties": {}}
    if widgets is not None:
        node["widgets_values"] = widgets
    node.update(extra)
    return node


def test_old_files_with_a_boolean_control_after_generate(registry):
    from nodeforge.interop import read_workflow

    data = _ui([_node(3, "KSampler", [5, True, 30, 6.5, "heun", "karras", 0.5])], [])
    params = read_workflow(data, registry=registry).workflow.nodes["3"].params
    assert params == unet_params(registry, "heun", "karras", seed=5, steps=30, cfg=6.5, denoise=0.5)


def test_files_without_control_after_generate(registry):
    from nodeforge.interop import read_workflow

    data = {"3": {"class_type": "KSamplerAdvanced", "inputs": {
        "add_noise": "disable", "noise_seed": 9, "steps": 8, "cfg": 1.5, "sampler_name": "lcm", "scheduler": "simple",
        "start_at_step": 2, "end_at_step": 6, "return_with_leftover_noise": "enable"}}}
    params = read_workflow(data, registry=registry).workflow.nodes["3"].params
    assert params == unet_params(registry, "lcm", "simple", add_noise=False, seed=9, steps=8, cfg=1.5,
                                 start_at_step=2, end_at_step=6, return_with_leftover_noise=True)


def test_a_stale_link_the_node_does_not_record_is_ignored(registry):
    from nodeforge.interop import read_workflow

    nodes = [_node(1, "EmptyLatentImage", [64, 64, 1], outputs=[("LATENT", "LATENT", [1])]),
             _node(2, "EmptyLatentImage", [32, 32, 1], outputs=[("LATENT", "LATENT", [2])]),
             _node(3, "LatentUpscaleBy", ["bilinear", 2], inputs=[("samples", "LATENT", 2)])]
    links = [[1, 1, 0, 3, 0, "LATENT"], [2, 2, 0, 3, 0, "LATENT"], [3, 1, 0, 99, 0, "LATENT"]]
    wf = read_workflow(_ui(nodes, links), registry=registry).workflow
    assert wf.nodes["3"].inputs == {"latent": ("2", "latent")}


def test_a_widget_fed_by_a_node_nodeforge_cannot_run_keeps_its_value_and_the_link(registry):
    from nodeforge.interop import export_comfyui_api, read_workflow

    prompt = {"1": {"class_type": "Random Number", "inputs": {"number_type": "float", "minimum": 1, "maximum": 2,
                                                              "seed": 0}},
              "2": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}},
              "3": {"class_type": "LatentUpscaleBy", "inputs": {"upscale_method": "area", "scale_by": ["1", 0],
                                                                "samples": ["2", 0]}}}
    imported = read_workflow(prompt, registry=registry)
    assert imported.workflow.nodes["3"].params == {"upscale_method": "area"}
    assert any(line.startswith("node 3 (LatentUpscaleBy), scale_by: its value comes from node 1") for line in
               imported.warnings)
    assert export_comfyui_api(imported.workflow, registry=registry)["3"]["inputs"]["scale_by"] == ["1", 0]


BAD_FILES = [
    ({"nodes": "x", "links": []}, "\"nodes\" must be a list"),
    ({"nodes": [{"id": 1}], "links": []}, "node 1, type: \"type\" must be the ComfyUI node class"),
    ({"nodes": [{"id": [1], "type": "X"}], "links": []}, "a node's \"id\" must be a node id"),
    ({"nodes": [_node(1, "X", widgets=5)], "links": []}, "\"widgets_values\" must be a list"),
    ({"nodes": [_node(1, "X")], "links": [[1, 2, 3]]}, "a link must be [id, from_node, from_slot, to_node"),
    ({"nodes": [_node(1, "X")], "links": [[1, 1, "zero", 1, 0, "X"]]}, "a link's source slot must be a slot number"),
    ({"nodes": [_node(1, "X"), _node(1, "Y")], "links": []}, "node id 1 is used twice"),
    ({"nodes": [_node(1, "S")], "links": [], "definitions": {"subgraphs": [{"id": "S", "name": "loop",
      "nodes": [_node(2, "S")], "links": []}]}}, "subgraph 'loop' contains itself"),
    ({"nodes": [], "definitions": {"subgraphs": 3}}, "\"definitions\" must hold a list of \"subgraphs\""),
    ({"3": {"class_type": "KSampler", "inputs": []}}, "node 3 (KSampler), inputs: \"inputs\" must be an object"),
    ({"3": {"class_type": 5, "inputs": {}}}, "node 3, class_type: \"class_type\" must be the ComfyUI node class"),
    ({"3": "KSampler", "4": {"class_type": "X"}}, "node 3: must be an object with \"class_type\""),
    ({"hello": "world"}, "not a workflow NodeForge knows (found hello"),
    ([1, 2], "not a workflow NodeForge knows (found a list"),
]


@pytest.mark.parametrize("data,message", BAD_FILES)
def test_malformed_files_are_one_line_errors(registry, tmp_path, data, message):
    from nodeforge.interop import read_workflow

    path = tmp_path / "shared.json"
    path.write_text(json.dumps(data))
    with pytest.raises(WorkflowFileError) as caught:
        read_workflow(path, registry=registry)
    text = str(caught.value)
    assert message in text and "\n" not in text
    assert text.startswith(f"{path}: ")


def test_a_reroute_loop_is_a_warning_not_a_hang(registry):
    from nodeforge.interop import read_workflow

    nodes = [_node(1, "Reroute", inputs=[("", "*", 2)], outputs=[("", "*", [1])]),
             _node(2, "Reroute", inputs=[("", "*", 1)], outputs=[("", "*", [2, 3])]),
             _node(3, "SaveImage", ["x"], inputs=[("images", "IMAGE", 3)])]
    links = [[1, 1, 0, 2, 0, "*"], [2, 2, 0, 1, 0, "*"], [3, 2, 0, 3, 0, "IMAGE"]]
    imported = read_workflow(_ui(nodes, links), registry=registry)
    assert imported.workflow.nodes["3"].inputs == {}
    assert "node 3 (SaveImage), images: its reroutes form a loop; the input is left unconnected" in imported.warnings


def test_deeply_nested_json_is_refused_in_one_line(registry, tmp_path):
    from nodeforge.interop import read_workflow

    path = tmp_path / "deep.json"
    path.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(WorkflowFileError) as caught:
        read_workflow(path, registry=registry)
    assert "nested too deeply" in str(caught.value)


def test_an_ancestral_sampler_on_karras_sigmas_keeps_the_sampler_on_the_normal_schedule(registry):
    from nodeforge.interop import read_workflow

    prompt = {"3": {"class_type": "KSampler", "inputs": {"seed": 1, "steps": 20, "cfg": 7, "sampler_name": "euler_ancestral",
                                                         "scheduler": "karras", "denoise": 1}}}
    imported = read_workflow(prompt, registry=registry)
    assert imported.workflow.nodes["3"].params["sampler"] == "euler_ancestral"
    assert imported.workflow.nodes["3"].params["schedule"] == "normal"
    assert imported.warnings == ["node 3 (KSampler): NodeForge's euler_ancestral cannot follow karras sigmas; "
                                 "using the 'normal' schedule"]


def test_a_link_saved_half_drawn_is_dropped(registry):
    """A user's file (issue 30 corpus) held [5, 4, 0, null, null, "IMAGE"]: a link with no target node.
    It imported as "a link's target must be a node id"; ComfyUI's editor opens the file without it."""
    from nodeforge.interop import read_workflow

    data = {"nodes": [_node(4, "EmptyLatentImage", widgets=[64, 64, 1], outputs=[("LATENT", "LATENT", [5, 6])]),
                      _node(7, "VAEDecode", inputs=[("samples", "LATENT", 6), ("vae", "VAE", None)])],
            "links": [[5, 4, 0, None, None, "LATENT"], [6, 4, 0, 7, 0, "LATENT"]]}
    imported = read_workflow(data, registry=registry)
    assert imported.workflow.nodes["7"].inputs == {"latent": ("4", "latent")}
    assert imported.warnings == []


def test_kjnodes_named_wires_become_direct_wires(registry):
    """SetNode/GetNode (ComfyUI-KJNodes, in 9 of 82 shared files) pass a value by name, as a reroute
    passes it by a wire: each GetNode's consumers are wired to what its SetNode takes."""
    from nodeforge.interop import read_workflow

    data = {"nodes": [_node(4, "EmptyLatentImage", widgets=[64, 64, 1], outputs=[("LATENT", "LATENT", [1])]),
                      _node(5, "SetNode", widgets=["latent"], inputs=[("LATENT", "LATENT", 1)],
                            outputs=[("*", "*", None)]),
                      _node(6, "GetNode", widgets=["latent"], outputs=[("LATENT", "LATENT", [2])]),
                      _node(7, "VAEDecode", inputs=[("samples", "LATENT", 2), ("vae", "VAE", None)]),
                      _node(8, "GetNode", widgets=["vae"], outputs=[("VAE", "VAE", [3])]),
                      _node(9, "VAEDecode", inputs=[("samples", "LATENT", None), ("vae", "VAE", 3)])],
            "links": [[1, 4, 0, 5, 0, "LATENT"], [2, 6, 0, 7, 0, "LATENT"], [3, 8, 0, 9, 1, "VAE"]]}
    imported = read_workflow(data, registry=registry)
    assert set(imported.workflow.nodes) == {"4", "7", "9"}          # the named wires are folded away
    assert imported.workflow.nodes["7"].inputs == {"latent": ("4", "latent")}
    assert imported.workflow.nodes["9"].inputs == {}
    assert imported.warnings == ["node 9 (VAEDecode), vae: GetNode 8 reads 'vae', which no SetNode in the file "
                                 "sets; the input is left unconnected"]


def test_a_model_only_lora_after_a_diffusion_model_loader_takes_the_graphs_one_clip(registry):
    """LoraLoaderModelOnly after a loader with no CLIP (UNETLoader, here a placeholder) was left with
    'clip: required input is not connected' in 5 of 82 shared files; at strength 0 any CLIP will do."""
    from nodeforge.interop import read_workflow

    prompt = {"1": {"class_type": "SomeDiffusionModelLoader", "inputs": {"unet_name": "flux1-dev.safetensors"}},
              "2": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "x.safetensors"}},
              "3": {"class_type": "LoraLoaderModelOnly", "inputs": {"lora_name": "l.safetensors",
                                                                    "strength_model": 0.8, "model": ["1", 0]}},
              "4": {"class_type": "CLIPSetLastLayer", "inputs": {"stop_at_clip_layer": -2, "clip": ["2", 1]}}}
    imported = read_workflow(prompt, registry=registry)
    lora = imported.workflow.nodes["3"]
    assert lora.inputs["clip"] == ("2", "clip") and lora.params["strength_clip"] == 0.0
    prompt["5"] = dict(prompt["2"])                     # two CLIP sources: not guessed
    assert "clip" not in read_workflow(prompt, registry=registry).workflow.nodes["3"].inputs


def test_a_model_only_lora_in_a_subgraph_takes_its_subgraphs_one_clip(registry):
    """Corpus 045 has two subgraphs, each with a UNETLoader, a CLIPLoader and a LoraLoaderModelOnly (API ids
    "433:89"): each LoRA takes the CLIP of its own subgraph; a subgraph with two is not guessed."""
    from nodeforge.interop import read_workflow

    def graph(sub: str) -> dict:
        return {f"{sub}:1": {"class_type": "UNETLoader", "inputs": {"unet_name": "q.safetensors",
                                                                   "weight_dtype": "default"}},
                f"{sub}:2": {"class_type": "CLIPLoader", "inputs": {"clip_name": "qwen.safetensors",
                                                                    "type": "qwen_image", "device": "default"}},
                f"{sub}:3": {"class_type": "LoraLoaderModelOnly", "inputs": {"lora_name": "l.safetensors",
                                                                             "strength_model": 1.0,
                                                                             "model": [f"{sub}:1", 0]}}}
    prompt = {**graph("433"), **graph("466")}
    nodes = read_workflow(prompt, registry=registry).workflow.nodes
    assert nodes["433:3"].inputs["clip"] == ("433:2", "clip") and nodes["466:3"].inputs["clip"] == ("466:2", "clip")
    prompt["433:4"] = dict(prompt["433:2"])
    nodes = read_workflow(prompt, registry=registry).workflow.nodes
    assert "clip" not in nodes["433:3"].inputs and nodes["466:3"].inputs["clip"] == ("466:2", "clip")


def test_the_upload_button_an_api_prompt_records_is_not_a_warning(registry):
    """Some ComfyUI versions write LoadImage's upload button as "choose file to upload": "image"; it was
    'LoadImage's 'choose file to upload' has no NodeForge equivalent; it is ignored' in shared files."""
    from nodeforge.interop import read_workflow

    for key in ("upload", "choose file to upload"):
        prompt = {"10": {"class_type": "LoadImage", "inputs": {"image": "in.png", key: "image"}}}
        imported = read_workflow(prompt, registry=registry)
        assert imported.workflow.nodes["10"].params["path"] == "in.png"
        assert not any("upload" in line for line in imported.warnings), imported.warnings


def _group_file(definition_links=None):
    """A UI file with an old group node "workflow/Two LoRAs" (two LoraLoaderModelOnly in a chain, as a
    shared SDXL file had three) between a checkpoint and a sampler's model input."""
    lora = {"type": "LoraLoaderModelOnly", "inputs": [{"name": "model", "type": "MODEL", "link": None}],
            "outputs": [{"name": "MODEL", "type": "MODEL", "links": []}], "widgets_values": ["x.safetensors", 1]}
    definition = {"nodes": [dict(lora, index=0), dict(lora, index=1)],
                  "links": definition_links if definition_links is not None else
                  [[None, 0, 0, 0, 13, "MODEL"], [0, 0, 1, 0, 19, "MODEL"]], "external": []}
    nodes = [_node(4, "CheckpointLoaderSimple", widgets=["sd.safetensors"],
                   outputs=[("MODEL", "MODEL", [1]), ("CLIP", "CLIP", []), ("VAE", "VAE", [])]),
             _node(9, "workflow/Two LoRAs", widgets=["a.safetensors", 0.5, "b\\c.safetensors", 0.25],
                   inputs=[("model", "MODEL", 1)], outputs=[("MODEL", "MODEL", [2])]),
             _node(3, "KSampler", widgets=[5, "fixed", 20, 7.0, "euler", "normal", 1.0],
                   inputs=[("model", "MODEL", 2)])]
    return {"nodes": nodes, "links": [[1, 4, 0, 9, 0, "MODEL"], [2, 9, 0, 3, 0, "MODEL"]],
            "extra": {"groupNodes": {"Two LoRAs": definition}}, "version": 0.4}


def test_an_old_group_node_becomes_the_nodes_it_holds(registry):
    """Group nodes (before subgraphs) were placeholders in 4 of 82 shared files."""
    from nodeforge.interop import export_comfyui_api, read_workflow

    imported = read_workflow(_group_file(), registry=registry)
    nodes = imported.workflow.nodes
    assert sorted(nodes) == ["3", "4", "9:0", "9:1"]
    assert (nodes["9:0"].type, nodes["9:0"].params["lora"], nodes["9:0"].params["strength_unet"]) == \
        ("LoRALoader", "a.safetensors", 0.5)
    assert (nodes["9:1"].params["lora"], nodes["9:1"].params["strength_unet"]) == ("b\\c.safetensors", 0.25)
    assert nodes["9:0"].inputs["unet"] == ("4", "unet") and nodes["9:1"].inputs["unet"] == ("9:0", "unet")
    assert nodes["3"].inputs["unet"] == ("9:1", "unet")
    prompt = export_comfyui_api(imported.workflow, registry=registry)
    assert prompt["9:1"]["class_type"] == "LoraLoaderModelOnly" and prompt["9:1"]["inputs"]["model"] == ["9:0", 0]


def test_a_group_node_whose_definition_does_not_add_up_stays_and_says_what_it_is(registry):
    from nodeforge.core.placeholder import is_placeholder, placeholder_message
    from nodeforge.interop import read_workflow

    for links in ([[0, 0, 1, 0, 19, "MODEL"], [1, 0, 0, 0, 20, "MODEL"]],     # no input left for the instance's
                  [[{"x": 1}, 0, 0, 0], [0, "a", 1, 0]]):                      # hostile values
        imported = read_workflow(_group_file(links), registry=registry)
        node = imported.workflow.nodes["9"]
        assert is_placeholder(node)
        assert placeholder_message(node).startswith("a ComfyUI group node, which NodeForge does not expand yet")
