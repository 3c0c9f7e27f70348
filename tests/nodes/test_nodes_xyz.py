"""The XYZ plot nodes (hnmr293's KSamplerSetting, KSamplerXYZ, VAEDecodeBatched, GridImage as NodeForge nodes):
Sampler XYZ's batch is each combination drawn exactly as UNet Denoise draws it, in the documented order (samplers
outermost, then schedules, steps, cfgs, seeds, and the latent's own batch innermost); VAE Decode (Batched) gives VAE
Decode's images; Save Image Grid lays the batch out left to right, top to bottom with black gaps."""
from __future__ import annotations

from itertools import product
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from nodeforge import Workflow
from nodeforge.core.errors import NodeError
from nodes import xyz

CONDS = {"positive": ("pos", "conditioning"), "negative": ("neg", "conditioning")}
SETTING = {"seed": 5, "steps": 3, "cfg": 4.0, "sampler": "euler", "schedule": "karras", "denoise": 1.0}


def _base(batch: int = 1) -> Workflow:
    wf = Workflow()
    wf.add("CheckpointLoader", {"checkpoint": "tiny-sd"}, node_id="ckpt")
    wf.add("TextEncoder", {"text": "a red circle"}, {"clip": ("ckpt", "clip")}, node_id="pos")
    wf.add("TextEncoder", {"text": "blue"}, {"clip": ("ckpt", "clip")}, node_id="neg")
    wf.add("EmptyLatent", {"width": 32, "height": 32, "batch_size": batch}, node_id="empty")
    wf.add("SamplerSettings", SETTING, dict(CONDS, unet=("ckpt", "unet"), latent=("empty", "latent")), node_id="set")
    return wf


def test_the_batch_is_every_combination_as_unet_denoise_draws_it_in_the_documented_order(engine):
    wf = _base(batch=2)
    lists = {"samplers": ["euler", "dpmpp_2m"], "schedules": ["karras"], "steps": [2, 3], "cfgs": [1.5, 6.0],
             "seeds": [11, 12]}
    wf.add("SamplerXYZ", {"seeds": "11, 12", "steps": "2-3", "cfgs": "1.5,6", "samplers": "euler,dpmpp_2m",
                          "schedules": ""}, {"setting": ("set", "setting")}, node_id="xyz")
    combos = list(product(*(lists[name] for name in ("samplers", "schedules", "steps", "cfgs", "seeds"))))
    for k, (sampler, schedule, steps, cfg, seed) in enumerate(combos):
        wf.add("UNetDenoise", {"seed": seed, "steps": steps, "cfg": cfg, "sampler": sampler, "schedule": schedule,
                               "denoise": 1.0}, dict(CONDS, unet=("ckpt", "unet"), latent=("empty", "latent")),
               node_id=f"one{k}")
    out = engine.run(wf, outputs=["xyz"] + [f"one{k}" for k in range(len(combos))]).outputs
    batch = out["xyz"]["latent"]["samples"]
    assert batch.shape[0] == len(combos) * 2 == 32
    for k in range(len(combos)):
        assert torch.equal(batch[2 * k:2 * k + 2], out[f"one{k}"]["latent"]["samples"]), combos[k]
    assert not torch.equal(batch[0:2], batch[2:4])       # the seeds differ


def test_empty_lists_take_the_settings_values_and_a_linked_model_replaces_the_settings_one(engine):
    wf = _base()
    wf.add("LoRALoader", {"lora": "kohya.safetensors", "strength_unet": 1.0, "strength_clip": 0.0},
           {"unet": ("ckpt", "unet"), "clip": ("ckpt", "clip")}, node_id="lora")
    wf.add("SamplerXYZ", {}, {"setting": ("set", "setting")}, node_id="plain")
    wf.add("SamplerXYZ", {"cfgs": "2"}, {"setting": ("set", "setting"), "unet": ("lora", "unet")}, node_id="other")
    wf.add("UNetDenoise", SETTING, dict(CONDS, unet=("ckpt", "unet"), latent=("empty", "latent")), node_id="ks")
    wf.add("UNetDenoise", dict(SETTING, cfg=2.0), dict(CONDS, unet=("lora", "unet"), latent=("empty", "latent")),
           node_id="ks_lora")
    out = engine.run(wf, outputs=["plain", "other", "ks", "ks_lora"]).outputs
    assert torch.equal(out["plain"]["latent"]["samples"], out["ks"]["latent"]["samples"])
    assert torch.equal(out["other"]["latent"]["samples"], out["ks_lora"]["latent"]["samples"])
    assert not torch.equal(out["other"]["latent"]["samples"], out["plain"]["latent"]["samples"])


def test_float_ranges_leave_the_end_out_and_int_ranges_keep_it():
    from nodes.xyz_specs import read_list

    assert read_list("cfgs", "4-6(+0.5), 8") == [4.0, 4.5, 5.0, 5.5, 8.0]
    assert read_list("steps", "10-20(+5)") == [10, 15, 20]
    assert read_list("seeds", " 3 ,1-2") == [3, 1, 2]
    assert read_list("samplers", "") == []


def test_a_wired_list_it_cannot_read_stops_the_run_naming_the_list():
    setting = xyz.SamplerSetting(None, None, None, {}, 1, 20, 7.0, "euler", "normal", 1.0)
    with pytest.raises(NodeError) as caught:
        xyz.run_sampler_xyz(None, setting, "", "20,x", "", "", "")
    assert caught.value.field == "steps" and "'x' in '20,x' is not a whole number" in str(caught.value)
    with pytest.raises(NodeError) as caught:
        xyz.run_sampler_xyz(None, setting, "", "", "", "euler, ddim", "normal, karras")
    assert caught.value.field == "schedules" and "ddim cannot follow karras" in str(caught.value)


def test_vae_decode_batched_gives_vae_decodes_images(engine):
    wf = Workflow()
    wf.add("CheckpointLoader", {"checkpoint": "tiny-sd"}, node_id="ckpt")
    out = engine.run(wf, outputs=["ckpt"]).outputs
    vae = out["ckpt"]["vae"]
    latent = {"samples": torch.randn(5, vae.latent_channels, 4, 4, generator=torch.Generator().manual_seed(3))}
    from nodes.vae import run_vae_decode

    whole = run_vae_decode(None, vae, latent)["image"]
    for per_batch in (1, 2, 5, 16):
        chunked = xyz.run_vae_decode_batched(None, vae, latent, per_batch)["image"]
        assert chunked.shape == whole.shape
        if per_batch >= 5:      # one chunk: the very same call
            assert torch.equal(chunked, whole)
        else:                   # smaller batches through the convolutions round differently (1.5e-6 seen)
            torch.testing.assert_close(chunked, whole, atol=1e-5, rtol=0)


def test_the_grid_lays_images_out_left_to_right_then_down_with_black_gaps():
    images = torch.stack([torch.full((2, 3, 3), 0.1 * (k + 1)) for k in range(5)])     # 5 images 3 wide, 2 high
    grid = xyz.image_grid(images, columns=3, gap=1)
    assert grid.shape == (1, 2 * 2 + 1, 3 * 3 + 2, 3)      # rows * (h + gap) - gap, columns * (w + gap) - gap
    canvas = grid[0]
    for k in range(5):
        top, left = (k // 3) * 3, (k % 3) * 4
        assert torch.equal(canvas[top:top + 2, left:left + 3], images[k])
    assert torch.equal(canvas[2], torch.zeros(11, 3))                       # the row gap
    assert torch.equal(canvas[:, 3], torch.zeros(5, 3)) and torch.equal(canvas[:, 7], torch.zeros(5, 3))
    assert torch.equal(canvas[3:5, 8:11], torch.zeros(2, 3, 3))             # the last row's empty cell
    assert torch.equal(xyz.image_grid(images, columns=1, gap=0)[0], images.reshape(10, 3, 3))


def test_save_image_grid_writes_one_png_of_the_grid(tmp_path):
    from PIL import Image

    images = torch.rand(4, 8, 6, 3, generator=torch.Generator().manual_seed(0))
    ctx = SimpleNamespace(output_dir=str(tmp_path), workflow=None, registry=None, node_id="grid")
    written = xyz.run_save_image_grid(ctx, images, "xyz", 2, 2)
    assert len(written) == 1
    with Image.open(written[0]) as png:
        pixels = np.asarray(png.convert("RGB"))
    assert pixels.shape == (2 * 10 - 2, 2 * 8 - 2, 3)
    expected = (xyz.image_grid(images, 2, 2)[0].clamp(0, 1) * 255).numpy()
    assert np.abs(pixels.astype(np.float32) - expected).max() <= 1.0
