"""LoRAs: formats, strengths, stacking, and the base model left as it was."""
from __future__ import annotations

import json

import pytest
import torch

from nodeforge.core.errors import NodeExecutionError
from nodeforge.core.registry import builtin_module


def _latent(engine, wf):
    return engine.run(wf, outputs=["denoise"]).outputs["denoise"]["latent"]["samples"]


def _weights(engine, make_txt2img):
    out = engine.run(make_txt2img(), outputs=["ckpt"]).outputs["ckpt"]
    return {k: v.clone() for k, v in out["unet"].unet.state_dict().items()}, \
        {k: v.clone() for k, v in out["clip"].text_encoder.state_dict().items()}


def test_strength_zero_is_bitwise_the_base_model(engine, make_txt2img):
    base = _latent(engine, make_txt2img(seed=4))
    zero = _latent(engine, make_txt2img(seed=4, lora=[("kohya", 0.0, 0.0)]))
    assert torch.equal(base, zero)


@pytest.mark.parametrize("lora", ["kohya", "kohya-ldm", "peft"])
def test_a_lora_changes_the_image_and_leaves_the_base_as_it_was(engine, make_txt2img, lora):
    unet_before, te_before = _weights(engine, make_txt2img)
    base = _latent(engine, make_txt2img(seed=4))
    patched = _latent(engine, make_txt2img(seed=4, lora=[(lora, 1.0, 1.0)]))
    assert not torch.allclose(base, patched)
    unet_after, te_after = _weights(engine, make_txt2img)
    assert all(torch.equal(unet_before[k], unet_after[k]) for k in unet_before)
    assert all(torch.equal(te_before[k], te_after[k]) for k in te_before)
    engine.cache.clear()   # a branch without the LoRA, run afresh, is unaffected
    assert torch.equal(_latent(engine, make_txt2img(seed=4)), base)


def _file_deltas(models_dir, name, strength):
    """Expected weight deltas by module path, from the tensors in the file (not the parsed patch)."""
    from safetensors.torch import load_file

    state = load_file(str(models_dir / "loras" / f"{name}.safetensors"))
    out = {}
    for key, down in state.items():
        if key.startswith("lora_unet_") and key.endswith(".lora_down.weight"):
            stem = key[:-len(".lora_down.weight")]
            up, alpha = state[stem + ".lora_up.weight"], float(state[stem + ".alpha"])
            delta = strength * alpha / down.shape[0] * (up.flatten(1) @ down.flatten(1))
            out[stem[len("lora_unet_"):]] = delta
    return out


def _patched_deltas(unet_model):
    """The actual weight change of every patched UNet layer, by underscored module path."""
    paths = {p for patch in unet_model.loras for p in patch.deltas}
    before = {p: unet_model.unet.get_submodule(p).weight.detach().clone() for p in paths}
    with unet_model.patched():
        after = {p: unet_model.unet.get_submodule(p).weight.detach().clone() for p in paths}
    return {p.replace(".", "_"): (after[p] - before[p]).flatten(1) for p in paths}


def test_kohya_ldm_names_match_the_same_layers_as_diffusers_names(engine, make_txt2img):
    out = engine.run(make_txt2img(lora=[("kohya", 1.0, 1.0)]), outputs=["lora0"]).outputs["lora0"]
    out_ldm = engine.run(make_txt2img(lora=[("kohya-ldm", 1.0, 1.0)]), outputs=["lora0"]).outputs["lora0"]
    a, b = out["unet"].loras[0].deltas, out_ldm["unet"].loras[0].deltas
    assert set(a) == set(b) and len(a) >= 5
    # Both files hold the same tensors under the two spellings: each must land on the same layer.
    for path, (down, up, scale) in a.items():
        assert torch.equal(down, b[path][0]) and torch.equal(up, b[path][1]) and scale == b[path][2], path
    assert any(d.ndim == 4 and d.shape[-1] == 3 for d, _, _ in a.values())   # a LoCon 3x3 conv
    assert out["clip"].loras and out["clip"].loras[0][0] == "te"


def test_the_tiny_unets_ldm_names_are_the_ones_written_by_hand():
    """lora_format.unet_ldm_name against names written out independently (TINY_UNET_LDM_NAMES and
    the layers around them): a block index, attention/resnet slot or resnet part off by one fails."""
    import tiny_models as tm
    from nodeforge.lora_format import unet_ldm_name

    unet = tm.make_components(0)["unet"]
    targets, _ = tm.lora_targets(unet, tm.make_components(0)["text_encoder"])
    assert set(targets) == set(tm.TINY_UNET_LDM_NAMES)
    more = {"conv_in": "input_blocks.0.0", "time_embedding.linear_2": "time_embed.2", "conv_norm_out": "out.0",
            "conv_out": "out.2", "down_blocks.0.downsamplers.0.conv": "input_blocks.2.0.op",
            "down_blocks.1.resnets.0.conv1": "input_blocks.3.0.in_layers.2",
            "down_blocks.1.resnets.0.conv_shortcut": "input_blocks.3.0.skip_connection",
            "mid_block.resnets.0.time_emb_proj": "middle_block.0.emb_layers.1",
            "mid_block.resnets.1.conv2": "middle_block.2.out_layers.3",
            "up_blocks.0.resnets.1.norm1": "output_blocks.1.0.in_layers.0",
            "up_blocks.0.upsamplers.0.conv": "output_blocks.1.1.conv",
            "up_blocks.1.resnets.0.norm2": "output_blocks.2.0.out_layers.0"}
    for name, ldm in {**tm.TINY_UNET_LDM_NAMES, **more}.items():
        unet.get_submodule(name)   # a real layer of the tiny UNet
        assert unet_ldm_name(name, unet.config) == ldm, name


def test_unet_and_clip_strengths_are_independent(engine, make_txt2img):
    base = _latent(engine, make_txt2img(seed=4))
    unet_only = _latent(engine, make_txt2img(seed=4, lora=[("kohya", 1.0, 0.0)]))
    clip_only = _latent(engine, make_txt2img(seed=4, lora=[("kohya", 0.0, 1.0)]))
    both = _latent(engine, make_txt2img(seed=4, lora=[("kohya", 1.0, 1.0)]))
    assert not torch.allclose(base, unet_only) and not torch.allclose(base, clip_only)
    assert not torch.allclose(unet_only, both) and not torch.allclose(clip_only, both)
    cond = engine.run(make_txt2img(lora=[("kohya", 1.0, 0.0)]), outputs=["pos", "ckpt"]).outputs
    base_cond = engine.run(make_txt2img(), outputs=["pos"]).outputs["pos"]["conditioning"][0]["embeds"]
    assert torch.equal(cond["pos"]["conditioning"][0]["embeds"], base_cond)


def test_stacked_loras_add_up(engine, models_dir, make_txt2img):
    one = _latent(engine, make_txt2img(seed=4, lora=[("kohya", 1.0, 1.0)]))
    wf = make_txt2img(seed=4, lora=[("kohya", 0.7, 1.0), ("kohya-b", 0.4, 1.0)])
    two = _latent(engine, wf)
    assert not torch.allclose(one, two)
    unet = engine.run(wf, outputs=["lora1"]).outputs["lora1"]["unet"]
    actual = _patched_deltas(unet)
    first, second = _file_deltas(models_dir, "kohya", 0.7), _file_deltas(models_dir, "kohya-b", 0.4)
    assert set(actual) == set(first) == set(second) and len(actual) >= 5
    for path, delta in actual.items():
        torch.testing.assert_close(delta, first[path] + second[path], rtol=1e-4, atol=1e-6)


def test_changing_lora_strength_does_not_reload_the_checkpoint(engine, make_txt2img):
    loading = builtin_module("loading")
    engine.run(make_txt2img(lora=[("kohya", 0.5, 1.0)]))
    loads = loading.load_count
    result = engine.run(make_txt2img(lora=[("kohya", 0.8, 1.0)]))
    assert "ckpt" not in result.executed
    assert {"lora0", "denoise"} <= set(result.executed)
    assert loading.load_count == loads


def test_lora_delta_is_strength_times_alpha_over_rank_up_down(engine, models_dir, make_txt2img):
    out = engine.run(make_txt2img(lora=[("kohya", 0.5, 1.0)]), outputs=["lora0"]).outputs["lora0"]
    unet = out["unet"]
    expected = _file_deltas(models_dir, "kohya", 0.5)   # 0.5 * alpha 2 / rank 4 * up @ down, from the file
    actual = _patched_deltas(unet)
    assert set(actual) == set(expected)
    for path, delta in actual.items():
        torch.testing.assert_close(delta, expected[path], rtol=1e-4, atol=1e-6)
    path = next(iter(unet.loras[0].deltas))
    weight = unet.unet.get_submodule(path).weight
    before = weight.detach().clone()
    with unet.patched():
        pass
    assert torch.equal(weight, before)   # restored on exit


@pytest.mark.parametrize("damage", ["conv_down_permuted", "linear_transposed"])
def test_a_lora_with_wrongly_shaped_matrices_is_refused_naming_the_key(engine, models_dir, make_txt2img,
                                                                        damage):
    from safetensors.torch import load_file, save_file

    state = load_file(str(models_dir / "loras" / "kohya.safetensors"))
    want = 4 if damage == "conv_down_permuted" else 2
    stem = next(k[:-len(".lora_down.weight")] for k, v in state.items()
                if k.startswith("lora_unet_") and k.endswith(".lora_down.weight") and v.ndim == want
                and (want == 2 or v.shape[-1] == 3))
    down, up = state[stem + ".lora_down.weight"], state[stem + ".lora_up.weight"]
    if damage == "conv_down_permuted":   # same element count, kernel dims moved in front of channels
        state[stem + ".lora_down.weight"] = down.permute(0, 2, 3, 1).contiguous()
    else:
        state[stem + ".lora_down.weight"] = down.t().contiguous()
        state[stem + ".lora_up.weight"] = up.t().contiguous()
    save_file(state, str(models_dir / "loras" / f"kohya-{damage}.safetensors"))
    with pytest.raises(NodeExecutionError) as info:
        engine.run(make_txt2img(lora=[(f"kohya-{damage}", 1.0, 1.0)]), outputs=["lora0"])
    assert info.value.field == "lora" and info.value.node_id == "lora0"
    assert stem[len("lora_unet_"):] in str(info.value)


def test_lora_for_another_model_is_an_error_naming_the_field(engine, make_txt2img):
    with pytest.raises(NodeExecutionError) as info:
        engine.run(make_txt2img(lora=[("foreign", 1.0, 1.0)]))
    assert info.value.field == "lora" and info.value.node_id == "lora0"


def test_partly_matching_lora_warns_with_a_count():
    lora = builtin_module("lora")
    unet = torch.nn.Sequential(torch.nn.Linear(8, 8))
    entries = {"0": {"down": torch.ones(2, 8), "up": torch.ones(8, 2)},
               "missing": {"down": torch.ones(2, 8), "up": torch.ones(8, 2)}}
    patch, unmatched = lora.resolve(entries, unet, "x", 1.0)
    assert list(patch.deltas) == ["0"] and unmatched == 1


def test_a_lora_with_some_unknown_modules_warns_and_applies_the_rest(engine, models_dir, make_txt2img):
    from safetensors.torch import load_file, save_file

    state = load_file(str(models_dir / "loras" / "kohya.safetensors"))
    state["lora_unet_not_a_layer.lora_down.weight"] = torch.ones(2, 8)
    state["lora_unet_not_a_layer.lora_up.weight"] = torch.ones(8, 2)
    save_file(state, str(models_dir / "loras" / "kohya-partial.safetensors"))
    with pytest.warns(UserWarning, match="1 of .* modules matched no layer"):
        out = engine.run(make_txt2img(lora=[("kohya-partial", 1.0, 1.0)]), outputs=["lora0"]).outputs["lora0"]
    assert len(out["unet"].loras[0].deltas) >= 5


def test_peft_alpha_comes_from_the_file_metadata(engine, make_txt2img):
    out = engine.run(make_txt2img(lora=[("peft", 1.0, 1.0)]), outputs=["lora0"]).outputs["lora0"]
    scales = {scale for _, _, scale in out["unet"].loras[0].deltas.values()}
    assert scales == {8 / 4}
    assert out["clip"].loras[0][1].deltas


@pytest.mark.parametrize("config, scale", [({"lora_alpha": 16, "r": 4, "peft_type": "LORA"}, 16 / 4),
                                           (None, 1.0)])
def test_peft_alpha_comes_from_adapter_config_json_beside_the_file(engine, models_dir, make_txt2img, tmp_path,
                                                                  config, scale):
    """PEFT's save_pretrained writes adapter_model.safetensors with no alpha in it and
    adapter_config.json beside it; without that file alpha is the rank (scale 1)."""
    from safetensors.torch import load_file, save_file

    folder = tmp_path / "my-peft-lora"
    folder.mkdir()
    state = load_file(str(models_dir / "loras" / "peft.safetensors"))   # rank 4; saved again without metadata
    save_file(state, str(folder / "adapter_model.safetensors"))
    if config is not None:
        (folder / "adapter_config.json").write_text(json.dumps(config))
    wf = make_txt2img(lora=[(str(folder / "adapter_model.safetensors"), 1.0, 1.0)])
    out = engine.run(wf, outputs=["lora0"]).outputs["lora0"]
    assert {s for _, _, s in out["unet"].loras[0].deltas.values()} == {scale}
    assert {s for _, _, s in out["clip"].loras[0][1].deltas.values()} == {scale}


def test_other_lora_spellings_are_understood():
    lora = builtin_module("lora")
    t = torch.zeros(1)
    state = {
        "base_model.model.down_blocks.0.attentions.0.proj_in.lora_A.weight": t,
        "base_model.model.down_blocks.0.attentions.0.proj_in.lora_B.weight": t,
        "base_model.model.text_model.encoder.layers.0.self_attn.q_proj.lora_A.weight": t,
        "unet.mid_block.attentions.0.transformer_blocks.0.attn1.processor.to_q_lora.down.weight": t,
        "unet.mid_block.attentions.0.transformer_blocks.0.attn1.processor.to_q_lora.up.weight": t,
        "lora_te2_text_model_encoder_layers_0_mlp_fc1.lora_down.weight": t,
        "lora_te2_text_model_encoder_layers_0_mlp_fc1.alpha": t,
        "something_else.weight": t,
    }
    parts, ignored = lora.parse_lora(state)
    assert set(parts["unet"]) == {"down_blocks.0.attentions.0.proj_in",
                                  "mid_block.attentions.0.transformer_blocks.0.attn1.to_q"}
    assert set(parts["unet"]["mid_block.attentions.0.transformer_blocks.0.attn1.to_q"]) == {"down", "up"}
    assert list(parts["te"]) == ["text_model.encoder.layers.0.self_attn.q_proj"]
    assert set(parts["te2"]["text_model_encoder_layers_0_mlp_fc1"]) == {"down", "alpha"}
    assert ignored == ["something_else.weight"]


def test_a_damaged_lora_file_is_an_error_on_the_lora_field(engine, models_dir, make_txt2img):
    (models_dir / "loras" / "damaged.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json")
    with pytest.raises(NodeExecutionError) as info:
        engine.run(make_txt2img(lora=[("damaged", 1.0, 1.0)]))
    assert info.value.field == "lora" and "damaged" in str(info.value)


def test_one_format_module_names_the_keys_the_trainer_writes_and_the_loader_reads():
    from nodeforge import lora_format as fmt

    written = fmt.kohya_tensors(fmt.TEXT_PREFIX, "encoder.layers.0.self_attn.q_proj", "d", "u", "a")
    assert list(written) == ["lora_te_text_model_encoder_layers_0_self_attn_q_proj" + s
                             for s in (".lora_down.weight", ".lora_up.weight", ".alpha")]
    assert [fmt.read_key(k) for k in written] == [
        fmt.LoraKey("te", "text_model_encoder_layers_0_self_attn_q_proj", t) for t in ("down", "up", "alpha")]
    assert fmt.read_key("lora_te2_text_model_encoder_layers_0_mlp_fc1.lora_up.weight").part == "te2"
    assert fmt.read_key("unet.down_blocks.0.attentions.0.proj_in.lora_A.weight") == \
        fmt.LoraKey("unet", "down_blocks.0.attentions.0.proj_in", "down")
    assert fmt.read_key("base_model.model.text_model.encoder.layers.0.mlp.fc1.lora_B.weight").part == "te"
    assert fmt.read_key("unet.mid_block.attentions.0.processor.to_out_lora.down.weight").module == \
        "mid_block.attentions.0.to_out.0"
    assert fmt.read_key("model.diffusion_model.input_blocks.0.0.weight") is None
    assert fmt.scale(2.0, 4) == 0.5 and fmt.scale(None, 4) == 1.0
    down, up = torch.randn(4, 8, 3, 3), torch.randn(16, 4, 1, 1)       # LoCon: 3x3 down, 1x1 up
    assert torch.equal(fmt.delta(down, up, (16, 8, 3, 3)), (up.flatten(1) @ down.flatten(1)).reshape(16, 8, 3, 3))
