"""LanPaint's inpainting sampler (nodes/lanpaint.py) on the tiny models: with no Langevin iterations it is
UNetDenoise's masked inpainting exactly (UNet and Flux); with them the masked area changes, the known area
ends as the original, and a seed repeats; the Langevin step, the noise-level forms and the iteration count
on hand-made values; the refusal of a sampler it cannot follow."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import tiny_models as tm
from nodeforge.core.errors import NodeError


@pytest.fixture(scope="module")
def paint_engine(make_engine, flux_dir, tmp_path_factory):
    return make_engine(tmp_path_factory.mktemp("lanpaintout"), flux_dir)


def _picture(tmp_path: Path) -> Path:
    rgba = np.random.default_rng(2).integers(0, 255, (32, 32, 4), dtype=np.uint8)
    rgba[..., 3] = 255
    rgba[:, :16, 3] = 0                       # transparent left half: LoadImage's mask, 1 = repaint
    path = tmp_path / "paint.png"
    Image.fromarray(rgba, "RGBA").save(path)
    return path


def _graphs(checkpoint: str, tmp_path: Path, *, iterations: int, cfg: float = 3.0, seed: int = 5,
            sampler: str = "euler", prompt_mode: str = "Image First"):
    """The shipped graph inpainting the left half: node 5 UNetDenoise, node "lp" LanPaint on the same latent."""
    wf = tm.shipped_txt2img(checkpoint, seed=seed, steps=4, cfg=cfg, sampler=sampler)
    wf.add("LoadImage", {"path": str(_picture(tmp_path))}, node_id="img")
    wf.add("VAEEncode", {}, {"vae": ("1", "vae"), "image": ("img", "image")}, node_id="enc")
    wf.add("SetLatentMask", {}, {"latent": ("enc", "latent"), "mask": ("img", "mask")}, node_id="masked")
    wf.nodes["5"].inputs["latent"] = ("masked", "latent")
    wf.add("LanPaintSampler", {"seed": seed, "steps": 4, "cfg": cfg, "sampler": sampler, "schedule": "default",
                               "denoise": 1.0, "lanpaint_steps": iterations, "prompt_mode": prompt_mode},
           {"unet": ("1", "unet"), "positive": ("2", "conditioning"), "negative": ("3", "conditioning"),
            "latent": ("masked", "latent")}, node_id="lp")
    return wf


@pytest.mark.parametrize("checkpoint", ["tiny-sd", "tiny-flux"])
def test_no_iterations_is_unet_denoises_masked_inpainting(paint_engine, tmp_path, checkpoint):
    run = paint_engine.run(_graphs(checkpoint, tmp_path, iterations=0), outputs=["5", "lp"])
    plain, painted = run.outputs["5"]["latent"]["samples"], run.outputs["lp"]["latent"]["samples"]
    torch.testing.assert_close(painted, plain, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("checkpoint, mode", [("tiny-sd", "Image First"), ("tiny-sd", "Prompt First"),
                                              ("tiny-flux", "Image First")])
def test_iterations_repaint_the_mask_keep_the_known_area_and_repeat_with_the_seed(paint_engine, tmp_path,
                                                                                   checkpoint, mode):
    wf = _graphs(checkpoint, tmp_path, iterations=3, prompt_mode=mode)
    run = paint_engine.run(wf, outputs=["5", "lp", "enc"])
    plain, painted = run.outputs["5"]["latent"]["samples"], run.outputs["lp"]["latent"]["samples"]
    original = run.outputs["enc"]["latent"]["samples"]
    left, right = painted[..., : painted.shape[-1] // 2], painted[..., painted.shape[-1] // 2:]
    torch.testing.assert_close(right, original[..., original.shape[-1] // 2:], atol=1e-5, rtol=1e-5)
    assert (left - plain[..., : plain.shape[-1] // 2]).abs().max() > 1e-3      # the iterations changed it
    assert torch.isfinite(painted).all()
    again = paint_engine.run(_graphs(checkpoint, tmp_path, iterations=3, prompt_mode=mode),
                             outputs=["lp"]).outputs["lp"]["latent"]["samples"]
    torch.testing.assert_close(again, painted)


def test_a_sampler_that_does_not_step_in_sigmas_is_refused_on_a_unet_model(paint_engine, tmp_path):
    from nodeforge.core.errors import WorkflowError

    with pytest.raises(WorkflowError) as info:
        paint_engine.run(_graphs("tiny-sd", tmp_path, iterations=2, sampler="ddim"), outputs=["lp"])
    message = str(info.value)
    assert "lp" in message and "sampler" in message and "euler" in message and "\n" not in message


def test_the_overdamped_step_is_the_exact_solution_of_the_linear_part():
    from nodes.lanpaint import overdamped_step

    x, a, c = torch.tensor([2.0]), torch.tensor([3.0]), torch.tensor([1.5])
    dt = 0.2
    mean = overdamped_step(x, dt, a, c, torch.zeros(1))
    expected = math.exp(-0.6) * 2.0 + (1 - math.exp(-0.6)) / 3.0 * 1.5       # x(t) of dx = (-a x + c) dt
    assert float(mean) == pytest.approx(expected, rel=1e-6)
    spread = overdamped_step(x, dt, a, c, torch.ones(1)) - mean
    assert float(spread) == pytest.approx(math.sqrt(2 * (1 - math.exp(-1.2)) / 6.0), rel=1e-6)


def test_noise_levels_and_clean_images_in_each_form():
    from nodes.lanpaint import NoiseLevel

    x, pred = torch.tensor([0.7]), torch.tensor([-0.4])
    flow = NoiseLevel(0.25 ** 2 / (0.25 ** 2 + 0.75 ** 2), 1.0, 0.75, "flow")
    assert float(flow.clean(x, pred)) == pytest.approx(0.7 + 0.75 * 0.4)
    for level in (flow, NoiseLevel(1 / 5, 1 / math.sqrt(5), 2.0, "epsilon"), NoiseLevel(1 / 5, 1 / math.sqrt(5), 2.0,
                                                                                         "v_prediction")):
        back = level.prediction(x, level.clean(x, pred))
        assert float(back) == pytest.approx(float(pred), rel=1e-5)
    # v-prediction's clean image (diffusers' Euler): x / (s^2 + 1) - v s / sqrt(s^2 + 1)
    v = NoiseLevel(1 / 5, 1 / math.sqrt(5), 2.0, "v_prediction")
    assert float(v.clean(x, pred)) == pytest.approx(0.7 / 5 + 0.4 * 2 / math.sqrt(5))


@pytest.mark.parametrize("abt, i, expected", [(0.0, 0, 5), (0.5, 1, 2), (0.9, 2, 0), (0.1, 3, 0)])
def test_the_iterations_fall_with_the_noise_and_stop_at_the_last_step(abt, i, expected):
    from nodes.lanpaint import LanPaintSettings, iterations_at

    assert iterations_at(LanPaintSettings(5, 3.0, 0), abt, i, 4) == expected   # round(5 x (1 - abt)); none at 3 of 4


def test_lanpaint_refuses_a_non_sigma_scheduler_in_words(flux_dir):
    from nodes.lanpaint import check_lanpaint_scheduler

    class Unet:
        prediction_type = "epsilon"

    class DDIMScheduler:
        pass

    with pytest.raises(NodeError) as info:
        check_lanpaint_scheduler(Unet(), DDIMScheduler())
    assert info.value.field == "sampler" and "DDIMScheduler" in str(info.value)


def test_image_encode_is_vae_encode_with_the_mask_nearest_at_the_latents_size(paint_engine, tmp_path):
    from nodeforge import Workflow

    wf = Workflow()
    wf.add("CheckpointLoader", {"checkpoint": "tiny-sd"}, node_id="ckpt")
    wf.add("LoadImage", {"path": str(_picture(tmp_path))}, node_id="img")
    wf.add("VAEEncode", {}, {"vae": ("ckpt", "vae"), "image": ("img", "image")}, node_id="enc")
    wf.add("LanPaintImageEncode", {}, {"vae": ("ckpt", "vae"), "image": ("img", "image"), "mask": ("img", "mask")},
           node_id="lp")
    run = paint_engine.run(wf, outputs=["enc", "lp", "img"])
    latent = run.outputs["lp"]["latent"]
    torch.testing.assert_close(latent["samples"], run.outputs["enc"]["latent"]["samples"])
    h, w = latent["samples"].shape[-2:]
    expected = torch.zeros(1, 1, h, w)
    expected[..., : w // 2] = 1.0                 # the transparent left half, no bilinear in-between values
    assert torch.equal(latent["noise_mask"], expected)


def test_image_decode_blends_the_decoded_picture_into_the_original_inside_the_widened_soft_mask():
    from nodes.lanpaint_images import blend_weights, gaussian_kernel

    kernel = gaussian_kernel(5)
    assert kernel.shape == (5, 5) and float(kernel.sum()) == pytest.approx(1.0)
    assert float(kernel[2, 2] / kernel[2, 4]) == pytest.approx(math.exp(2.0))     # sigma (5 - 1) / 4 = 1
    mask = torch.zeros(1, 20, 20)
    mask[:, 8:12, 8:12] = 1.0
    hard = blend_weights(mask, 20, 20, 1)
    assert torch.equal(hard, mask)               # 1: the mask itself, a hard edge
    soft = blend_weights(mask, 20, 20, 5)        # widened to 6..13, blurred 2 px further
    assert float(soft[0, 10, 10]) == pytest.approx(1.0)           # deep inside: fully decoded
    assert float(soft[0, 0, 0]) == 0.0 and float(soft[0, 10, 3]) == 0.0   # beyond the blur: the original
    assert 0.0 < float(soft[0, 10, 4]) < float(soft[0, 10, 5]) < float(soft[0, 10, 6]) < 1.0   # the edge fades
    assert torch.all(soft[0, 8:12, 8:12] > 0.99)


def test_image_decode_pastes_into_the_original_and_refuses_an_even_overlap(paint_engine, tmp_path):
    from nodeforge import Workflow

    wf = Workflow()
    wf.add("CheckpointLoader", {"checkpoint": "tiny-sd"}, node_id="ckpt")
    wf.add("LoadImage", {"path": str(_picture(tmp_path))}, node_id="img")
    wf.add("VAEEncode", {}, {"vae": ("ckpt", "vae"), "image": ("img", "image")}, node_id="enc")
    wf.add("VAEDecode", {}, {"vae": ("ckpt", "vae"), "latent": ("enc", "latent")}, node_id="plain")
    wf.add("LanPaintImageDecode", {"blend_overlap": 1}, {"vae": ("ckpt", "vae"), "latent": ("enc", "latent"),
                                                         "image": ("img", "image"), "mask": ("img", "mask")},
           node_id="dec")
    run = paint_engine.run(wf, outputs=["img", "plain", "dec"])
    original, decoded, out = (run.outputs["img"]["image"], run.outputs["plain"]["image"],
                              run.outputs["dec"]["image"])
    torch.testing.assert_close(out[:, :, 16:], original[:, :, 16:])       # kept half: the original's pixels
    torch.testing.assert_close(out[:, :, :16], decoded[:, :, :16])        # masked half: the decoded ones
    from nodeforge.core.errors import WorkflowError

    wf.nodes["dec"].params["blend_overlap"] = 4   # a param's step is not checked at validate: the run says it
    with pytest.raises(WorkflowError) as info:
        paint_engine.run(wf, outputs=["dec"])
    message = str(info.value)
    assert "dec" in message and "blend_overlap" in message and "use 5" in message and "\n" not in message


def test_mask_blend_takes_image2_inside_the_mask_with_a_soft_edge_and_refuses_other_sizes():
    from nodes.lanpaint_images import run_lanpaint_mask_blend, soft_edges

    first, second = torch.zeros(1, 20, 20, 3), torch.ones(1, 20, 20, 3)
    mask = torch.zeros(1, 20, 20)
    mask[:, 8:12, 8:12] = 1.0
    hard = run_lanpaint_mask_blend(None, first, second, mask, 1)["image"]
    torch.testing.assert_close(hard[..., 0], mask)                     # 1: image2 exactly where the mask is
    soft = run_lanpaint_mask_blend(None, first, second, mask, 5)["image"]
    torch.testing.assert_close(soft[..., 0], soft_edges(mask[:, None], 5)[:, 0])
    assert float(soft[0, 10, 5, 0]) > 0.0 and float(soft[0, 0, 0, 0]) == 0.0
    with pytest.raises(NodeError) as info:
        run_lanpaint_mask_blend(None, first, torch.ones(1, 24, 20, 3), mask, 1)
    assert info.value.field == "image2" and "20x20" in str(info.value) and "20x24" in str(info.value)


def test_lambda_and_step_size_steer_and_a_later_stage_without_iterations_is_unet_denoises(paint_engine, tmp_path):
    wf = _graphs("tiny-sd", tmp_path, iterations=3)
    base = paint_engine.run(wf, outputs=["lp"]).outputs["lp"]["latent"]["samples"]
    for change in ({"lanpaint_lambda": 12.0}, {"lanpaint_step_size": 0.05}):
        other = _graphs("tiny-sd", tmp_path, iterations=3)
        other.nodes["lp"].params.update(change)
        changed = paint_engine.run(other, outputs=["lp"]).outputs["lp"]["latent"]["samples"]
        assert (changed - base).abs().max() > 1e-4, change
    staged = _graphs("tiny-sd", tmp_path, iterations=0)
    for node in ("5", "lp"):
        staged.nodes[node].params.update(start_at_step=2, add_noise=True)
    run = paint_engine.run(staged, outputs=["5", "lp"])
    torch.testing.assert_close(run.outputs["lp"]["latent"]["samples"], run.outputs["5"]["latent"]["samples"],
                               atol=1e-4, rtol=1e-4)


def _custom(checkpoint: str, tmp_path: Path, iterations: int):
    """The masked latent sampled by SamplerCustomAdvanced (node "sca") and LanPaint's form of it ("lpc")."""
    wf = _graphs(checkpoint, tmp_path, iterations=0)
    wf.add("RandomNoise", {"seed": 5}, node_id="noise")
    wf.add("CFGGuider", {"cfg": 3.0}, {"unet": ("1", "unet"), "positive": ("2", "conditioning"),
                                       "negative": ("3", "conditioning")}, node_id="guider")
    wf.add("SamplerSelect", {"sampler": "euler"}, node_id="sampler")
    wf.add("BasicScheduler", {"schedule": "default", "steps": 4, "denoise": 1.0}, {"unet": ("1", "unet")},
           node_id="sigmas")
    parts = {"noise": ("noise", "noise"), "guider": ("guider", "guider"), "sampler": ("sampler", "sampler"),
             "sigmas": ("sigmas", "sigmas"), "latent": ("masked", "latent")}
    wf.add("SamplerCustomAdvanced", {}, dict(parts), node_id="sca")
    wf.add("LanPaintSamplerCustomAdvanced", {"lanpaint_steps": iterations, "prompt_mode": "Image First"}, dict(parts),
           node_id="lpc")
    return wf


@pytest.mark.parametrize("checkpoint", ["tiny-sd", "tiny-flux"])
def test_the_custom_sampler_form_is_sampler_custom_advanced_without_iterations_and_keeps_the_known_area(
        paint_engine, tmp_path, checkpoint):
    run = paint_engine.run(_custom(checkpoint, tmp_path, 0), outputs=["sca", "lpc", "enc"])
    lanpaint, plain = run.outputs["lpc"], run.outputs["sca"]
    half = plain["output"]["samples"].shape[-1] // 2
    torch.testing.assert_close(lanpaint["output"]["samples"], plain["output"]["samples"], atol=1e-4, rtol=1e-4)
    # the last step's clean latent: the model's where the mask repaints, the original where it is known (LanPaint's)
    torch.testing.assert_close(lanpaint["denoised_output"]["samples"][..., :half],
                               plain["denoised_output"]["samples"][..., :half], atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(lanpaint["denoised_output"]["samples"][..., half:],
                               run.outputs["enc"]["latent"]["samples"][..., half:], atol=1e-5, rtol=1e-5)
    run = paint_engine.run(_custom(checkpoint, tmp_path, 3), outputs=["sca", "lpc", "enc"])
    painted, plain = run.outputs["lpc"]["output"]["samples"], run.outputs["sca"]["output"]["samples"]
    torch.testing.assert_close(painted[..., half:], run.outputs["enc"]["latent"]["samples"][..., half:],
                               atol=1e-5, rtol=1e-5)
    assert (painted[..., :half] - plain[..., :half]).abs().max() > 1e-3
