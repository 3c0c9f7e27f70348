"""Qwen-Image as ComfyUI users keep it (Comfy-Org/Qwen-Image_ComfyUI): the transformer alone (diffusers' keys,
with or without `model.diffusion_model.`; DiffusionModelLoader, ComfyUI's UNETLoader), Qwen2.5-VL alone in
Qwen's own key layout (TextEncoderLoader with type qwen_image, ComfyUI's CLIPLoader) and the VAE in Wan's
original layout (VAELoader), checked to give QwenImagePipeline's latents and image on tiny random models
(tests/nodes/tiny_qwenimage.py); files that cannot work refused in one line naming the file and the fix."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

import tiny_qwenimage as tq
import tiny_zimage as tz
from nodeforge.core.errors import NodeError

REPO = Path(__file__).resolve().parents[2]
PROMPT = "a red circle on a blue background"


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict:
    torch.set_num_threads(2)
    root = tmp_path_factory.mktemp("qwenfiles")
    parts = tq.make_qwenimage_components(0)
    folder = tq.save_qwenimage_folder(parts, root / "folders" / "tiny-qwen")
    found = {"root": root, "folder": folder, "parts": parts}
    found.update(tq.save_separate_files(parts, folder, root, prefix="model.diffusion_model."))
    zparts = tz.make_zimage_components(0)   # the hostile cases: Z-Image's parts given as Qwen-Image's
    zfolder = tz.save_zimage_folder(zparts, root / "folders" / "tiny-zimage")
    zfiles = tz.save_separate_files(zparts, zfolder, root)
    found.update(zimage_qwen3=zfiles["qwen"], zimage_transformer=zfiles["transformer"])
    return found


@pytest.fixture(scope="module")
def engine(make_engine, files, tmp_path_factory):
    return make_engine(tmp_path_factory.mktemp("qwenfilesout"), files["root"])


@pytest.fixture(scope="module")
def pipe(files):
    from diffusers import QwenImagePipeline

    from nodes.families.qwenimage_text import TXT2IMG_TEMPLATE

    pipe = QwenImagePipeline.from_pretrained(str(files["folder"]), local_files_only=True)
    pipe.prompt_template_encode_start_idx = tq.prefix_length(pipe.tokenizer, TXT2IMG_TEMPLATE)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def separate_txt2img(seed: int = 3, clip_type: str = "qwen_image", text_encoder: str = "qwen_2.5_vl_7b",
                     model: str = "qwen-image-tiny"):
    """workflows/txt2img.json with CheckpointLoader replaced by the three separate loaders, cfg 1."""
    from nodeforge import load_workflow

    wf = load_workflow(REPO / "workflows" / "txt2img.json")
    wf.add("DiffusionModelLoader", {"model": model}, node_id="unet")
    wf.add("TextEncoderLoader", {"text_encoder": text_encoder, "type": clip_type}, node_id="clip")
    wf.add("VAELoader", {"vae": "qwen_image_vae"}, node_id="vae")
    for node in ("2", "3"):
        wf.nodes[node].inputs["clip"] = ("clip", "clip")
    wf.nodes["5"].inputs["unet"] = ("unet", "unet")
    wf.nodes["6"].inputs["vae"] = ("vae", "vae")
    del wf.nodes["1"]
    wf.nodes["4"].params.update(width=64, height=64)
    wf.nodes["5"].params.update(seed=seed, steps=3, cfg=1.0)
    return wf


def test_the_three_files_give_the_folders_weights_and_family(files):
    from nodes.families.probe import model_facts
    from nodes.families.qwenimage_file import read_text_encoder, read_transformer, read_vae
    from nodes.loading import read_state_dict

    parts = files["parts"]
    state, _ = read_state_dict(files["transformer"], field="model")
    unet = read_transformer(files["transformer"], state, "cpu", torch.float32).wrapper()
    clip = read_text_encoder(files["qwen"], "cpu").wrapper()
    vae_state, _ = read_state_dict(files["vae"], field="vae")
    vae = read_vae(files["vae"], vae_state, "cpu")["vae"].model
    for ours, theirs in ((unet.unet, parts["transformer"]), (clip.text_encoder, parts["text_encoder"]),
                         (vae, parts["vae"])):
        sa, sb = ours.state_dict(), theirs.state_dict()
        assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
    assert (unet.family, clip.family) == ("qwenimage", "qwenimage")
    assert model_facts(files["transformer"]) == {"family": "qwenimage", "flow": True}


def test_the_separate_files_give_qwenimage_pipelines_latents_and_image(engine, pipe):
    run = engine.run(separate_txt2img(seed=6), outputs=["5", "6"])
    packed = pipe(PROMPT, num_inference_steps=3, height=64, width=64, true_cfg_scale=1.0,
                  generator=torch.Generator().manual_seed(6), output_type="latent").images
    expected = type(pipe)._unpack_latents(packed, 64, 64, 8)[:, :, 0]
    assert float((run.outputs["5"]["latent"]["samples"] - expected).abs().max()) < 1e-4
    image = pipe(PROMPT, num_inference_steps=3, height=64, width=64, true_cfg_scale=1.0,
                 generator=torch.Generator().manual_seed(6), output_type="pt").images
    torch.testing.assert_close(run.outputs["6"]["image"], image.permute(0, 2, 3, 1), atol=1e-4, rtol=1e-4)


def test_vae_loader_takes_the_pipelines_vae_folder_as_the_vae_file(engine, files):
    """VAELoader on a QwenImagePipeline folder (or its vae/) decodes as qwen_image_vae.safetensors does."""
    wf = separate_txt2img(seed=6)
    image = engine.run(wf, outputs=["6"]).outputs["6"]["image"]
    for folder in (files["folder"], files["folder"] / "vae"):
        wf.nodes["vae"].params["vae"] = str(folder)
        torch.testing.assert_close(engine.run(wf, outputs=["6"]).outputs["6"]["image"], image, atol=1e-5, rtol=1e-5)


def _refusal(engine, wf) -> Exception:
    from nodeforge.core.errors import NodeExecutionError

    with pytest.raises(NodeExecutionError) as info:
        engine.run(wf, outputs=["5"])
    assert "\n" not in str(info.value)
    return info.value


def test_zimages_qwen3_given_as_qwen_image_says_set_type_lumina2(engine):
    message = str(_refusal(engine, separate_txt2img(text_encoder="qwen_3_4b")))
    assert "qwen_3_4b.safetensors" in message and "Qwen3" in message and "lumina2" in message


def test_qwen25_vl_given_as_lumina2_says_set_type_qwen_image(engine):
    message = str(_refusal(engine, separate_txt2img(clip_type="lumina2")))
    assert "qwen_2.5_vl_7b.safetensors" in message and "Qwen2.5-VL" in message and "qwen_image" in message


def test_a_zimage_transformer_with_qwen_images_text_encoder_names_the_prompts_family(engine):
    message = str(_refusal(engine, separate_txt2img(model="z-image-tiny")))
    assert "qwenimage" in message and "Z-Image" in message and "encode it with this Z-Image model's" in message


def test_a_qwenimage_transformer_picked_as_a_checkpoint_names_the_three_loaders(files):
    from nodes.loading import load_checkpoint

    (files["root"] / "checkpoints").mkdir(exist_ok=True)
    copy = shutil.copy(files["transformer"], files["root"] / "checkpoints" / "qwen-image-tiny.safetensors")
    with pytest.raises(NodeError) as info:
        load_checkpoint(Path(copy), "cpu")
    message = str(info.value)
    assert "qwen-image-tiny.safetensors is a Qwen-Image transformer alone" in message
    assert "DiffusionModelLoader" in message and "type qwen_image" in message and "VAELoader" in message
