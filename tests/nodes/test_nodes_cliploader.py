"""ComfyUI's CLIPLoader (one text encoder file) as TextEncoderLoader: an SD 1.x CLIP-L from
text_encoders/ gives the same prompts as the checkpoint's own CLIP; SD3 and Flux types are refused
at validate naming the loader that takes their encoders."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

DATA = Path(__file__).resolve().parents[1] / "interop" / "data"
FIXTURE = DATA / "comfy-cliploader-api.json"
CKPT = {"v1-5-pruned-emaonly.safetensors": "tiny-sd"}


@pytest.fixture(scope="module")
def clip_root(models_dir, tmp_path_factory) -> Path:
    """tiny-sd's text encoder as text_encoders/clip_l.safetensors (transformers' keys), its config and
    tokenizer in clip_l.config/ beside it (the tiny CLIP is not CLIP-L's shape)."""
    root = tmp_path_factory.mktemp("cliploader")
    folder, encoders = models_dir / "checkpoints" / "tiny-sd", root / "text_encoders"
    (encoders / "clip_l.config").mkdir(parents=True)
    shutil.copy(folder / "text_encoder" / "model.safetensors", encoders / "clip_l.safetensors")
    shutil.copytree(folder / "text_encoder", encoders / "clip_l.config" / "text_encoder")
    shutil.copytree(folder / "tokenizer", encoders / "clip_l.config" / "tokenizer")
    return root


@pytest.fixture(scope="module")
def clip_engine(make_engine, clip_root, tmp_path_factory):
    return make_engine(tmp_path_factory.mktemp("cliploaderout"), clip_root)


def _imported(engine, path: Path = FIXTURE):
    from nodeforge.interop import read_workflow

    imported = read_workflow(path, registry=engine.registry, model_map=CKPT, model_paths=engine.model_paths)
    assert all(n.type != "comfyui.Placeholder" for n in imported.workflow.nodes.values())
    return imported.workflow


def test_cliploader_imports_as_text_encoder_loader_and_gives_the_checkpoints_prompts(clip_engine):
    wf = _imported(clip_engine)
    loader = wf.nodes["11"]
    assert loader.type == "TextEncoderLoader"
    assert loader.params == {"text_encoder": "clip_l.safetensors", "type": "stable_diffusion"}
    assert clip_engine.validate(wf) == []
    wf.nodes["5"].params.update(width=64, height=64)
    wf.nodes["3"].params["steps"] = 2
    ours = clip_engine.run(wf, outputs=["3"]).outputs["3"]["latent"]["samples"]
    for nid in ("6", "7"):      # the same graph with the checkpoint's own CLIP
        wf.nodes[nid].inputs["clip"] = ("4", "clip")
    theirs = clip_engine.run(wf, outputs=["3"]).outputs["3"]["latent"]["samples"]
    assert ours.shape == (1, 4, 16, 16) and torch.equal(ours, theirs)


@pytest.mark.parametrize("kind, fix", [("sd3", "TextEncoderLoaderSD3"), ("flux", "DualTextEncoderLoader"),
                                       ("wan", "stable_diffusion")])
def test_other_types_are_refused_at_validate_naming_the_type_and_the_fix(clip_engine, tmp_path, kind, fix):
    prompt = json.loads(FIXTURE.read_text())
    prompt["11"]["inputs"]["type"] = kind
    (tmp_path / "prompt.json").write_text(json.dumps(prompt))
    problems = clip_engine.validate(_imported(clip_engine, tmp_path / "prompt.json"))
    assert [(p.node_id, p.field) for p in problems] == [("11", "type")]
    assert repr(kind) in problems[0].message and fix in problems[0].message and "\n" not in problems[0].message


def test_a_file_without_a_clip_is_refused_naming_it(clip_engine, clip_root):
    from safetensors.torch import save_file

    save_file({"encoder.block.0.layer.0.SelfAttention.q.weight": torch.zeros(2, 2)},
              str(clip_root / "text_encoders" / "t5-only.safetensors"))
    wf = _imported(clip_engine)
    wf.nodes["11"].params["text_encoder"] = "t5-only.safetensors"
    with pytest.raises(Exception) as info:
        clip_engine.run(wf, outputs=["6"])
    assert "t5-only.safetensors holds no CLIP text encoder" in str(info.value)


def test_export_gives_back_cliploader(clip_engine, registry):
    from nodeforge.interop import export_comfyui_api

    original = json.loads(FIXTURE.read_text())
    exported = export_comfyui_api(_imported(clip_engine), registry=registry)
    assert exported["11"] == {**original["11"], "_meta": exported["11"].get("_meta", original["11"]["_meta"])}
    assert exported["6"]["inputs"]["clip"] == ["11", 0]


def test_the_ui_form_imports_as_the_api_prompt(clip_engine):
    """ComfyUI's editor file (widgets_values clip_name, type, device; links by id) gives the same graph."""
    api, ui = _imported(clip_engine), _imported(clip_engine, DATA / "comfy-cliploader-0.4.json")
    assert {nid: (n.type, n.params, dict(n.inputs)) for nid, n in ui.nodes.items()} == \
        {nid: (n.type, n.params, dict(n.inputs)) for nid, n in api.nodes.items()}
    assert ui.nodes["11"].params == {"text_encoder": "clip_l.safetensors", "type": "stable_diffusion"}
