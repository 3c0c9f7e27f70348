"""Well-known custom-pack classes that are a NodeForge node's operation (issue 30, item 2) come in as
that node, each approximation said once, and go back to ComfyUI as its core class
(comfy-packs-*.json: KSampler //Inspire, Latent Upscale by Factor (WAS), CannyEdgePreprocessor,
Image Comparer, Power Lora Loader, Reroute and Any Switch (rgthree), VHS_VideoCombine, KSampler
(Efficient) and KSampler Adv. (Efficient))."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from nodeforge.interop import comfy_export

DATA = Path(__file__).resolve().parent / "data"
FORMATS = ["comfy-packs-0.4.json", "comfy-packs-api.json"]

MAPPED = {
    "5": ("UNetDenoise", {"seed": 11, "steps": 6, "cfg": 5.0, "sampler": "dpmpp_2m", "schedule": "karras",
                          "denoise": 1.0},
          {"unet": ("15", "unet"), "positive": ("2", "conditioning"), "negative": ("3", "conditioning"),
           "latent": ("4", "latent")}),
    # Power Lora Loader 15: its two LoRAs that are on, in order, as a chain ending under its id; the second
    # has its own CLIP strength (strengthTwo). Power Lora Loader 16 has none on: a wire to 15's outputs.
    "15.1": ("LoRALoader", {"lora": "detail.safetensors", "strength_unet": 0.8, "strength_clip": 0.8},
             {"unet": ("1", "unet"), "clip": ("1", "clip")}),
    "15": ("LoRALoader", {"lora": "style.safetensors", "strength_unet": 0.5, "strength_clip": 0.25},
           {"unet": ("15.1", "unet"), "clip": ("15.1", "clip")}),
    "2": ("TextEncoder", {"text": "a red circle"}, {"clip": ("15", "clip")}),
    # WAS's nearest is torch's legacy nearest; the table says nearest-exact
    "6": ("LatentUpscaleBy", {"upscale_method": "nearest-exact", "scale_by": 1.5}, {"latent": ("5", "latent")}),
    # through rgthree's reroute (node 7, a UI-only node) as through ComfyUI's
    "8": ("VAEDecode", {}, {"latent": ("6", "latent"), "vae": ("1", "vae")}),
    # OpenCV's 0..255 thresholds 100 and 200 as fractions: 100 / 255, 200 / 255
    "9": ("ImageToEdges", {"low_threshold": 0.3922, "high_threshold": 0.7843}, {"image": ("8", "image")}),
    "10": ("Preview", {}, {"image": ("8", "image")}),
    # efficiency-nodes' samplers: MODEL, CONDITIONING+/- and VAE out are their inputs (so 18's model is 17's,
    # which is Power Lora Loader 15's through the empty 16); IMAGE out is a VAE Decode added as 18.image
    "17": ("UNetDenoise", {"seed": 12, "steps": 4, "cfg": 6.0, "sampler": "euler", "schedule": "normal",
                           "denoise": 0.5},
           {"unet": ("15", "unet"), "positive": ("2", "conditioning"), "negative": ("3", "conditioning"),
            "latent": ("6", "latent")}),
    "18": ("UNetDenoise", {"add_noise": False, "seed": 13, "steps": 4, "cfg": 6.0, "sampler": "euler",
                           "schedule": "normal", "start_at_step": 2, "end_at_step": 10000,
                           "return_with_leftover_noise": False},
           {"unet": ("15", "unet"), "positive": ("2", "conditioning"), "negative": ("3", "conditioning"),
            "latent": ("17", "latent")}),
    "18.image": ("VAEDecode", {}, {"latent": ("18", "latent"), "vae": ("1", "vae")}),
    "19": ("SaveImage", {"prefix": "efficient"}, {"image": ("18.image", "image")}),
    # WAS's Image Resize is a NodeForge node of its own; "true" is a boolean here
    "20": ("ImageResize", {"mode": "resize", "supersample": True, "resampling": "bicubic", "rescale_factor": 2.0,
                           "resize_width": 100, "resize_height": 64}, {"image": ("11", "image")}),
    # Any Switch gives its first input from a node that is not muted: node 13 is muted, so LoadImage's
    "14": ("SaveImage", {"prefix": "clip"}, {"image": ("11", "image")}),
}


@pytest.mark.parametrize("name", FORMATS)
def test_pack_classes_come_in_as_the_nodeforge_node_with_one_note_each(read, name):
    imported = read(name)
    nodes = imported.workflow.nodes
    for nid, (node_type, params, inputs) in MAPPED.items():
        assert (nodes[nid].type, nodes[nid].params, nodes[nid].inputs) == (node_type, params, inputs), nid
    assert "7" not in nodes and "12" not in nodes and "16" not in nodes   # the reroute, switch, empty loader: wires
    assert "17.image" not in nodes     # nothing uses 17's IMAGE
    assert all(n.type != "comfyui.Placeholder" for n in nodes.values())
    notes = [line.split(":")[0] for line in imported.warnings if not line.startswith("missing ")]
    assert notes == ["node 5 (KSampler //Inspire)", "node 6 (Latent Upscale by Factor (WAS))",
                     "node 9 (CannyEdgePreprocessor)", "node 10 (Image Comparer (rgthree))", "node 14 (VHS_VideoCombine)",
                     "node 17 (KSampler (Efficient))", "node 18 (KSampler Adv. (Efficient))"]
    assert any("not as a video" in line for line in imported.warnings)


def test_the_rgthree_reroute_is_a_reroute_dot_in_the_ui_file(read):
    ui = read("comfy-packs-0.4.json").workflow.ui
    assert ui["reroutes"]["r7"]["links"] == [["8", "latent"]]


@pytest.mark.parametrize("name", FORMATS)
def test_pack_classes_export_as_comfyuis_core_classes(read, registry, name):
    prompt = comfy_export.export_comfyui_api(read(name).workflow, registry=registry)
    assert prompt["5"]["class_type"] == "KSampler" and prompt["5"]["inputs"] == {
        "seed": 11, "steps": 6, "cfg": 5.0, "sampler_name": "dpmpp_2m", "scheduler": "karras", "denoise": 1.0,
        "model": ["15", 0], "positive": ["2", 0], "negative": ["3", 0], "latent_image": ["4", 0]}
    assert (prompt["15.1"]["class_type"], prompt["15.1"]["inputs"]) == ("LoraLoader", {
        "lora_name": "detail.safetensors", "strength_model": 0.8, "strength_clip": 0.8, "model": ["1", 0],
        "clip": ["1", 1]})
    assert prompt["15"]["inputs"]["model"] == ["15.1", 0] and prompt["15"]["inputs"]["strength_clip"] == 0.25
    assert (prompt["6"]["class_type"], prompt["6"]["inputs"]) == (
        "LatentUpscaleBy", {"upscale_method": "nearest-exact", "scale_by": 1.5, "samples": ["5", 0]})
    assert (prompt["9"]["class_type"], prompt["9"]["inputs"]) == (
        "Canny", {"low_threshold": 0.3922, "high_threshold": 0.7843, "image": ["8", 0]})
    assert (prompt["10"]["class_type"], prompt["10"]["inputs"]) == ("PreviewImage", {"images": ["8", 0]})
    assert (prompt["18"]["class_type"], prompt["18"]["inputs"]["model"]) == ("KSamplerAdvanced", ["15", 0])
    assert (prompt["18.image"]["class_type"], prompt["18.image"]["inputs"]) == (
        "VAEDecode", {"samples": ["18", 0], "vae": ["1", 2]})
    assert prompt["19"]["inputs"]["images"] == ["18.image", 0]
    assert (prompt["20"]["class_type"], prompt["20"]["inputs"]) == ("Image Resize", {
        "mode": "resize", "supersample": "true", "resampling": "bicubic", "rescale_factor": 2.0, "resize_width": 100,
        "resize_height": 64, "image": ["11", 0]})
    assert (prompt["14"]["class_type"], prompt["14"]["inputs"]) == (
        "SaveImage", {"filename_prefix": "clip", "images": ["11", 0]})


def test_an_any_switch_with_every_input_muted_says_so(read, tmp_path):
    data = json.loads((DATA / "comfy-packs-0.4.json").read_text())
    for node in data["nodes"]:
        if node["id"] == 11:
            node["mode"] = 2
    source = tmp_path / "muted.json"
    source.write_text(json.dumps(data))
    imported = read(source)
    assert "image" not in imported.workflow.nodes["14"].inputs
    assert "node 14 (VHS_VideoCombine), images: Any Switch (rgthree) 12 has no input from a node that is not " \
           "muted; the input is left unconnected" in imported.warnings


def test_an_any_switch_passes_over_a_bypassed_node_with_nothing_to_pass_on(read, tmp_path):
    """A bypassed node gives its linked input of the same type; one with none linked gives nothing, so rgthree's
    switch takes its next input (corpus 047: a bypassed EmptySD3LatentImage, then the VAEEncode)."""
    data = json.loads((DATA / "comfy-packs-0.4.json").read_text())
    for node in data["nodes"]:
        if node["id"] == 13:
            node["mode"], node["inputs"][0]["link"] = 4, None
    data["links"] = [link for link in data["links"] if link[0] != 14]
    source = tmp_path / "bypassed.json"
    source.write_text(json.dumps(data))
    assert read(source).workflow.nodes["14"].inputs == {"image": ("11", "image")}


def test_an_efficient_samplers_image_without_a_vae_says_what_to_connect(read, tmp_path):
    prompt = json.loads((DATA / "comfy-packs-api.json").read_text())
    del prompt["17"]["inputs"]["optional_vae"]          # 18's VAE is 17's pass-through: now nothing
    source = tmp_path / "novae.json"
    source.write_text(json.dumps(prompt))
    imported = read(source)
    assert imported.workflow.nodes["18.image"].inputs == {"latent": ("18", "latent")}
    assert "node 18 (KSampler Adv. (Efficient)), optional_vae: its IMAGE output needs a VAE: connect the model's " \
           "VAE to the vae input of node 18.image (VAE Decode)" in imported.warnings
