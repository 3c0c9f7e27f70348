"""Z-Image as ComfyUI users keep it: the transformer alone (original keys; DiffusionModelLoader, ComfyUI's
UNETLoader), Qwen3-4B alone (TextEncoderLoader with type lumina2, ComfyUI's CLIPLoader) and the Flux VAE
(VAELoader), checked to give ZImagePipeline's latents on tiny random models (tests/nodes/tiny_zimage.py);
a ComfyUI API graph of that layout imported and run; files that cannot work refused in one line naming
the file and the fix."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

import tiny_zimage as tz
from nodeforge.core.errors import NodeError

REPO = Path(__file__).resolve().parents[2]
PROMPT = "a red circle on a blue background"


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict:
    torch.set_num_threads(2)
    root = tmp_path_factory.mktemp("zimagefiles")
    parts = tz.make_zimage_components(0)
    folder = tz.save_zimage_folder(parts, root / "folders" / "tiny-zimage")
    found = {"root": root, "folder": folder, "parts": parts}
    found.update(tz.save_separate_files(parts, folder, root))
    (root / "checkpoints").mkdir()
    for name in ("transformer", "qwen"):   # the hostile case: a part picked as a checkpoint
        shutil.copy(found[name], root / "checkpoints" / found[name].name)
    return found


@pytest.fixture(scope="module")
def engine(make_engine, files, tmp_path_factory):
    return make_engine(tmp_path_factory.mktemp("zimagefilesout"), files["root"])


@pytest.fixture(scope="module")
def pipe(files):
    from diffusers import ZImagePipeline

    pipe = ZImagePipeline.from_pretrained(str(files["folder"]), local_files_only=True)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def theirs(pipe, seed: int, cfg: float = 1.0, **kw) -> torch.Tensor:
    return pipe(kw.pop("prompt", PROMPT), num_inference_steps=4, height=32, width=32, guidance_scale=cfg - 1.0,
                generator=torch.Generator().manual_seed(seed), output_type="latent", **kw).images


def separate_txt2img(seed: int = 3, cfg: float = 1.0, clip_type: str = "lumina2"):
    """workflows/txt2img.json with CheckpointLoader replaced by the three separate loaders."""
    from nodeforge import load_workflow

    wf = load_workflow(REPO / "workflows" / "txt2img.json")
    wf.add("DiffusionModelLoader", {"model": "z-image-tiny"}, node_id="unet")
    wf.add("TextEncoderLoader", {"text_encoder": "qwen_3_4b", "type": clip_type}, node_id="clip")
    wf.add("VAELoader", {"vae": "ae"}, node_id="vae")
    for node in ("2", "3"):
        wf.nodes[node].inputs["clip"] = ("clip", "clip")
    wf.nodes["5"].inputs["unet"] = ("unet", "unet")
    wf.nodes["6"].inputs["vae"] = ("vae", "vae")
    del wf.nodes["1"]
    wf.nodes["4"].params.update(width=32, height=32)
    wf.nodes["5"].params.update(seed=seed, steps=4, cfg=cfg)
    return wf


def same_weights(a, b) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)


def test_the_original_transformer_file_gives_the_folders_weights_and_family(files):
    from nodes.families.probe import model_facts
    from nodes.families.separate import _read_diffusion_model

    unet = _read_diffusion_model(files["transformer"], "cpu").wrapper()
    assert (unet.family, unet.prediction_type, unet.latent_channels, unet.vae_factor) == ("zimage", "flow", 16, 2)
    assert unet.scheduler_config["shift"] == 3.0
    same_weights(unet.unet, files["parts"]["transformer"])
    assert model_facts(files["transformer"]) == {"family": "zimage", "flow": True}


def test_the_qwen3_file_with_comfyuis_model_prefix_gives_the_folders_encoder(files):
    from nodes.families.zimage_file import read_text_encoder

    clip = read_text_encoder(files["qwen"], "cpu").wrapper()
    assert clip.family == "zimage" and clip.tokenizer.chat_template
    same_weights(clip.text_encoder, files["parts"]["text_encoder"])


@pytest.mark.parametrize("cfg", [1.0, 4.0])
def test_the_separate_files_give_zimage_pipelines_latents(engine, pipe, cfg):
    ours = engine.run(separate_txt2img(seed=3, cfg=cfg), outputs=["5"]).outputs["5"]["latent"]["samples"]
    assert ours.shape == (1, 16, 16, 16)
    assert float((ours - theirs(pipe, 3, cfg, negative_prompt="")).abs().max()) < 1e-4


def test_the_separate_files_decode_to_the_pipelines_image(engine, pipe):
    image = engine.run(separate_txt2img(seed=8), outputs=["6"]).outputs["6"]["image"]
    expected = pipe(PROMPT, num_inference_steps=4, height=32, width=32, guidance_scale=0.0,
                    generator=torch.Generator().manual_seed(8), output_type="pt").images
    torch.testing.assert_close(image, expected.permute(0, 2, 3, 1), atol=1e-4, rtol=1e-4)


def test_validate_knows_the_transformer_file_is_a_flow_model(engine):
    wf = separate_txt2img()
    wf.nodes["5"].params["sampler"] = "ddim"
    found = {(p.node_id, p.field): p.message for p in engine.validate(wf)}
    assert list(found) == [("5", "sampler")] and "flow model" in found[("5", "sampler")]


COMFY_API = {
    "1": {"class_type": "UNETLoader", "inputs": {"unet_name": "z_image_turbo_bf16.safetensors",
                                                 "weight_dtype": "default"}},
    "2": {"class_type": "CLIPLoader", "inputs": {"clip_name": "qwen_3_4b.safetensors", "type": "lumina2",
                                                 "device": "default"}},
    "3": {"class_type": "VAELoader", "inputs": {"vae_name": "ae.safetensors"}},
    "4": {"class_type": "ModelSamplingAuraFlow", "inputs": {"shift": 3.0, "model": ["1", 0]}},
    "5": {"class_type": "CLIPTextEncode", "inputs": {"text": PROMPT, "clip": ["2", 0]}},
    "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "blurry", "clip": ["2", 0]}},
    "7": {"class_type": "EmptySD3LatentImage", "inputs": {"width": 32, "height": 32, "batch_size": 1}},
    "8": {"class_type": "KSampler", "inputs": {"seed": 11, "steps": 4, "cfg": 2.5, "sampler_name": "euler",
                                               "scheduler": "simple", "denoise": 1.0, "model": ["4", 0],
                                               "positive": ["5", 0], "negative": ["6", 0], "latent_image": ["7", 0]}},
    "9": {"class_type": "VAEDecode", "inputs": {"samples": ["8", 0], "vae": ["3", 0]}},
    "10": {"class_type": "SaveImage", "inputs": {"filename_prefix": "z-image", "images": ["9", 0]}},
}


def test_a_comfyui_zimage_api_graph_imports_and_gives_the_pipelines_latents(engine, pipe, tmp_path):
    from nodeforge.interop import read_workflow

    path = tmp_path / "comfy-zimage-api.json"
    path.write_text(json.dumps(COMFY_API))
    imported = read_workflow(path, registry=engine.registry, model_paths=engine.model_paths,
                             model_map={"z_image_turbo_bf16.safetensors": "z-image-tiny"})
    assert imported.missing == [], imported.missing
    nodes = imported.workflow.nodes
    assert (nodes["1"].type, nodes["2"].type, nodes["4"].type, nodes["8"].type) == \
        ("DiffusionModelLoader", "TextEncoderLoader", "ModelSamplingSD3", "UNetDenoise")
    assert nodes["2"].params["type"] == "lumina2"
    ours = engine.run(imported.workflow, outputs=["8"]).outputs["8"]["latent"]["samples"]
    assert float((ours - theirs(pipe, 11, 2.5, negative_prompt="blurry")).abs().max()) < 1e-4


# -- refusals --------------------------------------------------------------------------------------------------
def test_the_transformer_alone_picked_as_a_checkpoint_names_the_three_loaders(engine):
    from nodes.loading import load_checkpoint

    with pytest.raises(NodeError) as info:
        load_checkpoint(engine.model_paths.roots[-1] / "checkpoints" / "z-image-tiny.safetensors", "cpu")
    message = str(info.value)
    assert message.startswith("z-image-tiny.safetensors is a Z-Image transformer alone") and "\n" not in message
    assert "DiffusionModelLoader" in message and "TextEncoderLoader (type lumina2)" in message
    assert "VAELoader" in message


def test_the_qwen3_file_picked_as_a_checkpoint_or_as_sd1_clip_says_type_lumina2(engine, files):
    from nodes.loading import load_checkpoint

    with pytest.raises(NodeError) as info:
        load_checkpoint(engine.model_paths.roots[-1] / "checkpoints" / "qwen_3_4b.safetensors", "cpu")
    assert "qwen_3_4b.safetensors is a Qwen3 text encoder alone" in str(info.value)
    assert "TextEncoderLoader (type lumina2)" in str(info.value) and "\n" not in str(info.value)
    with pytest.raises(Exception) as info:
        engine.run(separate_txt2img(clip_type="stable_diffusion"), outputs=["2"])
    assert "qwen_3_4b.safetensors holds Qwen3" in str(info.value) and "set type lumina2" in str(info.value)


def test_a_qwen3_file_without_its_tokenizer_names_where_to_put_it(files, tmp_path, monkeypatch):
    from nodes.families import zimage_file

    monkeypatch.setattr(zimage_file, "QWEN_TOKENIZER_HUB", "nodeforge-tests/no-such-tokenizer")
    alone = tmp_path / "text_encoders" / "qwen_3_4b.safetensors"
    alone.parent.mkdir()
    shutil.copy(files["qwen"], alone)
    with pytest.raises(NodeError) as info:
        zimage_file.read_text_encoder(alone, "cpu")
    message = str(info.value)
    assert message.startswith("qwen_3_4b.safetensors: no Qwen tokenizer") and "qwen_3_4b.config/tokenizer/" in message
    assert "\n" not in message


def test_a_clip_file_given_as_zimages_text_encoder_is_refused(files, tmp_path):
    from safetensors.torch import save_file

    import tiny_models as tm
    from nodes.families.zimage_file import read_text_encoder

    clip = tmp_path / "clip_l.safetensors"
    save_file({k: v.contiguous() for k, v in tm.hf_clip_state(tm.make_components(0)["text_encoder"]).items()},
              str(clip))
    with pytest.raises(NodeError) as info:
        read_text_encoder(clip, "cpu")
    assert "clip_l.safetensors holds no Qwen3 text encoder" in str(info.value) and "qwen_3_4b" in str(info.value)


def comfy_ui_graph(sampler: str) -> dict:
    """The API graph above in ComfyUI's UI format (0.4), as its Z-Image template lays it out (KSampler widgets:
    seed, control, steps, cfg, sampler, scheduler, denoise)."""
    widgets = {"1": ["z_image_turbo_bf16.safetensors", "default"], "2": ["qwen_3_4b.safetensors", "lumina2", "default"],
               "3": ["ae.safetensors"], "4": [3.0], "5": [PROMPT], "6": ["blurry"], "7": [32, 32, 1],
               "8": [11, "fixed", 4, 2.5, sampler, "simple", 1.0], "9": [], "10": ["z-image"]}
    kinds = {"1": "MODEL", "2": "CLIP", "3": "VAE", "4": "MODEL", "5": "CONDITIONING", "6": "CONDITIONING",
             "7": "LATENT", "8": "LATENT", "9": "IMAGE"}
    nodes = {nid: {"id": int(nid), "type": node["class_type"], "pos": [0, 0], "size": [300, 100], "flags": {},
                   "order": 0, "mode": 0, "properties": {}, "widgets_values": widgets[nid], "inputs": [],
                   "outputs": [{"name": kinds[nid], "type": kinds[nid], "links": [], "slot_index": 0}]
                   if nid in kinds else []}
             for nid, node in COMFY_API.items()}
    links = []
    for nid, node in COMFY_API.items():
        for name, value in node["inputs"].items():
            if isinstance(value, list):
                link = len(links) + 1
                links.append([link, int(value[0]), 0, int(nid), len(nodes[nid]["inputs"]), kinds[value[0]]])
                nodes[nid]["inputs"].append({"name": name, "type": kinds[value[0]], "link": link})
                nodes[value[0]]["outputs"][0]["links"].append(link)
    return {"last_node_id": 10, "last_link_id": len(links), "nodes": list(nodes.values()), "links": links,
            "groups": [], "config": {}, "extra": {}, "version": 0.4}


@pytest.mark.parametrize("sampler", ["euler", "res_multistep"])
def test_a_comfyui_zimage_ui_graph_imports_and_runs(engine, pipe, tmp_path, sampler):
    from nodeforge.interop import read_workflow

    path = tmp_path / "comfy-zimage-0.4.json"
    path.write_text(json.dumps(comfy_ui_graph(sampler)))
    imported = read_workflow(path, registry=engine.registry, model_paths=engine.model_paths,
                             model_map={"z_image_turbo_bf16.safetensors": "z-image-tiny"})
    assert imported.missing == [], imported.missing
    nodes = imported.workflow.nodes
    assert nodes["2"].params["type"] == "lumina2" and nodes["4"].params["shift"] == 3.0
    ours = engine.run(imported.workflow, outputs=["8"]).outputs["8"]["latent"]["samples"]
    expected = theirs(pipe, 11, 2.5, negative_prompt="blurry")
    if sampler == "euler":
        assert float((ours - expected).abs().max()) < 1e-4
    else:   # ComfyUI's res_multistep runs as dpmpp_2m, the nearest NodeForge has: the same ODE, another solver
        assert nodes["8"].params["sampler"] == "dpmpp_2m" and torch.isfinite(ours).all()
        assert (ours - expected).abs().mean() < 0.25 * expected.abs().mean()
