"""InstructPixToPixConditioning + DualCFGGuider (issue 30; CosXL Edit's graph): on a tiny InstructPix2Pix
UNet (8 input channels) the custom-sampling graph gives diffusers' StableDiffusionInstructPix2PixPipeline's
latents (guidance_scale = cfg_conds, image_guidance_scale = cfg_cond2_negative), and the guider's rule
n + c2 (m - n) + c1 (p - m) holds on the predictions."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

from nodeforge.core.errors import NodeError
from nodeforge.core.registry import builtin_module


@pytest.fixture(scope="module")
def ip2p_root(tmp_path_factory):
    import tiny_models as tm
    from diffusers import UNet2DConditionModel

    parts = tm.make_components(3)
    torch.manual_seed(4)
    parts["unet"] = UNet2DConditionModel(**dict(parts["unet"].config, in_channels=8))
    root = tmp_path_factory.mktemp("ip2p")
    (root / "checkpoints").mkdir()
    folder = tm.save_diffusers(parts, root / "checkpoints" / "tiny-ip2p")
    # The same weights as one file (CosXL Edit's form); its config folder says 4 input channels, so the 8
    # the loader builds come from the file's first convolution.
    single = tm.save_single_file(parts, folder, root / "checkpoints" / "tiny-ip2p-single.safetensors", "sd1")
    unet_config = single.with_name(single.stem + ".config") / "unet" / "config.json"
    unet_config.write_text(unet_config.read_text().replace('"in_channels": 8', '"in_channels": 4'))
    rng = np.random.default_rng(0)
    image = (rng.random((32, 32, 3)) * 255).astype(np.uint8)
    Image.fromarray(image).save(root / "source.png")
    return root


def _graph(root, cfg_conds, cfg_image, steps=4, seed=11, checkpoint="tiny-ip2p"):
    from nodeforge import Workflow

    wf = Workflow()
    wf.add("CheckpointLoader", {"checkpoint": checkpoint}, node_id="ckpt")
    wf.add("TextEncoder", {"text": "a red circle"}, {"clip": ("ckpt", "clip")}, node_id="pos")
    wf.add("TextEncoder", {"text": ""}, {"clip": ("ckpt", "clip")}, node_id="neg")
    wf.add("LoadImage", {"path": str(root / "source.png")}, node_id="img")
    wf.add("InstructPixToPixConditioning", {}, {"positive": ("pos", "conditioning"), "negative": ("neg", "conditioning"),
                                                "vae": ("ckpt", "vae"), "pixels": ("img", "image")}, node_id="ip2p")
    wf.add("DualCFGGuider", {"cfg_conds": cfg_conds, "cfg_cond2_negative": cfg_image},
           {"unet": ("ckpt", "unet"), "cond1": ("ip2p", "positive"), "cond2": ("ip2p", "negative"),
            "negative": ("neg", "conditioning")}, node_id="guider")
    wf.add("RandomNoise", {"seed": seed}, node_id="noise")
    wf.add("SamplerSelect", {"sampler": "euler"}, node_id="sampler")
    wf.add("BasicScheduler", {"schedule": "default", "steps": steps, "denoise": 1.0}, {"unet": ("ckpt", "unet")},
           node_id="sigmas")
    wf.add("SamplerCustomAdvanced", {}, {"noise": ("noise", "noise"), "guider": ("guider", "guider"),
                                         "sampler": ("sampler", "sampler"), "sigmas": ("sigmas", "sigmas"),
                                         "latent": ("ip2p", "latent")}, node_id="sample")
    return wf


@pytest.fixture(scope="module")
def ip2p_engine(make_engine, ip2p_root, tmp_path_factory):
    return make_engine(tmp_path_factory.mktemp("ip2p-out"), ip2p_root)


def _theirs(root, cfg_conds, cfg_image, steps=4, seed=11):
    from diffusers import EulerDiscreteScheduler, StableDiffusionInstructPix2PixPipeline, StableDiffusionPipeline

    base = StableDiffusionPipeline.from_pretrained(str(root / "checkpoints" / "tiny-ip2p"), local_files_only=True,
                                                   safety_checker=None, requires_safety_checker=False)
    pipe = StableDiffusionInstructPix2PixPipeline(
        vae=base.vae, text_encoder=base.text_encoder, tokenizer=base.tokenizer, unet=base.unet,
        scheduler=EulerDiscreteScheduler.from_config(base.scheduler.config), safety_checker=None,
        feature_extractor=None, requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    return pipe("a red circle", image=Image.open(root / "source.png"), negative_prompt="", num_inference_steps=steps,
                guidance_scale=cfg_conds, image_guidance_scale=cfg_image, generator=torch.Generator().manual_seed(seed),
                output_type="latent").images


@pytest.mark.parametrize("cfg_conds, cfg_image", [(7.5, 1.5), (3.0, 2.5)])
def test_the_edit_graph_gives_diffusers_instruct_pix2pix_latents(ip2p_engine, ip2p_root, cfg_conds, cfg_image):
    out = ip2p_engine.run(_graph(ip2p_root, cfg_conds, cfg_image), outputs=["sample"]).outputs["sample"]
    ours = out["output"]["samples"]
    theirs = _theirs(ip2p_root, cfg_conds, cfg_image)
    assert ours.shape == theirs.shape == (1, 4, 8, 8)
    torch.testing.assert_close(ours, theirs, atol=1e-4, rtol=1e-4)


def test_the_image_steers_the_result(ip2p_engine, ip2p_root, tmp_path):
    """Another image gives another edit: the UNet really reads the image latent."""
    first = ip2p_engine.run(_graph(ip2p_root, 7.5, 1.5), outputs=["sample"]).outputs["sample"]["output"]["samples"]
    other = tmp_path / "other.png"
    Image.fromarray(np.full((32, 32, 3), 200, np.uint8)).save(other)
    wf = _graph(ip2p_root, 7.5, 1.5)
    wf.nodes["img"].params["path"] = str(other)
    second = ip2p_engine.run(wf, outputs=["sample"]).outputs["sample"]["output"]["samples"]
    assert (first - second).abs().mean() > 1e-2


def test_a_single_file_instruct_pix2pix_checkpoint_gives_the_same_edit(ip2p_engine, ip2p_root):
    def edit(checkpoint):
        wf = _graph(ip2p_root, 7.5, 1.5, checkpoint=checkpoint)
        return ip2p_engine.run(wf, outputs=["sample"]).outputs["sample"]["output"]["samples"]

    torch.testing.assert_close(edit("tiny-ip2p-single.safetensors"), edit("tiny-ip2p"), atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("node, params", [("SelfAttentionGuidance", {"scale": 0.5, "blur_sigma": 2.0}),
                                          ("PerturbedAttentionGuidance", {"scale": 3.0, "adaptive_scale": 0.0})])
def test_attention_guidance_acts_on_the_dual_cfg_edit(ip2p_engine, ip2p_root, node, params):
    """CosXL Edit's shared graph puts SelfAttentionGuidance on the model: its extra UNet call gets the image
    latent too (the negative's for SAG, cond2's for PAG), and it changes the result."""
    plain = ip2p_engine.run(_graph(ip2p_root, 7.5, 1.5), outputs=["sample"]).outputs["sample"]["output"]["samples"]
    wf = _graph(ip2p_root, 7.5, 1.5)
    wf.add(node, params, {"unet": ("ckpt", "unet")}, node_id="extra")
    for target in ("guider", "sigmas"):
        wf.nodes[target].inputs["unet"] = ("extra", "unet")
    guided = ip2p_engine.run(wf, outputs=["sample"]).outputs["sample"]["output"]["samples"]
    assert guided.shape == plain.shape and torch.isfinite(guided).all()
    assert (guided - plain).abs().max() > 1e-3


def test_conditioning_puts_the_vae_latent_on_both_prompts_and_gives_an_empty_latent(monkeypatch):
    ip2p = builtin_module("ip2p")
    vae = SimpleNamespace(scaling_factor=0.5, shift_factor=0.0, factor=4)
    samples = torch.randn(2, 4, 6, 5)
    monkeypatch.setattr(builtin_module("vae"), "encode", lambda v, image: samples)
    out = ip2p.run_instruct_pix_to_pix_conditioning(None, [{"embeds": torch.zeros(1, 3, 8)}],
                                                    [{"embeds": torch.ones(1, 3, 8)}], vae, torch.zeros(2, 24, 20, 3))
    for side in ("positive", "negative"):
        [entry] = out[side]
        assert entry["concat_latent"] is samples and entry["concat_scale"] == (0.5, 0.0)
    assert out["latent"] == {"samples": None, "width": 20, "height": 24, "batch_size": 2}


def test_image_inputs_are_the_vae_values_or_zeros_and_edm_models_take_the_scaled_latent():
    ip2p = builtin_module("ip2p")
    edm = builtin_module("edm_sampling")
    model = SimpleNamespace(unet=SimpleNamespace(config=SimpleNamespace(in_channels=8)), latent_channels=4)
    samples = torch.randn(1, 4, 4, 4)
    with_image = SimpleNamespace(entry={"concat_latent": samples, "concat_scale": (0.5, 0.0)})
    plain = SimpleNamespace(entry={})
    got = ip2p.image_inputs(model, [with_image, plain], 2, (4, 4))
    torch.testing.assert_close(got[id(with_image)], (samples / 0.5).expand(2, -1, -1, -1))   # the VAE's own values
    assert torch.equal(got[id(plain)], torch.zeros(2, 4, 4, 4))
    model.sampling_behaviour = edm.EDMSampling()
    got = ip2p.image_inputs(model, [with_image], 1, (8, 8))                # CosXL Edit: scaled, resized to the frame
    expected = torch.nn.functional.interpolate(samples, size=(8, 8), mode="bilinear", align_corners=False)
    torch.testing.assert_close(got[id(with_image)], expected)
    model.unet.config.in_channels = 4
    assert ip2p.image_inputs(model, [with_image], 1, (4, 4)) is None       # a plain UNet ignores the image


def test_dual_cfg_combines_the_three_predictions_by_its_rule():
    """Guidance with a middle prompt: n + c2 (m - n) + c1 (p - m), each side's prediction from a fake UNet
    that returns the prompt's embedding value everywhere."""
    conditioning = builtin_module("conditioning")

    class FakeUNet(torch.nn.Module):
        config = SimpleNamespace(addition_embed_type=None, cross_attention_dim=2, in_channels=4)

        def forward(self, x, t, encoder_hidden_states, added_cond_kwargs=None):
            values = encoder_hidden_states[:, 0, 0].reshape(-1, 1, 1, 1)
            return SimpleNamespace(sample=values.expand(x.shape).clone())

    model = SimpleNamespace(unet=FakeUNet(), vae_factor=8, device="cpu", dtype=torch.float32, latent_channels=4)
    def prompt(value):
        return [{"embeds": torch.full((1, 3, 2), value)}]
    guidance = conditioning.Guidance(model, prompt(5.0), prompt(1.0), 1, (2, 2), 3.0, middle=prompt(2.0),
                                     middle_cfg=1.5)
    out = guidance.predict(torch.zeros(1, 4, 2, 2), torch.tensor(10.0))
    assert torch.allclose(out, torch.full_like(out, 1.0 + 1.5 * (2.0 - 1.0) + 3.0 * (5.0 - 2.0)))
    assert guidance.unet_calls_per_step() == 1      # the three prompts in one batched call


def test_dual_cfg_guider_refuses_what_it_cannot_do():
    ip2p = builtin_module("ip2p")
    with pytest.raises(NodeError, match="DualCFGGuider works on UNet models .* this flux model"):
        ip2p.run_dual_cfg_guider(None, SimpleNamespace(family="flux"), [], [], [], 3.0, 1.5)
