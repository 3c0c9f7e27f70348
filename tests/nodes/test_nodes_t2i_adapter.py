"""T2I-Adapters through ControlNetLoader and ControlNetApply: a tiny T2IAdapter built from a config
matching the tiny UNet's channels, as a diffusers folder and as single files (diffusers layout and
TencentARC's original one); UNetDenoise checked against diffusers' StableDiffusionAdapterPipeline,
against a hand-written loop that gives the UNet `down_intrablock_additional_residuals` (stacked with
a ControlNet, and limited to part of the schedule), and against the plain run."""
from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import save_file

from nodeforge.core.errors import WorkflowError

import tiny_models as tm

STEPS, SEED, CFG = 4, 5, 5.0
ADAPTER = dict(in_channels=3, channels=[32, 64], num_res_blocks=2, downscale_factor=4, adapter_type="full_adapter")


def _adapter(seed: int, **config):
    from diffusers import T2IAdapter

    torch.manual_seed(seed)
    adapter = T2IAdapter(**dict(ADAPTER, **config))
    with torch.no_grad():   # larger features than the default init, so the adapter visibly steers
        for p in adapter.parameters():
            p.mul_(2.0)
    return adapter.eval()


def original_layout(adapter) -> dict[str, torch.Tensor]:
    """A diffusers full adapter's weights under TencentARC's names (body is one flat list of resnets)."""
    per = adapter.config.num_res_blocks
    out = {}
    for key, value in adapter.state_dict().items():
        parts = key.split(".")   # adapter.body.I.resnets.J.block1.weight / adapter.body.I.in_conv.weight
        if parts[1] == "conv_in":
            name = "conv_in." + parts[-1]
        elif parts[3] == "in_conv":
            name = f"body.{int(parts[2]) * per}.in_conv.{parts[-1]}"
        else:
            name = f"body.{int(parts[2]) * per + int(parts[4])}.{parts[5]}.{parts[-1]}"
        out[name] = value.contiguous()
    return out


@pytest.fixture(scope="module")
def adapter_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("adapters")
    folder = root / "controlnet"
    folder.mkdir()
    a, b = _adapter(1), _adapter(2)
    a.save_pretrained(str(folder / "t2i-a"))
    b.save_pretrained(str(folder / "t2i-b"))
    _adapter(3, in_channels=1).save_pretrained(str(folder / "t2i-grey"))
    save_file(original_layout(a), str(folder / "t2iadapter_a_original.safetensors"))
    torch.save(original_layout(a), folder / "t2iadapter_a_sd14v1.pth")   # as TencentARC ships them, read weights_only
    save_file({k: v.contiguous() for k, v in a.state_dict().items()}, str(folder / "t2i-a-diffusers-file.safetensors"))
    broken = dict(original_layout(a), **{"body.0.skep.weight": torch.zeros(32, 32, 1, 1)})
    save_file(broken, str(folder / "t2iadapter_skep.safetensors"))
    light = _adapter(4, adapter_type="light_adapter", channels=[32, 64], num_res_blocks=1)
    light.save_pretrained(str(folder / "t2i-light"))
    for name in ("t2i-light-file", "t2i-light-bare"):
        save_file({k: v.contiguous() for k, v in light.state_dict().items()}, str(folder / f"{name}.safetensors"))
    (folder / "t2i-light-file.config").mkdir()
    (folder / "t2i-light-file.config" / "config.json").write_text(json.dumps(dict(light.config)))
    unet = tm.make_components(0)["unet"]
    from diffusers import ControlNetModel

    net = ControlNetModel.from_unet(unet, conditioning_embedding_out_channels=(8, 16, 16))
    gen = torch.Generator().manual_seed(9)
    with torch.no_grad():
        for name, p in net.named_parameters():
            if name.startswith(("controlnet_down_blocks", "controlnet_mid_block", "controlnet_cond_embedding")):
                p.copy_(torch.randn(p.shape, generator=gen) * 0.2)
    net.save_pretrained(str(folder / "cn"))
    return root


@pytest.fixture(scope="module")
def adapter_engine(models_dir, adapter_root, registry, tmp_path_factory):
    from nodeforge import Engine
    from nodeforge.core.models import ModelPaths

    return Engine(device="cpu", output_dir=tmp_path_factory.mktemp("out"), registry=registry,
                  model_paths=ModelPaths(roots=[models_dir, adapter_root]))


def _hint(seed, size=32):
    pixels = torch.randint(0, 256, (1, size, size, 3), generator=torch.Generator().manual_seed(seed))
    return pixels.float() / 255


def _workflow(folder, controls=(), batch_size=1):
    """txt2img on tiny-sd with ControlNetApply for each (controlnet or adapter, image, strength, start, end)."""
    return tm.with_controls(tm.txt2img(seed=SEED, steps=STEPS, cfg=CFG, batch_size=batch_size), folder, controls)


_latent = tm.denoised


def _loaded(engine, wf, node):
    return engine.run(wf, outputs=[node]).outputs[node]


def test_a_t2i_adapter_steers_the_denoise_exactly_as_diffusers_adapter_pipeline(adapter_engine, adapter_root, tmp_path,
                                                                                   models_dir):
    from diffusers import StableDiffusionAdapterPipeline, T2IAdapter

    image = _hint(1)
    ours = _latent(adapter_engine, _workflow(tmp_path, [("t2i-a", image, 0.8, 0.0, 1.0)]))
    adapter = T2IAdapter.from_pretrained(str(adapter_root / "controlnet" / "t2i-a"), local_files_only=True)
    pipe = StableDiffusionAdapterPipeline.from_pretrained(
        str(models_dir / "checkpoints" / "tiny-sd"), adapter=adapter, local_files_only=True, safety_checker=None,
        requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    theirs = pipe("a red circle", negative_prompt="", image=image.permute(0, 3, 1, 2), num_inference_steps=STEPS,
                  guidance_scale=CFG, height=32, width=32, generator=torch.Generator().manual_seed(SEED),
                  output_type="latent", adapter_conditioning_scale=0.8).images
    torch.testing.assert_close(ours, theirs, atol=1e-4, rtol=1e-4)
    assert (ours - _latent(adapter_engine, _workflow(tmp_path))).abs().max() > 1e-2   # it does steer


def test_strength_zero_and_end_percent_zero_are_bitwise_the_plain_run(adapter_engine, tmp_path):
    plain = _latent(adapter_engine, _workflow(tmp_path, batch_size=2))
    for strength, end in ((0.0, 1.0), (1.0, 0.0)):
        adapted = _latent(adapter_engine, _workflow(tmp_path, [("t2i-a", _hint(1), strength, 0.0, end)], batch_size=2))
        assert torch.equal(adapted, plain), (strength, end)
    assert not torch.allclose(_latent(adapter_engine, _workflow(tmp_path, [("t2i-a", _hint(1), 0.5, 0.0, 1.0)],
                                                                batch_size=2)), plain)


def _by_hand(engine, tmp_path, adapters, controlnet=None, active=lambda i: True):
    """The denoise written out: CFG over [negative, positive], each adapter's features times its
    strength as down_intrablock_additional_residuals (at the steps `active` allows), a ControlNet's
    residuals as down/mid block residuals."""
    from diffusers import EulerDiscreteScheduler

    wf = _workflow(tmp_path)
    out = engine.run(wf, outputs=["ckpt", "pos", "neg"]).outputs
    unet = out["ckpt"]["unet"].unet
    embeds = torch.cat([out["neg"]["conditioning"][0]["embeds"], out["pos"]["conditioning"][0]["embeds"]])
    sched = EulerDiscreteScheduler.from_config(out["ckpt"]["unet"].scheduler_config)
    sched.set_timesteps(STEPS)
    latents = torch.randn(4, 8, 8, generator=torch.Generator().manual_seed(SEED))[None] * sched.init_noise_sigma
    features = None
    with torch.inference_mode():
        for model, image, strength in adapters:
            f = [x * strength for x in model(image.permute(0, 3, 1, 2))]
            features = f if features is None else [a + b for a, b in zip(features, f)]
        for i, t in enumerate(sched.timesteps):
            x = sched.scale_model_input(torch.cat([latents] * 2), t)
            kw = {}
            if features is not None and active(i):
                kw["down_intrablock_additional_residuals"] = [torch.cat([f] * 2) for f in features]
            if controlnet is not None:
                net, image, strength = controlnet
                down, mid = net(x, t, encoder_hidden_states=embeds, controlnet_cond=torch.cat([image.permute(0, 3, 1, 2)] * 2),
                                conditioning_scale=strength, return_dict=False)
                kw.update(down_block_additional_residuals=down, mid_block_additional_residual=mid)
            uncond, cond = unet(x, t, encoder_hidden_states=embeds, **kw).sample.chunk(2)
            latents = sched.step(uncond + CFG * (cond - uncond), t, latents).prev_sample
    return latents


def test_adapters_stack_with_each_other_and_with_a_controlnet(adapter_engine, tmp_path):
    a, b, c = _hint(1), _hint(2), _hint(3)
    controls = [("t2i-a", a, 0.7, 0.0, 1.0), ("cn", c, 0.9, 0.0, 1.0), ("t2i-b", b, 1.3, 0.0, 1.0)]
    wf = _workflow(tmp_path, controls)
    ours = _latent(adapter_engine, wf)
    models = [_loaded(adapter_engine, wf, f"cn{i}")["controlnet"].model for i in range(3)]
    theirs = _by_hand(adapter_engine, tmp_path, [(models[0], a, 0.7), (models[2], b, 1.3)], (models[1], c, 0.9))
    torch.testing.assert_close(ours, theirs, atol=1e-4, rtol=1e-4)


def test_end_percent_limits_an_adapter_to_the_start_of_the_schedule(adapter_engine, tmp_path):
    # 4 steps at timesteps 751, 501, 251, 1: end 0.5 (timestep 499.5) keeps the first two, as for ControlNets
    image = _hint(4)
    wf = _workflow(tmp_path, [("t2i-a", image, 1.0, 0.0, 0.5)])
    ours = _latent(adapter_engine, wf)
    model = _loaded(adapter_engine, wf, "cn0")["controlnet"].model
    theirs = _by_hand(adapter_engine, tmp_path, [(model, image, 1.0)], active=lambda i: i < 2)
    torch.testing.assert_close(ours, theirs, atol=1e-4, rtol=1e-4)
    full = _latent(adapter_engine, _workflow(tmp_path, [("t2i-a", image, 1.0, 0.0, 1.0)]))
    assert (ours - full).abs().max() > 1e-3


@pytest.mark.parametrize("start", [0.25, 0.5])
def test_start_percent_starts_an_adapter_where_diffusers_guidance_start_would(adapter_engine, tmp_path, start):
    # diffusers' control_guidance_start rule (its adapter pipeline has none): step i of 4 is
    # skipped while i / 4 < start; in timesteps 751, 501, 251, 1 against (1 - start) x 999
    image = _hint(5)
    wf = _workflow(tmp_path, [("t2i-a", image, 1.0, start, 1.0)])
    ours = _latent(adapter_engine, wf)
    model = _loaded(adapter_engine, wf, "cn0")["controlnet"].model
    theirs = _by_hand(adapter_engine, tmp_path, [(model, image, 1.0)], active=lambda i: not i / STEPS < start)
    torch.testing.assert_close(ours, theirs, atol=1e-4, rtol=1e-4)
    full = _latent(adapter_engine, _workflow(tmp_path, [("t2i-a", image, 1.0, 0.0, 1.0)]))
    assert (ours - full).abs().max() > 1e-3


def test_the_adapter_runs_once_per_denoise_on_the_whole_cfg_batch(adapter_engine, tmp_path):
    wf = _workflow(tmp_path, [("t2i-a", _hint(1), 1.0, 0.0, 1.0)], batch_size=3)
    model = _loaded(adapter_engine, wf, "cn0")["controlnet"].model
    calls = []
    handle = model.register_forward_pre_hook(lambda m, args: calls.append(tuple(args[0].shape)))
    try:
        _latent(adapter_engine, wf)
    finally:
        handle.remove()
    assert calls == [(6, 3, 32, 32)]   # once, not once per step; negative and positive of 3 images


@pytest.mark.parametrize("name", ["t2iadapter_a_original", "t2iadapter_a_sd14v1.pth", "t2i-a-diffusers-file"])
def test_single_files_in_tencentarcs_and_diffusers_layouts_load_the_same_adapter(adapter_engine, tmp_path, name):
    wf = _workflow(tmp_path, [("t2i-a", _hint(5), 1.0, 0.0, 1.0)])
    reference = _latent(adapter_engine, wf)
    wf.nodes["cn0"].params["controlnet"] = name
    adapter = _loaded(adapter_engine, wf, "cn0")["controlnet"]
    assert adapter.is_adapter and adapter.hint_factor == 4
    assert {k: v for k, v in adapter.model.config.items() if k in ADAPTER} == ADAPTER   # read from the weights
    assert torch.equal(_latent(adapter_engine, wf), reference)


def test_a_greyscale_adapter_takes_the_mean_of_the_colours(adapter_engine, tmp_path):
    image = _hint(6)
    wf = _workflow(tmp_path, [("t2i-grey", image, 1.0, 0.0, 1.0)])
    ours = _latent(adapter_engine, wf)
    model = _loaded(adapter_engine, wf, "cn0")["controlnet"].model
    grey = image.mean(dim=-1, keepdim=True)
    theirs = _by_hand(adapter_engine, tmp_path, [(model, grey, 1.0)])
    torch.testing.assert_close(ours, theirs, atol=1e-4, rtol=1e-4)


def test_an_original_adapter_that_does_not_convert_is_refused_naming_the_key(adapter_engine, tmp_path):
    wf = _workflow(tmp_path, [("t2iadapter_skep", _hint(1), 1.0, 0.0, 1.0)])
    with pytest.raises(WorkflowError, match="skep.*diffusers folder"):
        _latent(adapter_engine, wf)


def test_a_light_adapter_loads_from_its_folder_or_a_file_with_its_config_and_else_says_so(adapter_engine, tmp_path):
    image = _hint(7)
    wf = _workflow(tmp_path, [("t2i-light", image, 1.0, 0.0, 1.0)])
    folder = _latent(adapter_engine, wf)
    model = _loaded(adapter_engine, wf, "cn0")["controlnet"].model
    assert model.config.adapter_type == "light_adapter"
    torch.testing.assert_close(folder, _by_hand(adapter_engine, tmp_path, [(model, image, 1.0)]), atol=1e-4, rtol=1e-4)
    wf.nodes["cn0"].params["controlnet"] = "t2i-light-file"
    assert torch.equal(_latent(adapter_engine, wf), folder)
    wf.nodes["cn0"].params["controlnet"] = "t2i-light-bare"
    with pytest.raises(WorkflowError, match="light T2I-Adapter.*'t2i-light-bare.config'"):
        _latent(adapter_engine, wf)


def test_the_loader_config_of_a_full_size_sd14_adapter_is_diffusers_default(tmp_path):
    from diffusers import T2IAdapter

    from nodeforge.core.registry import builtin_module

    controlnet = builtin_module("controlnet")
    with torch.device("meta"):
        sd14 = T2IAdapter(in_channels=3, channels=[320, 640, 1280, 1280], num_res_blocks=2, downscale_factor=8)
        xl = T2IAdapter(in_channels=3, channels=[320, 640, 1280, 1280], num_res_blocks=2, downscale_factor=16,
                        adapter_type="full_adapter_xl")
    state = {k: torch.empty(v.shape, device="meta") for k, v in sd14.state_dict().items()}
    original = {k: v for k, v in original_layout(sd14).items()}
    for layout, is_original in ((state, False), (original, True)):
        config = controlnet.adapter_config(tmp_path / "x.safetensors", layout, is_original)
        assert config == {k: sd14.config[k] for k in config}, config
    config = controlnet.adapter_config(tmp_path / "x.safetensors", xl.state_dict(), False)
    assert config["adapter_type"] == "full_adapter_xl" and config["downscale_factor"] == 16
    assert json.dumps(config)   # plain data, as a config.json beside the file would hold


@pytest.mark.parametrize("name, fragment", [
    ("t2i-config-over-cn", "t2i-config-over-cn/config.json describes a T2I-Adapter, but the folder's weights are "
                           "a ControlNet's"),
    ("cn-config-over-t2i", "cn-config-over-t2i/config.json describes a ControlNet, but the folder's weights are "
                           "a T2I-Adapter's"),
    ("cn-file", "cn-file.config/config.json describes a T2I-Adapter, but cn-file.safetensors's weights are "
                "a ControlNet's"),
    ("t2i-file", "t2i-file.config/config.json describes a ControlNet, but t2i-file.safetensors's weights are "
                 "a T2I-Adapter's")], ids=["t2i-config-over-cn", "cn-config-over-t2i", "cn-file", "t2i-file"])
def test_a_config_of_the_other_kind_over_the_weights_is_one_line_naming_the_folder(adapter_engine, adapter_root,
                                                                                  tmp_path, name, fragment):
    """A T2I-Adapter config.json over ControlNet weights (or the reverse) builds the wrong model: refused."""
    import shutil

    folder = adapter_root / "controlnet"
    weights = {"cn": folder / "cn" / "diffusion_pytorch_model.safetensors",
               "t2i": folder / "t2i-a" / "diffusion_pytorch_model.safetensors"}
    configs = {"cn": folder / "cn" / "config.json", "t2i": folder / "t2i-a" / "config.json"}
    kind, other = ("cn", "t2i") if name in ("t2i-config-over-cn", "cn-file") else ("t2i", "cn")
    if name.endswith("-file"):      # a single file with a '<stem>.config' folder beside it
        shutil.copyfile(weights[kind], folder / f"{name}.safetensors")
        (folder / f"{name}.config").mkdir()
        shutil.copyfile(configs[other], folder / f"{name}.config" / "config.json")
    else:                           # a diffusers folder
        (folder / name).mkdir()
        shutil.copyfile(weights[kind], folder / name / "diffusion_pytorch_model.safetensors")
        shutil.copyfile(configs[other], folder / name / "config.json")
    wf = _workflow(tmp_path, [(name, _hint(1), 1.0, 0.0, 1.0)])
    with pytest.raises(WorkflowError) as raised:
        _loaded(adapter_engine, wf, "cn0")
    message = str(raised.value)
    assert fragment in message and "put the config.json that came with these weights there" in message, message
    assert "\n" not in message, message


def test_a_hand_written_adapter_config_without_class_name_is_still_an_adapters(adapter_engine, adapter_root, tmp_path):
    """Told apart by `adapter_type` too: a config.json written by hand (no `_class_name`) is not a ControlNet's."""
    import shutil

    folder = adapter_root / "controlnet"
    config = json.loads((folder / "t2i-light" / "config.json").read_text())
    config.pop("_class_name", None)
    shutil.copyfile(folder / "t2i-light-file.safetensors", folder / "t2i-light-handmade.safetensors")
    (folder / "t2i-light-handmade.config").mkdir()
    (folder / "t2i-light-handmade.config" / "config.json").write_text(json.dumps(config))
    wf = _workflow(tmp_path, [("t2i-light-handmade", _hint(7), 1.0, 0.0, 1.0)])
    assert _loaded(adapter_engine, wf, "cn0")["controlnet"].model.config.adapter_type == "light_adapter"
