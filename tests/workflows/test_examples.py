"""Every example workflow runs headless on the bundled demo model and makes the image it promises.

Images are checked from their pixels by the project's judge (nodeforge.training.judge), the same
one the model card's numbers come from.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from nodeforge import Engine, load_workflow
from nodeforge.paths import builtin_dir
from nodeforge.core.registry import builtin_module
from tests.workflows.golden import GOLDEN, check_golden

WORKFLOWS = builtin_dir("workflows")
MODEL = builtin_dir("resources") / "models" / "nodeforge-shapes"


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    from nodeforge.core.models import ModelPaths

    # The demo model ships with NodeForge: without it these tests fail, they do not skip.
    assert (MODEL / "model_index.json").is_file(), f"the demo model {MODEL} is missing"

    out = tmp_path_factory.mktemp("out")
    return Engine(device="cpu", output_dir=out, model_paths=ModelPaths(roots=[]))


def run(engine, name, **changes):
    wf = load_workflow(WORKFLOWS / f"{name}.json")
    for key, value in changes.items():
        nid, param = key.split("__")
        wf.nodes[nid].params[param] = value
    result = engine.run(wf)
    [paths] = [v for v in result.outputs.values() if isinstance(v, list) and v and str(v[0]).endswith(".png")]
    return wf, result, Image.open(paths[0]).convert("RGB")


def test_every_example_is_a_valid_workflow(engine):
    names = sorted(p.stem for p in WORKFLOWS.glob("*.json"))
    assert {"txt2img", "img2img", "inpaint", "lora"} <= set(names)
    for name in names:
        assert engine.validate(load_workflow(WORKFLOWS / f"{name}.json")) == [], name


EXAMPLES = sorted(p.stem for p in WORKFLOWS.glob("*.json"))


@pytest.mark.parametrize("name", EXAMPLES)
def test_every_example_draws_its_golden_image(engine, name):
    """Same seed, same image, after an update: each saved image of each example, as committed
    in tests/workflows/golden/ (tolerance and how to regenerate: tests/workflows/golden.py)."""
    result = engine.run(load_workflow(WORKFLOWS / f"{name}.json"))
    saved = [path for paths in result.outputs.values() if isinstance(paths, list)
             for path in paths if str(path).endswith(".png")]
    assert saved, f"{name} saved no image"
    for index, path in enumerate(saved):
        check_golden(Image.open(path), name, index)


def test_every_golden_image_belongs_to_a_shipped_example():
    """A renamed or deleted example leaves no stale golden image behind to be trusted."""
    owners = {path.stem.rsplit("-", 1)[0] if path.stem not in EXAMPLES else path.stem
              for path in GOLDEN.glob("*.png")}
    assert owners == set(EXAMPLES)


def test_txt2img_draws_what_the_prompt_asks(engine):
    from nodeforge.training.judge import judge

    wf, result, image = run(engine, "txt2img")
    assert image.size == (64, 64)
    verdict = judge(image)
    assert (verdict.colour, verdict.shape, verdict.background) == ("red", "circle", "blue")
    # The PNG carries the workflow that made it.
    assert load_workflow(Path(result.outputs["7"][0])).nodes["5"].params["seed"] == 42


def _last_preview(engine, prompt):
    from nodeforge.core.events import NodeProgress

    wf = load_workflow(WORKFLOWS / "txt2img.json")
    wf.nodes["2"].params["text"] = prompt
    previews = []
    result = engine.run(wf, on_event=lambda e: previews.append(e.preview)
                        if isinstance(e, NodeProgress) and e.preview else None)
    image = np.asarray(Image.open(result.outputs["7"][0]).convert("RGB"), dtype=np.float32)
    return previews, image, np.asarray(previews[-1].convert("RGB"), dtype=np.float32)


@pytest.mark.parametrize("colour, background", [("white", "black"), ("green", "black"), ("red", "black"),
                                                ("blue", "black"), ("yellow", "black"), ("white", "blue"),
                                                ("green", "blue"), ("red", "blue"), ("yellow", "blue")])
def test_the_last_step_preview_has_the_colours_of_the_decoded_image(engine, colour, background):
    """The demo model's latent_preview.json holds a tiny decoder fitted on its own final latents:
    the linear map it had before previewed white as pink, green as dark grey and red as orange,
    and SD's table would preview a red circle on blue as a cyan blob on olive."""
    from nodeforge.training.judge import nearest_colour

    previews, image, last = _last_preview(engine, f"a large {colour} circle on a {background} background")
    assert last.shape[:2] == (16, 16) and len(previews) == 20
    pooled = image.reshape(16, 4, 16, 4, 3).mean(axis=(1, 3))      # the preview's pixel size
    centre = lambda a: a[7:9, 7:9].reshape(-1, 3).mean(0)           # noqa: E731
    assert nearest_colour(centre(pooled)) == colour and nearest_colour(pooled[1, 1]) == background
    assert nearest_colour(centre(last)) == colour, centre(last)
    assert nearest_colour(last[1, 1]) == background, last[1, 1]
    assert np.abs(centre(last) - centre(pooled)).max() < 30, (centre(last), centre(pooled))
    assert np.abs(last - pooled).mean() < 16          # 7 to 11 of 255 measured; the linear map: 15 to 34


def test_changing_the_prompt_changes_the_image_and_reruns_only_what_depends_on_it(engine):
    _, _, before = run(engine, "txt2img")
    wf, result, image = run(engine, "txt2img", **{"2__text": "a yellow square on a black background"})
    assert sorted(result.executed) == ["2", "5", "6", "7"]
    difference = np.abs(np.asarray(image, dtype=np.float32) - np.asarray(before, dtype=np.float32)).mean()
    assert difference > 20, "a different prompt makes a visibly different image"


def test_img2img_keeps_the_layout_and_follows_the_prompt(engine):
    from nodeforge.training.judge import judge

    _, _, image = run(engine, "img2img")
    verdict = judge(image)
    assert verdict.colour == "yellow" and verdict.background == "blue"


def test_img2img_at_half_denoise_keeps_where_the_shape_is(engine, tmp_path):
    """The input's circle moved to the upper left: at denoise 0.5 the new shape stays where it was
    (IoU 0.84 measured); at 1.0 the input is ignored and the model draws it elsewhere (0.49), so
    the same check fails there - it measures the layout, not the model's habit of centring."""
    from nodeforge.training.judge import judge, mask_iou, shape_mask

    pixels = np.roll(np.asarray(Image.open(WORKFLOWS / "inputs" / "red-circle.png").convert("RGB")), (-12, -12), (0, 1))
    Image.fromarray(pixels).save(tmp_path / "moved.png")
    source = shape_mask(pixels)
    iou = {}
    for denoise in (0.5, 1.0):
        _, _, image = run(engine, "img2img", **{"6__denoise": denoise, "4__path": str(tmp_path / "moved.png")})
        verdict = judge(image)
        assert (verdict.colour, verdict.background) == ("yellow", "blue"), (denoise, verdict)
        iou[denoise] = mask_iou(source, shape_mask(image))
    assert iou[0.5] > 0.7, iou
    assert iou[1.0] < 0.6, iou


def test_inpaint_changes_only_the_masked_latent_pixels(engine):
    import torch

    wf = load_workflow(WORKFLOWS / "inpaint.json")
    result = engine.run(wf, outputs=["6", "7"])        # the masked input latent, the denoised latent
    masked, denoised = result.outputs["6"]["latent"], result.outputs["7"]["latent"]
    mask = masked["noise_mask"]
    assert mask.shape[-2:] == masked["samples"].shape[-2:]
    keep = (mask == 0).expand_as(masked["samples"])
    repaint = (mask == 1).expand_as(masked["samples"])
    assert keep.any() and repaint.any()
    assert torch.equal(denoised["samples"][keep], masked["samples"][keep]), "unmasked latents are the input's"
    assert (denoised["samples"][repaint] - masked["samples"][repaint]).abs().mean() > 0.1


def test_inpaint_keeps_the_source_pixels_and_draws_a_circle_on_several_seeds(engine):
    """Issue 31, item 10: the decoded picture is pasted back onto the source outside the mask (the
    mask shrunk by 3 px and blurred by 3 px, so the feather stays inside it), so the kept area is the
    source's pixels exactly (before: a mean difference of 15/255 from the VAE round trip); and the
    example draws what it promises, a red circle on white, not on its own seed alone."""
    from nodeforge.training.judge import judge

    source = Image.open(WORKFLOWS / load_workflow(WORKFLOWS / "inpaint.json").nodes["4"].params["path"])
    kept = np.asarray(source.getchannel("A")) == 255
    pixels = np.asarray(source.convert("RGB"), dtype=np.float32)
    for seed in (42, 1, 2, 3):
        _, _, image = run(engine, "inpaint", **{"7__seed": seed})
        error = np.abs(np.asarray(image, dtype=np.float32) - pixels)
        assert error[kept].max() == 0, (seed, error[kept].mean())
        assert error[~kept].mean() > 20, seed                        # the masked square was repainted
        verdict = judge(image)
        assert (verdict.colour, verdict.shape, verdict.background) == ("red", "circle", "white"), (seed, verdict)


def test_the_lora_draws_a_star_and_strength_zero_is_the_base_model(engine):
    from nodeforge.training.judge import judge

    _, _, with_lora = run(engine, "lora")
    verdict = judge(with_lora)
    assert (verdict.shape, verdict.colour, verdict.background) == ("star", "yellow", "blue"), verdict
    _, _, at_zero = run(engine, "lora", **{"8__strength_unet": 0.0, "8__strength_clip": 0.0})
    wf = load_workflow(WORKFLOWS / "lora.json")
    # The same graph without the LoRA node: wire the checkpoint straight through.
    for node in wf.nodes.values():
        node.inputs = {k: (("1", out) if src == "8" else (src, out)) for k, (src, out) in node.inputs.items()}
    del wf.nodes["8"]
    [[path]] = engine.run(wf).outputs.values()
    base = np.asarray(Image.open(path).convert("RGB"))
    assert np.array_equal(np.asarray(at_zero), base), "strength 0 is exactly the base model"
    assert np.abs(np.asarray(with_lora, dtype=np.float32) - base).mean() > 2, "strength 1 changes the image"


def test_the_lcm_lora_draws_the_prompt_in_four_steps_where_the_sampler_alone_draws_circles(engine):
    """workflows/lcm.json: the LCM-LoRA with the lcm sampler, 4 steps, CFG 1. Without the LoRA
    (strength 0) the same sampler rounds the triangle off on these seeds (measured: circles on all four)."""
    from nodeforge.training.judge import judge

    triangles = {1.0: 0, 0.0: 0}
    for seed in (42, 1, 2, 3):
        for strength in triangles:
            _, _, image = run(engine, "lcm", **{"5__seed": seed, "8__strength_unet": strength})
            verdict = judge(image)
            assert (verdict.colour, verdict.background) == ("green", "purple"), (seed, strength, verdict)
            triangles[strength] += verdict.shape == "triangle"
    assert triangles[1.0] == 4 and triangles[0.0] < 4, triangles


def test_the_headless_command_runs_an_example_from_another_folder(tmp_path, monkeypatch, capsys):
    from nodeforge.cli import main

    monkeypatch.chdir(tmp_path)
    assert main(["run", str(WORKFLOWS / "img2img.json"), "--out", "o", "--set", "6.steps=4"]) == 0
    written = Path(capsys.readouterr().out.strip())
    assert (tmp_path / written).exists()
    assert json.loads(Image.open(tmp_path / written).text["workflow"])["nodes"]["6"]["params"]["steps"] == 4


def test_hires_fix_draws_small_then_refines_at_the_full_size(engine):
    from nodeforge.training.judge import judge

    wf, result, image = run(engine, "hires-fix")
    first, upscaled = (engine.run(wf, outputs=[n]).outputs[n]["latent"]["samples"] for n in ("5", "6"))
    assert first.shape[-2:] == (12, 12) and upscaled.shape[-2:] == (16, 16)   # 48 px, then 64 px (factor 4)
    assert image.size == (64, 64)
    verdict = judge(image)
    assert (verdict.colour, verdict.shape, verdict.background) == ("red", "circle", "blue"), verdict


def test_outpaint_extends_the_canvas_with_the_prompts_background(engine):
    from nodeforge.training.judge import judge, nearest_colour

    _, _, image = run(engine, "outpaint")
    assert image.size == (96, 64)
    pixels = np.asarray(image)
    new_area = pixels[:, 72:].reshape(-1, 3)       # beyond the feathered seam
    assert nearest_colour(np.median(new_area, axis=0)) == "blue"
    verdict = judge(image.crop((0, 0, 64, 64)))
    assert (verdict.colour, verdict.shape, verdict.background) == ("red", "circle", "blue"), verdict


def test_regions_draws_each_areas_prompt_in_its_half_and_follows_the_areas(engine):
    """Two 64x64 areas of a 128x64 image: a red circle on the left, a green square on the right
    (on 24 seeds: colours 100%, circles 100%, squares 83%, the model's own square rate). Moving
    the areas swaps what each half shows, so the halves follow the areas, not the prompt order."""
    from nodeforge.training.judge import judge

    shapes = []
    for seed in (1, 2, 4, 5):
        for left, right in ((("red", "circle"), ("green", "square")), (("green", "square"), ("red", "circle"))):
            swap = left[0] == "green"
            _, _, image = run(engine, "regions", **{"12__seed": seed, "5__x": 64 if swap else 0,
                                                    "6__x": 0 if swap else 64})
            assert image.size == (128, 64)
            for (colour, shape), half in ((left, image.crop((0, 0, 64, 64))), (right, image.crop((64, 0, 128, 64)))):
                verdict = judge(half)
                assert (verdict.colour, verdict.background) == (colour, "white"), (seed, swap, verdict)
                shapes.append(verdict.shape == shape)
    assert sum(shapes) >= 14, shapes


# The schedule, steps and CFG each sampler is used with (as `evaluate --samplers` measures them):
# LCM is for latent-consistency distilled models (few steps, low CFG); PLMS overshoots above CFG 3
# in 20 steps (its 4th-order extrapolation of the guided noise).
SAMPLER_SETTINGS = {"dpmpp_2m": ("karras", 20, 5.0), "dpmpp_sde": ("karras", 20, 5.0),
                    "dpmpp_2m_sde": ("karras", 20, 5.0), "lcm": ("default", 6, 1.5), "pndm": ("default", 20, 3.0)}
PROMPTS = [("red", "circle", "blue"), ("yellow", "square", "green"), ("blue", "triangle", "white"),
           ("green", "circle", "red")]


@pytest.mark.parametrize("sampler", list(builtin_module("schedulers").SAMPLERS))
def test_every_sampler_draws_the_prompt_on_the_demo_model(engine, sampler):
    """Colour and background right for every prompt, the shape for at least 3 of 4 (the model's
    targets are 95% and 90%). DDIM and DDPM drew nothing while they clipped the latent."""
    from nodeforge.training.judge import judge

    schedule, steps, cfg = SAMPLER_SETTINGS.get(sampler, ("default", 20, 5.0))
    verdicts = []
    for colour, shape, background in PROMPTS:
        _, _, image = run(engine, "txt2img", **{"2__text": f"a {colour} {shape} on a {background} background",
                                               "5__sampler": sampler, "5__schedule": schedule,
                                               "5__steps": steps, "5__cfg": cfg})
        verdicts.append(judge(image))
    got = [(v.colour, v.shape, v.background) for v in verdicts]
    assert [(c, b) for c, _, b in got] == [(c, b) for c, _, b in PROMPTS], got
    assert sum(g[1] == p[1] for g, p in zip(got, PROMPTS)) >= 3, got
