"""SDXL refiner checkpoints: a tiny refiner (OpenCLIP-bigG-shaped encoder alone, 4-level UNet with 5
micro-conditioning ids) as a diffusers StableDiffusionXLImg2ImgPipeline folder and as an original
single file (sd_xl_refiner_1.0's key layout); a base -> refiner hand-over graph checked against
diffusers' ensemble-of-experts pipelines (base with denoising_end, refiner with denoising_start)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import nodeforge
from nodeforge import Workflow
from nodeforge.core.registry import builtin_module

import tiny_models as tm

loading = builtin_module("loading")
STEPS, SPLIT, SEED, CFG, SIZE = 10, 8, 7, 5.0, 32   # split 8 of 10 = diffusers' denoising_end 0.8


@pytest.fixture(scope="module")
def refiner_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("refiner")
    ckpts = root / "checkpoints"
    ckpts.mkdir()
    base = tm.make_components(4, sdxl=True)
    tm.save_diffusers(base, ckpts / "tiny-xl")
    refiner = tm.make_refiner_components(5)
    folder = tm.save_diffusers(refiner, ckpts / "tiny-refiner")
    tm.save_single_file(refiner, folder, ckpts / "tiny-refiner-single.safetensors", "sdxl-refiner")
    return root, refiner


@pytest.fixture(scope="module")
def refiner_engine(refiner_root, registry, tmp_path_factory):
    from nodeforge.core.models import ModelPaths

    return nodeforge.Engine(device="cpu", output_dir=tmp_path_factory.mktemp("out"), registry=registry,
                            model_paths=ModelPaths(roots=[refiner_root[0]]))


def _loaded(engine, checkpoint):
    wf = Workflow()
    wf.add("CheckpointLoader", {"checkpoint": checkpoint}, node_id="ckpt")
    return engine.run(wf, outputs=["ckpt"]).outputs["ckpt"]


def test_a_refiner_single_file_is_recognised_by_its_only_embedder():
    keys = {k: torch.zeros(1) for k in ("model.diffusion_model.input_blocks.0.0.weight",
                                        "conditioner.embedders.0.model.ln_final.bias",
                                        "first_stage_model.decoder.conv_in.weight")}
    assert loading.detect_family(keys) == ("sdxl-refiner", "epsilon")


@pytest.mark.parametrize("checkpoint", ["tiny-refiner", "tiny-refiner-single.safetensors"])
def test_a_refiner_loads_and_its_unet_and_encoder_equal_the_diffusers_built_models(refiner_engine, refiner_root,
                                                                                    checkpoint):
    reference = refiner_root[1]
    out = _loaded(refiner_engine, checkpoint)
    unet, clip = out["unet"], out["clip"]
    assert unet.family == "sdxl" and clip.text_encoder is None and clip.tokenizer is None
    assert unet.unet.config.projection_class_embeddings_input_dim == 8 * 5 + 24
    gen = torch.Generator().manual_seed(0)
    x, embeds = torch.randn(2, 4, 8, 8, generator=gen), torch.randn(2, 77, 48, generator=gen)
    added = {"text_embeds": torch.randn(2, 24, generator=gen), "time_ids": torch.tensor([[32.0, 32, 0, 0, 6.0]] * 2)}
    ids = torch.tensor([clip.tokenizer_2("a red circle", padding="max_length", max_length=77)["input_ids"]])
    with torch.inference_mode():
        got = unet.unet(x, 501, encoder_hidden_states=embeds, added_cond_kwargs=added).sample
        want = reference["unet"](x, 501, encoder_hidden_states=embeds, added_cond_kwargs=added).sample
        te_got = clip.text_encoder_2(ids, output_hidden_states=True)
        te_want = reference["text_encoder_2"](ids, output_hidden_states=True)
    assert got.abs().max() > 0.01
    torch.testing.assert_close(got, want, atol=1e-5, rtol=0)
    torch.testing.assert_close(te_got.hidden_states[-2], te_want.hidden_states[-2], atol=1e-5, rtol=0)
    torch.testing.assert_close(te_got.text_embeds, te_want.text_embeds, atol=1e-5, rtol=0)


def _refiner_pipe(out):
    from diffusers import EulerDiscreteScheduler, StableDiffusionXLImg2ImgPipeline

    clip = out["clip"]
    return StableDiffusionXLImg2ImgPipeline(
        vae=out["vae"].vae, text_encoder=None, text_encoder_2=clip.text_encoder_2, tokenizer=None,
        tokenizer_2=clip.tokenizer_2, unet=out["unet"].unet,
        scheduler=EulerDiscreteScheduler.from_config(out["unet"].scheduler_config),
        requires_aesthetics_score=True, force_zeros_for_empty_prompt=False)


def test_text_encoder_on_a_refiner_gives_what_diffusers_refiner_pipeline_encodes(refiner_engine):
    out = _loaded(refiner_engine, "tiny-refiner-single.safetensors")
    wf = Workflow()
    wf.add("CheckpointLoader", {"checkpoint": "tiny-refiner-single.safetensors"}, node_id="ckpt")
    wf.add("TextEncoder", {"text": "a red circle on a blue background"}, {"clip": ("ckpt", "clip")}, node_id="pos")
    [entry] = refiner_engine.run(wf, outputs=["pos"]).outputs["pos"]["conditioning"]
    with torch.inference_mode():
        embeds, _, pooled, _ = _refiner_pipe(out).encode_prompt(
            "a red circle on a blue background", device="cpu", do_classifier_free_guidance=False)
    assert entry["embeds"].shape == (1, 77, 48) and entry["pooled"].shape == (1, 24)
    torch.testing.assert_close(entry["embeds"], embeds, atol=1e-5, rtol=0)   # bigG's penultimate layer
    torch.testing.assert_close(entry["pooled"], pooled, atol=1e-5, rtol=0)   # its pooled projection


def _hand_over(refiner: str, score: float | None = None, negative_score: float | None = None) -> Workflow:
    wf = Workflow()
    wf.add("CheckpointLoader", {"checkpoint": "tiny-xl"}, node_id="base")
    wf.add("CheckpointLoader", {"checkpoint": refiner}, node_id="ref")
    for model in ("base", "ref"):
        wf.add("TextEncoder", {"text": "a red circle"}, {"clip": (model, "clip")}, node_id=f"{model}_pos")
        wf.add("TextEncoder", {"text": ""}, {"clip": (model, "clip")}, node_id=f"{model}_neg")
    ref_pos, ref_neg = ("ref_pos", "conditioning"), ("ref_neg", "conditioning")
    if score is not None:
        ref_pos = (wf.add("ConditioningSetAestheticScore", {"aesthetic_score": score}, {"conditioning": ref_pos},
                          node_id="score"), "conditioning")
    if negative_score is not None:
        ref_neg = (wf.add("ConditioningSetAestheticScore", {"aesthetic_score": negative_score},
                          {"conditioning": ref_neg}, node_id="neg_score"), "conditioning")
    wf.add("EmptyLatent", {"width": SIZE, "height": SIZE, "batch_size": 1}, node_id="empty")
    common = {"seed": SEED, "steps": STEPS, "cfg": CFG, "sampler": "euler", "schedule": "default", "denoise": 1.0}
    wf.add("UNetDenoise", dict(common, end_at_step=SPLIT, return_with_leftover_noise=True),
           {"unet": ("base", "unet"), "positive": ("base_pos", "conditioning"),
            "negative": ("base_neg", "conditioning"), "latent": ("empty", "latent")}, node_id="first")
    wf.add("UNetDenoise", dict(common, start_at_step=SPLIT, add_noise=False),
           {"unet": ("ref", "unet"), "positive": ref_pos, "negative": ref_neg, "latent": ("first", "latent")},
           node_id="second")
    return wf


def _diffusers_hand_over(base, refiner, **refiner_kw) -> tuple[torch.Tensor, torch.Tensor]:
    """diffusers' ensemble of experts: the base to denoising_end 0.8, the refiner from there."""
    from diffusers import EulerDiscreteScheduler, StableDiffusionXLPipeline

    clip = base["clip"]
    pipe = StableDiffusionXLPipeline(
        vae=base["vae"].vae, text_encoder=clip.text_encoder, text_encoder_2=clip.text_encoder_2,
        tokenizer=clip.tokenizer, tokenizer_2=clip.tokenizer_2, unet=base["unet"].unet,
        scheduler=EulerDiscreteScheduler.from_config(base["unet"].scheduler_config))
    pipe.set_progress_bar_config(disable=True)
    noise = torch.randn(4, SIZE // 4, SIZE // 4, generator=torch.Generator().manual_seed(SEED))[None]
    common = dict(prompt="a red circle", negative_prompt="", num_inference_steps=STEPS, guidance_scale=CFG,
                  output_type="latent")
    with torch.inference_mode():
        first = pipe(**common, height=SIZE, width=SIZE, latents=noise, denoising_end=SPLIT / STEPS).images
        second = _refiner_pipe(refiner)(**common, image=first, denoising_start=SPLIT / STEPS, **refiner_kw).images
    return first, second


def test_base_to_refiner_hand_over_equals_diffusers_ensemble_of_experts_with_default_scores(refiner_engine):
    out = refiner_engine.run(_hand_over("tiny-refiner-single.safetensors"), outputs=["first", "second"]).outputs
    first, second = out["first"]["latent"]["samples"], out["second"]["latent"]["samples"]
    want_first, want_second = _diffusers_hand_over(_loaded(refiner_engine, "tiny-xl"),
                                                   _loaded(refiner_engine, "tiny-refiner-single.safetensors"))
    torch.testing.assert_close(first, want_first, atol=1e-4, rtol=0)
    # diffusers' defaults: aesthetic score 6.0 for the positive, 2.5 for the negative
    torch.testing.assert_close(second, want_second, atol=1e-4, rtol=0)
    assert (second - first).abs().max() > 0.01   # the refiner stage did something


def test_the_aesthetic_score_reaches_the_refiner_and_changes_its_output(refiner_engine):
    default = refiner_engine.run(_hand_over("tiny-refiner"), outputs=["second"]).outputs["second"]["latent"]["samples"]
    same = refiner_engine.run(_hand_over("tiny-refiner", 6.0, 2.5), outputs=["second"]).outputs
    torch.testing.assert_close(same["second"]["latent"]["samples"], default, atol=0, rtol=0)
    out = refiner_engine.run(_hand_over("tiny-refiner", 9.0, 1.0), outputs=["second"]).outputs
    scored = out["second"]["latent"]["samples"]
    assert (scored - default).abs().max() > 1e-3
    _, want = _diffusers_hand_over(_loaded(refiner_engine, "tiny-xl"), _loaded(refiner_engine, "tiny-refiner"),
                                   aesthetic_score=9.0, negative_aesthetic_score=1.0)
    torch.testing.assert_close(scored, want, atol=1e-4, rtol=0)


def test_a_base_prompt_into_the_refiner_is_a_clear_error(refiner_engine):
    wf = _hand_over("tiny-refiner")
    wf.connect("base_pos", "conditioning", "second", "positive")
    with pytest.raises(nodeforge.NodeExecutionError) as info:
        refiner_engine.run(wf, outputs=["second"])
    assert info.value.field == "positive"
    assert "80" in str(info.value) and "48" in str(info.value) and "refiner's CLIP" in str(info.value)


def test_refiner_lora_on_the_bigg_encoder_and_clip_skip_work(refiner_engine, refiner_root):
    from safetensors.torch import save_file

    clip = _loaded(refiner_engine, "tiny-refiner")["clip"]
    layer = clip.text_encoder_2.get_submodule(next(n for n, _ in clip.text_encoder_2.named_modules()
                                                   if n.endswith("layers.0.self_attn.q_proj")))
    name = "lora_te2_text_model_encoder_layers_0_self_attn_q_proj"
    lora = refiner_root[0] / "refiner-lora.safetensors"
    save_file({name + ".lora_down.weight": torch.randn(2, layer.weight.shape[1]),
               name + ".lora_up.weight": torch.randn(layer.weight.shape[0], 2)}, str(lora))
    wf = Workflow()
    wf.add("CheckpointLoader", {"checkpoint": "tiny-refiner"}, node_id="ckpt")
    wf.add("LoRALoader", {"lora": str(lora), "strength_unet": 1.0, "strength_clip": 1.0},
           {"unet": ("ckpt", "unet"), "clip": ("ckpt", "clip")}, node_id="lora")
    wf.add("CLIPSetLastLayer", {"stop_at_layer": -2}, {"clip": ("ckpt", "clip")}, node_id="skip")
    for node, clip_from in (("plain", "ckpt"), ("patched", "lora"), ("skipped", "skip")):
        wf.add("TextEncoder", {"text": "a red circle"}, {"clip": (clip_from, "clip")}, node_id=node)
    out = refiner_engine.run(wf, outputs=["plain", "patched", "skipped"]).outputs
    [plain], [patched], [skipped] = (out[n]["conditioning"] for n in ("plain", "patched", "skipped"))
    assert not torch.allclose(plain["embeds"], patched["embeds"])
    assert torch.equal(plain["embeds"], skipped["embeds"])   # -2 is the refiner's default layer, as SDXL's


def test_the_shipped_refiner_unet_config_is_what_diffusers_derives_from_stabilitys_yaml():
    from diffusers.loaders import single_file_utils as sfu

    # sgm's configs/inference/sd_xl_refiner.yaml, network_config and first_stage_config
    network = {"adm_in_channels": 2560, "num_classes": "sequential", "in_channels": 4, "out_channels": 4,
               "model_channels": 384, "attention_resolutions": [4, 2], "num_res_blocks": 2,
               "channel_mult": [1, 2, 4, 4], "num_head_channels": 64, "use_linear_in_transformer": True,
               "transformer_depth": 4, "context_dim": [1280, 1280, 1280, 1280]}
    original = {"model": {"params": {"network_config": {"params": network},
                                     "first_stage_config": {"params": {"ddconfig": {"ch_mult": [1, 2, 4, 4]}}}}}}
    derived = sfu.create_unet_diffusers_config_from_ldm(original, {sfu.CHECKPOINT_KEY_NAMES["xl_refiner"]: None})
    shipped = json.loads((loading.configs_dir() / "sdxl-refiner" / "unet" / "config.json").read_text())
    for key, value in derived.items():
        if value is not None:
            assert shipped[key] == (list(value) if isinstance(value, tuple) else value), key
    assert shipped["block_out_channels"] == [384, 768, 1536, 1536] and shipped["addition_time_embed_dim"] == 256
    index = json.loads((loading.configs_dir() / "sdxl-refiner" / "model_index.json").read_text())
    assert index["requires_aesthetics_score"] is True and index["text_encoder"] == [None, None]


# -- ComfyUI's SDXL prompt nodes: CLIPTextEncodeSDXL / CLIPTextEncodeSDXLRefiner -> TextEncoderSDXL(Refiner) ----
COMFY_DATA = Path(__file__).resolve().parents[1] / "interop" / "data"
COMFY_MODELS = {"sd_xl_base_1.0.safetensors": "tiny-xl", "sd_xl_refiner_1.0.safetensors": "tiny-refiner"}


def _comfy(refiner_engine, refiner_root, source):
    from nodeforge.core.models import ModelPaths
    from nodeforge.interop import read_workflow

    imported = read_workflow(source, registry=refiner_engine.registry, model_map=COMFY_MODELS,
                             model_paths=ModelPaths(roots=[refiner_root[0]]))
    assert not [line for line in imported.warnings if line.startswith("missing")], imported.warnings
    assert refiner_engine.validate(imported.workflow) == []
    return imported.workflow


def _normal(wf):
    for nid in ("first", "second"):   # the fixture's KSamplerAdvanced use ComfyUI's "normal" scheduler
        wf.nodes[nid].params["schedule"] = "normal"
    return wf


@pytest.mark.parametrize("name", ["sdxl-refiner-0.4.json", "sdxl-refiner-api.json"])
def test_a_comfyui_sdxl_base_and_refiner_graph_runs_and_at_the_image_size_is_bitwise_the_plain_prompts(
        refiner_engine, refiner_root, name):
    wf = _comfy(refiner_engine, refiner_root, COMFY_DATA / name)
    assert [wf.nodes[n].type for n in ("6", "7", "15", "16")] == ["TextEncoderSDXL"] * 2 + ["TextEncoderSDXLRefiner"] * 2
    out = refiner_engine.run(wf, outputs=["10", "11", "17"]).outputs
    plain = refiner_engine.run(_normal(_hand_over("tiny-refiner")), outputs=["first", "second"]).outputs
    # size = target = the 32 px image, no crop, one text for both encoders, scores 6 / 2.5: what TextEncoder implies
    assert torch.equal(out["10"]["latent"]["samples"], plain["first"]["latent"]["samples"])
    assert torch.equal(out["11"]["latent"]["samples"], plain["second"]["latent"]["samples"])
    assert out["17"]["image"].shape == (1, SIZE, SIZE, 3)


def _time_ids(monkeypatch):
    from diffusers import UNet2DConditionModel

    seen: list[torch.Tensor] = []
    forward = UNet2DConditionModel.forward

    def spy(self, *args, **kw):
        seen.append(kw["added_cond_kwargs"]["time_ids"].clone())
        return forward(self, *args, **kw)
    monkeypatch.setattr(UNet2DConditionModel, "forward", spy)
    return seen


def test_the_micro_conditioning_reaches_the_unets_time_ids_and_changes_the_image(refiner_engine, refiner_root,
                                                                                monkeypatch):
    prompt = json.loads((COMFY_DATA / "sdxl-refiner-api.json").read_text())
    default = refiner_engine.run(_comfy(refiner_engine, refiner_root, prompt), outputs=["10", "11"]).outputs
    prompt["6"]["inputs"].update(width=64, height=48, crop_w=8, crop_h=16, target_width=40, target_height=24)
    prompt["15"]["inputs"].update(ascore=9.0, width=128, height=96)
    prompt["16"]["inputs"].update(ascore=1.0)
    seen = _time_ids(monkeypatch)
    out = refiner_engine.run(_comfy(refiner_engine, refiner_root, prompt), outputs=["10", "11"]).outputs
    base, refiner = [t for t in seen if t.shape[1] == 6], [t for t in seen if t.shape[1] == 5]
    assert len(base) == SPLIT and len(refiner) == STEPS - SPLIT
    # the UNet batch is negative then positive: [height, width, crop top, crop left, target height, target width]
    assert base[0].tolist() == [[SIZE, SIZE, 0, 0, SIZE, SIZE], [48, 64, 16, 8, 24, 40]]
    # refiner: [height, width, crop top, crop left, aesthetic score]
    assert refiner[0].tolist() == [[SIZE, SIZE, 0, 0, 1.0], [96, 128, 0, 0, 9.0]]
    assert (out["10"]["latent"]["samples"] - default["10"]["latent"]["samples"]).abs().max() > 1e-3
    # the refiner node's score is ConditioningSetAestheticScore's (bitwise), the size aside
    prompt["15"]["inputs"].update(width=SIZE, height=SIZE)
    monkeypatch.undo()
    scored = refiner_engine.run(_comfy(refiner_engine, refiner_root, prompt), outputs=["11"]).outputs["11"]
    wf = _comfy(refiner_engine, refiner_root, prompt)
    alone = _normal(_hand_over("tiny-refiner", 9.0, 1.0))   # its refiner stage on the imported base's latent
    alone.nodes.update({nid: wf.nodes[nid] for nid in ("4", "5", "6", "7", "10")})
    alone.nodes["second"].inputs["latent"] = ("10", "latent")
    reference = refiner_engine.run(alone, outputs=["second"]).outputs["second"]["latent"]["samples"]
    assert torch.equal(scored["latent"]["samples"], reference)


def test_text_g_goes_to_big_g_and_text_l_to_clip_l(refiner_engine):
    wf = Workflow()
    wf.add("CheckpointLoader", {"checkpoint": "tiny-xl"}, node_id="ckpt")
    long_l = ", ".join(["a small blue square"] * 25)    # two windows for CLIP-L, one for bigG
    wf.add("TextEncoderSDXL", {"text_g": "a red circle", "text_l": long_l}, {"clip": ("ckpt", "clip")}, node_id="both")
    wf.add("TextEncoder", {"text": "a red circle"}, {"clip": ("ckpt", "clip")}, node_id="g")
    wf.add("TextEncoder", {"text": long_l}, {"clip": ("ckpt", "clip")}, node_id="l")
    wf.add("TextEncoder", {"text": ""}, {"clip": ("ckpt", "clip")}, node_id="empty")
    out = refiner_engine.run(wf, outputs=["ckpt", "both", "g", "l", "empty"]).outputs
    width_l = out["ckpt"]["clip"].text_encoder.config.hidden_size
    [both], [g], [l], [empty] = (out[n]["conditioning"] for n in ("both", "g", "l", "empty"))
    assert both["embeds"].shape[1] == 154 and l["embeds"].shape[1] == 154 and g["embeds"].shape[1] == 77
    assert torch.equal(both["embeds"][..., :width_l], l["embeds"][..., :width_l])
    # bigG: the short prompt's window, then an empty one (ComfyUI pads the shorter side)
    assert torch.equal(both["embeds"][:, :77, width_l:], g["embeds"][..., width_l:])
    assert torch.equal(both["embeds"][:, 77:, width_l:], empty["embeds"][..., width_l:])
    assert torch.equal(both["pooled"], g["pooled"])
    assert both["size"] == (1024, 1024) and both["crop"] == (0, 0) and both["target_size"] == (1024, 1024)
