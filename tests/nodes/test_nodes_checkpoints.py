"""Single-file checkpoints: detection of SD 1.x / 2.x (eps and v) / SDXL from keys, and loading."""
from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import nodeforge
from nodeforge.core.errors import NodeError
from nodeforge.core.registry import builtin_module

sys.path.insert(0, str(Path(__file__).resolve().parent))
import tiny_models as tm  # noqa: E402

loading = builtin_module("loading")


@pytest.fixture(scope="module")
def family_models(tmp_path_factory):
    """Tiny SD2 (v-prediction) and SDXL models as diffusers folders and single files."""
    root = tmp_path_factory.mktemp("families")
    ckpts = root / "checkpoints"
    ckpts.mkdir()
    sd2 = tm.make_components(3)
    folder = tm.save_diffusers(sd2, root / "sd2-folder")
    tm.save_single_file(sd2, folder, ckpts / "tiny-sd2-v.safetensors", "sd2", extra={"v_pred": torch.tensor([])})
    xl = tm.make_components(4, sdxl=True)
    xl_folder = tm.save_diffusers(xl, ckpts / "tiny-xl")
    tm.save_single_file(xl, xl_folder, ckpts / "tiny-xl-single.safetensors", "sdxl")
    sd1 = tm.make_components(0)
    torch.save({"state_dict": tm.ldm_state(sd1, "sd1")}, ckpts / "tiny-sd1.ckpt")
    shutil.copytree(folder, ckpts / "tiny-sd1.config", ignore=shutil.ignore_patterns("*.safetensors"))
    return root


@pytest.fixture(scope="module")
def family_engine(family_models, registry, tmp_path_factory):
    from nodeforge.core.models import ModelPaths

    return nodeforge.Engine(device="cpu", output_dir=tmp_path_factory.mktemp("out"), registry=registry,
                            model_paths=ModelPaths(roots=[family_models]))


def _keys(*names, shape=(4,)):
    return {n: torch.zeros(shape) for n in names}


def test_families_are_detected_from_keys():
    unet = "model.diffusion_model.input_blocks.0.0.weight"
    assert loading.detect_family(_keys(unet, "cond_stage_model.transformer.text_model.final_layer_norm.bias")) \
        == ("sd1", "epsilon")
    assert loading.detect_family(_keys(unet, "cond_stage_model.model.ln_final.bias")) == ("sd2", "epsilon")
    assert loading.detect_family(_keys(unet, "cond_stage_model.model.ln_final.bias", "v_pred")) \
        == ("sd2", "v_prediction")
    assert loading.detect_family(_keys(unet, "cond_stage_model.model.ln_final.bias"),
                                 {"modelspec.prediction_type": "v"}) == ("sd2", "v_prediction")
    xl = _keys(unet, "conditioner.embedders.0.transformer.text_model.final_layer_norm.bias",
               "conditioner.embedders.1.model.ln_final.bias")
    assert loading.detect_family(xl) == ("sdxl", "epsilon")
    with pytest.raises(NodeError) as info:
        loading.detect_family(_keys("lora_unet_x.lora_down.weight"))
    assert info.value.field == "checkpoint"


def test_unsupported_kinds_of_checkpoint_are_named():
    unet = "model.diffusion_model.input_blocks.0.0.weight"
    inpainting = {unet: torch.zeros(320, 9, 3, 3), "cond_stage_model.transformer.x": torch.zeros(1)}
    assert loading.detect_family(inpainting) == ("sd1", "epsilon")   # 9 channels: an inpainting model
    ip2p = {unet: torch.zeros(320, 8, 3, 3), "cond_stage_model.transformer.x": torch.zeros(1)}
    assert loading.detect_family(ip2p) == ("sd1", "epsilon")         # 8 channels: InstructPix2Pix (nodes/ip2p.py)
    other = {unet: torch.zeros(320, 5, 3, 3), "cond_stage_model.transformer.x": torch.zeros(1)}
    with pytest.raises(NodeError, match="takes 5 input channels.*standard \\(4\\), InstructPix2Pix \\(8"):
        loading.detect_family(other)
    # OpenCLIP bigG as the only embedder: an SDXL refiner (tests/nodes/test_nodes_refiner.py)
    assert loading.detect_family(_keys(unet, "conditioner.embedders.0.model.ln_final.bias")) == \
        ("sdxl-refiner", "epsilon")


def test_shipped_configs_describe_every_family():
    for name, cross in (("sd1", 768), ("sd2", 1024), ("sd2-v", 1024), ("sdxl", 2048), ("sdxl-refiner", 1280)):
        import json

        folder = loading.configs_dir() / name
        unet = json.loads((folder / "unet" / "config.json").read_text())
        assert unet["cross_attention_dim"] == cross
        parts = ("vae", "text_encoder_2", "scheduler", "tokenizer_2") if name == "sdxl-refiner" else \
            ("vae", "text_encoder", "scheduler", "tokenizer")
        for part in parts:
            assert (folder / part).is_dir(), (name, part)
    assert "v_prediction" in (loading.configs_dir() / "sd2-v" / "scheduler" / "scheduler_config.json").read_text()


def _run(engine, checkpoint, text="a red circle", seed=5):
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from tiny_models import txt2img

    result = engine.run(txt2img(checkpoint, text=text, seed=seed, steps=2))
    return np.stack([np.asarray(i) for i in result.outputs["preview"]])


def test_sd2_v_prediction_single_file_loads_as_v_prediction(family_engine):
    model = family_engine.run(_wf("tiny-sd2-v.safetensors"), outputs=["ckpt"]).outputs["ckpt"]["unet"]
    assert model.family == "sd2" and model.prediction_type == "v_prediction"
    assert _run(family_engine, "tiny-sd2-v.safetensors").std() > 0


def test_sdxl_single_file_matches_its_diffusers_folder(family_engine):
    model = family_engine.run(_wf("tiny-xl-single.safetensors"), outputs=["ckpt"]).outputs["ckpt"]
    assert model["unet"].family == "sdxl" and model["clip"].text_encoder_2 is not None
    single = _run(family_engine, "tiny-xl-single.safetensors")
    folder = _run(family_engine, "tiny-xl")
    np.testing.assert_allclose(single.astype(float), folder.astype(float), atol=1)


def test_ckpt_files_load_through_weights_only(family_engine, family_models):
    model = family_engine.run(_wf("tiny-sd1.ckpt"), outputs=["ckpt"]).outputs["ckpt"]["unet"]
    assert model.family == "sd1"
    evil = family_models / "checkpoints" / "evil.ckpt"

    class Boom:
        def __reduce__(self):
            return (print, ("this must never run",))

    torch.save({"state_dict": {"x": Boom()}}, evil)
    with pytest.raises(nodeforge.NodeExecutionError) as info:
        family_engine.run(_wf("evil.ckpt"), outputs=["ckpt"])
    assert info.value.field == "checkpoint" and "safetensors" in str(info.value)


def test_missing_tokenizer_vocabulary_is_a_clear_error(family_engine, family_models, monkeypatch):
    target = family_models / "checkpoints" / "no-vocab.safetensors"
    shutil.copy(family_models / "checkpoints" / "tiny-sd2-v.safetensors", target)
    shutil.copytree(family_models / "checkpoints" / "tiny-sd2-v.config", target.with_name("no-vocab.config"),
                    ignore=shutil.ignore_patterns("tokenizer*", "vocab*", "merges*", "special_tokens*"))
    monkeypatch.setattr(loading, "HUB_TOKENIZER", "nodeforge-tests/no-such-tokenizer")
    monkeypatch.setattr(loading, "bundled_clip_vocabulary", lambda: family_models / "no-such-folder")
    with pytest.raises(nodeforge.NodeExecutionError) as info:
        family_engine.run(_wf("no-vocab.safetensors"), outputs=["ckpt"])
    assert info.value.field == "checkpoint" and "tokenizer" in str(info.value)


@pytest.mark.parametrize("family, pads", [("sd1", [49407]), ("sd2", [0]), ("sd2-v", [0]), ("sdxl", [49407, 0]),
                                          ("sdxl-refiner", [0])])
def test_a_single_file_needs_no_tokenizer_files_the_bundled_clip_bpe_tokenizes_and_pads_per_family(
        tmp_path, monkeypatch, family, pads):
    # No vocabulary beside the checkpoint, none in the config folders, no hub cache.
    monkeypatch.setattr(loading, "HUB_TOKENIZER", "nodeforge-tests/no-such-tokenizer")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    tokenizers = [t for t in loading.family_tokenizers(loading.configs_dir() / family, {"sd2-v": "sd2"}.get(family, family),
                                                       tmp_path) if t is not None]
    assert len(tokenizers) == len(pads)
    for tok, pad in zip(tokenizers, pads):
        assert tok("a photo of a cat")["input_ids"] == [49406, 320, 1125, 539, 320, 2368, 49407]
        padded = tok("a photo of a cat", padding="max_length", max_length=tok.model_max_length)["input_ids"]
        assert len(padded) == 77 and padded[:7] == [49406, 320, 1125, 539, 320, 2368, 49407]
        assert set(padded[7:]) == {pad}, (family, padded[7:10])
        assert tok.model_max_length == 77 and tok.pad_token_id == pad
        # Lower-cased and split like OpenAI's tokenizer; a long word becomes several BPE pieces.
        assert tok("A PHOTO")["input_ids"] == tok("a photo")["input_ids"]
        assert len(tok("photorealistic")["input_ids"]) > 3


def test_the_bundled_clip_vocabulary_is_openais_with_its_licence():
    import json

    folder = loading.bundled_clip_vocabulary()
    vocab = json.loads((folder / "vocab.json").read_text(encoding="utf-8"))
    assert len(vocab) == 49408 and vocab["<|startoftext|>"] == 49406 and vocab["<|endoftext|>"] == 49407
    assert vocab["!"] == 0 and vocab["cat</w>"] == 2368
    merges = (folder / "merges.txt").read_text(encoding="utf-8").splitlines()
    assert merges[0] == "#version: 0.2" and len(merges) == 1 + 48894
    assert "MIT" in (folder / "LICENSE").read_text() or "Permission is hereby granted" in (folder / "LICENSE").read_text()


def test_checkpoint_of_unexpected_shape_says_what_to_do(family_models):
    state = {"model.diffusion_model.input_blocks.0.0.weight": torch.zeros(4, 4, 3, 3),
             "cond_stage_model.transformer.text_model.final_layer_norm.bias": torch.zeros(4)}
    module = torch.nn.Linear(2, 2)
    with pytest.raises(NodeError) as info:
        loading._load_into(module, {"weight": torch.zeros(3, 3)}, "UNet")
    assert ".config" in str(info.value) and info.value.field == "checkpoint"
    assert loading.detect_family(state)[0] == "sd1"


def _wf(checkpoint):
    from nodeforge import Workflow

    wf = Workflow()
    wf.add("CheckpointLoader", {"checkpoint": checkpoint}, node_id="ckpt")
    return wf


def test_sdxl_kohya_lora_patches_both_text_encoders(family_engine, family_models):
    from safetensors.torch import save_file

    clip = family_engine.run(_wf("tiny-xl"), outputs=["ckpt"]).outputs["ckpt"]["clip"]
    state = {}
    for prefix, te in (("lora_te1_", clip.text_encoder), ("lora_te2_", clip.text_encoder_2)):
        layer = te.get_submodule(next(n for n, _ in te.named_modules() if n.endswith("layers.0.self_attn.q_proj")))
        name = prefix + "text_model_encoder_layers_0_self_attn_q_proj"
        state[name + ".lora_down.weight"] = torch.randn(2, layer.weight.shape[1])
        state[name + ".lora_up.weight"] = torch.randn(layer.weight.shape[0], 2)
    save_file(state, str(family_models / "xl-lora.safetensors"))
    wf = _wf("tiny-xl")
    wf.add("LoRALoader", {"lora": str(family_models / "xl-lora.safetensors"), "strength_unet": 1.0,
                          "strength_clip": 1.0}, {"unet": ("ckpt", "unet"), "clip": ("ckpt", "clip")}, node_id="lora")
    wf.add("TextEncoder", {"text": "a red circle"}, {"clip": ("lora", "clip")}, node_id="pos")
    wf.add("TextEncoder", {"text": "a red circle"}, {"clip": ("ckpt", "clip")}, node_id="base")
    out = family_engine.run(wf, outputs=["lora", "pos", "base"]).outputs
    assert [part for part, _ in out["lora"]["clip"].loras] == ["te", "te2"]
    [patched], [base] = out["pos"]["conditioning"], out["base"]["conditioning"]
    assert patched["embeds"].shape == base["embeds"].shape == (1, 77, 32 + 48)
    assert not torch.allclose(patched["embeds"][..., :32], base["embeds"][..., :32])
    assert not torch.allclose(patched["embeds"][..., 32:], base["embeds"][..., 32:])
    assert not torch.allclose(patched["pooled"], base["pooled"])


def test_a_loaded_checkpoint_is_reused_while_used_and_freed_right_after(models_dir):
    import gc

    shared: dict = {}
    path = models_dir / "checkpoints" / "tiny-sd"
    gc.disable()   # freed by reference counting alone: no cycle keeps the weights alive
    try:
        unet, clip, vae = loading.load_checkpoint(path, "cpu", shared).wrappers()
        loads = loading.load_count
        assert loading.load_checkpoint(path, "cpu", shared).wrappers()[0].unet is unet.unet
        assert loading.load_count == loads
        patched = unet.with_lora(builtin_module("wrappers").LoraPatch("x", {}, 1.0))
        del unet, clip, vae
        assert len(shared["nodes.checkpoints"]) == 1   # the LoRA'd model still uses it
        del patched
        assert len(shared["nodes.checkpoints"]) == 0
    finally:
        gc.enable()


@pytest.mark.parametrize("family", ["sd1", "sd2", "sdxl", "sdxl-refiner"])
def test_ldm_names_of_full_size_unets_agree_with_diffusers_converter(family):
    import json

    from diffusers import UNet2DConditionModel
    from diffusers.loaders import single_file_utils as sfu

    from nodeforge import lora_format as names

    config = json.loads((loading.configs_dir() / family / "unet" / "config.json").read_text())
    with torch.device("meta"):
        unet = UNet2DConditionModel.from_config(config)
    state = unet.state_dict()
    tags = {k: torch.tensor([i]) for i, k in enumerate(state)}   # each weight tagged with its own name
    ldm = {"model.diffusion_model." + names.unet_ldm_name(k, unet.config): v for k, v in tags.items()}
    assert len(ldm) == len(state)
    back = sfu.convert_ldm_unet_checkpoint(ldm, unet.config)
    assert set(back) == set(state)
    assert all(torch.equal(back[k], tags[k]) for k in state)   # every name lands on its own layer


def test_diffusers_folder_with_only_fp16_variant_files_loads(models_dir, tmp_path):
    folder = shutil.copytree(models_dir / "checkpoints" / "tiny-sd", tmp_path / "fp16-only")
    for file in folder.rglob("*.safetensors"):
        file.rename(file.with_name(file.name.replace(".safetensors", ".fp16.safetensors")))
    unet, clip, vae = loading.load_checkpoint(folder, "cpu", {}).wrappers()
    reference = loading.load_checkpoint(models_dir / "checkpoints" / "tiny-sd", "cpu", {}).wrappers()[0]
    assert torch.equal(unet.unet.conv_in.weight, reference.unet.conv_in.weight)


@pytest.mark.parametrize("family,part,prefix", [
    ("sd1", "text_encoder", "cond_stage_model.transformer."),
    ("sd2", "text_encoder", "cond_stage_model.model."),
    ("sdxl", "text_encoder", "conditioner.embedders.0.transformer."),
    ("sdxl", "text_encoder_2", "conditioner.embedders.1.model."),
    ("sdxl-refiner", "text_encoder_2", "conditioner.embedders.0.model."),
])
def test_shipped_text_encoder_configs_take_original_layout_weights(family, part, prefix):
    """Full-size text encoders on the meta device: every original key lands on a same-shaped weight."""
    from diffusers.loaders import single_file_utils as sfu
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    config = CLIPTextConfig.from_pretrained(str(loading.configs_dir() / family / part))
    cls = CLIPTextModelWithProjection if part == "text_encoder_2" else CLIPTextModel
    with torch.device("meta"):
        model = cls(config)
    if prefix.endswith("transformer."):
        original = {prefix + k: v for k, v in tm.hf_clip_state(model).items()}
        converted = sfu.convert_ldm_clip_checkpoint(original, remove_prefix=prefix)
    else:
        original = tm.open_clip_state(model, prefix)
        converted = sfu.convert_open_clip_checkpoint(model, original, prefix=prefix)
    expected = tm.hf_clip_state(model)
    assert set(converted) == set(expected)
    assert all(converted[k].shape == expected[k].shape for k in expected)


def test_a_models_own_preview_map_is_read_and_a_malformed_one_is_ignored(tmp_path, caplog):
    from nodeforge.core.registry import builtin_module

    read = builtin_module("loading").read_preview_rgb
    good = tmp_path / "good.json"
    good.write_text('{"rgb_factors": [[1, 0, 0], [0, 1, 0], [0, 0, 1], [0, 0, 0]], "rgb_bias": [0.1, 0, 0]}')
    assert read(good, 4) == (((1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0), (0.0, 0.0, 0.0)), (0.1, 0.0, 0.0))
    assert read(good, 16) is None            # made for another latent size: the family's table is used
    bad = tmp_path / "bad.json"
    bad.write_text('{"rgb_factors": "red"}')
    assert read(bad, 4) is None and "ignoring" in caplog.text
    assert read(tmp_path / "missing.json", 4) is None


def test_a_models_preview_decoder_is_read_run_and_checked(tmp_path, caplog):
    import json

    import torch

    from nodeforge.core.registry import builtin_module

    read, latents = builtin_module("loading").read_preview_rgb, builtin_module("latents")
    linear = {"rgb_factors": [[0, 0, 0]] * 4, "rgb_bias": [0, 0, 0]}
    # 3x3 to 2 channels (SiLU), then 1x1 to RGB: red from the first latent channel, blue from minus it
    first = torch.zeros(2, 4, 3, 3)
    first[0, 0, 1, 1], first[1, 0, 1, 1] = 1.0, -1.0
    last = torch.tensor([[1.0, 0.0], [0.0, 0.0], [0.0, 1.0]]).reshape(3, 2, 1, 1) * 2
    layers = [{"kernel": 3, "activation": "silu", "weight": first.tolist(), "bias": [0, 0]},
              {"kernel": 1, "weight": last.tolist(), "bias": [-1, -1, -1]}]
    good = tmp_path / "good.json"
    good.write_text(json.dumps({**linear, "layers": layers}))
    own = read(good, 4)
    assert own is not None and len(own) == 3
    x = torch.zeros(1, 4, 4, 4)
    x[0, 0, :, :2], x[0, 0, :, 2:] = 3.0, -3.0
    pixels = latents.preview_image(x, "sd1", own).load()
    assert pixels[0, 0][0] > 200 and pixels[0, 0][2] < 40           # left: red
    assert pixels[3, 0][2] > 200 and pixels[3, 0][0] < 40           # right: blue
    for broken in ([{**layers[0], "weight": first[:, :3].tolist()}, layers[1]],   # does not take 4 channels
                   layers[:1],                                                   # ends at 2 channels, not RGB
                   [{**layers[0], "activation": "gelu-ish"}, layers[1]]):
        bad = tmp_path / "bad.json"
        bad.write_text(json.dumps({**linear, "layers": broken}))
        assert read(bad, 4) is None
    assert "ignoring" in caplog.text


def test_a_diffusers_folder_whose_tokenizer_lost_its_vocabulary_names_the_part_and_the_fix(models_dir, tmp_path):
    """transformers builds an empty tokenizer when the vocabulary files are missing; loading a folder
    refuses it (loading.check_vocabulary, which the flow families' folders use too)."""
    from nodes.loading import load_checkpoint

    folder = shutil.copytree(models_dir / "checkpoints" / "tiny-sd", tmp_path / "no-vocab")
    for name in ("vocab.json", "merges.txt", "tokenizer.json"):
        (folder / "tokenizer" / name).unlink(missing_ok=True)
    with pytest.raises(NodeError) as info:
        load_checkpoint(folder, "cpu")
    message = str(info.value)
    assert message == ("no-vocab/tokenizer holds no usable vocabulary (tokenizer.json, or vocab.json and merges.txt); "
                       "copy it from the model again")
    assert "\n" not in message
