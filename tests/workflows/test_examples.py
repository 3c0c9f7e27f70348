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

WORKFLOWS = builtin_dir("workflows")
MODEL = builtin_dir("resources") / "models" / "nodeforge-shapes"
pytestmark = pytest.mark.skipif(not (MODEL / "model_index.json").exists(), reason="demo model not built")


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    from nodeforge.core.models import ModelPaths

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


def test_txt2img_draws_what_the_prompt_asks(engine):
    from nodeforge.training.judge import judge

    wf, result, image = run(engine, "txt2img")
    assert image.size == (64, 64)
    verdict = judge(image)
    assert (verdict.colour, verdict.shape, verdict.background) == ("red", "circle", "blue")
    # The PNG carries the workflow that made it.
    assert load_workflow(Path(result.outputs["7"][0])).nodes["5"].params["seed"] == 42


def test_changing_the_prompt_changes_the_image_and_reruns_only_what_depends_on_it(engine):
    from nodeforge.training.judge import judge

    run(engine, "txt2img")
    wf, result, image = run(engine, "txt2img", **{"2__text": "a green square on a white background"})
    assert sorted(result.executed) == ["2", "5", "6", "7"]
    verdict = judge(image)
    assert (verdict.colour, verdict.shape, verdict.background) == ("green", "square", "white")


def test_img2img_keeps_the_layout_and_follows_the_prompt(engine):
    from nodeforge.training.judge import judge

    _, _, image = run(engine, "img2img")
    verdict = judge(image)
    assert verdict.colour == "yellow" and verdict.background == "blue"


def test_inpaint_changes_only_the_masked_half(engine):
    _, _, image = run(engine, "inpaint")
    source = Image.open(WORKFLOWS / "inputs" / "inpaint-right-half.png")
    alpha = np.asarray(source.getchannel("A")) if "A" in source.getbands() else None
    assert alpha is not None, "the inpaint input marks the area to repaint with transparency"
    keep = alpha > 0
    before = np.asarray(source.convert("RGB"), dtype=np.float32)
    after = np.asarray(image, dtype=np.float32)
    kept_error = np.abs(after - before)[keep].mean()
    repaint_change = np.abs(after - before)[~keep].mean()
    assert kept_error < 12, "outside the mask the image is the input (up to the VAE's round trip)"
    assert repaint_change > kept_error


def test_the_lora_draws_stars_and_strength_zero_is_the_base_model(engine):
    from nodeforge.training.judge import judge

    _, _, with_lora = run(engine, "lora")
    assert judge(with_lora).shape == "star"
    _, _, at_zero = run(engine, "lora", **{"8__strength_unet": 0.0, "8__strength_clip": 0.0})
    wf = load_workflow(WORKFLOWS / "lora.json")
    # The same graph without the LoRA node: wire the checkpoint straight through.
    for node in wf.nodes.values():
        node.inputs = {k: (("1", out) if src == "8" else (src, out)) for k, (src, out) in node.inputs.items()}
    del wf.nodes["8"]
    base = engine.run(wf)
    [[path]] = [v for v in base.outputs.values()]
    assert np.array_equal(np.asarray(at_zero), np.asarray(Image.open(path).convert("RGB")))
    assert judge(Image.open(path)).shape != "star"


def test_the_headless_command_runs_an_example_from_another_folder(tmp_path, monkeypatch, capsys):
    from nodeforge.cli import main

    monkeypatch.chdir(tmp_path)
    assert main(["run", str(WORKFLOWS / "img2img.json"), "--out", "o", "--set", "6.steps=4"]) == 0
    written = Path(capsys.readouterr().out.strip())
    assert (tmp_path / written).exists()
    assert json.loads(Image.open(tmp_path / written).text["workflow"])["nodes"]["6"]["params"]["steps"] == 4
