"""ComfyUI graphs shared by someone else, run headless on the bundled demo model.

Each file names the sender's models; `--model-map` points them at the demo model (nodeforge-shapes)
and its star LoRA (shapes-star). Images are judged from their pixels by the project's judge.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from nodeforge.cli import main
from nodeforge.paths import builtin_dir
from nodeforge.training.judge import judge
from tests.workflows.golden import MAX_DIFF, MEAN_DIFF, difference

DATA = Path(__file__).resolve().parent / "data"
INPUTS = builtin_dir("workflows") / "inputs"
MODEL = builtin_dir("resources") / "models" / "nodeforge-shapes"


@pytest.fixture(autouse=True)
def _demo_model_is_there():
    # The demo model ships with NodeForge: without it these tests fail, they do not skip.
    assert (MODEL / "model_index.json").is_file(), f"the demo model {MODEL} is missing"


def run(tmp_path, capsys, name, *maps, images=()):
    folder = tmp_path / "shared"
    folder.mkdir(exist_ok=True)
    shutil.copy(DATA / name, folder / name)
    for image in images:   # ComfyUI's LoadImage names files in its input folder: they travel with the graph
        shutil.copy(INPUTS / image, folder / image)
    argv = ["run", str(folder / name), "--out", str(tmp_path / "out"), "-q"]
    for item in maps:
        argv += ["--model-map", item]
    code = main(argv)
    captured = capsys.readouterr()
    assert code == 0, captured.err
    [path] = captured.out.split()
    return Image.open(path).convert("RGB"), captured.err


def test_comfyui_txt2img(tmp_path, capsys):
    image, err = run(tmp_path, capsys, "txt2img-0.4.json", "v1-5-pruned-emaonly.safetensors=nodeforge-shapes")
    assert err == ""
    assert image.size == (64, 64)
    verdict = judge(image)
    assert (verdict.colour, verdict.shape, verdict.background) == ("red", "circle", "blue"), verdict


def test_comfyui_img2img(tmp_path, capsys):
    image, _ = run(tmp_path, capsys, "comfy-img2img-api.json", "realisticVision_v51=nodeforge-shapes",
                   images=["red-circle.png"])
    verdict = judge(image)
    assert (verdict.colour, verdict.background) == ("yellow", "blue"), verdict


def test_comfyui_lora(tmp_path, capsys):
    image, _ = run(tmp_path, capsys, "comfy-lora-1.json", "dreamshaper_8.safetensors=nodeforge-shapes",
                   "star_style_v2.safetensors=shapes-star")
    verdict = judge(image)
    assert (verdict.shape, verdict.colour, verdict.background) == ("star", "yellow", "blue"), verdict


def test_comfyui_hires_fix_two_samplers_with_a_latent_upscale_between(tmp_path, capsys):
    image, _ = run(tmp_path, capsys, "comfy-hires-api.json", "v1-5-pruned-emaonly=nodeforge-shapes")
    assert image.size == (64, 64)
    verdict = judge(image)
    assert (verdict.colour, verdict.shape, verdict.background) == ("red", "circle", "blue"), verdict


def test_comfyui_inpaint_repaints_only_the_masked_half(tmp_path, capsys):
    image, _ = run(tmp_path, capsys, "comfy-inpaint-0.4.json", "512-inpainting-ema.safetensors=nodeforge-shapes",
                   images=["inpaint-right-half.png"])
    source = Image.open(INPUTS / "inpaint-right-half.png")
    opaque = np.asarray(source.getchannel("A")) == 255
    error = np.abs(np.asarray(image, dtype=np.float32) - np.asarray(source.convert("RGB"), dtype=np.float32))
    assert error[opaque].mean() < 0.5 * error[~opaque].mean(), (error[opaque].mean(), error[~opaque].mean())
    verdict = judge(image)
    assert verdict.background == "white", verdict


def test_comfyui_utility_nodes_a_picked_batch_item_is_that_seed_alone(tmp_path, capsys):
    """RepeatLatentBatch x2 -> KSampler (seed 41) -> LatentFromBatch(1) -> VAEDecodeTiled, on an
    averaged prompt over a full-frame percentage area: the image is the one seed 42 draws alone."""
    import json

    mapping = "v1-5-pruned-emaonly.safetensors=nodeforge-shapes"
    image, err = run(tmp_path, capsys, "comfy-batch-api.json", mapping)
    assert err.startswith("warning: node 13 (VAEDecodeTiled): NodeForge's VAE Decode tiles by itself")
    verdict = judge(image)
    assert (verdict.colour, verdict.shape, verdict.background) == ("red", "circle", "blue"), verdict
    prompt = json.loads((DATA / "comfy-batch-api.json").read_text())
    for nid in ("11", "12"):
        del prompt[nid]
    prompt["3"]["inputs"].update(seed=42, latent_image=["5", 0])
    prompt["13"]["inputs"]["samples"] = ["3", 0]
    alone = tmp_path / "alone"
    alone.mkdir()
    (alone / "alone.json").write_text(json.dumps(prompt))
    assert main(["run", str(alone / "alone.json"), "--out", str(alone / "out"), "-q", "--model-map", mapping]) == 0
    [path] = capsys.readouterr().out.split()
    single = np.asarray(Image.open(path).convert("RGB"), dtype=np.int16)
    assert np.abs(np.asarray(image, dtype=np.int16) - single).max() <= 1


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    from nodeforge import Engine
    from nodeforge.core.models import ModelPaths

    return Engine(device="cpu", output_dir=tmp_path_factory.mktemp("out"), model_paths=ModelPaths(roots=[]))


EXPECTED = {"txt2img": ("red", "circle", "blue"), "hires-fix": ("red", "circle", "blue"),
            "lora": ("yellow", "star", "blue"), "img2img": ("yellow", None, "blue"),
            "lcm": ("green", "triangle", "purple")}


def _saved_image(engine, workflow):
    result = engine.run(workflow)
    [paths] = [v for v in result.outputs.values() if isinstance(v, list) and v and str(v[0]).endswith(".png")]
    return Image.open(paths[0]).convert("RGB")


@pytest.mark.parametrize("name", sorted(p.stem for p in builtin_dir("workflows").glob("*.json")))
def test_the_shipped_examples_run_after_a_trip_through_comfyui_api_form(engine, name):
    """Every example, exported to ComfyUI's API form and read back, draws the picture the original
    draws (within the float tolerance of tests/workflows/golden.py): a dropped param, a renamed
    sampler, a lost input image or strength changes it. ComfyUI has no schedule "default" (the
    model's own spacing; trailing for the demo model): it travels as "simple", the same timesteps."""
    from nodeforge import load_workflow
    from nodeforge.interop import export_comfyui_api, read_workflow

    original = load_workflow(builtin_dir("workflows") / f"{name}.json")
    again = read_workflow(export_comfyui_api(original, registry=engine.registry), registry=engine.registry).workflow
    again.source = original.source    # the example's input images sit beside it
    image = _saved_image(engine, again)
    largest, mean = difference(image, _saved_image(engine, original))
    assert largest <= MAX_DIFF and mean <= MEAN_DIFF, (name, largest, mean)
    if name in EXPECTED:
        colour, shape, background = EXPECTED[name]
        verdict = judge(image)
        assert verdict.colour == colour and verdict.background == background, verdict
        assert shape is None or verdict.shape == shape, verdict
