"""Packs' loaders that load the files ComfyUI's own loaders do (comfy-loaders-*.json): city96's ComfyUI-GGUF
(UnetLoaderGGUF, CLIPLoaderGGUF, DualCLIPLoaderGGUF) and KJNodes' Diffusion Model Loader KJ and VAELoader KJ
come in as NodeForge's loaders of the same kind of file (so --model-map by kind reaches them); a .gguf file goes
back to ComfyUI through ComfyUI-GGUF's loader (ComfyUI's own cannot read it), anything else as the core class."""
from __future__ import annotations

import pytest

from nodeforge.core.workflow import NodeRef, Workflow
from nodeforge.interop import export_comfyui_api, export_comfyui_ui, parse_model_map

FORMATS = ["comfy-loaders-0.4.json", "comfy-loaders-api.json"]

LOADERS = {
    "1": ("DiffusionModelLoader", {"model": "flux1-dev-Q4_0.gguf"}),
    "2": ("DualTextEncoderLoader", {"text_encoder_1": "clip_l.safetensors",
                                    "text_encoder_2": "t5-v1_1-xxl-encoder-Q8_0.gguf", "family": "flux"}),
    "3": ("TextEncoderLoader", {"text_encoder": "Qwen3-4B-Q4_K_M.gguf", "type": "lumina2"}),
    "4": ("DiffusionModelLoader", {"model": "z_image_turbo_bf16.safetensors"}),
    "5": ("VAELoader", {"vae": "ae.safetensors"}),
}


@pytest.mark.parametrize("name", FORMATS)
def test_pack_loaders_are_nodeforge_loaders_of_the_same_file(read, name):
    imported = read(name)
    nodes = imported.workflow.nodes
    for nid, (node_type, params) in LOADERS.items():
        assert (nodes[nid].type, nodes[nid].params, nodes[nid].inputs) == (node_type, params, {}), nid
    assert nodes["4"].title == "z-image (fp8)"
    # what they load is wired where the pack's node was
    assert nodes["9"].inputs["unet"] == ("1", "unet") and nodes["12"].inputs["unet"] == ("4", "unet")
    assert nodes["6"].inputs["clip"] == ("2", "clip") and nodes["7"].inputs["clip"] == ("3", "clip")
    assert nodes["10"].inputs["vae"] == ("5", "vae") and nodes["13"].inputs["vae"] == ("5", "vae")
    warnings = imported.warnings
    assert not [w for w in warnings if "placeholder" in w]
    # each file is missing under its own kind, so one by-kind map reaches it
    for kind, file in (("diffusion model", "flux1-dev-Q4_0.gguf"), ("text encoder", "t5-v1_1-xxl-encoder-Q8_0.gguf"),
                       ("text encoder", "Qwen3-4B-Q4_K_M.gguf"), ("diffusion model", "z_image_turbo_bf16.safetensors"),
                       ("VAE", "ae.safetensors")):
        assert any(w.startswith(f"missing {kind} '{file}'") for w in warnings), file
    assert "node 4 (DiffusionModelLoaderKJ): its weight/compute dtype, cuBLAS, SageAttention and fp16 accumulation " \
           "settings are not used (NodeForge picks the precision for the device); exported back as ComfyUI's " \
           "UNETLoader" in warnings
    assert "node 3 (CLIPLoaderGGUF): NodeForge reads text encoders from .safetensors files only: a .gguf one is " \
           "refused when the graph runs; map it to the .safetensors encoder (--model-map 'text_encoder:*=NAME')" \
           in warnings
    assert [w.split(":")[0] for w in warnings if "Flux transformer" in w] == ["node 1 (UnetLoaderGGUF)"]


@pytest.mark.parametrize("name", FORMATS)
def test_a_by_kind_map_reaches_the_pack_loaders_files(read, name, tmp_path):
    from nodeforge.core.models import ModelPaths

    root = tmp_path / "mine"
    for folder, file in (("diffusion_models", "flux1-dev.safetensors"), ("text_encoders", "t5xxl_fp16.safetensors"),
                         ("vae", "flux-ae.safetensors")):
        (root / folder).mkdir(parents=True)
        (root / folder / file).write_bytes(b"")
    mapped = parse_model_map(["diffusion_model:*=flux1-dev.safetensors", "text_encoder:*=t5xxl_fp16.safetensors",
                              "vae:*=flux-ae.safetensors"])
    nodes = read(name, model_map=mapped, model_paths=ModelPaths(roots=[root], include_builtin=False)).workflow.nodes
    assert nodes["1"].params["model"] == nodes["4"].params["model"] == "flux1-dev.safetensors"
    assert nodes["2"].params["text_encoder_2"] == nodes["3"].params["text_encoder"] == "t5xxl_fp16.safetensors"
    assert nodes["5"].params == {"vae": "flux-ae.safetensors"}


@pytest.mark.parametrize("name", FORMATS)
def test_gguf_files_go_back_through_comfyui_gguf_and_the_rest_as_core_loaders(read, registry, name):
    workflow = read(name).workflow
    prompt = export_comfyui_api(workflow, registry=registry)
    assert {nid: (prompt[nid]["class_type"], prompt[nid]["inputs"]) for nid in LOADERS} == {
        "1": ("UnetLoaderGGUF", {"unet_name": "flux1-dev-Q4_0.gguf"}),
        "2": ("DualCLIPLoaderGGUF", {"clip_name1": "clip_l.safetensors", "clip_name2": "t5-v1_1-xxl-encoder-Q8_0.gguf",
                                     "type": "flux"}),
        "3": ("CLIPLoaderGGUF", {"clip_name": "Qwen3-4B-Q4_K_M.gguf", "type": "lumina2"}),
        "4": ("UNETLoader", {"unet_name": "z_image_turbo_bf16.safetensors", "weight_dtype": "default"}),
        "5": ("VAELoader", {"vae_name": "ae.safetensors"}),
    }
    assert prompt["4"]["_meta"]["title"] == "z-image (fp8)"
    ui = {n["id"]: n for n in export_comfyui_ui(workflow, registry=registry)["nodes"]}
    assert (ui[1]["type"], ui[1]["widgets_values"]) == ("UnetLoaderGGUF", ["flux1-dev-Q4_0.gguf"])
    assert (ui[3]["type"], ui[3]["widgets_values"]) == ("CLIPLoaderGGUF", ["Qwen3-4B-Q4_K_M.gguf", "lumina2"])
    assert (ui[5]["type"], ui[5]["widgets_values"]) == ("VAELoader", ["ae.safetensors"])


def test_a_loader_picks_its_comfyui_class_by_the_file_it_loads(registry):
    """A NodeForge graph's loaders: a .gguf (any case) needs ComfyUI-GGUF's loader there, other files the core one."""
    workflow = Workflow()
    workflow.nodes.update({
        "1": NodeRef("DiffusionModelLoader", {"model": "flux1-schnell-Q8_0.GGUF"}),
        "2": NodeRef("DiffusionModelLoader", {"model": "flux1-schnell.safetensors"}),
        "3": NodeRef("TextEncoderLoader", {"text_encoder": "clip_l.safetensors", "type": "stable_diffusion"}),
        "4": NodeRef("DualTextEncoderLoader", {"text_encoder_1": "clip_l.safetensors",
                                               "text_encoder_2": "t5xxl_fp16.safetensors", "family": "flux"}),
    })
    prompt = export_comfyui_api(workflow, registry=registry)
    assert [prompt[nid]["class_type"] for nid in "1234"] == ["UnetLoaderGGUF", "UNETLoader", "CLIPLoader",
                                                             "DualCLIPLoader"]
