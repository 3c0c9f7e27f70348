"""The trainers check their inputs - the image folder, each image and caption, the base model, the
files they will write and the file --measure-only reads - before the base model loads, and refuse a
bad one in one `error: TRAINER: ...` line naming the file and the fix."""
import os
import struct
import zlib

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from PIL import Image  # noqa: E402
from safetensors.torch import save_file  # noqa: E402

from nodeforge.training import common, embedding, lora, upscaler  # noqa: E402


def _refused(main, argv) -> str:
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    message = str(exit_.value.code)
    assert message.startswith("error: ") and "\n" not in message
    return message


def _folder(tmp_path, n=2, size=64):
    folder = tmp_path / "imgs"
    folder.mkdir()
    for i in range(n):
        Image.fromarray(np.full((size, size, 3), 40 * i, np.uint8)).save(folder / f"{i}.png")
        (folder / f"{i}.txt").write_text(f"a red circle {i}\n", encoding="utf-8")
    return folder


def _train_lora(args):
    folder, tmp_path, *extra = args
    return lora.main([str(folder), "--base", "nodeforge-shapes", "--out", str(tmp_path / "x.safetensors"),
                      "--device", "cpu", *extra])


def _png_header_only(path, width, height):
    """A PNG whose header declares width x height (a decompression bomb's few bytes)."""
    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))


# -- the image folder ---------------------------------------------------------------------------------------
def test_a_missing_folder_a_file_and_a_folder_without_images_are_named(tmp_path, no_base_load):
    assert "train-lora: no folder" in _refused(_train_lora, (tmp_path / "nope", tmp_path))
    (tmp_path / "one.png").write_bytes(b"")
    assert "is a file, not a folder" in _refused(_train_lora, (tmp_path / "one.png", tmp_path))
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("x")
    assert "no images (.bmp, .jpeg, .jpg, .png, .webp) in" in _refused(_train_lora, (tmp_path / "empty", tmp_path))


@pytest.mark.parametrize("make,expected", [
    (lambda p: p.write_bytes(b"this is text, not a PNG"), "is not an image PIL can read"),
    (lambda p: p.write_bytes(_png_bytes()[:60]), "is damaged or truncated"),
    (lambda p: _png_header_only(p, 20000, 20000), "more than 89478485 pixels (a decompression bomb"),
    (lambda p: _png_header_only(p, 10000, 10000), "more than 89478485 pixels (a decompression bomb"),
    (lambda p: Image.new("RGB", (1, 1)).save(p), "is 1x1 px; training images need at least 8 px a side"),
    (lambda p: p.mkdir(), "is not a regular file"),
    (lambda p: os.mkfifo(p), "is not a regular file"),
], ids=["not-an-image", "truncated", "bomb-over-2x", "bomb-over-1x", "1x1", "folder", "fifo"])
def test_a_bad_image_is_named_before_the_base_loads(tmp_path, make, expected, no_base_load):
    folder = _folder(tmp_path)
    bad = folder / "1.png"
    bad.unlink()
    make(bad)
    message = _refused(_train_lora, (folder, tmp_path))
    assert message.startswith(f"error: train-lora: {bad}") and expected in message


def _png_bytes():
    import io

    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(buffer, "PNG")
    return buffer.getvalue()


def test_the_smallest_image_side_grows_with_the_resolution(tmp_path, no_base_load):
    folder = _folder(tmp_path, size=48)
    assert "is 48x48 px; training images need at least 64 px a side" in _refused(
        _train_lora, (folder, tmp_path, "--resolution", "512"))


@pytest.mark.parametrize("make,expected", [
    (lambda p: p.write_bytes("a r\u00e9d circle".encode("latin-1")), "is not UTF-8 text (byte 0xe9 at offset 3)"),
    (lambda p: p.mkdir(), "is not a regular file"),
    (lambda p: p.write_bytes(b"a " * 40000), "is 80000 bytes; a caption is a line of text"),
], ids=["latin-1", "folder", "huge"])
def test_a_bad_caption_is_named_before_the_base_loads(tmp_path, make, expected, no_base_load):
    folder = _folder(tmp_path)
    caption = folder / "0.txt"
    caption.unlink()
    make(caption)
    assert _refused(_train_lora, (folder, tmp_path)) == f"error: train-lora: caption {caption} {expected}" + (
        "; save it as UTF-8" if "UTF-8" in expected else "; make it a text file or remove it" if "regular" in expected
        else " (at most 65536 bytes)")


def test_images_without_captions_are_named_and_train_with_an_empty_one(tmp_path, monkeypatch, capsys):
    folder = _folder(tmp_path, n=4)
    (folder / "0.txt").unlink()
    (folder / "2.txt").unlink()
    (folder / "3.txt").write_text("\n")          # an empty caption is a caption, not a missing one
    seen = {}

    def load_base(base, device):
        seen["loaded"] = base
        raise common.TrainingInputError("stop here")

    monkeypatch.setattr(common, "load_base", load_base)
    images, captions = lora.load_folder(folder, 64)
    assert captions == ["", "a red circle 1", "", ""] and images.shape == (4, 64, 64, 3)
    assert "train-lora: warning: 2 of 4 images have no .txt caption and train with an empty one: 0.png, 2.png\n" \
        in capsys.readouterr().err
    assert _refused(_train_lora, (folder, tmp_path)) == "error: train-lora: stop here"
    assert seen["loaded"].name == "nodeforge-shapes"   # a warning, not a refusal: training goes on


def test_checked_images_decode_to_the_same_pixels_as_before(tmp_path):
    """The checks read each image once, exactly as training did before they existed."""
    folder = tmp_path / "imgs"
    data_images = np.random.default_rng(3).integers(0, 255, (2, 80, 96, 3), dtype=np.uint8)
    folder.mkdir()
    for i, image in enumerate(data_images):
        Image.fromarray(image).save(folder / f"{i}.png")
    images, _ = lora.load_folder(folder, 64)
    expected = Image.fromarray(data_images[1]).crop((8, 0, 88, 80)).resize((64, 64), Image.BICUBIC)
    assert np.array_equal(images[1], np.asarray(expected))


# -- the base model -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("module,name,argv", [
    (lora, "train-lora", ["imgs", "--out", "x.safetensors"]),
    (embedding, "train-embedding", ["--out", "e.safetensors"]),
    (upscaler, "train-upscaler", ["--out", "u.safetensors"]),
    (pytest.importorskip("nodeforge.training.latent_upscaler"), "train-latent-upscaler", ["--out", "r.safetensors"]),
    (pytest.importorskip("nodeforge.training.controlnet"), "train-controlnet", ["--out", "cn"]),
])
def test_each_trainer_names_itself_for_a_base_that_is_not_there(module, name, argv, tmp_path, monkeypatch,
                                                                no_base_load):
    monkeypatch.chdir(tmp_path)
    message = _refused(module.main, argv + ["--base", "no-such-model"])
    assert message.startswith(f"error: {name}: --base 'no-such-model' is neither a diffusers folder")
    assert "(bundled: nodeforge-shapes)" in message


def _checkpoint(path, keys):
    save_file({k: torch.zeros(2) for k in keys}, str(path))
    return path


@pytest.mark.parametrize("make,expected", [
    (lambda d: (d / "m.ckpt").write_bytes(b"x") and d / "m.ckpt", "a single-file checkpoint must be .safetensors"),
    (lambda d: (d / "m.safetensors").write_bytes(b"\x10\x00" * 8) and d / "m.safetensors",
     "is not a readable .safetensors checkpoint"),
    (lambda d: _checkpoint(d / "lora.safetensors", ["lora_unet_x.lora_down.weight"]),
     "holds no Stable Diffusion UNet ('model.diffusion_model.' keys); it may be a LoRA"),
    (lambda d: _checkpoint(d / "xl.safetensors", ["model.diffusion_model.x", "conditioner.embedders.1.model.y"]),
     "is an SDXL checkpoint (two text encoders); the trainers train SD 1.x and 2.x"),
], ids=["ckpt", "garbage", "lora", "sdxl"])
def test_a_single_file_base_that_cannot_train_is_refused_from_its_header(tmp_path, make, expected, no_base_load):
    folder = _folder(tmp_path)
    base = make(tmp_path)
    message = _refused(lora.main, [str(folder), "--base", str(base), "--out", str(tmp_path / "x.safetensors")])
    assert message.startswith(f"error: train-lora: --base {base}") and expected in message


def test_a_folder_base_must_be_a_complete_epsilon_prediction_model(tmp_path, no_base_load):
    import shutil

    from nodeforge.paths import builtin_dir

    folder = _folder(tmp_path)
    base = tmp_path / "base"
    shutil.copytree(builtin_dir("resources") / "models" / "nodeforge-shapes", base,
                    ignore=shutil.ignore_patterns("*.safetensors", "*.png"))
    config = base / "scheduler" / "scheduler_config.json"
    config.write_text(config.read_text().replace('"epsilon"', '"v_prediction"'))
    argv = [str(folder), "--base", str(base), "--out", str(tmp_path / "x.safetensors")]
    assert "predicts 'v_prediction'; the trainers train epsilon-prediction models" in _refused(lora.main, argv)
    shutil.rmtree(base / "unet")
    assert f"--base {base} is not a diffusers model folder: it has no 'unet'" in _refused(lora.main, argv)


def test_the_demo_trainers_refuse_a_single_file_base_saying_which_trainer_takes_one(tmp_path, no_base_load):
    base = _checkpoint(tmp_path / "sd.safetensors", ["model.diffusion_model.x"])
    message = _refused(embedding.main, ["--out", str(tmp_path / "e.safetensors"), "--base", str(base)])
    assert message == (f"error: train-embedding: --base {base} is a file; train-embedding trains on a diffusers "
                       "folder or a bundled model name (single-file checkpoints: train-lora)")


def test_a_single_file_sd1_checkpoint_trains_the_same_lora_as_its_diffusers_folder(tmp_path):
    """--base takes the single .safetensors files the README says load, read by CheckpointLoader's code."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "nodes"))
    import tiny_models as tm

    parts = tm.make_components(0)
    folder = tm.save_diffusers(parts, tmp_path / "tiny-sd")
    single = tm.save_single_file(parts, folder, tmp_path / "tiny-sd.safetensors", "sd1")
    images = _folder(tmp_path, n=2, size=32)
    outs = []
    for base in (folder, single):
        out = tmp_path / f"{base.name}.lora.safetensors"
        assert lora.main([str(images), "--base", str(base), "--out", str(out), "--steps", "2", "--batch", "2",
                          "--resolution", "32", "--device", "cpu", "--threads", "1"]) == 0
        outs.append(lora.load_kohya(out)[0])
    assert outs[0].keys() == outs[1].keys() and len(outs[0]) > 0
    for key in outs[0]:
        assert torch.equal(outs[0][key], outs[1][key]), key


# -- what the trainers write --------------------------------------------------------------------------------
def test_an_output_that_cannot_be_written_is_refused_before_training(tmp_path, no_base_load):
    folder = _folder(tmp_path)
    base = ["--base", "nodeforge-shapes"]
    assert f"--out {tmp_path} is a folder; give the LoRA (.safetensors) file to write" in _refused(
        lora.main, [str(folder), *base, "--out", str(tmp_path)])
    assert f"no folder {tmp_path / 'no'}; create it first" in _refused(
        lora.main, [str(folder), *base, "--out", str(tmp_path / "no" / "x.safetensors")])
    assert "train-upscaler: --out" in _refused(upscaler.main, ["--out", str(tmp_path)])
    assert "train-embedding: --json" in _refused(embedding.main, ["--out", str(tmp_path / "e.safetensors"),
                                                                  "--json", str(tmp_path / "no" / "n.json")])


def test_operating_system_errors_end_as_one_line(tmp_path):
    @common.guarded("train-test")
    def main(argv=None):
        raise OSError(28, "No space left on device", str(tmp_path / "x"))

    with pytest.raises(SystemExit, match=r"^error: train-test: No space left on device: .*x$"):
        main([])


# -- --measure-only -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("module,what", [(embedding, "embedding"), (upscaler, "upscaler")])
def test_measure_only_names_a_missing_or_hostile_file(module, what, tmp_path, no_base_load):
    name = module.__name__.rsplit(".", 1)[1]
    out = tmp_path / "m.safetensors"

    def refused():
        return _refused(module.main, ["--out", str(out), "--measure-only"])

    assert refused() == f"error: train-{name}: no file {out}; give the {what} to measure with --out"
    out.mkdir()
    assert f"{out} is not a regular file" in refused()
    out.rmdir()
    out.write_bytes(b"\xff" * 100)
    assert f"{out} is not a readable .safetensors {what}" in refused()
    save_file({"emb_params": torch.tensor([[1.0, float("nan")]]), "body.0.weight": torch.zeros(1)}, str(out))
    assert "holds NaN or infinite values" in refused()
    save_file({"something.else": torch.zeros(2)}, str(out))
    assert ("holds no 'emb_params' tensor" if what == "embedding" else "is not a Compact upscaler") in refused()


def test_measure_only_refuses_tensors_of_the_wrong_shape_before_building_a_model(tmp_path, no_base_load):
    out = tmp_path / "e.safetensors"
    save_file({"emb_params": torch.zeros(2, 768)}, str(out))
    assert "emb_params is [2, 768]; an embedding for nodeforge-shapes is [1 to 74 vectors, 64]" in _refused(
        embedding.main, ["--out", str(out), "--measure-only"])
    # A file claiming 100000 channels: refused from its shapes, never allocated (100000^2 x 9 weights).
    save_file({"body.0.weight": torch.zeros(100000, 3, 1, 1), "body.4.weight": torch.zeros(48, 8, 3, 3)}, str(out))
    assert "does not fit a 4x Compact upscaler of 100000 channels and 1 convolutions" in _refused(
        upscaler.main, ["--out", str(out), "--measure-only"])
    # The right keys with one tensor of the wrong shape.
    state = {k: torch.zeros(v.shape) for k, v in upscaler.compact(8, 1).state_dict().items()}
    state["body.2.weight"] = torch.zeros(8, 8, 1, 1)
    save_file(state, str(out))
    assert "does not fit a 4x Compact upscaler of 8 channels and 1 convolutions (e.g. body.2.weight)" in _refused(
        upscaler.main, ["--out", str(out), "--measure-only"])


def test_the_trainers_own_pixel_limit_holds_where_pil_would_only_warn(tmp_path, monkeypatch, no_base_load):
    """PIL refuses only past twice its limit; the trainers refuse past the limit itself."""
    monkeypatch.setattr(common, "MAX_PIXELS", 40 * 40 - 1)
    folder = _folder(tmp_path, size=40)
    assert f"{folder / '0.png'} is 40x40 px, more than 1599 pixels (a decompression bomb or a huge image)" in \
        _refused(_train_lora, (folder, tmp_path))
