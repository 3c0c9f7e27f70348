"""LoRA variants in LoRALoader: LoHa, LoKr, DoRA (made with peft on the tiny UNet) and full diffs,
in PEFT and kohya (LyCORIS) key layouts, against peft's own merged forward."""
from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import save_file

from nodeforge import Workflow

TARGETS = ["to_q", "to_k", "proj_in", "conv1"]   # linear layers, a 1x1 conv and 3x3 convs


def _config(kind, **extra):
    from peft import LoHaConfig, LoKrConfig, LoraConfig

    if kind == "loha":
        return LoHaConfig(r=2, alpha=3, target_modules=TARGETS, init_weights=False, **extra)
    if kind == "lokr":
        return LoKrConfig(r=2, alpha=3, target_modules=TARGETS, init_weights=False, **extra)
    return LoraConfig(r=2, lora_alpha=3, target_modules=TARGETS, init_lora_weights=False, use_dora=True, **extra)


def _peft_unet(kind, seed, **extra):
    """The tiny UNet (tiny-sd's weights) with a random peft adapter, and its adapter state dict."""
    from peft import get_peft_model_state_dict, inject_adapter_in_model

    import tiny_models as tm

    unet = tm.make_components(0)["unet"].eval()
    torch.manual_seed(seed)
    inject_adapter_in_model(_config(kind, **extra), unet)
    with torch.no_grad():
        for name, p in unet.named_parameters():
            if "lora_magnitude_vector" in name:   # move the magnitude off its initial norm
                p.mul_(1 + 0.3 * torch.rand(p.shape))
            elif kind != "dora" and ("hada_" in name or "lokr_" in name):
                p.mul_(3.0)
    # named as diffusers saves a UNet adapter ("unet." + the module path)
    state = {"unet." + k: v.detach().clone().contiguous() for k, v in get_peft_model_state_dict(unet).items()}
    return unet, state


def _kohya(state, alpha):
    """PEFT adapter keys as kohya/LyCORIS keys (`lora_unet_<path>.<tensor>`, an alpha per module)."""
    out = {}
    for key, value in state.items():
        key = key[len("unet."):]
        path, tensor = key.rsplit(".", 1) if not key.endswith(".weight") else key[:-len(".weight")].rsplit(".", 1)
        name = "lora_unet_" + path.replace(".", "_")
        tensor = {"lora_A": "lora_down.weight", "lora_B": "lora_up.weight", "lora_magnitude_vector": "dora_scale"}.get(
            tensor, tensor)
        if tensor == "dora_scale":
            value = value.reshape(-1, *[1] * (1 if value.ndim == 1 else 3))
        out[f"{name}.{tensor}"] = value
        out[f"{name}.alpha"] = torch.tensor(float(alpha))
    return out


def _forward(unet, seed=0):
    gen = torch.Generator().manual_seed(seed)
    x, hidden = torch.randn(2, 4, 8, 8, generator=gen), torch.randn(2, 7, 32, generator=gen)
    with torch.no_grad():
        return unet(x, 500, encoder_hidden_states=hidden).sample


@pytest.fixture(scope="module")
def variant_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("variant-loras")
    (root / "loras").mkdir()
    return root


@pytest.fixture(scope="module")
def variant_engine(models_dir, variant_root, registry, tmp_path_factory):
    from nodeforge import Engine
    from nodeforge.core.models import ModelPaths

    return Engine(device="cpu", output_dir=tmp_path_factory.mktemp("out"), registry=registry,
                  model_paths=ModelPaths(roots=[variant_root, models_dir]))


def _lora_unet(engine, path, strength=1.0):
    wf = Workflow()
    wf.add("CheckpointLoader", {"checkpoint": "tiny-sd"}, node_id="ckpt")
    wf.add("LoRALoader", {"lora": str(path), "strength_unet": strength, "strength_clip": 1.0},
           {"unet": ("ckpt", "unet"), "clip": ("ckpt", "clip")}, node_id="lora")
    out = engine.run(wf, outputs=["lora", "ckpt"]).outputs
    return out["lora"]["unet"], out["ckpt"]["unet"]


def _ours(model):
    with model.patched():
        return _forward(model.unet)


CASES = [("loha", {}), ("loha", {"use_effective_conv2d": True}), ("lokr", {}),
         ("lokr", {"decompose_both": True, "rank_dropout_scale": False}), ("dora", {})]


@pytest.mark.parametrize("kind, extra", CASES, ids=["loha", "loha-cp", "lokr", "lokr-decomposed", "dora"])
def test_peft_layout_matches_peft_merged_forward(variant_engine, variant_root, kind, extra):
    peft_unet, state = _peft_unet(kind, 1, **extra)
    path = variant_root / "loras" / f"peft-{kind}-{len(extra)}.safetensors"
    alpha_key = "lora_alpha" if kind == "dora" else "alpha"
    save_file(state, str(path), metadata={"lora_adapter_metadata": json.dumps({"r": 2, alpha_key: 3})})
    model, base = _lora_unet(variant_engine, path)
    assert len(model.loras[0].deltas) >= 5
    torch.testing.assert_close(_ours(model), _forward(peft_unet), atol=1e-5, rtol=1e-5)
    assert (_forward(peft_unet) - _forward(base.unet)).abs().max() > 1e-3   # the adapter does something


@pytest.mark.parametrize("kind, extra", [("loha", {}), ("loha", {"use_effective_conv2d": True}), ("lokr", {}),
                                         ("dora", {})], ids=["loha", "loha-cp", "lokr-full", "dora"])
def test_kohya_layout_matches_peft_merged_forward(variant_engine, variant_root, kind, extra):
    # LyCORIS gives a LoKr of two full matrices scale 1; peft's alpha / r is 1 at alpha = r
    alpha = 2 if kind == "lokr" else 3
    peft_unet, state = _peft_unet(kind, 2, **extra)
    if kind == "lokr":
        for module in peft_unet.modules():
            if hasattr(module, "scaling") and isinstance(module.scaling, dict):
                module.scaling = {k: 1.0 for k in module.scaling}
    path = variant_root / "loras" / f"kohya-{kind}-{len(extra)}.safetensors"
    save_file(_kohya(state, alpha), str(path))
    model, _ = _lora_unet(variant_engine, path)
    torch.testing.assert_close(_ours(model), _forward(peft_unet), atol=1e-5, rtol=1e-5)


def test_strength_scales_the_change_strength_zero_is_bitwise_the_base_and_variants_stack(variant_engine, variant_root):
    _, loha = _peft_unet("loha", 3)
    _, lokr = _peft_unet("lokr", 4)
    paths = []
    for name, state, alpha_key in (("s-loha", loha, "alpha"), ("s-lokr", lokr, "alpha")):
        paths.append(variant_root / "loras" / f"{name}.safetensors")
        save_file(state, str(paths[-1]), metadata={"lora_adapter_metadata": json.dumps({"r": 2, alpha_key: 3})})
    full, base = _lora_unet(variant_engine, paths[0], 1.0)
    half, _ = _lora_unet(variant_engine, paths[0], 0.5)
    zero, _ = _lora_unet(variant_engine, paths[0], 0.0)
    layer = next(iter(full.loras[0].deltas))

    def weight(model):
        with model.patched():
            return model.unet.get_submodule(layer).weight.detach().clone()

    w0, w1, wh = weight(base), weight(full), weight(half)
    torch.testing.assert_close(wh, w0 + 0.5 * (w1 - w0), atol=1e-6, rtol=0)
    assert torch.equal(_ours(zero), _forward(base.unet))
    assert torch.equal(base.unet.get_submodule(layer).weight, w0)          # restored after patching
    # stacked: LoHa then LoKr adds both changes
    other, _ = _lora_unet(variant_engine, paths[1], 1.0)
    both = full.with_lora(other.loras[0])
    torch.testing.assert_close(weight(both) - w0, (w1 - w0) + (weight(other) - w0), atol=1e-6, rtol=0)


def test_full_diffs_change_weights_and_biases_by_exactly_the_file(variant_engine, variant_root, models_dir):
    import tiny_models as tm

    unet = tm.make_components(0)["unet"]
    gen = torch.Generator().manual_seed(5)
    layer = "down_blocks.0.attentions.0.proj_in"
    module = unet.get_submodule(layer)
    diff, diff_b = torch.randn(module.weight.shape, generator=gen), torch.randn(module.bias.shape, generator=gen)
    name = "lora_unet_" + layer.replace(".", "_")
    path = variant_root / "loras" / "full-diff.safetensors"
    save_file({f"{name}.diff": diff, f"{name}.diff_b": diff_b}, str(path))
    model, base = _lora_unet(variant_engine, path, 0.5)
    before_w, before_b = base.unet.get_submodule(layer).weight.clone(), base.unet.get_submodule(layer).bias.clone()
    with model.patched():
        patched = model.unet.get_submodule(layer)
        torch.testing.assert_close(patched.weight, before_w + 0.5 * diff, atol=1e-6, rtol=0)
        torch.testing.assert_close(patched.bias, before_b + 0.5 * diff_b, atol=1e-6, rtol=0)
    assert torch.equal(base.unet.get_submodule(layer).bias, before_b)


def test_a_variant_made_for_another_shape_is_refused_naming_the_module(variant_engine, variant_root):
    from nodeforge.core.errors import WorkflowError

    name = "lora_unet_down_blocks_0_attentions_0_proj_in"
    path = variant_root / "loras" / "wrong-loha.safetensors"
    save_file({f"{name}.hada_w1_a": torch.ones(5, 2), f"{name}.hada_w1_b": torch.ones(2, 7),
               f"{name}.hada_w2_a": torch.ones(5, 2), f"{name}.hada_w2_b": torch.ones(2, 7)}, str(path))
    with pytest.raises(WorkflowError, match=r"wrong-loha.safetensors: the loha factors of layer "
                                            r"down_blocks_0_attentions_0_proj_in do not fit it \(its factors make "
                                            r"\(5, 7\) and \(5, 7\), not the layer's 1024 values\)"):
        _lora_unet(variant_engine, path)


PROJ_IN = "lora_unet_down_blocks_0_attentions_0_proj_in"    # a 32 x 32 layer of the tiny UNet


def _refused(engine, path, *fragments):
    """LoRALoader refuses the file in one line naming the file, the layer and the fix (no torch message)."""
    from nodeforge.core.errors import WorkflowError

    with pytest.raises(WorkflowError) as raised:
        _lora_unet(engine, path)
    message = str(raised.value)
    assert "\n" not in message and "Traceback" not in message, message
    for fragment in (path.name, "down_blocks_0_attentions_0_proj_in", "use one made for this model", *fragments):
        assert fragment in message, message


def test_loha_factors_that_do_not_multiply_are_refused_naming_file_and_layer(variant_engine, variant_root):
    path = variant_root / "loras" / "unchained-loha.safetensors"
    save_file({f"{PROJ_IN}.hada_w1_a": torch.ones(32, 2), f"{PROJ_IN}.hada_w1_b": torch.ones(3, 32),
               f"{PROJ_IN}.hada_w2_a": torch.ones(32, 2), f"{PROJ_IN}.hada_w2_b": torch.ones(2, 32)}, str(path))
    _refused(variant_engine, path, "hada_w1_a (32, 2) and hada_w1_b (3, 32) do not multiply")


def test_loha_missing_a_factor_is_refused_naming_it(variant_engine, variant_root):
    path = variant_root / "loras" / "half-loha.safetensors"
    save_file({f"{PROJ_IN}.hada_w1_a": torch.ones(32, 2), f"{PROJ_IN}.hada_w1_b": torch.ones(2, 32),
               f"{PROJ_IN}.hada_w2_a": torch.ones(32, 2)}, str(path))
    _refused(variant_engine, path, "it has no hada_w2_b tensor")


def test_dora_magnitude_of_another_size_is_refused_at_load_not_while_sampling(variant_engine, variant_root):
    path = variant_root / "loras" / "wrong-dora.safetensors"
    save_file({f"{PROJ_IN}.lora_down.weight": torch.ones(2, 32), f"{PROJ_IN}.lora_up.weight": torch.ones(32, 2),
               f"{PROJ_IN}.dora_scale": torch.ones(7)}, str(path))
    _refused(variant_engine, path, "the dora factors", "magnitude (7,) is neither 32 outputs nor 32 inputs")


def test_lokr_sizes_are_checked_before_the_kronecker_product(variant_engine, variant_root, monkeypatch):
    """Factors of 100000x1 and 1x100000 (800 KB on disk) would make a 10^10-value (40 GB) product."""
    path = variant_root / "loras" / "huge-lokr.safetensors"
    save_file({f"{PROJ_IN}.lokr_w1": torch.ones(100000, 1), f"{PROJ_IN}.lokr_w2": torch.ones(1, 100000)},
              str(path))

    def never(*args, **kwargs):
        raise AssertionError("torch.kron was called on factors whose declared shapes do not fit the layer")

    monkeypatch.setattr(torch, "kron", never)
    _refused(variant_engine, path, "the Kronecker product of (100000, 1) and (1, 100000) does not make")


def test_lokr_of_the_right_count_but_wrong_rows_is_refused(variant_engine, variant_root):
    """kron of 4x8 and 16x2 has the layer's 1024 values, as a 64 x 16 matrix: not the 32 x 32 layer."""
    path = variant_root / "loras" / "rows-lokr.safetensors"
    save_file({f"{PROJ_IN}.lokr_w1": torch.ones(4, 8), f"{PROJ_IN}.lokr_w2": torch.ones(16, 2)}, str(path))
    _refused(variant_engine, path, "the Kronecker product of (4, 8) and (16, 2) does not make")
