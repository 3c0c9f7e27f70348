"""What the output cache counts for models (nodeforge/core/cache.py): each module, tensor and LoRA delta once
across every entry that holds it, and for as long as any entry keeps it in memory."""
from __future__ import annotations

import dataclasses

import pytest
import torch

from nodeforge.core.cache import OutputCache, estimate_nbytes
from nodeforge.core.registry import builtin_module


def _bytes(*values) -> int:
    """Bytes of modules' parameters and buffers and of tensors, as a user would add them up."""
    total = 0
    for value in values:
        tensors = [*value.parameters(), *value.buffers()] if isinstance(value, torch.nn.Module) else [value]
        total += sum(t.numel() * t.element_size() for t in tensors)
    return total


def _checkpoint_bytes(out) -> int:
    return _bytes(out["unet"].unet, out["clip"].text_encoder, out["vae"].vae)


def _delta_bytes(*patches) -> int:
    return sum(_bytes(*value[:2]) for patch in patches for value in patch.deltas.values())


def test_a_lora_s_copies_add_only_their_deltas_to_the_checkpoint(fresh_engine, make_txt2img):
    out = fresh_engine.run(make_txt2img(), outputs=["ckpt"]).outputs
    checkpoint = _checkpoint_bytes(out["ckpt"])
    assert fresh_engine.cache.stats().nbytes == checkpoint
    out = fresh_engine.run(make_txt2img(lora=[("kohya", 1.0, 1.0)]), outputs=["ckpt", "lora0"]).outputs
    unet, clip = out["lora0"]["unet"], out["lora0"]["clip"]
    deltas = _delta_bytes(*unet.loras, *(patch for _, patch in clip.loras))
    assert 0 < deltas < checkpoint / 4
    assert (fresh_engine.cache.stats().entries, fresh_engine.cache.stats().nbytes) == (2, checkpoint + deltas)


@pytest.mark.parametrize("node_type, params", [("SelfAttentionGuidance", {"scale": 0.0, "blur_sigma": 2.0}),
                                               ("ModelSamplingDiscrete", {"sampling": "eps", "zsnr": False}),
                                               ("ModelSamplingDiscrete", {"sampling": "v_prediction", "zsnr": True})])
def test_a_node_that_passes_the_model_on_or_copies_it_adds_no_bytes(fresh_engine, make_txt2img, node_type, params):
    """SelfAttentionGuidance at scale 0 gives the very model it got (as Timestep Noise at strength 0): the cache
    counted its UNet a second time; ModelSamplingDiscrete gives a copy sharing the weights."""
    wf = make_txt2img()
    fresh_engine.run(wf, outputs=["ckpt"])
    loaded = fresh_engine.cache.stats().nbytes
    wf.add(node_type, params, {"unet": ("ckpt", "unet")}, node_id="model")
    out = fresh_engine.run(wf, outputs=["ckpt", "model"]).outputs
    assert out["model"]["unet"].unet is out["ckpt"]["unet"].unet
    assert (out["model"]["unet"] is out["ckpt"]["unet"]) == (node_type == "SelfAttentionGuidance")
    assert (fresh_engine.cache.stats().entries, fresh_engine.cache.stats().nbytes) == (2, loaded)


def test_a_copy_whose_loader_entry_is_evicted_still_counts_the_weights_it_keeps_alive(fresh_engine, make_txt2img):
    out = fresh_engine.run(make_txt2img(lora=[("kohya", 1.0, 1.0)]), outputs=["ckpt", "lora0"]).outputs
    checkpoint = _checkpoint_bytes(out["ckpt"])
    deltas = _delta_bytes(*out["lora0"]["unet"].loras, *(patch for _, patch in out["lora0"]["clip"].loras))
    cache = OutputCache(budget=10 * checkpoint)
    cache.put("loader", out["ckpt"])
    cache.put("lora", out["lora0"])
    cache.pin(["lora"])
    cache.set_budget(0)                  # evicts the loader's entry; the LoRA'd copy holds the whole checkpoint
    assert "loader" not in cache and "lora" in cache
    assert cache.stats().nbytes == checkpoint + deltas   # the cache counted only the deltas here (0 for weights)
    cache.unpin(["lora"])                # the last holder goes too: nothing is left counted
    assert (len(cache), cache.stats().nbytes) == (1, checkpoint + deltas)   # the newest entry stays alone
    cache.clear()
    assert cache.stats().nbytes == 0


def test_evicting_an_entry_frees_only_what_no_other_entry_holds():
    weights = torch.nn.Linear(64, 64)    # 64x64 + 64 floats: 16,640 bytes
    latent = torch.zeros(1, 4, 8, 8)     # 1,024 bytes
    cache = OutputCache(budget=20_000)
    cache.put("model", {"unet": weights})
    cache.put("same", {"unet": weights, "scale": 1.5})                 # passes the model on
    cache.put("latent", {"samples": latent, "view": latent[:, :2]})   # a view shares its storage
    assert cache.stats().nbytes == 16_640 + 1_024 and cache.stats().evictions == 0
    cache.put("big", {"samples": torch.zeros(1, 4, 16, 16)})          # 4,096 bytes: over 20,000
    # "model" goes first but frees nothing while "same" holds the weights; then "same" goes, freeing them
    assert list(cache._entries) == ["latent", "big"] and cache.stats().nbytes == 1_024 + 4_096
    assert cache.stats().evictions == 2


def test_a_model_node_s_copy_of_the_unet_counts_once_beside_its_base():
    """FreeU, RescaleCFG, SAG, CADS, Timestep Noise, DifferentialDiffusion (any setting) give a
    copy sharing the base's module: alone it holds the module; beside the base it adds nothing."""
    wrappers = builtin_module("wrappers")
    module = torch.nn.Linear(256, 256)
    base = wrappers.UNetModel(module, {}, "epsilon", 4, 8, "sd1", "base")
    mask = torch.ones(1, 32, 32)
    for setting in ({"freeu": object()}, {"cfg_rescale": 0.7}, {"self_attention_guidance": object()},
                    {"differential_diffusion": 0.0}, {"cads": object()}, {"timestep_noise": {"mask": mask}}):
        copy = dataclasses.replace(base, **setting)
        added = _bytes(mask) if "timestep_noise" in setting else 0
        assert estimate_nbytes(copy) == _bytes(module) + added
        assert estimate_nbytes({"base": base, "copy": copy}) == _bytes(module) + added
