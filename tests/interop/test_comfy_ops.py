"""ComfyUI's core latent, mask and image operations and its loader with a config (issue 30, item 2) come in as NodeForge nodes
with every value and link, in a UI file and an API prompt alike, and go back under their ComfyUI
names (comfy-ops-*.json, one graph in both forms)."""
from __future__ import annotations

import pytest

from nodeforge.interop import comfy_packs, comfy_table

FORMATS = ["comfy-ops-0.4.json", "comfy-ops-api.json"]

OPS = {
    "7": ("LatentComposite", {"x": 64, "y": 0, "feather": 16},
          {"destination": ("6", "latent"), "source": ("5", "latent")}),
    "8": ("LatentCrop", {"width": 64, "height": 64, "x": 32, "y": 0}, {"latent": ("7", "latent")}),
    "9": ("LatentAdd", {}, {"latent_1": ("8", "latent"), "latent_2": ("5", "latent")}),
    "10": ("LatentSubtract", {}, {"latent_1": ("9", "latent"), "latent_2": ("32", "latent")}),
    "11": ("LatentMultiply", {"multiplier": 1.25}, {"latent": ("10", "latent")}),
    "12": ("LatentFlip", {"flip_method": "y-axis: horizontally"}, {"latent": ("11", "latent")}),
    "13": ("LatentRotate", {"rotation": "90 degrees"}, {"latent": ("12", "latent")}),
    "14": ("VAEDecode", {}, {"latent": ("13", "latent"), "vae": ("29", "vae")}),
    "17": ("FeatherMask", {"left": 4, "top": 0, "right": 8, "bottom": 2}, {"mask": ("16", "mask")}),
    "18": ("ThresholdMask", {"value": 0.3}, {"mask": ("17", "mask")}),
    "19": ("MaskComposite", {"x": 8, "y": 16, "operation": "xor"},
           {"destination": ("17", "mask"), "source": ("18", "mask")}),
    "20": ("CropMask", {"x": 0, "y": 0, "width": 32, "height": 32}, {"mask": ("19", "mask")}),
    "24": ("ImageBlur", {"blur_radius": 3, "sigma": 0.5}, {"image": ("23", "image")}),
    "25": ("ImageSharpen", {"sharpen_radius": 2, "sigma": 1.5, "alpha": 0.75}, {"image": ("24", "image")}),
    "26": ("ImageBlend", {"blend_factor": 0.4, "blend_mode": "soft_light"},
           {"image1": ("25", "image"), "image2": ("14", "image")}),
    "27": ("ImageQuantize", {"colors": 16, "dither": "bayer-4"}, {"image": ("26", "image")}),
    "30": ("ConditioningSetMask", {"strength": 0.8, "set_cond_area": "mask bounds"},
           {"conditioning": ("2", "conditioning"), "mask": ("16", "mask")}),
    "31": ("SaveLatent", {"prefix": "latents/ops"}, {"latent": ("13", "latent")}),
    "32": ("LoadLatent", {"path": "ops_00001_.latent"}, {}),
    "33": ("FreeU", {"b1": 1.1, "b2": 1.2, "s1": 0.9, "s2": 0.2}, {"unet": ("1", "unet")}),
    "34": ("FreeUV2", {"b1": 1.3, "b2": 1.4, "s1": 0.85, "s2": 0.25}, {"unet": ("33", "unet")}),
    "5": ("UNetDenoise", {"seed": 7, "steps": 4, "cfg": 6.5, "sampler": "euler", "schedule": "normal", "denoise": 1.0},
          {"unet": ("34", "unet"), "positive": ("30", "conditioning"), "negative": ("3", "conditioning"),
           "latent": ("4", "latent")}),
    # the deprecated loader with a config: the checkpoint loader, the config left out (with a note)
    "29": ("CheckpointLoader", {"checkpoint": "v1-5-pruned-emaonly.safetensors"}, {}),
}


@pytest.mark.parametrize("name", FORMATS)
def test_each_operation_comes_in_with_its_values_and_links(read, name):
    imported = read(name)
    nodes = imported.workflow.nodes
    for nid, (node_type, params, inputs) in OPS.items():
        assert (nodes[nid].type, nodes[nid].params, nodes[nid].inputs) == (node_type, params, inputs), nid
    assert all(n.type != "comfyui.Placeholder" for n in nodes.values())
    assert [line for line in imported.warnings if not line.startswith("missing ")] == [
        "node 29 (CheckpointLoader): the config file is not used: NodeForge reads the model's kind (SD 1.x, 2.x, "
        "XL) from the checkpoint's own weights; it exports back as Load Checkpoint (CheckpointLoaderSimple)",
        "node 32 (LoadLatent): ComfyUI stores latents without the VAE's scaling; NodeForge scales them by SD "
        "1.x/2.x's 0.18215 unless the model's VAE is connected to the node's vae input (SDXL, SD3)"]
    assert nodes["29"].extra == {} and nodes["1"].extra == {}


@pytest.mark.parametrize("name", FORMATS)
def test_the_graph_validates_and_exports_back_under_comfyuis_names(exported_back, name):
    back = exported_back(name, "comfy-ops-api.json", valid=True)
    back.assert_kept(sorted(set(back.original) - {"29"}))
    assert back.prompt["29"] == {"class_type": "CheckpointLoaderSimple", "_meta": {"title": "Load Checkpoint"},
                                 "inputs": {"ckpt_name": "v1-5-pruned-emaonly.safetensors"}}


def test_no_class_is_both_mapped_and_listed_as_unsupported():
    assert not comfy_packs.CORE & set(comfy_table.BY_COMFY)
