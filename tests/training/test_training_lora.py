"""A few LoRA training steps on a tiny random model write the kohya layout artists share."""
import json

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")
pytest.importorskip("peft")

from nodeforge.training import data, lora  # noqa: E402


def test_train_lora_writes_kohya_keys_with_down_up_alpha_and_metadata(tiny_base, tmp_path, capsys):
    images = tmp_path / "stars"
    data.write_folder(images, 4, seed=0, shapes=("star",))
    out = tmp_path / "star.safetensors"
    assert lora.main([str(images), "--base", str(tiny_base), "--out", str(out), "--steps", "2", "--batch", "2",
                      "--rank", "4", "--alpha", "2", "--text-encoder", "--noise-offset", "0.15", "--seed", "1"]) == 0
    assert "train-lora [" in capsys.readouterr().err  # the progress bar

    tensors, metadata = lora.load_kohya(out)
    q = "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_k"
    assert tensors[q + ".lora_down.weight"].shape == (4, 64)  # rank x in (cross-attention dim)
    assert tensors[q + ".lora_up.weight"].shape == (16, 4)  # out x rank
    assert float(tensors[q + ".alpha"]) == 2.0
    assert "lora_unet_mid_block_attentions_0_transformer_blocks_0_attn1_to_out_0.lora_up.weight" in tensors
    te = "lora_te_text_model_encoder_layers_0_self_attn_q_proj"
    assert tensors[te + ".lora_down.weight"].shape == (4, 64)
    assert {k.split(".")[0].rsplit("_", 1)[-1] for k in tensors if k.startswith("lora_te_")} == {"proj"}
    assert all(k.startswith(("lora_unet_", "lora_te_")) for k in tensors)
    assert metadata["ss_network_dim"] == "4" and metadata["ss_network_alpha"] == "2.0"
    assert metadata["ss_base_model"] == tiny_base.name
    assert metadata["ss_noise_offset"] == "0.15"  # kohya's name for the base model's offset noise
    assert json.loads(metadata["ss_tag_frequency"])["stars"]["star"] == 4


def test_strength_zero_leaves_the_weights_exactly_as_they_were(tiny_base, tmp_path):
    from diffusers import UNet2DConditionModel

    images = tmp_path / "imgs"
    data.write_folder(images, 2, seed=0, shapes=("star",))
    out = tmp_path / "l.safetensors"
    lora.main([str(images), "--base", str(tiny_base), "--out", str(out), "--steps", "1", "--batch", "2"])
    tensors, _ = lora.load_kohya(out)
    base = UNet2DConditionModel.from_pretrained(tiny_base, subfolder="unet")
    patched = UNet2DConditionModel.from_pretrained(tiny_base, subfolder="unet")
    assert lora.apply_kohya_lora(patched, tensors, lora.UNET_PREFIX, 0.0) > 0
    for a, b in zip(base.state_dict().values(), patched.state_dict().values()):
        assert torch.equal(a, b)


def test_diffusers_reads_the_file_the_same_way_as_the_kohya_merge(tiny_base, tmp_path):
    """The layout is the standard one: diffusers' own kohya loader gives the same UNet output
    as merging W + up @ down * alpha / rank."""
    from diffusers import StableDiffusionPipeline
    from safetensors.torch import save_file

    images = tmp_path / "imgs"
    data.write_folder(images, 2, seed=0, shapes=("star",))
    out = tmp_path / "l.safetensors"
    lora.main([str(images), "--base", str(tiny_base), "--out", str(out), "--steps", "1", "--batch", "2",
               "--rank", "4", "--alpha", "2"])
    tensors, metadata = lora.load_kohya(out)
    torch.manual_seed(0)  # make the update big enough to see
    tensors = {k: (torch.randn_like(v) * 0.1 if k.endswith("lora_up.weight") else v) for k, v in tensors.items()}
    save_file(tensors, str(out), metadata=metadata)

    pipe = StableDiffusionPipeline.from_pretrained(tiny_base, safety_checker=None)
    merged = StableDiffusionPipeline.from_pretrained(tiny_base, safety_checker=None).unet
    lora.apply_kohya_lora(merged, tensors, lora.UNET_PREFIX, 1.0)
    pipe.load_lora_weights(str(out))
    x, t, cond = torch.randn(1, 4, 16, 16), torch.tensor([500]), torch.randn(1, 77, 64)
    with torch.no_grad():
        expected = merged(x, t, encoder_hidden_states=cond).sample
        got = pipe.unet(x, t, encoder_hidden_states=cond).sample
        base = StableDiffusionPipeline.from_pretrained(tiny_base, safety_checker=None).unet(
            x, t, encoder_hidden_states=cond).sample
    assert not torch.allclose(base, expected, atol=1e-3)
    torch.testing.assert_close(got, expected, atol=1e-4, rtol=1e-3)


def test_conv_lora_uses_locon_layout_and_the_node_pack_applies_it_like_the_merge(tiny_base, tmp_path):
    """--conv adds the ResNet convolutions (kohya LoCon: 3x3 down, 1x1 up). The editor's
    LoRALoader patch and the trainer's own merge give the same UNet output."""
    from diffusers import UNet2DConditionModel

    from nodeforge.core.registry import builtin_module

    images = tmp_path / "imgs"
    data.write_folder(images, 2, seed=0, shapes=("star",))
    out = tmp_path / "locon.safetensors"
    lora.main([str(images), "--base", str(tiny_base), "--out", str(out), "--steps", "1", "--batch", "2",
               "--rank", "4", "--alpha", "2", "--conv"])
    tensors, metadata = lora.load_kohya(out)
    conv = "lora_unet_down_blocks_0_resnets_0_conv1"
    assert tensors[conv + ".lora_down.weight"].shape == (4, 16, 3, 3)
    assert tensors[conv + ".lora_up.weight"].shape == (16, 4, 1, 1)
    assert json.loads(metadata["ss_network_args"]) == {"conv_dim": "4", "conv_alpha": "2.0"}
    torch.manual_seed(0)  # make the update big enough to see
    tensors = {k: (torch.randn_like(v) * 0.1 if k.endswith("lora_up.weight") else v) for k, v in tensors.items()}

    merged = UNet2DConditionModel.from_pretrained(tiny_base, subfolder="unet")
    assert lora.apply_kohya_lora(merged, tensors, lora.UNET_PREFIX, 1.0) > 0
    node_lora, wrappers = builtin_module("lora"), builtin_module("wrappers")
    parts, ignored = node_lora.parse_lora(tensors)
    unet = UNet2DConditionModel.from_pretrained(tiny_base, subfolder="unet")
    patch, unmatched = node_lora.resolve(parts["unet"], unet, "locon", 1.0, unet.config)
    assert not ignored and unmatched == 0 and "down_blocks.0.resnets.0.conv1" in patch.deltas
    x, t, cond = torch.randn(1, 4, 16, 16), torch.tensor([500]), torch.randn(1, 77, 64)
    with torch.no_grad():
        base = unet(x, t, encoder_hidden_states=cond).sample
        expected = merged(x, t, encoder_hidden_states=cond).sample
        with wrappers.apply_patches({"unet": unet}, (("unet", patch),)):
            got = unet(x, t, encoder_hidden_states=cond).sample
    assert not torch.allclose(base, expected, atol=1e-3)
    torch.testing.assert_close(got, expected, atol=1e-4, rtol=1e-3)


def test_the_bundled_model_is_a_base_by_name_from_any_folder(tmp_path, monkeypatch, capsys):
    """`nodeforge train-lora --base nodeforge-shapes` as the README says, run outside the checkout:
    the name resolves where the package keeps its resources (the wheel and bundle too)."""
    from nodeforge.cli import main
    from nodeforge.paths import builtin_dir

    bundled = builtin_dir("resources") / "models" / "nodeforge-shapes"
    assert (bundled / "model_index.json").exists(), f"the bundled demo model is missing: {bundled}"
    images = tmp_path / "stars"
    data.write_folder(images, 2, seed=0, shapes=("star",))
    monkeypatch.chdir(tmp_path)
    assert main(["train-lora", "stars", "--base", "nodeforge-shapes", "--out", "star.safetensors",
                 "--steps", "1", "--batch", "1", "--rank", "2"]) == 0
    tensors, metadata = lora.load_kohya(tmp_path / "star.safetensors")
    assert metadata["ss_base_model"] == "nodeforge-shapes"
    assert any(k.startswith("lora_unet_") for k in tensors)
    from nodeforge.training.common import TrainingInputError, resolve_base

    with pytest.raises(TrainingInputError, match="bundled: nodeforge-shapes"):
        resolve_base("no-such-model", "train-lora")
