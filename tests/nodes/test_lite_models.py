"""nodes/lite: the plain-torch SD 1.x/2.x UNet, VAE, CLIP text encoder, tokenizer and Euler
scheduler give bit for bit what diffusers' and transformers' classes give (issue 26: a cold
`nodeforge run` imports neither), and are used only where they may be.

Every comparison is torch.equal (no tolerance): the lite modules must do the same operations in
the same order, or images drift.
"""
from __future__ import annotations

import dataclasses
import json
import random
from pathlib import Path

import pytest
import torch

import tiny_models as tm
from nodes import lite
from nodes.lite.clip import LiteCLIPText, LiteTokenizer
from nodes.lite.euler import LiteEuler
from nodes.lite.unet import LiteUNet
from nodes.lite.vae import LiteVAE
from nodeforge.paths import builtin_dir

DEMO = builtin_dir("resources") / "models" / "nodeforge-shapes"
# The comparisons run on every device here (a GPU too, where there is one: nodes/lite's DEVICES
# lists where they have passed, and only there are lite models used).
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def _randomise(module: torch.nn.Module, seed: int) -> torch.nn.Module:
    """Every weight random (fresh norms are 1 and 0, which would hide a swapped scale or shift)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in module.parameters():
            param.copy_(torch.randn(param.shape, generator=generator) * 0.2)
    return module.eval()


def _lite_copy(cls, library_module, tmp_path: Path, name: str):
    from safetensors.torch import save_file

    file = tmp_path / f"{name}.safetensors"
    save_file({k: v.contiguous() for k, v in library_module.state_dict().items()
               if not k.endswith("position_ids")}, str(file))
    config = dict(library_module.config) if not hasattr(library_module.config, "to_dict") \
        else library_module.config.to_dict()
    if cls is not LiteCLIPText:
        config["_class_name"] = type(library_module).__name__
    module = lite._build(cls, config, file)
    assert module is not None, f"{name}: the lite module does not take the library's state dict"
    return module.eval()


SD2_UNET = dict(block_out_channels=(32, 64, 64), layers_per_block=2, in_channels=4, out_channels=4,
                down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
                up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"), cross_attention_dim=48,
                attention_head_dim=(2, 4, 4), use_linear_projection=True, transformer_layers_per_block=2,
                norm_num_groups=8, flip_sin_to_cos=False, freq_shift=1, mid_block_scale_factor=1.5)
SD1_UNET = dict(block_out_channels=(32, 64), layers_per_block=1, in_channels=9, out_channels=4,
                down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
                up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), cross_attention_dim=32, attention_head_dim=8,
                norm_num_groups=8)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("config", [SD1_UNET, SD2_UNET], ids=["sd1-inpaint-like", "sd2-like"])
def test_the_unet_matches_diffusers_bit_for_bit(tmp_path, config, device):
    from diffusers.models.unets.unet_2d_condition import UNet2DConditionModel

    theirs = _randomise(UNet2DConditionModel(**config), 1)
    assert lite.unet.supports(dict(theirs.config, _class_name="UNet2DConditionModel"))
    ours = _lite_copy(LiteUNet, theirs, tmp_path, "unet").to(device)
    theirs.to(device)
    generator = torch.Generator().manual_seed(2)
    context = torch.randn(2, 77, config["cross_attention_dim"], generator=generator).to(device)
    with torch.inference_mode():
        for size in ((8, 8), (7, 9)):   # 7x9: diffusers forwards the skip sizes to the upsamplers
            x = torch.randn(2, config["in_channels"], *size, generator=generator).to(device)
            for t in (torch.tensor(999.0), torch.tensor(1.5), 500):
                expected = theirs(x, t, encoder_hidden_states=context).sample
                assert torch.equal(ours(x, t, encoder_hidden_states=context).sample, expected), (size, t)


def test_controlnet_residuals_and_adapter_features_are_added_where_diffusers_adds_them(tmp_path):
    from diffusers.models.unets.unet_2d_condition import UNet2DConditionModel

    theirs = _randomise(UNet2DConditionModel(**SD2_UNET), 3)
    ours = _lite_copy(LiteUNet, theirs, tmp_path, "unet")
    generator = torch.Generator().manual_seed(4)
    x, context = torch.randn(1, 4, 8, 8, generator=generator), torch.randn(1, 77, 48, generator=generator)
    noise = lambda *shape: torch.randn(1, *shape, generator=generator)  # noqa: E731
    # SD2_UNET's skips: conv_in, 2 resnets + downsampler per level but the last; the mid block at 2x2.
    down = [noise(32, 8, 8)] * 3 + [noise(32, 4, 4)] + [noise(64, 4, 4)] * 2 + [noise(64, 2, 2)] * 3
    mid = noise(64, 2, 2)
    features = [noise(32, 8, 8), noise(64, 4, 4), noise(64, 2, 2)]
    with torch.inference_mode():
        for kwargs in ({"down_block_additional_residuals": down, "mid_block_additional_residual": mid},
                       {"down_intrablock_additional_residuals": "features"}):
            results = []
            for model in (theirs, ours):
                if "down_intrablock_additional_residuals" in kwargs:   # the UNet pops from the list
                    kwargs = {"down_intrablock_additional_residuals": list(features)}
                results.append(model(x, 5.0, encoder_hidden_states=context, **kwargs).sample)
            assert torch.equal(results[0], results[1]), list(kwargs)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("options", [{}, {"use_quant_conv": False, "mid_block_add_attention": False}],
                         ids=["sd", "no-quant-conv-no-attention"])
def test_the_vae_matches_diffusers_bit_for_bit(tmp_path, options, device):
    from diffusers.models.autoencoders.autoencoder_kl import AutoencoderKL

    theirs = _randomise(AutoencoderKL(block_out_channels=(16, 32, 32), layers_per_block=2, latent_channels=4,
                                      norm_num_groups=8, down_block_types=("DownEncoderBlock2D",) * 3,
                                      up_block_types=("UpDecoderBlock2D",) * 3, **options), 5)
    ours = _lite_copy(LiteVAE, theirs, tmp_path, "vae").to(device)
    theirs.to(device)
    generator = torch.Generator().manual_seed(6)
    with torch.inference_mode():
        latents = torch.randn(2, 4, 6, 5, generator=generator).to(device)
        assert torch.equal(ours.decode(latents).sample, theirs.decode(latents).sample)
        pixels = (torch.rand(2, 3, 48, 40, generator=generator) * 2 - 1).to(device)
        assert torch.equal(ours.encode(pixels).latent_dist.mode(), theirs.encode(pixels).latent_dist.mode())


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("act", ["quick_gelu", "gelu"])
def test_the_text_encoder_matches_transformers_bit_for_bit(tmp_path, act, device):
    from transformers.models.clip.configuration_clip import CLIPTextConfig
    from transformers.models.clip.modeling_clip import CLIPTextModel

    theirs = _randomise(CLIPTextModel(CLIPTextConfig(hidden_size=32, intermediate_size=37, num_attention_heads=4,
                                                     num_hidden_layers=3, vocab_size=99, hidden_act=act,
                                                     eos_token_id=98)), 7)
    assert theirs.config._attn_implementation == "sdpa"
    ours = _lite_copy(LiteCLIPText, theirs, tmp_path, "te").to(device)
    theirs.to(device)
    ids = torch.randint(0, 98, (1, 77), generator=torch.Generator().manual_seed(8))
    ids[0, 10] = 98
    ids = ids.to(device)
    with torch.inference_mode():
        expected, got = theirs(ids, output_hidden_states=True), ours(ids, output_hidden_states=True)
    assert torch.equal(got.last_hidden_state, expected.last_hidden_state)
    assert torch.equal(got.pooler_output, expected.pooler_output)
    assert len(got.hidden_states) == len(expected.hidden_states) == 4
    assert all(torch.equal(a, b) for a, b in zip(got.hidden_states, expected.hidden_states))


def _texts(seed: int) -> list[str]:
    rng = random.Random(seed)
    alphabet = "abcdefghijklmnopqrstuvwxyzABCXYZ0123456789 ,.!?'\"()[]:;-_\t\n<|>éüß漢字😀"
    texts = ["a red circle on a blue background", "", "   ", "x's we'll <|endoftext|>café", "ＦＵＬＬ ünï"]
    texts += ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 40))) for _ in range(500)]
    return texts


def test_the_tokenizer_gives_transformers_ids_for_the_demo_model_and_a_tiny_one(tmp_path):
    from transformers.models.clip.tokenization_clip import CLIPTokenizer

    tm.make_tokenizer().save_pretrained(str(tmp_path / "tiny"))
    for folder in (DEMO / "tokenizer", tmp_path / "tiny"):
        theirs, ours = CLIPTokenizer.from_pretrained(str(folder)), LiteTokenizer.read(folder)
        for name in ("bos_token_id", "eos_token_id", "pad_token_id", "unk_token_id"):
            assert getattr(ours, name) == getattr(theirs, name), (folder, name)
        for text in _texts(9):
            expected = theirs(text, add_special_tokens=False, truncation=False)["input_ids"]
            assert ours(text, add_special_tokens=False)["input_ids"] == expected, (folder, text)


def test_a_tokenizer_file_transformers_would_read_otherwise_is_left_to_transformers(tmp_path):
    # transformers 5's CLIPTokenizer keeps only a tokenizer.json's vocabulary and merges and builds
    # its own pipeline; the lite one runs the file's, so it takes only files whose pipeline is that one.
    import shutil

    def variant(name: str, change) -> Path:
        folder = tmp_path / name
        shutil.copytree(DEMO / "tokenizer", folder)
        spec = json.loads((folder / "tokenizer.json").read_text())
        change(spec)
        (folder / "tokenizer.json").write_text(json.dumps(spec))
        return folder

    assert LiteTokenizer.read(variant("same", lambda spec: None)) is not None
    assert LiteTokenizer.read(variant("no-lowercase", lambda spec: spec.update(normalizer={"type": "NFC"}))) is None
    extra = {"id": 173, "content": "<extra>", "single_word": False, "lstrip": False, "rstrip": False,
             "normalized": False, "special": True}
    assert LiteTokenizer.read(variant("added", lambda spec: spec["added_tokens"].append(extra))) is None
    assert LiteTokenizer.read(variant("dropout", lambda spec: spec["model"].update(dropout=0.1))) is None
    (tmp_path / "same" / "tokenizer_config.json").write_text(json.dumps({"pad_token": "<|pad|>"}))
    assert LiteTokenizer.read(tmp_path / "same") is None   # transformers would add the pad token


@pytest.mark.parametrize("schedule", ["default", "normal", "simple", "sgm_uniform", "ddim_uniform"])
@pytest.mark.parametrize("model_config", [
    json.loads((DEMO / "scheduler" / "scheduler_config.json").read_text()),
    {"beta_schedule": "scaled_linear", "beta_start": 0.00085, "beta_end": 0.012, "steps_offset": 1,
     "timestep_spacing": "leading", "prediction_type": "v_prediction", "final_sigmas_type": "sigma_min"},
    {"beta_schedule": "linear", "num_train_timesteps": 500},
], ids=["demo", "v-leading-sigma-min", "linear-500"])
def test_the_euler_scheduler_matches_diffusers_step_for_step(schedule, model_config):
    from diffusers.schedulers.scheduling_euler_discrete import EulerDiscreteScheduler

    from nodes.schedulers import scheduler_config

    name, config = scheduler_config("euler", schedule, model_config, 0)
    assert name == "EulerDiscreteScheduler" and lite.euler.supports(config)
    for steps, begin in ((1, 0), (7, 0), (20, 5)):
        theirs, ours = EulerDiscreteScheduler.from_config(config), LiteEuler(config)
        for sched in (theirs, ours):
            sched.set_timesteps(steps)
        assert torch.equal(ours.timesteps, theirs.timesteps) and torch.equal(ours.sigmas, theirs.sigmas)
        assert torch.equal(torch.as_tensor(ours.init_noise_sigma), torch.as_tensor(theirs.init_noise_sigma))
        generator = torch.Generator().manual_seed(steps)
        sample, noise = torch.randn(2, 4, 3, 3, generator=generator), torch.randn(2, 4, 3, 3, generator=generator)
        results = []
        for sched in (theirs, ours):
            sched.set_begin_index(begin)
            x = sched.add_noise(sample, noise, sched.timesteps[begin:begin + 1])
            for t in sched.timesteps[begin:]:
                scaled = sched.scale_model_input(x, t)
                step = sched.step(torch.tanh(scaled) * 0.7, t, x, generator=[generator])
                x = step.prev_sample
            results.append((x, step.pred_original_sample))
        assert torch.equal(results[0][0], results[1][0]) and torch.equal(results[0][1], results[1][1])


def test_the_loader_takes_an_sd_folder_and_leaves_everything_else_to_diffusers(tmp_path):
    loaded = lite.load_folder(DEMO, "cpu")
    unet, clip, vae = loaded.wrappers()
    assert isinstance(unet.unet, LiteUNet) and isinstance(vae.vae, LiteVAE)
    assert isinstance(clip.text_encoder, LiteCLIPText) and isinstance(clip.tokenizer, LiteTokenizer)
    assert (unet.family, unet.vae_factor, vae.scaling_factor) == ("sd1", 4, 0.37924)
    assert not any(p.requires_grad for p in unet.unet.parameters())

    sdxl = tm.save_diffusers(tm.make_components(0, sdxl=True), tmp_path / "sdxl")
    assert lite.load_folder(sdxl, "cpu") is None                        # two text encoders, text_time UNet
    sd = tm.save_diffusers(tm.make_components(0), tmp_path / "sd")
    assert lite.load_folder(sd, "cpu") is not None
    weights = sd / "unet" / "diffusion_pytorch_model.safetensors"
    weights.rename(weights.with_name("diffusion_pytorch_model.fp16.safetensors"))
    assert lite.load_folder(sd, "cpu") is None                          # a variant file: diffusers' loader
    config = json.loads((sd / "vae" / "config.json").read_text())
    (sd / "vae" / "config.json").write_text(json.dumps(dict(config, act_fn="gelu")))
    assert lite._configs(sd) is None
    assert not lite.clip.supports({"hidden_act": "quick_gelu", "_attn_implementation": "eager"})


def _workflow(name: str):
    from nodeforge.core.workflow import load_workflow

    return load_workflow(builtin_dir("workflows") / f"{name}.json")


def test_only_graphs_whose_model_nodes_all_fit_use_lite_models(registry):
    # ControlNets and upscale models are not SD models: their own loaders read them; the lite UNet
    # takes ControlNet residuals as diffusers' does (compared above). ControlNetApply's optional VAE
    # (for SD3 ControlNets) is not connected there.
    for name in ("txt2img", "img2img", "inpaint", "outpaint", "regions", "hires-fix", "embedding", "controlnet",
                 "upscale"):
        assert lite.graph_fits(_workflow(name), registry), name
    lora = _workflow("lora")
    assert not lite.graph_fits(lora, registry)   # LoRALoader patches the modules' weights
    skip = _workflow("txt2img")
    skip.nodes["9"] = dataclasses.replace(skip.nodes["1"], type="CLIPSetLastLayer", params={"stop_at_layer": -2},
                                        inputs={"clip": ("1", "clip")})
    assert not lite.graph_fits(skip, registry)
    controlnet = _workflow("controlnet")
    apply = next(nid for nid, node in controlnet.nodes.items() if node.type == "ControlNetApply")
    controlnet.nodes[apply].inputs["vae"] = ("1", "vae")
    assert not lite.graph_fits(controlnet, registry)   # a node given the VAE that is not in LITE_NODES


@pytest.mark.parametrize("name", ["txt2img", "img2img"])
def test_a_one_shot_run_with_lite_models_draws_the_same_pixels(tmp_path, registry, name):
    from PIL import Image

    from nodeforge import Engine

    images = {}
    for use_lite in (False, True):
        engine = Engine(device="cpu", output_dir=tmp_path / str(use_lite), registry=registry,
                        settings={"lite_models": use_lite})
        result = engine.run(_workflow(name))
        assert not result.skipped
        loaded = engine._shared.get("nodes.checkpoints.lite", {})
        # (the pack's modules are loaded under another package name than the tests import: compare names)
        assert use_lite == any(type(v.unet_fields["unet"]).__name__ == "LiteUNet" for v in loaded.values() if v)
        images[use_lite] = [Image.open(p).tobytes() for p in sorted((tmp_path / str(use_lite)).rglob("*.png"))]
    assert images[True] and images[True] == images[False]
