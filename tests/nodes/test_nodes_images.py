"""Images in and out: SaveImage numbering and embedded workflow, LoadImage orientation and alpha."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

import nodeforge
from nodeforge import Workflow
from nodeforge.core.png_text import PNG_PARAMETERS_KEY, PNG_WORKFLOW_KEY


def test_save_image_numbers_files_and_never_overwrites(fresh_engine, make_txt2img):
    out = fresh_engine.output_dir
    out.mkdir(parents=True)
    (out / "test_00003.png").write_bytes(b"keep me")
    wf = make_txt2img(save=True, text="a red circle, ünïcödé ☆")
    first = fresh_engine.run(wf).outputs["save"]
    second = fresh_engine.run(wf).outputs["save"]   # SaveImage is not cached: it writes again
    assert [p.split("/")[-1] for p in first + second] == ["test_00004.png", "test_00005.png"]
    assert (out / "test_00003.png").read_bytes() == b"keep me"


def test_saved_png_restores_its_workflow_and_says_how_it_was_made(fresh_engine, make_txt2img):
    wf = make_txt2img(save=True, text="a (red:1.2) circle ☆", seed=1234, steps=2, cfg=4.5)
    path = fresh_engine.run(wf).outputs["save"][0]
    restored = nodeforge.load_workflow(path)
    assert restored.nodes["pos"].params["text"] == "a (red:1.2) circle ☆"
    assert restored.to_json()["nodes"] == wf.to_json()["nodes"]
    text = Image.open(path).text
    assert PNG_WORKFLOW_KEY in text
    params = text[PNG_PARAMETERS_KEY]
    assert params.startswith("a (red:1.2) circle ☆\n")
    assert "Steps: 2, Sampler: Euler, CFG scale: 4.5, Seed: 1234, Size: 32x32, Model: tiny-sd" in params
    assert "Negative prompt" not in params   # the negative prompt is empty


def test_a_pngs_embedded_workflow_run_in_a_fresh_engine_gives_identical_pixels(fresh_engine, make_txt2img, tmp_path):
    from nodeforge import Engine

    path = fresh_engine.run(make_txt2img(save=True, text="a blue square", seed=77, steps=3)).outputs["save"][0]
    other = Engine(device="cpu", output_dir=tmp_path / "again", registry=fresh_engine.registry,
                   model_paths=fresh_engine.model_paths)
    again = other.run(nodeforge.load_workflow(path)).outputs["save"][0]
    assert again != path
    first, second = np.asarray(Image.open(path)), np.asarray(Image.open(again))
    assert first.shape == (32, 32, 3) and first.std() > 0
    assert np.array_equal(first, second)


def test_each_image_of_a_batch_names_its_own_seed(fresh_engine, make_txt2img):
    # Item i of a batch is drawn from seed + i; the PNG must say so, or "reuse seed" gives another image.
    wf = make_txt2img(save=True, seed=100, steps=1, batch_size=4)
    paths = fresh_engine.run(wf).outputs["save"]
    assert len(paths) == 4
    seeds = [Image.open(p).text[PNG_PARAMETERS_KEY].split("Seed: ")[1].split(",")[0] for p in paths]
    assert seeds == ["100", "101", "102", "103"]


def test_save_image_rejects_a_prefix_outside_the_output_folder(fresh_engine, make_txt2img):
    wf = make_txt2img(save=True)
    wf.nodes["save"].params["prefix"] = "../escape"
    with pytest.raises(nodeforge.ValidationError) as info:
        fresh_engine.run(wf)
    assert info.value.field == "prefix"


def test_preview_writes_files_only_when_asked(fresh_engine, make_txt2img):
    images = fresh_engine.run(make_txt2img()).outputs["preview"]
    assert isinstance(images[0], Image.Image) and images[0].size == (32, 32)
    assert not fresh_engine.output_dir.exists() or not list(fresh_engine.output_dir.glob("*.png"))
    fresh_engine.settings["previews"] = True
    fresh_engine.cache.clear()
    fresh_engine.run(make_txt2img())
    assert len(list(fresh_engine.output_dir.glob("preview_*.png"))) == 1


def _load(engine, path):
    wf = Workflow()
    wf.add("LoadImage", {"path": str(path)}, node_id="load")
    wf.add("Preview", {}, {"image": ("load", "image")}, node_id="preview")
    return engine.run(wf, outputs=["load"]).outputs["load"]


def test_load_image_applies_exif_orientation(fresh_engine, tmp_path):
    pixels = np.zeros((20, 40, 3), np.uint8)
    pixels[:, :20] = (255, 0, 0)   # left half red
    img = Image.fromarray(pixels)
    exif = Image.Exif()
    exif[0x0112] = 6               # rotate 90 degrees clockwise to display
    img.save(tmp_path / "rotated.jpg", exif=exif, quality=95)
    out = _load(fresh_engine, tmp_path / "rotated.jpg")
    image = out["image"]
    assert image.shape == (1, 40, 20, 3)
    assert image[0, 5, 10, 0] > 0.8 and image[0, 35, 10, 0] < 0.2   # red on top after rotation
    assert torch.equal(out["mask"], torch.zeros(1, 40, 20))


def test_load_image_alpha_becomes_a_repaint_mask(fresh_engine, tmp_path):
    rgba = np.full((16, 16, 4), 255, np.uint8)
    rgba[:8, :, 3] = 0
    Image.fromarray(rgba, "RGBA").save(tmp_path / "alpha.png")
    out = _load(fresh_engine, tmp_path / "alpha.png")
    assert out["image"].shape == (1, 16, 16, 3) and out["mask"].shape == (1, 16, 16)
    assert torch.all(out["mask"][0, :8] == 1) and torch.all(out["mask"][0, 8:] == 0)


def _cut_short(path):
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(path)
    path.write_bytes(path.read_bytes()[:2000])


@pytest.mark.parametrize("name, make, message", [
    ("bad.png", lambda p: p.write_text("not an image"),
     "bad.png is not an image NodeForge can read (PNG, JPEG, WebP, BMP, TIFF or GIF); the file is damaged or of "
     "another kind: choose an image file"),
    ("empty.png", lambda p: p.write_bytes(b""),
     "empty.png is empty (0 bytes): the copy or download did not finish; copy it again or choose another image"),
    ("cut.png", _cut_short, "cut.png is cut short (its image data ends early): copy or download it again"),
])
def test_load_image_of_a_non_image_is_a_clear_error(fresh_engine, tmp_path, name, make, message):
    make(tmp_path / name)
    with pytest.raises(nodeforge.NodeExecutionError) as info:
        _load(fresh_engine, tmp_path / name)
    assert info.value.field == "path" and str(info.value) == f"node load (LoadImage), path: {message}"


def test_a_16_bit_greyscale_image_keeps_its_range(fresh_engine, tmp_path):
    # Pillow opens a 16-bit PNG (a depth map) as mode I;16; convert("RGB") would make it all white
    ramp = np.linspace(0, 65535, 32 * 32).reshape(32, 32).astype(np.uint16)
    Image.fromarray(ramp).save(tmp_path / "depth16.png")
    image = _load(fresh_engine, tmp_path / "depth16.png")["image"]
    assert image.shape == (1, 32, 32, 3)
    assert image[0, 0, 0, 0] == 0 and image[0, -1, -1, 0] == 1 and abs(float(image.mean()) - 0.5) < 0.01


def test_tiled_decode_matches_full_decode(engine, make_txt2img):
    from nodeforge.core.registry import builtin_module

    vae_mod = builtin_module("vae")
    vae = engine.run(make_txt2img(), outputs=["ckpt"]).outputs["ckpt"]["vae"]
    latents = torch.randn(1, 4, 24, 40, generator=torch.Generator().manual_seed(0))
    full = vae_mod.decode(vae, latents, tiled=False)
    with torch.inference_mode():
        tiled = vae_mod.decode_tiled(vae, latents, tile=16, overlap=6)
    tiled = (tiled / 2 + 0.5).clamp(0, 1).permute(0, 2, 3, 1)
    assert tiled.shape == full.shape == (1, 96, 160, 3)
    assert (tiled - full).abs().mean() < 0.05


def test_concurrent_savers_get_distinct_numbers(tmp_path):
    import threading

    from nodeforge.core.registry import builtin_module

    from nodeforge.core.files import write_new_file

    images = builtin_module("images")
    paths, lock = [], threading.Lock()

    def save():
        path = write_new_file(images.free_png_names(tmp_path, "race"), lambda handle: handle.write(b"x"))
        with lock:
            paths.append(path.name)

    threads = [threading.Thread(target=save) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(paths)) == 8 and all(p.startswith("race_") for p in paths)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(paths), "no temporary file is left"


def test_tiled_encode_matches_full_encode(engine, make_txt2img):
    from nodeforge.core.registry import builtin_module

    vae_mod = builtin_module("vae")
    vae = engine.run(make_txt2img(), outputs=["ckpt"]).outputs["ckpt"]["vae"]
    image = torch.rand(1, 96, 160, 3, generator=torch.Generator().manual_seed(0))
    pixels = image.permute(0, 3, 1, 2) * 2 - 1
    with torch.inference_mode():
        full = vae_mod._encode(vae, pixels)
        tiled = vae_mod.tiled(lambda p: vae_mod._encode(vae, p), pixels, 64, 24, 1 / 4, 4)
    assert tiled.shape == full.shape == (1, 4, 24, 40)
    assert (tiled - full).abs().mean() < 0.1 * full.abs().mean()


def test_large_latents_decode_in_tiles_automatically(engine, make_txt2img, monkeypatch):
    from nodeforge.core.registry import builtin_module

    vae_mod = builtin_module("vae")
    vae = engine.run(make_txt2img(), outputs=["ckpt"]).outputs["ckpt"]["vae"]
    calls = []
    original = vae_mod._decode
    monkeypatch.setattr(vae_mod, "_decode", lambda v, z: calls.append(z.shape[-1]) or original(v, z))
    monkeypatch.setattr(vae_mod, "TILE_ABOVE", 16 * 16)
    monkeypatch.setattr(vae_mod, "TILE", 16)
    monkeypatch.setattr(vae_mod, "OVERLAP", 4)
    image = vae_mod.decode(vae, torch.randn(1, 4, 32, 32))
    assert image.shape == (1, 128, 128, 3) and len(calls) == 9 and max(calls) == 16
    calls.clear()
    vae_mod.decode(vae, torch.randn(1, 4, 8, 8))
    assert calls == [8]


def test_large_images_encode_in_tiles_automatically(engine, make_txt2img, monkeypatch):
    from nodeforge.core.registry import builtin_module

    vae_mod = builtin_module("vae")
    vae = engine.run(make_txt2img(), outputs=["ckpt"]).outputs["ckpt"]["vae"]
    calls = []
    original = vae_mod._encode
    monkeypatch.setattr(vae_mod, "_encode", lambda v, p: calls.append(p.shape[-1]) or original(v, p))
    monkeypatch.setattr(vae_mod, "TILE_ABOVE", 16 * 16)
    monkeypatch.setattr(vae_mod, "TILE", 16)
    monkeypatch.setattr(vae_mod, "OVERLAP", 4)
    image = torch.rand(1, 128, 128, 3, generator=torch.Generator().manual_seed(0))
    latents = vae_mod.encode(vae, image)   # 32x32 latent pixels, over the (lowered) threshold: in tiles
    assert latents.shape == (1, 4, 32, 32) and len(calls) == 9 and max(calls) == 16 * 4
    calls.clear()
    whole = vae_mod.encode(vae, image, tiles=False)   # a caller that needs one piece (Qwen-Image-Edit's references)
    assert calls == [128] and (latents - whole).abs().mean() < 0.1 * whole.abs().mean()


def _png_header_only(path, width, height):
    """A PNG that claims width x height (a bomb's header: the size is known before decoding)."""
    import struct
    import zlib

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)   # 8-bit greyscale
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
                     + chunk(b"IEND", b""))


@pytest.mark.parametrize("side", [12000, 20000])   # under and over twice Pillow's own limit
def test_load_image_over_the_pixel_limit_is_refused_naming_the_limit_and_setting(fresh_engine, tmp_path, side):
    import warnings

    _png_header_only(tmp_path / "huge.png", side, side)
    with warnings.catch_warnings():
        warnings.simplefilter("error")   # no raw DecompressionBombWarning either
        with pytest.raises(nodeforge.NodeExecutionError) as info:
            _load(fresh_engine, tmp_path / "huge.png")
    message = str(info.value)
    assert info.value.field == "path"
    assert "67,108,864 pixels" in message and "max_image_pixels" in message and "NODEFORGE_MAX_IMAGE_PIXELS" in message
    if side == 12000:
        assert "12000x12000" in message


def test_the_pixel_limit_is_a_setting(fresh_engine, tmp_path):
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(tmp_path / "small.png")
    fresh_engine.settings["max_image_pixels"] = 255
    with pytest.raises(nodeforge.NodeExecutionError) as info:
        _load(fresh_engine, tmp_path / "small.png")
    assert "16x16 pixels, over the limit of 255 pixels" in str(info.value)
    fresh_engine.settings["max_image_pixels"] = 256
    assert _load(fresh_engine, tmp_path / "small.png")["image"].shape == (1, 16, 16, 3)


def test_png_parameters_name_the_loras_negative_schedule_and_strength_in_a1111_form(registry, make_txt2img):
    from nodeforge.core.metadata import generation_info
    from nodeforge.core.registry import builtin_module

    wf = make_txt2img(save=True, text="a red circle", seed=9, sampler="dpmpp_2m", schedule="karras",
                      lora=[("kohya.safetensors", 0.8, 1.0), ("kohya-b", 0.5, 0.25)])
    wf.nodes["neg"].params["text"] = "blurry"
    wf.nodes["denoise"].params["denoise"] = 0.75
    wf.nodes["ckpt"].params["checkpoint"] = "sd/dream.safetensors"
    text = builtin_module("images").a1111_parameters(generation_info(wf, registry, "save", index=1), (32, 32))
    assert text == ("a red circle <lora:kohya:0.8> <lora:kohya-b:0.5>\nNegative prompt: blurry\n"
                    "Steps: 3, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 5, Seed: 10, Size: 32x32, "
                    "Model: dream, Denoising strength: 0.75")


def test_a_seed_param_not_named_seed_is_in_the_png_parameters(registry, tmp_path):
    # A third-party node whose seed and prompt have other names: the roles alone make them metadata.
    from nodeforge import Engine
    from nodeforge.core.registry import Registry
    from nodeforge.core.spec import NodeSpec, Output, Param
    from nodeforge.core.types import ParamRole

    def speckle(ctx, noise_seed, caption):
        return {"image": torch.rand(2, 8, 8, 3, generator=torch.Generator().manual_seed(noise_seed))}

    spec = NodeSpec("Speckle", "test", speckle, outputs=(Output("image", "IMAGE"),),
                    params=(Param.int("noise_seed", 0, min=0, max=2 ** 32 - 1, role=ParamRole.SEED),
                            Param.string("caption", "", multiline=True, role=ParamRole.PROMPT)))
    engine = Engine(device="cpu", output_dir=tmp_path, registry=Registry([*registry, spec]))
    wf = Workflow()
    wf.add("Speckle", {"noise_seed": 77, "caption": "grey speckles"}, node_id="noise")
    wf.add("SaveImage", {"prefix": "speckle"}, {"image": ("noise", "image")}, node_id="save")
    paths = engine.run(wf).outputs["save"]
    texts = [Image.open(p).text[PNG_PARAMETERS_KEY] for p in paths]
    assert texts == ["grey speckles\nSeed: 77, Size: 8x8", "grey speckles\nSeed: 78, Size: 8x8"]
