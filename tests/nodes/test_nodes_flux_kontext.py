"""FLUX.1 Kontext in the Flux family: ReferenceLatent's image tokens beside the generated ones, checked
against diffusers' FluxKontextPipeline on the tiny random Flux model (tests/nodes/tiny_flux.py), and
the placement of several references, CFGNorm in Flux's guidance, and the refusals."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

import tiny_models as tm
from nodeforge.core.errors import NodeError
from tiny_models import latent_of

PROMPT = "make the circle red"


@pytest.fixture(scope="module")
def kontext_engine(make_engine, flux_dir, tmp_path_factory):
    return make_engine(tmp_path_factory.mktemp("kontextout"), flux_dir)


@pytest.fixture(scope="module")
def kontext_pipe(flux_dir):
    return tm.pipeline(flux_dir / "checkpoints" / "tiny-flux", "FluxKontextPipeline")


def _picture(tmp_path, width: int, height: int, seed: int = 0):
    array = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    path = tmp_path / f"ref{seed}-{width}x{height}.png"
    Image.fromarray(array).save(path)
    return path, Image.fromarray(array)


def kontext_graph(image_paths, *, seed: int, steps: int = 4, cfg: float = 1.0, size: int = 32, method=None,
                  negative: bool = True, cfg_norm=None):
    """Kontext as ComfyUI users wire it: LoadImage -> VAEEncode -> ReferenceLatent on the prompt(s)."""
    from nodeforge import Workflow

    wf = Workflow()
    wf.add("CheckpointLoader", {"checkpoint": "tiny-flux"}, node_id="ckpt")
    wf.add("TextEncoder", {"text": PROMPT}, {"clip": ("ckpt", "clip")}, node_id="pos")
    wf.add("TextEncoder", {"text": ""}, {"clip": ("ckpt", "clip")}, node_id="neg")
    pos, neg = ("pos", "conditioning"), ("neg", "conditioning")
    for i, path in enumerate(image_paths):
        wf.add("LoadImage", {"path": str(path)}, node_id=f"img{i}")
        wf.add("VAEEncode", {}, {"vae": ("ckpt", "vae"), "image": (f"img{i}", "image")}, node_id=f"enc{i}")
        wf.add("ReferenceLatent", {}, {"conditioning": pos, "latent": (f"enc{i}", "latent")}, node_id=f"refp{i}")
        pos = (f"refp{i}", "conditioning")
        if negative:
            wf.add("ReferenceLatent", {}, {"conditioning": neg, "latent": (f"enc{i}", "latent")}, node_id=f"refn{i}")
            neg = (f"refn{i}", "conditioning")
    if method is not None:
        wf.add("ReferenceLatentMethod", {"reference_latents_method": method}, {"conditioning": pos}, node_id="method")
        pos = ("method", "conditioning")
    unet = ("ckpt", "unet")
    if cfg_norm is not None:
        wf.add("CFGNorm", {"strength": cfg_norm}, {"unet": unet}, node_id="norm")
        unet = ("norm", "unet")
    wf.add("EmptyLatent", {"width": size, "height": size, "batch_size": 1}, node_id="empty")
    wf.add("UNetDenoise", {"seed": seed, "steps": steps, "cfg": cfg, "sampler": "euler", "schedule": "default",
                                  "denoise": 1.0},
           {"unet": unet, "positive": pos, "negative": neg, "latent": ("empty", "latent")}, node_id="denoise")
    return wf


def theirs(pipe, image, *, seed: int, steps: int = 4, size: int = 32, **kw) -> torch.Tensor:
    """FluxKontextPipeline's latents for `image` at its own size, unpacked to [B, 16, h, w]."""
    packed = pipe(image=image, prompt=PROMPT, height=size, width=size, max_area=size * size, _auto_resize=False,
                  num_inference_steps=steps, generator=torch.Generator().manual_seed(seed), output_type="latent",
                  **kw).images
    return pipe._unpack_latents(packed, size, size, pipe.vae_scale_factor)


def test_reference_latent_gives_flux_kontext_pipelines_latents(kontext_engine, kontext_pipe, tmp_path):
    path, image = _picture(tmp_path, 48, 32)      # a wider reference than the square image drawn
    ours = latent_of(kontext_engine, kontext_graph([path], seed=5), "denoise")
    expected = theirs(kontext_pipe, image, seed=5)
    assert ours.shape == (1, 16, 16, 16)
    torch.testing.assert_close(ours, expected, atol=1e-4, rtol=1e-4)
    plain = theirs(kontext_pipe, None, seed=5)     # the reference steered: without it the latents differ
    assert (ours - plain).abs().max() > 1e-3


def test_true_cfg_with_references_on_both_prompts_gives_the_pipelines_latents(kontext_engine, kontext_pipe, tmp_path):
    path, image = _picture(tmp_path, 32, 32, seed=1)
    ours = latent_of(kontext_engine, kontext_graph([path], seed=9, cfg=3.0), "denoise")
    expected = theirs(kontext_pipe, image, seed=9, negative_prompt="", true_cfg_scale=3.0)
    torch.testing.assert_close(ours, expected, atol=1e-4, rtol=1e-4)


def _ids_of(engine, wf):
    """The reference tokens' position ids the positive side gives the transformer."""
    from nodes.families.flux_sampling import FluxPredictor

    outputs = engine.run(wf, outputs=["ckpt", wf_last_prompt(wf)]).outputs
    unet = outputs["ckpt"]["unet"]
    predictor = FluxPredictor.build(unet, outputs[wf_last_prompt(wf)]["conditioning"], None, (1, 16, 16, 16), 1.0)
    return predictor.positive["reference_ids"]


def wf_last_prompt(wf) -> str:
    return wf.nodes["denoise"].inputs["positive"][0]


@pytest.mark.parametrize("method, expected", [
    ("offset", [(1, 0, 0), (1, 8, 0)]),      # the second below the first (a 16x16 latent: 8 tokens a side)
    ("index", [(1, 0, 0), (2, 0, 0)]),       # each its own frame
    ("uxo/uno", [(0, 8, 8), (0, 16, 16)]),   # diagonally past the 16x16 image drawn, then past the first
])
def test_the_method_places_two_references_as_comfyui_does(kontext_engine, tmp_path, method, expected):
    paths = [_picture(tmp_path, 32, 32, seed=i)[0] for i in range(2)]
    ids = _ids_of(kontext_engine, kontext_graph(paths, seed=1, method=method, negative=False))
    assert ids.shape == (2 * 64, 3)
    for k, (index, row, col) in enumerate(expected):
        first = ids[k * 64]
        assert tuple(first.tolist()) == (index, row, col)
        assert tuple(ids[k * 64 + 63].tolist()) == (index, row + 7, col + 7)


def test_several_references_run_and_each_steers(kontext_engine, tmp_path):
    paths = [_picture(tmp_path, 32, 32, seed=i)[0] for i in range(2)]
    one = latent_of(kontext_engine, kontext_graph(paths[:1], seed=2), "denoise")
    two = latent_of(kontext_engine, kontext_graph(paths, seed=2), "denoise")
    indexed = latent_of(kontext_engine, kontext_graph(paths, seed=2, method="index"), "denoise")
    assert (one - two).abs().max() > 1e-4 and (two - indexed).abs().max() > 1e-4


def test_cfg_norm_caps_the_guided_prediction_in_the_denoise_loop(kontext_engine, tmp_path):
    """CFGNorm strength 1 with cfg 1 changes nothing (the guided prediction is the positive one); with cfg 3 it
    changes the latents, and the step's clean image has no pixel whose channel norm exceeds the positive's."""
    path, _ = _picture(tmp_path, 32, 32, seed=3)
    plain = latent_of(kontext_engine, kontext_graph([path], seed=4), "denoise")
    normed = latent_of(kontext_engine, kontext_graph([path], seed=4, cfg_norm=1.0), "denoise")
    torch.testing.assert_close(normed, plain, atol=1e-5, rtol=1e-5)
    guided = latent_of(kontext_engine, kontext_graph([path], seed=4, cfg=4.0), "denoise")
    capped = latent_of(kontext_engine, kontext_graph([path], seed=4, cfg=4.0, cfg_norm=1.0), "denoise")
    assert (guided - capped).abs().max() > 1e-3
    nothing = latent_of(kontext_engine, kontext_graph([path], seed=4, cfg=4.0, cfg_norm=0.0), "denoise")
    assert nothing.abs().max() < 1e-5      # strength 0: every clean image 0, so Euler ends on 0 (as ComfyUI's)


def test_index_timestep_zero_is_refused_on_flux_naming_the_methods_it_takes(kontext_engine, tmp_path):
    from nodeforge.core.errors import WorkflowError

    path, _ = _picture(tmp_path, 32, 32)
    with pytest.raises(WorkflowError) as info:
        kontext_engine.run(kontext_graph([path], seed=1, method="index_timestep_zero"), outputs=["denoise"])
    message = str(info.value)
    assert "denoise" in message and "index_timestep_zero" in message and "offset, index or uxo/uno" in message
    assert "\n" not in message


def test_reference_latent_on_a_unet_model_is_refused_in_one_line(engine, tmp_path):
    from nodeforge.core.errors import WorkflowError

    wf = tm.shipped_txt2img("tiny-sd", seed=1)
    wf.add("EmptyLatent", {"width": 32, "height": 32, "batch_size": 1}, node_id="ref")
    wf.add("ReferenceLatent", {}, {"conditioning": ("2", "conditioning"), "latent": ("ref", "latent")}, node_id="rl")
    wf.nodes["5"].inputs["positive"] = ("rl", "conditioning")
    with pytest.raises(WorkflowError) as info:
        engine.run(wf, outputs=["5"])
    message = str(info.value)
    assert "positive" in message and "ReferenceLatent" in message and "Kontext" in message and "\n" not in message


def test_an_odd_reference_latent_is_refused_naming_the_size_that_works(flux_dir):
    from nodes.families.flux_sampling import reference_tokens
    from nodes.loading import load_checkpoint

    unet = load_checkpoint(flux_dir / "checkpoints" / "tiny-flux", "cpu").wrappers()[0]
    with pytest.raises(NodeError) as info:
        reference_tokens([torch.zeros(1, 16, 15, 16)], "offset", (1, 16, 16, 16), "positive", unet)
    assert info.value.field == "positive" and "divisible by 4" in str(info.value)


def test_a_flux_kontext_pipeline_folder_loads_as_flux_and_edits_as_the_pipeline(make_engine, flux_dir, tmp_path):
    """black-forest-labs/FLUX.1-Kontext-dev as diffusers saves it (model_index.json: FluxKontextPipeline)."""
    import tiny_flux as tf
    from diffusers import FluxKontextPipeline

    root = tmp_path / "models"
    (root / "checkpoints").mkdir(parents=True)
    FluxKontextPipeline(**tf.make_flux_components(0)).save_pretrained(str(root / "checkpoints" / "tiny-kontext"))
    engine = make_engine(tmp_path / "out", root)
    path, image = _picture(tmp_path, 32, 32, seed=7)
    wf = kontext_graph([path], seed=3)
    wf.nodes["ckpt"].params["checkpoint"] = "tiny-kontext"
    ours = latent_of(engine, wf, "denoise")
    pipe = tm.pipeline(root / "checkpoints" / "tiny-kontext", "FluxKontextPipeline")
    torch.testing.assert_close(ours, theirs(pipe, image, seed=3), atol=1e-4, rtol=1e-4)


def test_references_with_a_flux_controlnet_or_a_batch_that_does_not_fit_are_refused_in_one_line(flux_dir):
    from nodes.families.flux_sampling import FluxPredictor, reference_tokens
    from nodes.loading import load_checkpoint

    unet = load_checkpoint(flux_dir / "checkpoints" / "tiny-flux", "cpu").wrappers()[0]
    prompt = [{"embeds": torch.zeros(1, 8, 32), "pooled": torch.zeros(1, 32), "family": "flux",
               "reference_latents": (torch.zeros(1, 16, 8, 8),), "control": ("a ControlNet",)}]
    with pytest.raises(NodeError) as info:
        FluxPredictor.build(unet, prompt, None, (1, 16, 8, 8), 1.0)
    assert info.value.field == "positive" and "ControlNet" in str(info.value) and "\n" not in str(info.value)
    with pytest.raises(NodeError) as info:
        reference_tokens([torch.zeros(2, 16, 8, 8)], "offset", (3, 16, 8, 8), "negative", unet)
    assert info.value.field == "negative" and "batch of 2 for a batch of 3" in str(info.value)
