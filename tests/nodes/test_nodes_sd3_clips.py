"""SD3 with its text encoders as separate files (TextEncoderLoaderSD3, ComfyUI's TripleCLIPLoader) beside a
checkpoint that holds only the transformer and the VAE, checked against StableDiffusion3Pipeline on
the same tiny random model (tests/nodes/tiny_sd3.py)."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

import tiny_sd3 as ts
from nodeforge.core.errors import NodeError
from tiny_models import shipped_txt2img

PROMPT = "a red circle on a blue background"


def _encoder_file(model, folder: Path, encoder: str, tokenizer: str, path: Path) -> None:
    from safetensors.torch import save_file

    save_file({k: v.clone().contiguous() for k, v in model.state_dict().items()}, str(path))
    config = path.with_name(path.stem + ".config")
    shutil.copytree(folder / tokenizer, config)
    shutil.copy(folder / encoder / "config.json", config / "config.json")


@pytest.fixture(scope="module")
def clips_dir(tmp_path_factory) -> Path:
    torch.set_num_threads(2)
    root = tmp_path_factory.mktemp("sd3clips")
    for sub in ("checkpoints", "text_encoders"):
        (root / sub).mkdir()
    parts = ts.make_sd3_components(0)
    folder = ts.save_sd3_folder(parts, root / "checkpoints" / "tiny-sd3")
    bare = ts.make_sd3_components(0, t5=False)     # the same transformer and VAE, no T5
    ts.save_sd3_single_file(bare, folder, root / "checkpoints" / "tiny-sd3-bare.safetensors", clips=False)
    for part, tok, name in (("text_encoder", "tokenizer", "clip_l"), ("text_encoder_2", "tokenizer_2", "clip_g"),
                            ("text_encoder_3", "tokenizer_3", "t5xxl_fp16")):
        _encoder_file(parts[part], folder, part, tok, root / "text_encoders" / f"{name}.safetensors")
    return root


@pytest.fixture(scope="module")
def clips_engine(make_engine, clips_dir, tmp_path_factory):
    return make_engine(tmp_path_factory.mktemp("sd3clipsout"), clips_dir)


def separate(clip_l="clip_l.safetensors", clip_g="clip_g.safetensors", t5xxl="t5xxl_fp16.safetensors"):
    wf = shipped_txt2img("tiny-sd3-bare.safetensors", seed=4, steps=3)
    wf.add("TextEncoderLoaderSD3", {"clip_l": clip_l, "clip_g": clip_g, "t5xxl": t5xxl}, node_id="clips")
    for node in ("2", "3"):
        wf.nodes[node].inputs["clip"] = ("clips", "clip")
    return wf


def test_separate_text_encoder_files_give_the_pipelines_latents(clips_engine, clips_dir):
    from diffusers import StableDiffusion3Pipeline

    ours = clips_engine.run(separate(), outputs=["5"]).outputs["5"]["latent"]["samples"]
    pipe = StableDiffusion3Pipeline.from_pretrained(str(clips_dir / "checkpoints" / "tiny-sd3"), local_files_only=True)
    pipe.set_progress_bar_config(disable=True)
    theirs = pipe(PROMPT, negative_prompt="", num_inference_steps=3, guidance_scale=5.0, height=32, width=32,
                  generator=torch.Generator().manual_seed(4), output_type="latent").images
    torch.testing.assert_close(ours, theirs, atol=1e-4, rtol=1e-4)


def test_the_loaded_encoders_hold_the_files_weights_and_read_t5_at_its_width(clips_dir):
    from nodes.families.sd3_clips import load_sd3_clips

    enc = clips_dir / "text_encoders"
    clip = load_sd3_clips({"clip_l": enc / "clip_l.safetensors", "clip_g": enc / "clip_g.safetensors",
                           "t5xxl": enc / "t5xxl_fp16.safetensors"}, "cpu")
    expected = ts.make_sd3_components(0)
    for ours, part in ((clip.text_encoder, "text_encoder"), (clip.text_encoder_2, "text_encoder_2"),
                       (clip.text_encoder_3, "text_encoder_3")):
        theirs = expected[part].state_dict()
        assert all(torch.equal(v, theirs[k]) for k, v in ours.state_dict().items())
    assert (clip.family, clip.context_width) == ("sd3", 32)


def test_the_checkpoints_own_clip_says_to_load_the_encoders(clips_engine):
    wf = separate()
    for node in ("2", "3"):
        wf.nodes[node].inputs["clip"] = ("1", "clip")
    with pytest.raises(Exception) as info:
        clips_engine.run(wf, outputs=["5"])
    message = str(info.value)
    assert "tiny-sd3-bare.safetensors holds no text encoders" in message and "TextEncoderLoaderSD3" in message


def test_a_t5_file_given_as_clip_g_is_named(clips_engine):
    with pytest.raises(Exception) as info:
        clips_engine.run(separate(clip_g="t5xxl_fp16.safetensors"), outputs=["5"])
    message = str(info.value)
    assert "clip_g" in message and "t5xxl_fp16.safetensors holds a T5 encoder, not CLIP-G" in message


def test_validate_names_a_missing_encoder_file(clips_engine):
    problems = {(p.node_id, p.field) for p in clips_engine.validate(separate(t5xxl="t5xxl_fp8.safetensors"))}
    assert problems == {("clips", "t5xxl")}


def test_a_truncated_encoder_file_names_the_file(clips_dir, tmp_path):
    from nodes.families.sd3_clips import load_sd3_clips

    enc = clips_dir / "text_encoders"
    cut = tmp_path / "clip_g.safetensors"
    data = (enc / "clip_g.safetensors").read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(NodeError) as info:
        load_sd3_clips({"clip_l": enc / "clip_l.safetensors", "clip_g": cut, "t5xxl": enc / "t5xxl_fp16.safetensors"},
                       "cpu")
    assert "clip_g.safetensors" in str(info.value) and "incomplete" in str(info.value)
    assert info.value.field == "clip_g"


# -- hostile files -------------------------------------------------------------------------------------------
def test_an_sd3_file_with_its_encoders_can_fill_each_slot(clips_dir, tmp_path):
    from nodes.families.sd3_clips import load_sd3_clips

    whole = ts.save_sd3_single_file(ts.make_sd3_components(0), clips_dir / "checkpoints" / "tiny-sd3",
                                    tmp_path / "all.safetensors")
    enc = clips_dir / "text_encoders"
    for slot, part in (("clip_l", "text_encoder"), ("clip_g", "text_encoder_2"), ("t5xxl", "text_encoder_3")):
        paths = {"clip_l": enc / "clip_l.safetensors", "clip_g": enc / "clip_g.safetensors",
                 "t5xxl": enc / "t5xxl_fp16.safetensors"}
        config = {"clip_l": "clip_l", "clip_g": "clip_g", "t5xxl": "t5xxl_fp16"}[slot]
        shutil.copytree(enc / f"{config}.config", tmp_path / "all.config", dirs_exist_ok=True)
        loaded = getattr(load_sd3_clips(dict(paths, **{slot: whole}), "cpu"), part).state_dict()
        expected = ts.make_sd3_components(0)[part].state_dict()
        assert all(torch.equal(v, expected[k]) for k, v in loaded.items()), slot
        shutil.rmtree(tmp_path / "all.config")


def test_a_whole_checkpoint_without_that_encoder_is_refused_for_the_slot(clips_dir, models_dir):
    from nodes.families.sd3_clips import load_sd3_clips

    enc = clips_dir / "text_encoders"
    with pytest.raises(NodeError) as info:
        load_sd3_clips({"clip_l": models_dir / "checkpoints" / "tiny-sd-single.safetensors",
                        "clip_g": enc / "clip_g.safetensors", "t5xxl": enc / "t5xxl_fp16.safetensors"}, "cpu")
    assert info.value.field == "clip_l"
    assert "tiny-sd-single.safetensors is a whole checkpoint without a separate CLIP-L" in str(info.value)


@pytest.mark.parametrize("name, says", [
    ("clip_l.safetensors", "is a CLIP text encoder alone, which CheckpointLoader cannot load: put it in "
                           "models/text_encoders and load it with TextEncoderLoaderSD3"),
    ("t5xxl_fp16.safetensors", "is a T5 text encoder alone"),
])
def test_a_text_encoder_given_as_a_checkpoint_says_which_loader_takes_it(clips_dir, name, says):
    from nodes.loading import load_checkpoint

    with pytest.raises(NodeError) as info:
        load_checkpoint(clips_dir / "text_encoders" / name, "cpu")
    assert str(info.value).startswith(name) and says in str(info.value) and "\n" not in str(info.value)


def test_a_transformer_of_an_unknown_family_names_the_file(tmp_path):
    from safetensors.torch import save_file

    from nodes.loading import load_checkpoint

    path = tmp_path / "pixart-sigma.safetensors"     # a DiT of a family NodeForge does not run
    save_file({"blocks.0.attn.qkv.weight": torch.zeros(6, 2), "x_embedder.proj.weight": torch.zeros(2, 2, 1, 1),
               "t_embedder.mlp.0.weight": torch.zeros(2, 2)}, str(path))
    with pytest.raises(NodeError) as info:
        load_checkpoint(path, "cpu")
    assert str(info.value).startswith("pixart-sigma.safetensors holds no model CheckpointLoader knows")


def test_a_lora_given_as_a_checkpoint_says_loraloader(models_dir):
    from nodes.loading import load_checkpoint

    with pytest.raises(NodeError) as info:
        load_checkpoint(models_dir / "loras" / "peft.safetensors", "cpu")
    assert "peft.safetensors is a LoRA" in str(info.value) and "LoRALoader" in str(info.value)


def test_a_single_files_t5_tokenizer_skips_an_empty_folder_and_says_where_to_put_one(tmp_path, monkeypatch):
    """Flux's and SD3's single files find T5's tokenizer the same way (nodes/families/flow.py):
    the config folder's or the one beside the file, an empty folder passed over; offline without
    one, one line that says which folder to put where."""
    from nodes.families import flow
    from nodes.families.flux_file import t5_tokenizer as flux_t5
    from nodes.families.sd3_file import _t5_tokenizer as sd3_t5

    model = tmp_path / "sd3_medium.safetensors"
    cfg = tmp_path / "sd3_medium.config"
    (cfg / "tokenizer_3").mkdir(parents=True)                     # empty: not a tokenizer
    ts.make_t5_tokenizer().save_pretrained(str(tmp_path / "tokenizer_3"))
    assert sd3_t5(model, cfg)("a red circle")["input_ids"] == ts.make_t5_tokenizer()("a red circle")["input_ids"]
    monkeypatch.setattr(flow, "T5_TOKENIZER_HUB", "nodeforge-tests/no-such-tokenizer")
    with pytest.raises(NodeError) as info:
        flux_t5(tmp_path / "flux1-dev.safetensors", cfg, "clip_name2")
    assert str(info.value) == ("flux1-dev.safetensors: no T5 tokenizer was found offline; put FLUX.1's tokenizer_2 "
                               "folder (from its diffusers repository) beside the file or in flux1-dev.config/, or "
                               "download 'nodeforge-tests/no-such-tokenizer' into the Hugging Face cache once")
    assert info.value.field == "clip_name2"
