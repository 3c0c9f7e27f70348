"""train-ipadapter (nodeforge/training/ipadapter.py) and the demo IP-Adapter it made (resources/ipadapter/
shapes-ipadapter.safetensors): argument errors, a tiny run in h94's layout that resumes from --work, the
shipped file read the same by IPAdapterLoader and diffusers' load_ip_adapter, and the image it steers
towards judged from the pixels."""
from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from nodeforge.paths import builtin_dir  # noqa: E402
from nodeforge.training import data, ipadapter  # noqa: E402

RESOURCES = builtin_dir("resources")
SHIPPED = RESOURCES / "ipadapter" / "shapes-ipadapter.safetensors"
BASE = RESOURCES / "models" / "nodeforge-shapes"
ENCODER = RESOURCES / "clip_vision" / "shapes-clip-vision"
OUT = ["--out", "a.safetensors"]


@pytest.mark.parametrize("argv,message", [
    (OUT + ["--tokens", "0"], "train-ipadapter: argument --tokens: 0 is out of range"),
    (OUT + ["--kind", "faceid"], "train-ipadapter: argument --kind: invalid choice: 'faceid'"),
    (OUT + ["--text-drop", "1.5"], "train-ipadapter: argument --text-drop: 1.5 is out of range"),
    (OUT + ["--text-drop", "0.6", "--image-drop", "0.3", "--both-drop", "0.2"],
     "train-ipadapter: --text-drop 0.6 + --image-drop 0.3 + --both-drop 0.2 is more than 1"),
    (OUT + ["--held-out", "0"], "train-ipadapter: argument --held-out: 0 is out of range"),
    (["--steps", "3"], "train-ipadapter: the following arguments are required: --out"),
])
def test_an_argument_it_cannot_train_with_is_one_error_line_before_anything_loads(argv, message, capsys, no_base_load):
    with pytest.raises(SystemExit) as exit_:
        ipadapter.main(argv)
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and err.startswith("error: ") and message in err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_inputs_it_cannot_use_are_one_line_naming_the_flag(tmp_path):
    with pytest.raises(SystemExit, match=r"^error: train-ipadapter: --encoder 'nope' is neither a CLIP vision"):
        ipadapter.main(["--out", str(tmp_path / "a.safetensors"), "--encoder", "nope"])
    with pytest.raises(SystemExit, match=r"^error: train-ipadapter: --out .* no folder"):
        ipadapter.main(["--out", str(tmp_path / "missing" / "a.safetensors")])
    with pytest.raises(SystemExit, match=r"^error: train-ipadapter: no file .*; give the IP-Adapter to measure"):
        ipadapter.main(["--out", str(tmp_path / "a.safetensors"), "--measure-only"])


@pytest.mark.parametrize("kind", ["plus", "plain"])
def test_the_h94_layout_goes_through_diffusers_converter_and_back_unchanged(kind):
    """What the trainer writes is what diffusers' loader builds: its modules, renamed back, are the file."""
    from diffusers import UNet2DConditionModel

    unet = UNet2DConditionModel.from_pretrained(BASE, subfolder="unet")
    state = ipadapter.fresh_state(unet, kind, 64, 16, seed=3)
    ipadapter.install(unet, state)
    back = ipadapter.installed_state(unet)
    assert sorted(back) == sorted(state)
    assert all(torch.equal(back[k], state[k]) for k in state)
    assert [k for k in state if k.endswith("to_k_ip.weight")] == [f"ip_adapter.{n}.to_k_ip.weight" for n in (1, 3, 5, 7)]


def test_a_tiny_run_writes_an_adapter_ipadapterloader_reads_and_resumes_from_work(tmp_path, capsys):
    out, work = tmp_path / "tiny.safetensors", tmp_path / "work"
    argv = ["--out", str(out), "--images", "8", "--steps", "2", "--batch", "2", "--held-out", "1",
            "--work", str(work), "--save-every", "1", "--kind", "plus", "--tokens", "4", "--json", str(tmp_path / "n.json")]
    assert ipadapter.main(argv) == 0
    numbers = json.loads((tmp_path / "n.json").read_text())
    assert numbers["held_out_images"] == 1 and numbers["kind"] == "plus" and numbers["steps"] == 2
    assert set(numbers["with_adapter_empty_prompt"]) == {"colour", "background", "shape", "all_three"}
    from nodeforge.core.registry import builtin_module

    adapter = builtin_module("ipadapter").read_ipadapter(out, "cpu")
    assert adapter.kind == "plus" and len(adapter.layers) == 4 and adapter.cross_dim == 64 and adapter.embed_dim == 64
    first = out.read_bytes()
    capsys.readouterr()
    assert ipadapter.main(argv) == 0           # the checkpoint holds step 2 of 2: nothing left to train
    assert "resumed from step 2" in capsys.readouterr().err
    from safetensors.torch import load

    before, after = load(first), load(out.read_bytes())
    assert sorted(before) == sorted(after) and all(torch.equal(before[k], after[k]) for k in before)
    with pytest.raises(SystemExit, match="holds a checkpoint of other settings"):
        ipadapter.main([*argv, "--lr", "0.01"])


# -- the shipped adapter ----------------------------------------------------------------------------------
SEED, STEPS = 7, 8


def _reference(tmp_path, index: int):
    from PIL import Image

    images, samples = data.generate(index + 1, ipadapter.HELD_OUT_SEED)
    path = tmp_path / f"ref-{index}.png"
    Image.fromarray(images[index]).save(path)
    return path, samples[index]


def _graph(reference, weight: float, seed: int = SEED, steps: int = STEPS):
    """txt2img on the demo model with an empty prompt and the shipped adapter applied to `reference`."""
    from nodeforge import Workflow

    wf = Workflow()
    wf.add("CheckpointLoader", {"checkpoint": "nodeforge-shapes"}, node_id="ckpt")
    wf.add("LoadImage", {"path": str(reference)}, node_id="img")
    wf.add("IPAdapterLoader", {"ipadapter": "shapes-ipadapter"}, node_id="ipa")
    wf.add("CLIPVisionLoader", {"clip_vision": "shapes-clip-vision"}, node_id="vision")
    wf.add("IPAdapterApply", {"weight": weight}, {"unet": ("ckpt", "unet"), "ipadapter": ("ipa", "ipadapter"),
                                                  "clip_vision": ("vision", "clip_vision"), "image": ("img", "image")},
           node_id="apply")
    for nid in ("pos", "neg"):
        wf.add("TextEncoder", {"text": ""}, {"clip": ("ckpt", "clip")}, node_id=nid)
    wf.add("EmptyLatent", {"width": 64, "height": 64, "batch_size": 1}, node_id="empty")
    wf.add("UNetDenoise", {"seed": seed, "steps": steps, "cfg": 5.0, "sampler": "euler", "schedule": "default",
                           "denoise": 1.0},
           {"unet": ("apply", "unet"), "positive": ("pos", "conditioning"), "negative": ("neg", "conditioning"),
            "latent": ("empty", "latent")}, node_id="denoise")
    wf.add("VAEDecode", {}, {"vae": ("ckpt", "vae"), "latent": ("denoise", "latent")}, node_id="decode")
    return wf


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    from nodeforge import Engine
    from nodeforge.core.models import ModelPaths

    assert SHIPPED.is_file(), f"the bundled IP-Adapter {SHIPPED} is missing"
    return Engine(device="cpu", output_dir=tmp_path_factory.mktemp("out"), model_paths=ModelPaths(roots=[]))


def test_the_shipped_adapter_is_found_by_name_and_reads_the_demo_encoders_image_embedding():
    from nodeforge.core.models import ModelPaths
    from nodeforge.core.registry import builtin_module
    from nodeforge.core.types import FileKind

    paths = ModelPaths(roots=[])
    assert "shapes-ipadapter.safetensors" in paths.names(FileKind.IPADAPTER)
    adapter = builtin_module("ipadapter").read_ipadapter(paths.resolve(FileKind.IPADAPTER, "shapes-ipadapter"), "cpu")
    assert adapter.kind == "plain" and adapter.embed_dim == 64 and adapter.cross_dim == 64 and len(adapter.layers) == 4


def test_the_shipped_adapter_gives_the_same_latent_in_nodeforge_and_in_diffusers_pipeline(engine, tmp_path):
    from diffusers import StableDiffusionPipeline
    from PIL import Image
    from transformers import CLIPImageProcessorPil, CLIPVisionModelWithProjection

    reference, _ = _reference(tmp_path, 0)
    ours = engine.run(_graph(reference, 1.0), outputs=["denoise"]).outputs["denoise"]["latent"]["samples"]
    pipe = StableDiffusionPipeline.from_pretrained(
        str(BASE), image_encoder=CLIPVisionModelWithProjection.from_pretrained(str(ENCODER)),
        feature_extractor=CLIPImageProcessorPil.from_pretrained(str(ENCODER)), safety_checker=None,
        requires_safety_checker=False, local_files_only=True)
    pipe.set_progress_bar_config(disable=True)
    pipe.load_ip_adapter(str(SHIPPED.parent), subfolder="", weight_name=SHIPPED.name, image_encoder_folder=None)
    pipe.set_ip_adapter_scale(1.0)
    theirs = pipe("", negative_prompt="", ip_adapter_image=[Image.open(reference).convert("RGB")],
                  num_inference_steps=STEPS, guidance_scale=5.0, height=64, width=64,
                  generator=torch.Generator().manual_seed(SEED), output_type="latent").images
    torch.testing.assert_close(ours, theirs, atol=1e-4, rtol=1e-4)
    plain = engine.run(_graph(reference, 0.0), outputs=["denoise"]).outputs["denoise"]["latent"]["samples"]
    assert (ours - plain).abs().max() > 0.1


def test_with_an_empty_prompt_the_shipped_adapter_draws_the_reference_colours_far_more_often(engine, tmp_path):
    """Twelve held-out references (the card measures 48): the picture made with the adapter at weight 1 has
    the reference's shape colour and background far more often than the same noise without it."""
    from nodeforge.training.judge import judge

    hits = {(weight, part): 0 for weight in (0.0, 1.0) for part in ("colour", "background")}
    for i in range(12):
        reference, sample = _reference(tmp_path, i)
        for weight in (0.0, 1.0):
            result = engine.run(_graph(reference, weight, seed=SEED + i, steps=20), outputs=["decode"])
            image = result.outputs["decode"]["image"][0].numpy()
            verdict = judge((image * 255).round().astype(np.uint8))
            hits[weight, "colour"] += verdict.colour == sample.colour
            hits[weight, "background"] += verdict.background == sample.background
    assert hits[1.0, "colour"] >= 9 and hits[1.0, "background"] >= 8, hits
    assert hits[0.0, "colour"] <= 4 and hits[0.0, "background"] <= 4, hits
