"""Stable Cascade as a model family, checked against diffusers' StableCascadePriorPipeline and
StableCascadeDecoderPipeline on tiny random models (tests/nodes/tiny_cascade.py): loading both stages'
folders, the CLIP-G prompt, stage C and stage B sampled with euler_ancestral on the cosine schedule (the
pipelines' DDPM step is the same ancestral step), stage A decoding, the stage nodes' values, and refusals."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

import tiny_cascade as tc
from nodeforge.core.errors import NodeError

PROMPT = "a red circle on a blue background"
SIZE = 128          # stage C latent 3x3 at compression 42, stage B latent 32x32


@pytest.fixture(scope="module")
def cascade_dir(tmp_path_factory):
    torch.set_num_threads(2)
    root = tmp_path_factory.mktemp("cascademodels")
    (root / "checkpoints").mkdir()
    tc.save_prior_folder(tc.make_prior_components(0), root / "checkpoints" / "tiny-cascade-c")
    tc.save_decoder_folder(tc.make_decoder_components(0), root / "checkpoints" / "tiny-cascade-b")
    return root


@pytest.fixture(scope="module")
def cascade_engine(make_engine, cascade_dir, tmp_path_factory):
    return make_engine(tmp_path_factory.mktemp("cascadeout"), cascade_dir)


def _pipe(cascade_dir, cls: str, folder: str):
    import diffusers
    from diffusers.pipelines.deprecated.wuerstchen import PaellaVQModel

    path = cascade_dir / "checkpoints" / folder
    if (path / "vqgan").is_dir():   # diffusers' from_pretrained cannot find the deprecated PaellaVQModel class
        from transformers import CLIPTextModelWithProjection, CLIPTokenizer

        pipe = diffusers.StableCascadeDecoderPipeline(
            decoder=diffusers.StableCascadeUNet.from_pretrained(str(path / "decoder")),
            tokenizer=CLIPTokenizer.from_pretrained(str(path / "tokenizer")),
            text_encoder=CLIPTextModelWithProjection.from_pretrained(str(path / "text_encoder")),
            scheduler=diffusers.DDPMWuerstchenScheduler.from_pretrained(str(path / "scheduler")),
            vqgan=PaellaVQModel.from_pretrained(str(path / "vqgan")), latent_dim_scale=10.67)
    else:
        pipe = getattr(diffusers, cls).from_pretrained(str(path), local_files_only=True)
    pipe.set_progress_bar_config(disable=True)
    return pipe


@pytest.fixture(scope="module")
def prior(cascade_dir):
    return _pipe(cascade_dir, "StableCascadePriorPipeline", "tiny-cascade-c")


@pytest.fixture(scope="module")
def decoder(cascade_dir):
    return _pipe(cascade_dir, "StableCascadeDecoderPipeline", "tiny-cascade-b")


def graph(*, seed: int = 5, steps: int = 4, cfg: float = 4.0, b_steps: int = 4, b_cfg: float = 1.5,
          shift: float | None = 1.0, stop_c: int = 10000, stop_b: int = 10000):
    """The corpus' two-stage graph: stage C sampled from an empty latent, its result conditioning stage B,
    stage A decoding. `shift` (1: the pipelines') goes through ModelSamplingStableCascade; `stop_*` stop a
    stage before its last step with the leftover noise (what the pipelines' step callback sees)."""
    from nodeforge import Workflow

    wf = Workflow()
    wf.add("CascadeCheckpointLoader", {"stage_b": "tiny-cascade-b", "stage_c": "tiny-cascade-c"}, node_id="ckpt")
    c_model = ("ckpt", "c_model")
    if shift is not None:
        wf.add("ModelSamplingStableCascade", {"shift": shift}, {"unet": c_model}, node_id="shift")
        c_model = ("shift", "unet")
    wf.add("TextEncoder", {"text": PROMPT}, {"clip": ("ckpt", "clip")}, node_id="pos")
    wf.add("TextEncoder", {"text": ""}, {"clip": ("ckpt", "clip")}, node_id="neg")
    wf.add("EmptyLatentCascade", {"width": SIZE, "height": SIZE, "compression": 42, "batch_size": 1}, node_id="empty")
    common = dict(seed=seed, sampler="euler_ancestral", schedule="simple", denoise=1.0)
    wf.add("UNetDenoise", dict(common, steps=steps, cfg=cfg, end_at_step=stop_c, return_with_leftover_noise=True),
           {"unet": c_model, "positive": ("pos", "conditioning"), "negative": ("neg", "conditioning"),
            "latent": ("empty", "stage_c")}, node_id="c")
    wf.add("StageBConditioning", {}, {"conditioning": ("pos", "conditioning"), "stage_c": ("c", "latent")},
           node_id="bcond")
    wf.add("UNetDenoise", dict(common, steps=b_steps, cfg=b_cfg, end_at_step=stop_b, return_with_leftover_noise=True),
           {"unet": ("ckpt", "b_model"), "positive": ("bcond", "conditioning"), "negative": ("neg", "conditioning"),
            "latent": ("empty", "stage_b")}, node_id="b")
    wf.add("VAEDecode", {}, {"vae": ("ckpt", "b_vae"), "latent": ("b", "latent")}, node_id="decode")
    return wf


def _latent(engine, wf, node: str) -> torch.Tensor:
    return engine.run(wf, outputs=[node]).outputs[node]["latent"]["samples"]


def _steps_of(pipe, **kw) -> list[torch.Tensor]:
    """The pipeline's latents after each step (VP space)."""
    seen: list[torch.Tensor] = []

    def keep(p, i, t, tensors):
        seen.append(tensors["latents"].clone())
        return {}
    pipe(**kw, callback_on_step_end=keep, callback_on_step_end_tensor_inputs=["latents"])
    return seen


def _relative(ours: torch.Tensor, theirs: torch.Tensor) -> float:
    """The largest difference over the largest value: a random tiny model's first step predicts the clean
    latent as (x - eps) x 100 (alpha 1e-4 at t = 1), so its latents are ~100 and float32 rounding ~1e-5 of that."""
    return float((ours - theirs).abs().max() / theirs.abs().max())


def _to_vp(latents: torch.Tensor, sigma: float) -> torch.Tensor:
    return latents / (1 + sigma ** 2) ** 0.5


def _sigma(t: float, shift: float = 1.0) -> float:
    from nodes.families.cascade import alphas_cumprod

    a = float(alphas_cumprod(shift)[round(t * 1000) - 1])
    return ((1 - a) / a) ** 0.5


# -- loading and text ----------------------------------------------------------------------------------------
def test_both_stage_folders_load_as_the_cascade_family(cascade_dir):
    from nodes.families.probe import model_facts
    from nodes.loading import load_checkpoint

    c_unet, clip, c_vae = load_checkpoint(cascade_dir / "checkpoints" / "tiny-cascade-c", "cpu").wrappers()
    b_unet, _, b_vae = load_checkpoint(cascade_dir / "checkpoints" / "tiny-cascade-b", "cpu").wrappers()
    assert (c_unet.family, c_unet.latent_channels, c_unet.scheduler_config["_shift"]) == ("cascade", 16, 2.0)
    assert (b_unet.family, b_unet.latent_channels, b_unet.scheduler_config["_shift"]) == ("cascade", 4, 1.0)
    assert clip.family == "cascade" and type(clip.text_encoder).__name__ == "CLIPTextModelWithProjection"
    assert (b_vae.factor, b_vae.latent_channels) == (4, 4) and abs(b_vae.scaling_factor * 0.3764 - 1) < 1e-6
    assert model_facts(cascade_dir / "checkpoints" / "tiny-cascade-c") == {"family": "cascade", "flow": False}
    with pytest.raises(NodeError, match="cannot encode or decode"):
        c_vae.vae.encode(torch.zeros(1, 3, 32, 32))


def test_text_encoder_gives_the_prior_pipelines_prompt(cascade_engine, prior):
    wf = graph()
    entry = cascade_engine.run(wf, outputs=["pos"]).outputs["pos"]["conditioning"][0]
    embeds, pooled, _, _ = prior.encode_prompt("cpu", 1, 1, False, prompt=PROMPT)
    assert entry["family"] == "cascade" and entry["embeds"].shape == (1, 77, tc.TEXT_WIDTH)
    torch.testing.assert_close(entry["embeds"], embeds, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(entry["pooled"][:, None], pooled, atol=1e-5, rtol=1e-5)


# -- the stage nodes --------------------------------------------------------------------------------------------
def test_empty_latent_gives_both_stages_shapes_for_a_size_and_compression():
    from nodes.families.cascade_nodes import run_empty_latent

    out = run_empty_latent(None, width=1024, height=768, compression=42, batch_size=2)
    assert out["stage_c"]["samples"].shape == (2, 16, 18, 24) and out["stage_b"]["samples"].shape == (2, 4, 192, 256)
    assert not out["stage_c"]["samples"].any() and not out["stage_b"]["samples"].any()
    assert run_empty_latent(None, width=1024, height=1024, compression=32, batch_size=1)["stage_c"]["samples"].shape \
        == (1, 16, 32, 32)
    with pytest.raises(NodeError, match="compression"):
        run_empty_latent(None, width=256, height=40, compression=42, batch_size=1)


def test_stage_b_conditioning_carries_stage_cs_latent_in_every_entry():
    from nodes.families.cascade_nodes import run_stage_b_conditioning

    latent = torch.randn(1, 16, 3, 3)
    prompts = [{"embeds": torch.ones(1, 77, 8), "family": "cascade"}, {"embeds": torch.zeros(1, 77, 8)}]
    out = run_stage_b_conditioning(None, prompts, {"samples": latent})["conditioning"]
    assert len(out) == 2 and all(e["stable_cascade_prior"] is latent for e in out)
    assert "stable_cascade_prior" not in prompts[0]    # the input is not changed
    with pytest.raises(NodeError, match="16-channel"):
        run_stage_b_conditioning(None, prompts, {"samples": torch.zeros(1, 4, 32, 32)})


def test_stage_c_vae_encode_sizes_the_image_for_its_encoder():
    from nodes.families.cascade_nodes import centre_resize, run_stage_c_vae_encode

    seen = []

    class Encoder(torch.nn.Module):   # records what it is given; 16 channels at 1/32 as stage C's encoder
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.ones(1))

        def encode(self, pixels):
            seen.append(pixels)
            from nodes.families.cascade_nodes import _Output
            return _Output(pixels.mean(1, keepdim=True)[:, :, ::32, ::32].repeat(1, 16, 1, 1))

    from nodes.wrappers import VAEModel

    vae = VAEModel(vae=Encoder(), scaling_factor=1.0, shift_factor=0.0, factor=32, latent_channels=16)
    image = torch.rand(2, 300, 500, 3)
    out = run_stage_c_vae_encode(None, image, vae, compression=42)
    assert seen[0].shape == (2, 3, 7 * 32, 11 * 32)     # 300 // 42 = 7, 500 // 42 = 11 latent pixels, x 32
    assert out["stage_c"]["samples"].shape == (2, 16, 7, 11)
    assert out["stage_b"]["samples"].shape == (2, 4, 300 // 8 * 2, 500 // 8 * 2) and not out["stage_b"]["samples"].any()
    square = centre_resize(torch.arange(4.0).reshape(1, 1, 4, 1).repeat(1, 2, 1, 3) / 4, 2, 2)
    assert square.shape == (1, 2, 2, 3)   # a 4x2 image cut to its centre 2x2
    torch.testing.assert_close(square[0, :, :, 0], torch.tensor([[0.25, 0.5], [0.25, 0.5]]))


# -- sampling against the pipelines -------------------------------------------------------------------------------
def test_stage_c_steps_as_the_prior_pipeline(cascade_engine, prior):
    """euler_ancestral on the cosine schedule is the pipeline's DDPM step (the same posterior mean and noise,
    drawn from the same generator): equal after every step but the last, where the pipeline stops at its
    clamped alpha 0.9999 instead of sigma 0."""
    theirs = _steps_of(prior, prompt=PROMPT, negative_prompt="", height=SIZE, width=SIZE, num_inference_steps=4,
                       guidance_scale=4.0, generator=torch.Generator().manual_seed(5))
    for stop, t in ((1, 0.75), (3, 0.25)):
        ours = _latent(cascade_engine, graph(stop_c=stop), "c")
        assert ours.shape == (1, 16, 3, 3)
        assert _relative(_to_vp(ours, _sigma(t)), theirs[stop - 1]) < 1e-4
    full = _latent(cascade_engine, graph(), "c")
    assert _relative(full, theirs[-1]) < 2e-2


def test_stage_b_steps_as_the_decoder_pipeline_on_stage_cs_latent(cascade_engine, decoder):
    stage_c = _latent(cascade_engine, graph(), "c")
    theirs = _steps_of(decoder, image_embeddings=stage_c, prompt=PROMPT, negative_prompt="", num_inference_steps=4,
                       guidance_scale=1.5, generator=torch.Generator().manual_seed(5))
    first = _latent(cascade_engine, graph(stop_b=1), "b")
    assert first.shape == theirs[0].shape == (1, 4, 32, 32)
    assert _relative(_to_vp(first, _sigma(0.75)), theirs[0]) < 2e-4   # float32 rounding: 1.0e-4 measured
    ours = _latent(cascade_engine, graph(stop_b=3), "b")   # and it grows over the steps (1.1e-4 measured)
    assert _relative(_to_vp(ours, _sigma(0.25)), theirs[2]) < 3e-4
    # stage B reads the latent: another stage C result changes it
    other = cascade_engine.run(graph(stop_b=3, seed=6), outputs=["b"]).outputs["b"]["latent"]["samples"]
    assert float((other - ours).abs().max()) > 1e-3


def test_stage_a_decodes_as_the_decoder_pipeline(cascade_engine, decoder):
    wf = graph()
    out = cascade_engine.run(wf, outputs=["b", "decode"]).outputs
    latent, image = out["b"]["latent"]["samples"], out["decode"]["image"]
    with torch.no_grad():
        expected = decoder.vqgan.decode(latent * decoder.vqgan.config.scale_factor).sample.clamp(0, 1)
    assert image.shape == (1, SIZE, SIZE, 3)
    torch.testing.assert_close(image, expected.permute(0, 2, 3, 1), atol=1e-4, rtol=0)


def test_stage_c_samples_with_comfyuis_shift_2_unless_model_sampling_sets_it(cascade_dir):
    import dataclasses

    from nodes.families.cascade_nodes import run_model_sampling
    from nodes.families.cascade_sampling import CASCADE_SAMPLING
    from nodes.loading import load_checkpoint
    from nodes.sampling import DenoiseRequest

    unet = load_checkpoint(cascade_dir / "checkpoints" / "tiny-cascade-c", "cpu").wrappers()[0]
    request = DenoiseRequest(seed=0, steps=4, cfg=1.0, sampler="euler_ancestral", schedule="simple")
    shifted = CASCADE_SAMPLING.make_scheduler(unet, request).sigmas
    plain = CASCADE_SAMPLING.make_scheduler(run_model_sampling(None, unet, 1.0)["unet"], request).sigmas
    assert [round(_sigma(t), 4) for t in (1.0, 0.75, 0.5, 0.25)] == [round(float(s), 4) for s in plain[:4]]
    # the log-SNR moved by -2 ln 2: sigma doubled where the clamp does not hold (all but the top)
    torch.testing.assert_close(shifted[1:4], 2 * plain[1:4], rtol=1e-3, atol=0)
    assert float(shifted[0]) == pytest.approx(float(plain[0])) and float(shifted[-1]) == 0.0
    with pytest.raises(NodeError, match="Stable Cascade"):
        run_model_sampling(None, dataclasses.replace(unet, family="sdxl"), 2.0)


# -- ComfyUI files ------------------------------------------------------------------------------------------------
def _comfy_prompt(image: str) -> dict:
    """A ComfyUI API prompt of the shared two-stage graphs: Inspire's loader, an image prompt for stage C
    (CLIPVisionEncode + unCLIPConditioning), both stages' KSamplers and stage A's decode."""
    return {
        "52": {"class_type": "StableCascade_CheckpointLoader //Inspire",
               "inputs": {"stage_b": "stable_cascade_stage_b.safetensors", "key_opt_b": "",
                          "stage_c": "stable_cascade_stage_c.safetensors", "key_opt_c": "", "cache_mode": "all"}},
        "6": {"class_type": "CLIPTextEncode", "inputs": {"text": PROMPT, "clip": ["52", 5]}},
        "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "", "clip": ["52", 5]}},
        "48": {"class_type": "LoadImage", "inputs": {"image": image}},
        "50": {"class_type": "CLIPVisionEncode", "inputs": {"clip_vision": ["52", 4], "image": ["48", 0],
                                                            "crop": "center"}},
        "51": {"class_type": "unCLIPConditioning", "inputs": {"conditioning": ["6", 0], "clip_vision_output": ["50", 0],
                                                              "strength": 1.0, "noise_augmentation": 0.0}},
        "34": {"class_type": "StableCascade_EmptyLatentImage",
               "inputs": {"width": SIZE, "height": SIZE, "compression": 42, "batch_size": 1}},
        "3": {"class_type": "KSampler", "inputs": {"seed": 5, "steps": 4, "cfg": 4.0, "sampler_name": "euler_ancestral",
                                                   "scheduler": "simple", "denoise": 1.0, "model": ["52", 2],
                                                   "positive": ["51", 0], "negative": ["7", 0],
                                                   "latent_image": ["34", 0]}},
        "36": {"class_type": "StableCascade_StageB_Conditioning", "inputs": {"conditioning": ["6", 0],
                                                                             "stage_c": ["3", 0]}},
        "33": {"class_type": "KSampler", "inputs": {"seed": 5, "steps": 4, "cfg": 1.1, "sampler_name": "euler_ancestral",
                                                    "scheduler": "simple", "denoise": 1.0, "model": ["52", 0],
                                                    "positive": ["36", 0], "negative": ["7", 0],
                                                    "latent_image": ["34", 1]}},
        "8": {"class_type": "VAEDecode", "inputs": {"samples": ["33", 0], "vae": ["52", 1]}},
        "9": {"class_type": "SaveImage", "inputs": {"filename_prefix": "cascade", "images": ["8", 0]}},
    }


MAP = {"stable_cascade_stage_b.safetensors": "tiny-cascade-b", "stable_cascade_stage_c.safetensors": "tiny-cascade-c"}


@pytest.fixture()
def comfy_file(tmp_path):
    import json

    import numpy as np
    from PIL import Image

    Image.fromarray((np.random.default_rng(0).random((40, 48, 3)) * 255).astype(np.uint8)).save(tmp_path / "ref.png")
    path = tmp_path / "cascade-api.json"
    path.write_text(json.dumps(_comfy_prompt("ref.png")))
    return path


def test_comfyuis_cascade_graph_imports_without_placeholders_runs_and_exports_back(cascade_engine, comfy_file):
    import json

    from nodeforge.interop import export_comfyui_api, read_workflow

    wf = read_workflow(comfy_file, registry=cascade_engine.registry, model_paths=cascade_engine.model_paths,
                       model_map=MAP).workflow
    assert all(n.type != "comfyui.Placeholder" for n in wf.nodes.values())
    assert (wf.nodes["52"].type, wf.nodes["52"].params) == (
        "CascadeCheckpointLoader", {"stage_b": "tiny-cascade-b", "stage_c": "tiny-cascade-c"})
    assert (wf.nodes["34"].type, wf.nodes["34"].params) == (
        "EmptyLatentCascade", {"width": SIZE, "height": SIZE, "compression": 42, "batch_size": 1})
    assert (wf.nodes["36"].type, dict(wf.nodes["36"].inputs)) == (
        "StageBConditioning", {"conditioning": ("6", "conditioning"), "stage_c": ("3", "latent")})
    assert cascade_engine.validate(wf) == []
    out = cascade_engine.run(wf, outputs=["3", "8"]).outputs
    assert out["3"]["latent"]["samples"].shape == (1, 16, 3, 3) and out["8"]["image"].shape == (1, SIZE, SIZE, 3)

    original = json.loads(comfy_file.read_text())
    exported = export_comfyui_api(read_workflow(comfy_file, registry=cascade_engine.registry).workflow,
                                  registry=cascade_engine.registry)
    for nid in ("52", "34", "36"):
        assert exported[nid]["class_type"] == original[nid]["class_type"], nid
    assert exported["34"]["inputs"] == original["34"]["inputs"] and exported["36"]["inputs"] == original["36"]["inputs"]
    assert {k: exported["52"]["inputs"][k] for k in ("stage_b", "stage_c")} == {
        k: original["52"]["inputs"][k] for k in ("stage_b", "stage_c")}


def test_an_image_prompt_reaches_stage_c_as_the_prior_pipelines_image_embeds(cascade_engine, comfy_file, prior):
    from nodeforge.interop import read_workflow

    wf = read_workflow(comfy_file, registry=cascade_engine.registry, model_paths=cascade_engine.model_paths,
                       model_map=MAP).workflow
    wf.nodes["3"].params.update(end_at_step=1, return_with_leftover_noise=True)
    wf.add("ModelSamplingStableCascade", {"shift": 1.0}, {"unet": wf.nodes["3"].inputs["unet"]}, node_id="shift")
    wf.nodes["3"].inputs["unet"] = ("shift", "unet")   # the pipeline's unshifted schedule
    out = cascade_engine.run(wf, outputs=["3", "50"]).outputs
    embeds = out["50"]["clip_vision_output"]["image_embeds"]
    theirs = _steps_of(prior, prompt=PROMPT, negative_prompt="", height=SIZE, width=SIZE, num_inference_steps=4,
                       guidance_scale=4.0, generator=torch.Generator().manual_seed(5), image_embeds=embeds[:, None])
    assert _relative(_to_vp(out["3"]["latent"]["samples"], _sigma(0.75)), theirs[0]) < 1e-4


def test_a_stage_b_checkpoint_given_as_stage_c_is_refused_in_one_line(cascade_engine):
    from nodeforge.core.errors import NodeExecutionError

    wf = graph()
    wf.nodes["ckpt"].params.update(stage_b="tiny-cascade-c", stage_c="tiny-cascade-b")
    with pytest.raises(NodeExecutionError) as info:
        cascade_engine.run(wf, outputs=["c"])
    message = str(info.value)
    assert "\n" not in message and "ckpt" in message and "stage_b" in message
    assert "tiny-cascade-c is Stable Cascade's stage C, not stage B; swap it into stage_c" in message


# -- ComfyUI's single files ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def comfy_files(cascade_dir):
    from transformers import CLIPTokenizer

    folder = cascade_dir / "checkpoints"
    prior = tc.make_prior_components(0)   # the same weights; the tokenizer the folder's (a new one trains anew)
    prior["tokenizer"] = CLIPTokenizer.from_pretrained(str(folder / "tiny-cascade-c" / "tokenizer"))
    from nodes.families.cascade_effnet import StageCCoder

    torch.manual_seed(3)
    tc.save_comfy_file(prior, folder / "stable_cascade_stage_c.safetensors", coder=StageCCoder().eval())
    tc.save_comfy_file(tc.make_decoder_components(0), folder / "stable_cascade_stage_b.safetensors")
    tc.save_comfy_file(tc.make_decoder_components(0), folder / "stage_b.safetensors", bundled=False)
    return folder


def test_comfyuis_bundled_stage_files_give_the_folders_latents_and_image(cascade_engine, comfy_files):
    wf = graph(shift=None)
    folders = cascade_engine.run(wf, outputs=["c", "decode"]).outputs
    wf.nodes["ckpt"].params.update(stage_b="stable_cascade_stage_b.safetensors",
                                   stage_c="stable_cascade_stage_c.safetensors")
    files = cascade_engine.run(wf, outputs=["c", "decode"]).outputs
    assert _relative(files["c"]["latent"]["samples"], folders["c"]["latent"]["samples"]) < 1e-4   # float32 rounding
    torch.testing.assert_close(files["decode"]["image"], folders["decode"]["image"], atol=1e-4, rtol=0)


def test_the_files_image_encoder_is_stage_cs_clip_vision(cascade_engine, comfy_files, comfy_file, prior):
    from nodeforge.interop import read_workflow

    wf = read_workflow(comfy_file, registry=cascade_engine.registry, model_paths=cascade_engine.model_paths,
                       model_map={"stable_cascade_stage_b.safetensors": "stable_cascade_stage_b.safetensors",
                                  "stable_cascade_stage_c.safetensors": "stable_cascade_stage_c.safetensors"}).workflow
    embeds = cascade_engine.run(wf, outputs=["50"]).outputs["50"]["clip_vision_output"]["image_embeds"]
    assert embeds.shape == (1, tc.IMAGE_WIDTH)
    wf_folders = read_workflow(comfy_file, registry=cascade_engine.registry, model_paths=cascade_engine.model_paths,
                               model_map=MAP).workflow
    expected = cascade_engine.run(wf_folders, outputs=["50"]).outputs["50"]["clip_vision_output"]["image_embeds"]
    torch.testing.assert_close(embeds, expected, atol=1e-5, rtol=1e-5)


def test_a_stage_b_unet_alone_samples_but_says_what_it_lacks(cascade_engine, comfy_files):
    from nodeforge.core.errors import NodeExecutionError

    wf = graph()
    wf.nodes["ckpt"].params.update(stage_b="stage_b.safetensors")
    latent = cascade_engine.run(wf, outputs=["b"]).outputs["b"]["latent"]["samples"]
    assert _relative(latent, _latent(cascade_engine, graph(), "b")) < 1e-4
    with pytest.raises(NodeExecutionError, match="holds only the stage B UNet, no stage A") as info:
        cascade_engine.run(wf, outputs=["decode"])
    assert "\n" not in str(info.value)


def test_the_shipped_configs_are_chosen_by_the_files_widths():
    from nodes.families.cascade import _unet_config

    nowhere = Path("/nonexistent.config")
    lite_c = _unet_config(nowhere, "c", {"clip_txt_mapper.weight": torch.empty(1536, 1)})
    full_c = _unet_config(nowhere, "c", {"clip_txt_mapper.weight": torch.empty(2048, 1)})
    lite_b = _unet_config(nowhere, "b", {"down_blocks.1.0.channelwise.0.weight": torch.empty(1, 1, 576)})
    full_b = _unet_config(nowhere, "b", {"down_blocks.1.0.channelwise.0.weight": torch.empty(1, 1, 640)})
    assert (lite_c["block_out_channels"], full_c["block_out_channels"]) == ([1536, 1536], [2048, 2048])
    assert (lite_b["block_out_channels"], full_b["block_out_channels"]) == ([320, 576, 1152, 1152],
                                                                            [320, 640, 1280, 1280])
    assert full_c["clip_text_in_channels"] == 1280 and full_b["effnet_in_channels"] == 16


def test_stage_cs_encoder_is_efficientnet_v2_s_with_torchvisions_names():
    from nodes.families.cascade_effnet import StageCCoder, efficientnet_v2_s_features

    features = efficientnet_v2_s_features()
    # torchvision's EfficientNet_V2_S has 21,458,488 parameters, 1,281,000 of them its 1280 -> 1000 classifier
    assert sum(p.numel() for p in features.parameters()) == 21_458_488 - 1_281_000
    keys = set(StageCCoder().state_dict())
    assert "encoder.backbone.1.0.block.0.1.num_batches_tracked" in keys   # what ComfyUI detects the coder by
    assert {"encoder.backbone.7.0.weight", "encoder.backbone.4.0.block.2.fc1.weight", "encoder.mapper.0.weight",
            "encoder.mapper.1.running_var", "encoder.mean", "previewer.blocks.24.weight", "previewer.blocks.6.weight"} <= keys


def test_image_to_image_from_the_bundled_stage_c_encodes_with_its_efficientnet(cascade_engine, comfy_files, tmp_path):
    """ComfyUI's image-to-image graph: StageCVAEEncode with the file's c_vae, stage C at denoise 0.6, stage B."""
    import numpy as np
    from PIL import Image

    from nodes.families.cascade_effnet import StageCCoder
    from nodes.loading import load_checkpoint

    Image.fromarray((np.random.default_rng(1).random((150, 200, 3)) * 255).astype(np.uint8)).save(tmp_path / "in.png")
    wf = graph(shift=None)
    wf.nodes["ckpt"].params.update(stage_b="stable_cascade_stage_b.safetensors",
                                   stage_c="stable_cascade_stage_c.safetensors")
    wf.add("LoadImage", {"path": str(tmp_path / "in.png")}, node_id="image")
    wf.add("StageCVAEEncode", {"compression": 42}, {"image": ("image", "image"), "vae": ("ckpt", "c_vae")},
           node_id="encode")
    wf.nodes["c"].params.update(denoise=0.6, end_at_step=10000)
    wf.nodes["c"].inputs["latent"] = ("encode", "stage_c")
    wf.nodes["b"].inputs["latent"] = ("encode", "stage_b")
    out = cascade_engine.run(wf, outputs=["encode", "c", "decode"]).outputs
    stage_c = out["encode"]["stage_c"]["samples"]
    assert stage_c.shape == (1, 16, 3, 4) and out["encode"]["stage_b"]["samples"].shape == (1, 4, 36, 50)
    assert out["c"]["latent"]["samples"].shape == (1, 16, 3, 4) and out["decode"]["image"].shape == (1, 144, 200, 3)
    # the encoding is the file's EfficientNet on the image cut and resized for it (x 32 per latent pixel)
    coder = load_checkpoint(comfy_files / "stable_cascade_stage_c.safetensors", "cpu").vae_fields["vae"]
    assert isinstance(coder, StageCCoder)
    from nodes.families.cascade_nodes import centre_resize

    image = torch.from_numpy(np.asarray(Image.open(tmp_path / "in.png"), dtype=np.float32) / 255)[None]
    with torch.no_grad():
        expected = coder.encoder(centre_resize(image, 4 * 32, 3 * 32).permute(0, 3, 1, 2) * 2 - 1)
    torch.testing.assert_close(stage_c, expected, atol=1e-4, rtol=1e-4)
