"""scraed/LanPaint's LanPaint_KSampler (issue 30, corpus 042) comes in as NodeForge's LanPaint Sampler with
KSampler's settings, its Langevin iterations and prompt mode, from a UI 0.4 file and an API prompt alike
(comfy-lanpaint-*.json, our own SD 1.5 inpainting graph), validates, and goes back under its ComfyUI name with
the same values; video inpainting mode is said not to be supported."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from nodeforge.interop import comfy_table

DATA = Path(__file__).resolve().parent / "data"
FORMATS = ["comfy-lanpaint-0.4.json", "comfy-lanpaint-api.json"]


@pytest.mark.parametrize("name", FORMATS)
def test_lanpaint_comes_in_with_its_sampler_settings_iterations_and_prompt_mode(read, name):
    imported = read(name)
    node = imported.workflow.nodes["7"]
    assert node.type == "LanPaintSampler"
    assert node.params == {"seed": 11, "steps": 20, "cfg": 5.0, "sampler": "euler", "schedule": "karras",
                           "denoise": 1, "lanpaint_steps": 3, "prompt_mode": "Prompt First"}
    assert node.inputs == {"unet": ("1", "unet"), "positive": ("5", "conditioning"),
                           "negative": ("6", "conditioning"), "latent": ("4", "latent")}
    assert all(n.type != "comfyui.Placeholder" for n in imported.workflow.nodes.values())
    assert not [line for line in imported.warnings if not line.startswith("missing ")]


@pytest.mark.parametrize("name", FORMATS)
def test_lanpaint_advanced_comes_in_as_the_same_node_with_its_stage_lambda_and_step_size(read, name):
    node = read(name).workflow.nodes["10"]
    assert node.type == "LanPaintSampler" and node.inputs["latent"] == ("7", "latent")
    assert node.params == {"add_noise": False, "seed": 11, "steps": 20, "cfg": 5.0, "sampler": "euler",
                           "schedule": "karras", "start_at_step": 12, "end_at_step": 10000,
                           "return_with_leftover_noise": False, "lanpaint_steps": 4, "lanpaint_lambda": 8.0,
                           "lanpaint_step_size": 0.15, "prompt_mode": "Image First"}


@pytest.mark.parametrize("name", FORMATS)
def test_lanpaint_validates_and_exports_back_with_the_same_values(exported_back, name):
    back = exported_back(name, "comfy-lanpaint-api.json", valid=True)
    back.assert_kept(["7", "10"])


def test_an_older_advanced_file_with_the_retired_widgets_keeps_its_prompt_mode(read, tmp_path):
    """Files saved before LanPaint retired Beta, Friction and EarlyStop list them among the widgets."""
    workflow = json.loads((DATA / "comfy-lanpaint-0.4.json").read_text())
    [node] = [n for n in workflow["nodes"] if n["type"] == "LanPaint_KSamplerAdvanced"]
    node["widgets_values"] = ["enable", 542259685031634, "fixed", 20, 2, "euler", "sgm_uniform", 7, 10000, "disable",
                              5, 16, 0.15, 1, 15, "Prompt First", 1, "LanPaint KSampler Adv."]
    source = tmp_path / "old.json"
    source.write_text(json.dumps(workflow))
    params = read(source).workflow.nodes[str(node["id"])].params
    assert (params["prompt_mode"], params["lanpaint_lambda"], params["lanpaint_step_size"], params["start_at_step"]) \
        == ("Prompt First", 16, 0.15, 7)


def test_video_inpainting_mode_warns_that_frames_are_inpainted_as_images(read, tmp_path):
    prompt = json.loads((DATA / "comfy-lanpaint-api.json").read_text())
    prompt["7"]["inputs"]["Inpainting_mode"] = "\U0001f3ac Video Inpainting"
    source = tmp_path / "video.json"
    source.write_text(json.dumps(prompt))
    warnings = [line for line in read(source).warnings if not line.startswith("missing ")]
    assert warnings == ["node 7 (LanPaint_KSampler): Inpainting_mode video is not supported: NodeForge inpaints "
                        "each frame as an image"]


def test_lanpaint_is_mapped():
    assert comfy_table.BY_COMFY["LanPaint_KSampler"].nodeforge == "LanPaintSampler"


@pytest.mark.parametrize("name", ["comfy-lanpaint-images-0.4.json", "comfy-lanpaint-images-api.json"])
def test_lanpaints_image_encode_and_decode_come_in_validate_and_go_back(read, exported_back, name):
    nodes = read(name).workflow.nodes
    assert (nodes["3"].type, nodes["3"].inputs) == (
        "LanPaintImageEncode", {"image": ("2", "image"), "vae": ("1", "vae"), "mask": ("2", "mask")})
    assert (nodes["8"].type, nodes["8"].params, nodes["8"].inputs) == (
        "LanPaintImageDecode", {"blend_overlap": 7},
        {"latent": ("7", "latent"), "vae": ("1", "vae"), "image": ("2", "image"), "mask": ("2", "mask")})
    assert (nodes["10"].type, nodes["10"].params, nodes["10"].inputs) == (
        "LanPaintMaskBlend", {"blend_overlap": 5},
        {"image1": ("2", "image"), "image2": ("8", "image"), "mask": ("2", "mask")})
    back = exported_back(name, "comfy-lanpaint-images-api.json", valid=True)
    back.assert_kept(["3", "7", "8", "10"])


@pytest.mark.parametrize("name", ["comfy-lanpaint-images-0.4.json", "comfy-lanpaint-images-api.json"])
def test_lanpaints_custom_sampler_comes_in_with_its_parts_and_goes_back(read, exported_back, name):
    node = read(name).workflow.nodes["16"]
    assert node.type == "LanPaintSamplerCustomAdvanced"
    assert node.params == {"lanpaint_steps": 3, "lanpaint_lambda": 6.0, "lanpaint_step_size": 0.25,
                           "prompt_mode": "Prompt First"}
    assert node.inputs == {"noise": ("12", "noise"), "guider": ("13", "guider"), "sampler": ("14", "sampler"),
                           "sigmas": ("15", "sigmas"), "latent": ("3", "latent")}
    assert read(name).workflow.nodes["17"].inputs["latent"] == ("16", "denoised_output")
    back = exported_back(name, "comfy-lanpaint-images-api.json", valid=True)
    back.assert_kept(["16", "17"])


def test_an_older_custom_sampler_file_with_the_retired_widgets_says_its_prompt_mode_was_not_read(read, tmp_path):
    workflow = json.loads((DATA / "comfy-lanpaint-images-0.4.json").read_text())
    [node] = [n for n in workflow["nodes"] if n["type"] == "LanPaint_SamplerCustomAdvanced"]
    node["widgets_values"] = [2, 5.0, 0.2, 1, 15, "Prompt First", 1, "LanPaint Custom Sampler Adv.", 0, 1]
    source = tmp_path / "old.json"
    source.write_text(json.dumps(workflow))
    imported = read(source)
    assert imported.workflow.nodes[str(node["id"])].params["prompt_mode"] == "Image First"
    assert [w for w in imported.warnings if "retired" in w] == [
        f"node {node['id']} (LanPaint_SamplerCustomAdvanced): the file lists LanPaint's retired widgets (Beta, "
        "Friction, EarlyStop) where its prompt mode is now, so the mode could not be read: Image First is used (set "
        "prompt_mode if it meant Prompt First)"]
