"""ControlNetLoader, ControlNetApply and ImageToEdges: tiny ControlNets built from the tiny UNet's
config, in diffusers and original (ControlNet 1.1) layouts; UNetDenoise checked against diffusers'
ControlNet pipelines (single and stacked) and against the plain run."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from nodeforge.core.errors import NodeError, WorkflowError
from nodeforge.core.registry import builtin_module

STEPS = 4


def _controlnet(unet, seed, channels):
    from diffusers import ControlNetModel

    net = ControlNetModel.from_unet(unet, conditioning_embedding_out_channels=channels)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():   # the zero convolutions of a fresh ControlNet would make it do nothing
        for name, p in net.named_parameters():
            if name.startswith(("controlnet_down_blocks", "controlnet_mid_block", "controlnet_cond_embedding")):
                p.copy_(torch.randn(p.shape, generator=gen) * 0.2)
    return net.eval()


def original_layout(net) -> dict[str, torch.Tensor]:
    """A diffusers ControlNet's weights under ControlNet 1.1's names (without the prefix)."""
    from nodeforge import lora_format as ldm_names

    out = {}
    blocks = len(net.config.conditioning_embedding_out_channels)
    for name, value in net.state_dict().items():
        if name.startswith("controlnet_down_blocks."):
            i, rest = name.split(".")[1], name.split(".", 2)[2]
            key = f"zero_convs.{i}.0.{rest}"
        elif name.startswith("controlnet_mid_block."):
            key = "middle_block_out.0." + name.split(".", 1)[1]
        elif name.startswith("controlnet_cond_embedding."):
            part = name.split(".")[1]
            if part == "conv_in":
                key = "input_hint_block.0." + name.split(".")[-1]
            elif part == "conv_out":
                key = f"input_hint_block.{2 * (2 * (blocks - 1) + 1)}." + name.split(".")[-1]
            else:
                key = f"input_hint_block.{2 * (int(name.split('.')[2]) + 1)}." + name.split(".")[-1]
        else:
            key = ldm_names.unet_ldm_name(name, net.config)
        out[key] = value.contiguous()
    return out


@pytest.fixture(scope="module")
def cn_root(models_dir, tmp_path_factory):
    import tiny_models as tm

    root = tmp_path_factory.mktemp("cn-models")
    folder = root / "controlnet"
    folder.mkdir()
    unet = tm.make_components(0)["unet"]
    # hint factor 4 (the tiny VAE's), as diffusers' pipelines assume, and factor 8 (ControlNet 1.1's
    # four-block hint encoder, which the original layout has)
    a, b, c8 = _controlnet(unet, 1, (8, 16, 16)), _controlnet(unet, 2, (8, 16, 16)), _controlnet(unet, 3, (8, 8, 16, 16))
    a.save_pretrained(str(folder / "cn-a"))
    b.save_pretrained(str(folder / "cn-b"))
    c8.save_pretrained(str(folder / "cn-eight"))
    original = original_layout(c8)
    files = {"control_tiny.safetensors": {"control_model." + k: v for k, v in original.items()},
             "control_bare.safetensors": original,
             "cn-diffusers-file.safetensors": {k: v.contiguous() for k, v in c8.state_dict().items()}}
    for name, state in files.items():
        save_file(state, str(folder / name))
        config = folder / (name.rsplit(".", 1)[0] + ".config")
        config.mkdir()
        (config / "config.json").write_text(json.dumps(dict(c8.config)))
    save_file({"lora_unet_x.lora_down.weight": torch.zeros(2, 4)}, str(folder / "not-a-controlnet.safetensors"))
    return root


@pytest.fixture(scope="module")
def cn_engine(make_engine, cn_root, tmp_path_factory):
    return make_engine(tmp_path_factory.mktemp("out"), cn_root)


def _hint(seed, size=32):
    """Random control pixels, 8-bit like an image file (LoadImage gives them back exactly)."""
    pixels = torch.randint(0, 256, (1, size, size, 3), generator=torch.Generator().manual_seed(seed))
    return pixels.float() / 255


@pytest.fixture(scope="module")
def image_node(tmp_path_factory):
    """Where the control images go as PNG files for LoadImage."""
    return tmp_path_factory.mktemp("control-images")


def _workflow(image_node, controls=(), seed=5, batch_size=1, cfg=5.0):
    """txt2img on tiny-sd with ControlNetApply for each (controlnet, image, strength, start, end)."""
    import tiny_models as tm

    return tm.with_controls(tm.txt2img(seed=seed, steps=STEPS, cfg=cfg, batch_size=batch_size), image_node, controls)


def _latent(engine, wf):
    import tiny_models as tm

    return tm.denoised(engine, wf)


@pytest.fixture(scope="module")
def pipeline(models_dir, cn_root):
    from diffusers import ControlNetModel, StableDiffusionControlNetPipeline

    nets = [ControlNetModel.from_pretrained(str(cn_root / "controlnet" / n), local_files_only=True) for n in ("cn-a", "cn-b")]
    pipe = StableDiffusionControlNetPipeline.from_pretrained(
        str(models_dir / "checkpoints" / "tiny-sd"), controlnet=nets[0], local_files_only=True, safety_checker=None,
        requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    return pipe, nets


def _theirs(pipe, image, scale, start=0.0, end=1.0, seed=5):
    return pipe("a red circle", negative_prompt="", image=image, num_inference_steps=STEPS, guidance_scale=5.0,
                height=32, width=32, generator=torch.Generator().manual_seed(seed), output_type="latent",
                controlnet_conditioning_scale=scale, control_guidance_start=start, control_guidance_end=end).images


def test_a_controlnet_steers_the_denoise_exactly_as_diffusers_pipeline(cn_engine, image_node, pipeline):
    pipe, nets = pipeline
    pipe.controlnet = nets[0]
    image = _hint(1)
    ours = _latent(cn_engine, _workflow(image_node, [("cn-a", image, 0.7, 0.0, 1.0)]))
    theirs = _theirs(pipe, image.permute(0, 3, 1, 2), 0.7)
    torch.testing.assert_close(ours, theirs, atol=1e-4, rtol=1e-4)
    assert (ours - _latent(cn_engine, _workflow(image_node))).abs().max() > 1e-2   # it does steer


def test_stacked_controlnets_add_up_like_diffusers_multi_controlnet(cn_engine, image_node, pipeline):
    from diffusers.models.controlnets import MultiControlNetModel

    pipe, nets = pipeline
    a, b = _hint(1), _hint(2)
    ours = _latent(cn_engine, _workflow(image_node, [("cn-a", a, 0.7, 0.0, 1.0), ("cn-b", b, 1.3, 0.0, 1.0)]))
    pipe.controlnet = MultiControlNetModel(nets)
    try:
        theirs = _theirs(pipe, [a.permute(0, 3, 1, 2), b.permute(0, 3, 1, 2)], [0.7, 1.3])
    finally:
        pipe.controlnet = nets[0]
    torch.testing.assert_close(ours, theirs, atol=1e-4, rtol=1e-4)


def test_end_percent_stops_the_control_where_diffusers_guidance_end_does(cn_engine, image_node, pipeline):
    # 4 steps at timesteps 751, 501, 251, 1: end 0.5 (timestep 499.5) keeps the first two, as a
    # guidance end of 0.5 of the steps does in diffusers
    pipe, nets = pipeline
    pipe.controlnet = nets[0]
    image = _hint(3)
    ours = _latent(cn_engine, _workflow(image_node, [("cn-a", image, 1.0, 0.0, 0.5)]))
    theirs = _theirs(pipe, image.permute(0, 3, 1, 2), 1.0, end=0.5)
    torch.testing.assert_close(ours, theirs, atol=1e-4, rtol=1e-4)
    full = _latent(cn_engine, _workflow(image_node, [("cn-a", image, 1.0, 0.0, 1.0)]))
    assert (ours - full).abs().max() > 1e-3


@pytest.mark.parametrize("start", [0.25, 0.5])
def test_start_percent_starts_the_control_where_diffusers_guidance_start_does(cn_engine, image_node, pipeline, start):
    # 4 steps at timesteps 751, 501, 251, 1: start 0.25 (timestep 749.25) skips the first step and
    # start 0.5 (499.5) the first two, as diffusers skips steps i with i / 4 < control_guidance_start
    pipe, nets = pipeline
    pipe.controlnet = nets[0]
    image = _hint(4)
    ours = _latent(cn_engine, _workflow(image_node, [("cn-a", image, 1.0, start, 1.0)]))
    theirs = _theirs(pipe, image.permute(0, 3, 1, 2), 1.0, start=start)
    torch.testing.assert_close(ours, theirs, atol=1e-4, rtol=1e-4)
    full = _latent(cn_engine, _workflow(image_node, [("cn-a", image, 1.0, 0.0, 1.0)]))
    assert (ours - full).abs().max() > 1e-3


def test_strength_zero_and_end_percent_zero_are_bitwise_the_plain_run(cn_engine, image_node):
    plain = _latent(cn_engine, _workflow(image_node, batch_size=2))
    for strength, end in ((0.0, 1.0), (1.0, 0.0)):
        controlled = _latent(cn_engine, _workflow(image_node, [("cn-a", _hint(1), strength, 0.0, end)], batch_size=2))
        assert torch.equal(controlled, plain), (strength, end)


def test_each_control_runs_once_per_step_on_the_whole_cfg_batch(cn_engine, image_node):
    calls = []
    wf = _workflow(image_node, [("cn-a", _hint(1), 1.0, 0.0, 1.0), ("cn-b", _hint(2), 1.0, 0.0, 1.0)], batch_size=3)
    nets = [cn_engine.run(wf, outputs=[f"cn{i}"]).outputs[f"cn{i}"]["controlnet"].model for i in range(2)]
    handles = [net.register_forward_pre_hook(lambda m, a, k, i=i: calls.append((i, k["controlnet_cond"].shape[0])),
                                             with_kwargs=True) for i, net in enumerate(nets)]
    try:
        _latent(cn_engine, wf)
    finally:
        for h in handles:
            h.remove()
    assert calls == [(0, 6), (1, 6)] * STEPS      # negative and positive of 3 images in one call each


def test_controlnet_apply_keeps_earlier_controls_and_leaves_its_inputs_alone(cn_engine, image_node):
    wf = _workflow(image_node, [("cn-a", _hint(1), 0.5, 0.1, 0.9), ("cn-b", _hint(2), 1.0, 0.0, 1.0)])
    out = cn_engine.run(wf, outputs=["apply0", "apply1", "pos"]).outputs
    [entry] = out["apply1"]["positive"]
    assert [(c.controlnet.name, c.strength, c.start_percent, c.end_percent) for c in entry["control"]] == \
        [("cn-a", 0.5, 0.1, 0.9), ("cn-b", 1.0, 0.0, 1.0)]
    assert out["apply1"]["negative"][0]["control"] == entry["control"]
    assert "control" not in out["pos"]["conditioning"][0]
    assert len(out["apply0"]["positive"][0]["control"]) == 1


@pytest.mark.parametrize("name", ["control_tiny", "control_bare", "cn-diffusers-file"])
def test_single_files_in_the_original_and_diffusers_layouts_load_the_same_controlnet(cn_engine, image_node, name):
    wf = _workflow(image_node, [("cn-eight", _hint(4), 1.0, 0.0, 1.0)])
    reference = _latent(cn_engine, wf)
    wf.nodes["cn0"].params["controlnet"] = name
    net = cn_engine.run(wf, outputs=["cn0"]).outputs["cn0"]["controlnet"]
    assert net.hint_factor == 8
    assert torch.equal(_latent(cn_engine, wf), reference)


def test_files_that_are_not_controlnets_and_unknown_shapes_are_refused(cn_engine, image_node, tmp_path):
    wf = _workflow(image_node, [("not-a-controlnet", _hint(1), 1.0, 0.0, 1.0)])
    with pytest.raises(WorkflowError, match="holds no ControlNet"):
        _latent(cn_engine, wf)
    controlnet = builtin_module("controlnet")
    sd15 = {"input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight": torch.zeros(320, 768)}
    config = controlnet.standard_config(tmp_path / "control_v11p_sd15_canny.safetensors", sd15)
    assert config["cross_attention_dim"] == 768 and config["block_out_channels"] == [320, 640, 1280, 1280]
    xl = {"input_blocks.4.1.transformer_blocks.0.attn2.to_k.weight": torch.zeros(640, 2048)}
    assert controlnet.standard_config(tmp_path / "xl.safetensors", xl)["addition_embed_type"] == "text_time"
    with pytest.raises(NodeError, match="cross-attention width \\[32\\].*'odd.config' beside it"):
        controlnet.standard_config(tmp_path / "odd.safetensors", {"x.attn2.to_k.weight": torch.zeros(8, 32)})


def test_a_controlnet_on_an_area_prompt_uses_the_image_under_the_area(cn_engine, image_node):
    image = _hint(5)
    wf = _workflow(image_node, [("cn-a", image, 1.0, 0.0, 1.0)])
    wf.add("ConditioningSetArea", {"width": 16, "height": 32, "x": 16, "y": 0, "strength": 1.0},
           {"conditioning": ("apply0", "positive")}, node_id="area")
    wf.nodes["denoise"].inputs["positive"] = ("area", "conditioning")
    guidance_inputs = []
    conditioning = builtin_module("conditioning")
    original = conditioning.Guidance._hint
    conditioning.Guidance._hint = lambda self, c, u: guidance_inputs.append(u.box) or original(self, c, u)
    try:
        _latent(cn_engine, wf)
    finally:
        conditioning.Guidance._hint = original
    assert set(guidance_inputs) == {(8, 8, 0, 0), (8, 4, 0, 4)}   # the negative's frame, the area's right half


# -- ImageToEdges -------------------------------------------------------------------------------------------
def _disc(size=64, radius=18.0, centre=(30.0, 34.0), fg=(220, 40, 40), bg=(40, 80, 220)):
    yy, xx = np.mgrid[:size, :size]
    inside = (yy - centre[0]) ** 2 + (xx - centre[1]) ** 2 <= radius ** 2
    pixels = np.where(inside[..., None], np.array(fg), np.array(bg)).astype(np.float32) / 255
    return torch.from_numpy(pixels)[None], inside


def test_edges_outline_a_shape_even_between_colours_of_equal_brightness():
    edges = builtin_module("edges")
    image, inside = _disc()   # red on blue: in grey both are about 0.35
    out = edges.run_image_to_edges(None, image, 0.4, 0.8)["image"]
    assert out.shape == (1, 64, 64, 3) and set(out.unique().tolist()) <= {0.0, 1.0}
    ys, xs = np.nonzero(out[0, :, :, 0].numpy())
    distance = np.hypot(ys - 30.0, xs - 34.0)
    assert len(ys) > 0 and np.all(np.abs(distance - 18.0) <= 1.5)          # on the outline only
    angles = np.unique(((np.arctan2(ys - 30.0, xs - 34.0) + math.pi) / (2 * math.pi) * 36).astype(int) % 36)
    assert len(angles) == 36                                                 # all the way round
    assert len(ys) < 2.2 * 2 * math.pi * 18                                  # thin lines, not bands


def test_edge_thresholds_decide_which_edges_count():
    edges = builtin_module("edges")
    faint, _ = _disc(fg=(60, 60, 60), bg=(50, 50, 50))   # a 4% step: weaker than the default thresholds
    assert edges.run_image_to_edges(None, faint, 0.4, 0.8)["image"].sum() == 0
    assert edges.run_image_to_edges(None, faint, 0.05, 0.1)["image"].sum() > 50
    flat = torch.full((1, 16, 16, 3), 0.5)
    assert edges.run_image_to_edges(None, flat, 0.01, 0.02)["image"].sum() == 0
    with pytest.raises(NodeError, match="low_threshold is above high_threshold"):
        edges.run_image_to_edges(None, flat, 0.9, 0.2)


def test_an_sdxl_controlnet_gets_the_micro_conditioning_and_matches_diffusers(cn_root, registry, tmp_path):
    from diffusers import StableDiffusionXLControlNetPipeline

    import tiny_models as tm
    from nodeforge import Engine
    from nodeforge.core.models import ModelPaths

    parts = tm.make_components(4, sdxl=True)
    tm.save_diffusers(parts, tmp_path / "checkpoints" / "tiny-xl")
    net = _controlnet(parts["unet"], 6, (8, 16, 16))
    net.save_pretrained(str(tmp_path / "controlnet" / "cn-xl"))
    engine = Engine(device="cpu", output_dir=tmp_path / "out", registry=registry, model_paths=ModelPaths(roots=[tmp_path]))
    image = _hint(6)
    wf = _workflow(tmp_path, [("cn-xl", image, 0.8, 0.0, 1.0)])
    wf.nodes["ckpt"].params["checkpoint"] = "tiny-xl"
    ours = _latent(engine, wf)
    pipe = StableDiffusionXLControlNetPipeline.from_pretrained(str(tmp_path / "checkpoints" / "tiny-xl"), controlnet=net,
                                                               local_files_only=True)
    pipe.set_progress_bar_config(disable=True)
    theirs = pipe("a red circle", negative_prompt="", image=image.permute(0, 3, 1, 2), num_inference_steps=STEPS,
                  guidance_scale=5.0, height=32, width=32, generator=torch.Generator().manual_seed(5),
                  output_type="latent", controlnet_conditioning_scale=0.8).images
    torch.testing.assert_close(ours, theirs, atol=1e-4, rtol=1e-4)


def test_a_control_image_of_another_shape_or_a_control_that_never_acts_is_said(cn_engine, image_node):
    from nodeforge.core import events as ev

    def said(controls):
        heard = []
        cn_engine.run(_workflow(image_node, controls), outputs=["denoise"], on_event=heard.append)
        return [(e.node_id, e.message) for e in heard if isinstance(e, ev.NodeWarning)]

    wide = _hint(3, 32).repeat(1, 1, 2, 1)[:, :, :48]            # 48x32 for a 32x32 image: the centre is used
    assert said([("cn-a", wide, 0.7, 0.0, 1.0)]) == [
        ("denoise", "the ControlNet image is 48x32 but the image being made is 32x32: its centre is cropped to that "
                    "shape, so the control misses its edges; give a control image of the same shape")]
    assert said([("cn-a", _hint(3, 64), 0.7, 0.0, 1.0)]) == []      # the same shape, larger: scaled, as meant
    assert said([("cn-a", _hint(3), 0.7, 0.0, 0.0)]) == [
        ("apply0", "the control acts from 0 to 0 of the steps, which is no step: it never acts; set start_percent 0 "
                   "and end_percent 1 to use it all the way")]
