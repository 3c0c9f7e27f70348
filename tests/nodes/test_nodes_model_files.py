"""Model files that would load but draw nothing: weights holding NaN or infinity, pickled or
truncated weights in diffusers folders. Each is one line naming the file, on the node's field."""
from __future__ import annotations

import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file

from nodeforge.core.errors import NodeExecutionError


def _spoil(state: dict[str, torch.Tensor], key_part: str, value: float) -> str:
    key = next(k for k in sorted(state) if key_part in k and state[k].is_floating_point())
    state[key] = state[key].clone()
    state[key].view(-1)[0] = value
    return key


def _error(engine, wf) -> NodeExecutionError:
    with pytest.raises(NodeExecutionError) as info:
        engine.run(wf)
    message = str(info.value)
    assert "\n" not in message and "Traceback" not in message
    return info.value


@pytest.mark.parametrize("key_part, value", [("lora_up", float("nan")), (".alpha", float("inf")),
                                             ("lora_te_", float("-inf"))])
def test_a_lora_with_nan_or_inf_weights_is_an_error_naming_the_file(engine, models_dir, make_txt2img, tmp_path,
                                                                    key_part, value):
    state = load_file(str(models_dir / "loras" / "kohya.safetensors"))
    key = _spoil(state, key_part, value)
    save_file(state, str(tmp_path / "diverged.safetensors"))
    error = _error(engine, make_txt2img(lora=[(str(tmp_path / "diverged.safetensors"), 1.0, 1.0)]))
    assert error.field == "lora"
    assert f"diverged.safetensors holds NaN or infinite weights ({key})" in str(error)


def test_a_single_file_checkpoint_with_nan_weights_is_an_error_naming_it(engine, models_dir, make_txt2img, tmp_path):
    state = load_file(str(models_dir / "checkpoints" / "tiny-sd-single.safetensors"))
    _spoil(state, "first_stage_model.decoder", float("nan"))   # the VAE part: a black image at the very end
    save_file(state, str(tmp_path / "nan-vae.safetensors"))
    error = _error(engine, make_txt2img(str(tmp_path / "nan-vae.safetensors")))
    assert error.field == "checkpoint" and "nan-vae.safetensors holds NaN or infinite weights" in str(error)


def _folder_copy(models_dir, tmp_path, name="copy"):
    folder = tmp_path / name
    shutil.copytree(models_dir / "checkpoints" / "tiny-sd", folder)
    return folder


def test_a_diffusers_folder_with_inf_in_its_unet_is_an_error_naming_the_part(engine, models_dir, make_txt2img,
                                                                              tmp_path):
    folder = _folder_copy(models_dir, tmp_path)
    [weights] = (folder / "unet").glob("*.safetensors")
    state = load_file(str(weights))
    _spoil(state, "conv_out", float("inf"))
    save_file(state, str(weights))
    error = _error(engine, make_txt2img(str(folder)))
    assert error.field == "checkpoint" and "copy/unet holds NaN or infinite weights (conv_out." in str(error)


def test_a_diffusers_folder_with_pickled_weights_is_refused_before_unpickling(engine, models_dir, make_txt2img,
                                                                              tmp_path, capfd, caplog):
    folder = _folder_copy(models_dir, tmp_path)
    [weights] = (folder / "unet").glob("*.safetensors")
    torch.save(load_file(str(weights)), folder / "unet" / "diffusion_pytorch_model.bin")
    weights.unlink()
    error = _error(engine, make_txt2img(str(folder)))
    assert error.field == "checkpoint"
    assert "copy/unet holds its weights only as pickled .bin files" in str(error)
    said = capfd.readouterr()
    assert "unsafe serialization" not in said.out + said.err + caplog.text


def test_a_diffusers_folder_with_a_truncated_file_is_one_line(engine, models_dir, make_txt2img, tmp_path):
    folder = _folder_copy(models_dir, tmp_path)
    [weights] = (folder / "unet").glob("*.safetensors")
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    error = _error(engine, make_txt2img(str(folder)))
    assert error.field == "checkpoint"
    assert str(error).startswith(f"node ckpt (CheckpointLoader), checkpoint: cannot read copy/unet/{weights.name}: "
                                 "it is not a complete .safetensors file (")
    assert str(error).endswith("the download stopped early or the file is damaged; download it again")


@pytest.mark.parametrize("part, spoil, said", [
    ("unet", lambda f: f.write_bytes(b""), "it is empty (0 bytes)"),
    ("text_encoder", lambda f: f.write_text("version https://git-lfs.github.com/spec/v1\noid sha256:0\nsize 9\n"),
     "it is a Git LFS pointer (63 bytes), not the weights"),
])
def test_a_diffusers_folder_with_an_empty_or_pointer_file_names_the_file(engine, models_dir, make_txt2img, tmp_path,
                                                                         part, spoil, said):
    folder = _folder_copy(models_dir, tmp_path)
    [weights] = (folder / part).glob("*.safetensors")
    spoil(weights)
    error = _error(engine, make_txt2img(str(folder)))
    assert error.field == "checkpoint" and f"cannot read copy/{part}/{weights.name}: {said}" in str(error)


def test_a_diffusers_folder_with_a_broken_config_is_one_line_without_library_punctuation(engine, models_dir,
                                                                                        make_txt2img, tmp_path):
    folder = _folder_copy(models_dir, tmp_path)
    (folder / "vae" / "config.json").write_text("[1, 2")
    message = str(_error(engine, make_txt2img(str(folder))))
    assert "cannot load copy/vae: " in message and ".;" not in message and message.endswith("incomplete or damaged")


def test_an_embedding_with_nan_vectors_is_an_error_naming_it(make_engine, make_txt2img, tmp_path):
    (tmp_path / "embeddings").mkdir()
    vectors = torch.randn(2, 32)
    vectors[1, 3] = float("nan")
    save_file({"emb_params": vectors}, str(tmp_path / "embeddings" / "broken.safetensors"))
    engine = make_engine(tmp_path / "out", tmp_path)
    error = _error(engine, make_txt2img(text="a red circle, embedding:broken"))
    assert error.field == "text" and "embedding broken.safetensors holds NaN or infinite weights" in str(error)


def test_an_embedding_with_more_vectors_than_a_prompt_window_holds_is_one_line(make_engine, make_txt2img, tmp_path):
    """CLIP reads 77 positions: BOS, 75 tokens, EOS. A 76-vector embedding would be cut across two
    windows encoded apart; 75 still fits."""
    (tmp_path / "embeddings").mkdir()
    save_file({"emb_params": torch.randn(76, 32) * 0.01}, str(tmp_path / "embeddings" / "huge.safetensors"))
    save_file({"emb_params": torch.randn(75, 32) * 0.01}, str(tmp_path / "embeddings" / "full.safetensors"))
    engine = make_engine(tmp_path / "out", tmp_path)
    error = _error(engine, make_txt2img(text="a red circle, embedding:huge"))
    assert error.field == "text"
    assert "embedding 'huge' has 76 vectors, more than the 75 a prompt window of the text encoder holds" in str(error)
    wf = make_txt2img(text="embedding:full")
    assert engine.run(wf, outputs=["pos"]).outputs["pos"]["conditioning"][0]["embeds"].shape[1] == 77
