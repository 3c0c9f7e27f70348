"""IC-Light (issue 30; corpus 009/013): LoadAndApplyICLightUnet adds an IC-Light file's offsets to every weight and
widens conv_in (checked weight by weight inside `patched()`, restored exactly after); ICLightConditioning's latent is
the VAE's values times the multiplier; the graph gives the latents of IC-Light's own recipe (a diffusers
StableDiffusionPipeline whose UNet has the merged weights and gets the foreground latent concatenated at every call)
on a tiny SD 1.5-shaped model; files that are not IC-Light files, or made for another model, are refused in one line."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file, save_file

from nodeforge.core.errors import NodeError
from nodeforge.core.registry import builtin_module
from nodeforge.lora_format import unet_ldm_name


def _base_unet(models_dir):
    from diffusers import UNet2DConditionModel

    return UNet2DConditionModel.from_pretrained(str(models_dir / "checkpoints" / "tiny-sd" / "unet"),
                                                local_files_only=True)


def _offsets(unet, in_channels: int, seed: int, zero: bool = False) -> dict[str, torch.Tensor]:
    """An IC-Light file's tensors for `unet` (diffusers names): an offset for every parameter, conv_in widened."""
    g = torch.Generator().manual_seed(seed)
    out = {}
    for name, param in unet.named_parameters():
        shape = list(param.shape)
        if name == "conv_in.weight":
            shape[1] = in_channels
        out[name] = torch.zeros(shape) if zero else torch.randn(shape, generator=g) * 0.02
    return out


@pytest.fixture(scope="module")
def iclight_root(models_dir, tmp_path_factory):
    unet = _base_unet(models_dir)
    root = tmp_path_factory.mktemp("iclight")
    folder = root / "diffusion_models"
    folder.mkdir()
    save_file(_offsets(unet, 8, 1), str(folder / "tiny-iclight-fc.safetensors"))
    save_file(_offsets(unet, 12, 2), str(folder / "tiny-iclight-fbc.safetensors"))
    ldm = {"diffusion_model." + unet_ldm_name(k, unet.config): v for k, v in _offsets(unet, 8, 1).items()}
    save_file(ldm, str(folder / "tiny-iclight-fc-ldm.safetensors"))
    rng = np.random.default_rng(0)
    Image.fromarray((rng.random((32, 32, 3)) * 255).astype(np.uint8)).save(root / "subject.png")
    Image.fromarray((rng.random((32, 32, 3)) * 255).astype(np.uint8)).save(root / "background.png")
    return root


def _ctx(root):
    return SimpleNamespace(resolve_file=lambda kind, name: str(root / "diffusion_models" / name), warn=lambda m: None)


@pytest.fixture(scope="module")
def base(models_dir):
    unet, _, vae = builtin_module("loading").load_checkpoint(models_dir / "checkpoints" / "tiny-sd", "cpu", {}).wrappers()
    return unet, vae


def _apply(base, root, name):
    return builtin_module("iclight").run_load_iclight(_ctx(root), base[0], name)["unet"]


def test_the_offsets_are_added_and_conv_in_widened_only_inside_patched(base, iclight_root):
    unet = base[0]
    before = {k: v.clone() for k, v in unet.unet.state_dict().items()}
    original_conv = unet.unet.conv_in
    offsets = load_file(str(iclight_root / "diffusion_models" / "tiny-iclight-fbc.safetensors"))
    model = _apply(base, iclight_root, "tiny-iclight-fbc.safetensors")
    assert model.in_channels == 12 and unet.in_channels == 4 and model.latent_channels == 4
    with model.patched():
        state = model.unet.state_dict()
        wide = torch.cat([before["conv_in.weight"], torch.zeros(32, 8, 3, 3)], dim=1)
        torch.testing.assert_close(state["conv_in.weight"], wide + offsets["conv_in.weight"], atol=1e-6, rtol=0)
        for name in ("conv_in.bias", "down_blocks.0.resnets.0.conv1.weight", "mid_block.attentions.0.proj_in.bias",
                     "time_embedding.linear_1.weight", "conv_out.weight", "conv_norm_out.weight"):
            torch.testing.assert_close(state[name], before[name] + offsets[name], atol=1e-6, rtol=0)
    assert model.unet.conv_in is original_conv
    for name, tensor in unet.unet.state_dict().items():
        assert torch.equal(tensor, before[name]), name


def test_an_ldm_named_file_gives_the_same_weights(base, iclight_root):
    diffusers = _apply(base, iclight_root, "tiny-iclight-fc.safetensors")
    ldm = _apply(base, iclight_root, "tiny-iclight-fc-ldm.safetensors")
    with diffusers.patched():
        one = {k: v.clone() for k, v in diffusers.unet.state_dict().items()}
    with ldm.patched():
        for name, tensor in ldm.unet.state_dict().items():
            assert torch.equal(tensor, one[name]), name


def test_with_zero_offsets_the_model_is_the_original_on_the_latent_channels(base, iclight_root, tmp_path):
    folder = tmp_path / "diffusion_models"
    folder.mkdir()
    save_file(_offsets(base[0].unet, 8, 0, zero=True), str(folder / "zero.safetensors"))
    model = builtin_module("iclight").run_load_iclight(_ctx(tmp_path), base[0], "zero.safetensors")["unet"]
    x, extra, text = torch.randn(1, 4, 8, 8), torch.randn(1, 4, 8, 8), torch.randn(1, 77, 32)
    with torch.no_grad():
        plain = base[0].unet(x, 10, encoder_hidden_states=text).sample
        with model.patched():
            widened = model.unet(torch.cat([x, extra], 1), 10, encoder_hidden_states=text).sample
    torch.testing.assert_close(widened, plain, atol=1e-5, rtol=1e-5)


def test_the_conditioning_is_the_vae_values_times_the_multiplier():
    iclight = builtin_module("iclight")
    vae = SimpleNamespace(scaling_factor=0.5, shift_factor=0.1, factor=4, latent_channels=4)
    front, back = torch.randn(1, 4, 6, 5), torch.randn(2, 4, 3, 4)
    out = iclight.run_iclight_conditioning(None, [{"embeds": torch.zeros(1, 3, 8)}], [{"embeds": torch.ones(1, 3, 8)}],
                                           vae, {"samples": front}, 0.25, {"samples": back})
    raw_front, raw_back = front / 0.5 + 0.1, back / 0.5 + 0.1
    resized = torch.nn.functional.interpolate(raw_back, size=(6, 5), mode="bilinear", align_corners=False)
    expected = torch.cat([raw_front.repeat(2, 1, 1, 1), resized], dim=1) * 0.25
    for side in ("positive", "negative"):
        [entry] = out[side]
        torch.testing.assert_close(entry["concat_latent"], expected)
        assert entry["concat_scale"] is None
    assert out["empty_latent"] == {"samples": None, "width": 20, "height": 24, "batch_size": 2}
    alone = iclight.run_iclight_conditioning(None, [{}], [{}], vae, {"samples": front}, 0.5)
    torch.testing.assert_close(alone["positive"][0]["concat_latent"], front + 0.05)


def _graph(root, multiplier, model="tiny-iclight-fc.safetensors", background=False):
    from nodeforge import Workflow

    wf = Workflow()
    wf.add("CheckpointLoader", {"checkpoint": "tiny-sd"}, node_id="ckpt")
    wf.add("LoadAndApplyICLightUnet", {"iclight": model}, {"unet": ("ckpt", "unet")}, node_id="ic")
    wf.add("TextEncoder", {"text": "a red circle"}, {"clip": ("ckpt", "clip")}, node_id="pos")
    wf.add("TextEncoder", {"text": ""}, {"clip": ("ckpt", "clip")}, node_id="neg")
    wf.add("LoadImage", {"path": str(root / "subject.png")}, node_id="img")
    wf.add("VAEEncode", {}, {"vae": ("ckpt", "vae"), "image": ("img", "image")}, node_id="enc")
    inputs = {"positive": ("pos", "conditioning"), "negative": ("neg", "conditioning"), "vae": ("ckpt", "vae"),
              "foreground": ("enc", "latent")}
    if background:
        wf.add("LoadImage", {"path": str(root / "background.png")}, node_id="bgimg")
        wf.add("VAEEncode", {}, {"vae": ("ckpt", "vae"), "image": ("bgimg", "image")}, node_id="bgenc")
        inputs["opt_background"] = ("bgenc", "latent")
    wf.add("ICLightConditioning", {"multiplier": multiplier}, inputs, node_id="cond")
    wf.add("UNetDenoise", {"seed": 5, "steps": 4, "cfg": 5.0, "sampler": "euler", "schedule": "default",
                           "denoise": 1.0},
           {"unet": ("ic", "unet"), "positive": ("cond", "positive"), "negative": ("cond", "negative"),
            "latent": ("cond", "empty_latent")}, node_id="denoise")
    return wf


@pytest.fixture(scope="module")
def iclight_engine(make_engine, iclight_root, tmp_path_factory):
    return make_engine(tmp_path_factory.mktemp("iclight-out"), iclight_root)


def _theirs(models_dir, root):
    """IC-Light's recipe (lllyasviel/IC-Light's gradio_demo): conv_in widened with zeros, the offsets added to the
    UNet's state dict, the foreground's VAE mode times the scaling factor concatenated at every UNet call."""
    from diffusers import EulerDiscreteScheduler, StableDiffusionPipeline
    pipe = StableDiffusionPipeline.from_pretrained(str(models_dir / "checkpoints" / "tiny-sd"), local_files_only=True,
                                                   safety_checker=None, requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    pipe.scheduler = EulerDiscreteScheduler.from_config(pipe.scheduler.config)
    unet = pipe.unet
    with torch.no_grad():
        conv = torch.nn.Conv2d(8, unet.conv_in.out_channels, unet.conv_in.kernel_size, unet.conv_in.stride,
                               unet.conv_in.padding)
        conv.weight.zero_()
        conv.weight[:, :4].copy_(unet.conv_in.weight)
        conv.bias.copy_(unet.conv_in.bias)
        unet.conv_in = conv
        offsets = load_file(str(root / "diffusion_models" / "tiny-iclight-fc.safetensors"))
        unet.load_state_dict({k: v + offsets[k] for k, v in unet.state_dict().items()})
        pixels = torch.from_numpy(np.asarray(Image.open(root / "subject.png"), dtype=np.float32) / 255)
        pixels = pixels.permute(2, 0, 1)[None] * 2 - 1
        concat = pipe.vae.encode(pixels).latent_dist.mode() * pipe.vae.config.scaling_factor
    forward = unet.forward

    def with_concat(sample, timestep, encoder_hidden_states, **kw):
        extra = torch.cat([concat] * (sample.shape[0] // concat.shape[0]), dim=0)
        return forward(torch.cat([sample, extra], dim=1), timestep, encoder_hidden_states, **kw)

    unet.forward = with_concat
    return pipe("a red circle", negative_prompt="", num_inference_steps=4, guidance_scale=5.0, height=32, width=32,
                generator=torch.Generator().manual_seed(5), output_type="latent").images


def test_the_graph_gives_iclights_own_recipe(iclight_engine, iclight_root, models_dir):
    ours = iclight_engine.run(_graph(iclight_root, 0.5), outputs=["denoise"]).outputs["denoise"]["latent"]["samples"]
    theirs = _theirs(models_dir, iclight_root)
    assert ours.shape == theirs.shape == (1, 4, 8, 8)
    torch.testing.assert_close(ours, theirs, atol=1e-4, rtol=1e-4)


def test_an_fbc_model_runs_with_a_background_and_refuses_without(iclight_engine, iclight_root):
    wf = _graph(iclight_root, 0.18215, "tiny-iclight-fbc.safetensors", background=True)
    out = iclight_engine.run(wf, outputs=["denoise"]).outputs["denoise"]["latent"]["samples"]
    assert out.shape == (1, 4, 8, 8) and torch.isfinite(out).all()
    from nodeforge import WorkflowError

    with pytest.raises(WorkflowError, match=r"takes 8 after the latent: an IC-Light fbc model needs ICLightConditioning"
                                            r"'s opt_background"):
        iclight_engine.run(_graph(iclight_root, 0.18215, "tiny-iclight-fbc.safetensors"), outputs=["denoise"])


def _refused(base, root, tensors, name="bad.safetensors"):
    save_file(tensors, str(root / "diffusion_models" / name))
    with pytest.raises(NodeError) as info:
        _apply(base, root, name)
    assert info.value.field == "iclight" and "\n" not in str(info.value)
    return str(info.value)


def test_files_that_do_not_fit_are_refused_in_one_line(base, iclight_root):
    assert "is not an IC-Light file (it has no conv_in" in _refused(base, iclight_root, {"lora_down.weight": torch.ones(2)})
    offsets = _offsets(base[0].unet, 8, 3)
    assert "conv_in takes 6 channels" in _refused(base, iclight_root, dict(offsets, **{
        "conv_in.weight": torch.zeros(32, 6, 3, 3)}))
    assert "conv_in weight is (320, 8, 3, 3) but this sd1 UNet's is (32, 4, 3, 3)" in _refused(
        base, iclight_root, dict(offsets, **{"conv_in.weight": torch.zeros(320, 8, 3, 3)}))
    assert "has up_blocks.9.weight, which this sd1 UNet lacks" in _refused(
        base, iclight_root, dict(offsets, **{"up_blocks.9.weight": torch.zeros(3)}))
    assert "conv_out.weight is (4, 32, 1, 1) but" in _refused(
        base, iclight_root, dict(offsets, **{"conv_out.weight": torch.zeros(4, 32, 1, 1)}))


def test_only_sd15_models_take_iclight(base, iclight_root):
    iclight = builtin_module("iclight")
    with pytest.raises(NodeError, match="IC-Light is made for SD 1.5 models and this is a sdxl model"):
        iclight.run_load_iclight(_ctx(iclight_root), SimpleNamespace(family="sdxl", unet=base[0].unet), "x")
    model = _apply(base, iclight_root, "tiny-iclight-fc.safetensors")
    with pytest.raises(NodeError, match="already has IC-Light tiny-iclight-fc.safetensors applied"):
        _apply((model,), iclight_root, "tiny-iclight-fc.safetensors")
