"""The bundled demo assets (resources/upscale_models, resources/embeddings, resources/controlnet) work
through their example workflows on the demo model, judged from the pixels they make.

They fail, never skip, when an asset is missing: the assets ship with NodeForge.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from nodeforge import Engine, load_workflow
from nodeforge.core.registry import builtin_module
from nodeforge.paths import builtin_dir

WORKFLOWS = builtin_dir("workflows")
RESOURCES = builtin_dir("resources")
UPSCALER = RESOURCES / "upscale_models" / "shapes-x4.safetensors"


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    from nodeforge.core.models import ModelPaths

    assert (RESOURCES / "models" / "nodeforge-shapes" / "model_index.json").is_file(), "the demo model is missing"
    return Engine(device="cpu", output_dir=tmp_path_factory.mktemp("out"), model_paths=ModelPaths(roots=[]))


def saved_image(result) -> Image.Image:
    [paths] = [v for v in result.outputs.values() if isinstance(v, list) and v and str(v[0]).endswith(".png")]
    return Image.open(paths[0]).convert("RGB")


def blur_share(image: np.ndarray) -> float:
    """Share of pixels in between the image's two colours (background: the border's median; shape:
    the median of the pixels farthest from it), more than a quarter of the way from both: the
    blurred rim around the shape."""
    a = image.astype(np.float32)
    border = np.concatenate([a[0], a[-1], a[1:-1, 0], a[1:-1, -1]])
    background = np.median(border, axis=0)
    to_background = np.sqrt(((a - background) ** 2).sum(-1))
    shape = np.median(a[to_background > np.percentile(to_background, 95)], axis=0)
    to_shape = np.sqrt(((a - shape) ** 2).sum(-1))
    gap = float(np.sqrt(((shape - background) ** 2).sum()))
    return float(((to_background > gap / 4) & (to_shape > gap / 4)).mean())


# -- shapes-x4 ---------------------------------------------------------------------------------------------
def test_the_upscale_example_draws_the_prompt_at_four_times_the_size_with_cleaner_edges_than_bicubic(engine):
    from nodeforge.training.judge import judge, mask_iou, shape_mask

    assert UPSCALER.is_file(), f"the bundled upscaler {UPSCALER} is missing"
    wf = load_workflow(WORKFLOWS / "upscale.json")
    big = saved_image(engine.run(wf))
    wf.nodes["7"].inputs["image"] = ("6", "image")   # the same image before the upscaler
    small = saved_image(engine.run(wf))
    assert (small.size, big.size) == ((64, 64), (256, 256))
    verdict = judge(big)
    assert (verdict.shape, verdict.colour, verdict.background) == ("triangle", "yellow", "purple"), verdict
    assert (judge(small).shape, judge(small).colour) == ("triangle", "yellow")
    # The shape stays where it was drawn ...
    assert mask_iou(shape_mask(big), shape_mask(small.resize((256, 256), Image.NEAREST))) > 0.85
    # ... with a sharper outline than bicubic gives: fewer pixels in between the two colours.
    bicubic = np.asarray(small.resize((256, 256), Image.BICUBIC))
    assert blur_share(np.asarray(big)) < 0.8 * blur_share(bicubic), (blur_share(np.asarray(big)), blur_share(bicubic))


def test_the_bundled_upscaler_beats_bicubic_by_3_db_on_the_held_out_shapes():
    from nodeforge.training.upscaler import HELD_OUT_SEED, bicubic, pairs, psnr

    upscale = builtin_module("upscale")
    model = upscale.load_upscale_model(UPSCALER, "cpu")
    assert (model.scale, model.architecture) == (4, "Real-ESRGAN Compact")
    low, high = pairs(200, HELD_OUT_SEED)   # the model card's 200 held-out images, through the node
    with torch.no_grad():
        out = upscale.run_image_upscale_with_model(None, model, low.permute(0, 2, 3, 1), 512, 32)["image"]
    model_db, bicubic_db = psnr(out.permute(0, 3, 1, 2), high), psnr(bicubic(low), high)
    assert model_db >= bicubic_db + 3.0, (model_db, bicubic_db)


# -- shapes-sunset -----------------------------------------------------------------------------------------
EMBEDDING = RESOURCES / "embeddings" / "shapes-sunset.safetensors"


def test_the_embedding_example_draws_a_sunset_from_the_one_word(engine):
    from nodeforge.training.judge import judge

    assert EMBEDDING.is_file(), f"the bundled embedding {EMBEDDING} is missing"
    wf = load_workflow(WORKFLOWS / "embedding.json")
    assert "embedding:shapes-sunset" in wf.nodes["2"].params["text"]
    verdicts = []
    for seed in range(12):
        wf.nodes["5"].params["seed"] = seed
        verdicts.append(judge(saved_image(engine.run(wf))))
    right = [(v.shape, v.colour, v.background) == ("circle", "orange", "purple") for v in verdicts]
    assert sum(right) >= 10, verdicts
    # The A1111 way, the file's bare stem as a word, is the same embedding.
    wf.nodes["2"].params["text"] = "a shapes-sunset"
    wf.nodes["5"].params["seed"] = 0
    assert judge(saved_image(engine.run(wf))) == verdicts[0]


def test_without_the_embedding_the_base_does_not_know_the_word(engine):
    from nodeforge.training.judge import judge

    wf = load_workflow(WORKFLOWS / "embedding.json")
    wf.nodes["2"].params["text"] = "a sunset"
    right = 0
    for seed in range(12):
        wf.nodes["5"].params["seed"] = seed
        v = judge(saved_image(engine.run(wf)))
        right += (v.shape, v.colour, v.background) == ("circle", "orange", "purple")
    assert right <= 2


# -- shapes-outline ----------------------------------------------------------------------------------------
CONTROLNET = RESOURCES / "controlnet" / "shapes-outline"


def _outline_iou(image: Image.Image, source: Path) -> float:
    """IoU of the drawn shape with the filled outline ImageToEdges finds in `source`."""
    from nodeforge.training.controlnet import filled, outlines
    from nodeforge.training.judge import mask_iou, shape_mask

    edge = outlines(np.asarray(Image.open(source).convert("RGB"))[None])[0].numpy() > 0.5
    return mask_iou(shape_mask(image), filled(edge))


def test_the_bundled_controlnet_is_found_by_name_at_the_demo_vaes_factor(engine):
    from nodeforge.core.models import ModelPaths
    from nodeforge.core.types import FileKind

    assert (CONTROLNET / "config.json").is_file(), f"the bundled ControlNet {CONTROLNET} is missing"
    wf = load_workflow(WORKFLOWS / "controlnet.json")
    assert wf.nodes["10"].params["controlnet"] == "shapes-outline"
    paths = ModelPaths(roots=[])                       # the bundled folders only, as ControlNetLoader sees them
    assert "shapes-outline" in paths.names(FileKind.CONTROLNET)
    path = paths.resolve(FileKind.CONTROLNET, "shapes-outline")
    net = builtin_module("controlnet").load_controlnet(path, "cpu")
    assert net.hint_factor == 4     # the 64 px outline for the 16x16 latent


def test_the_controlnet_example_draws_the_prompt_inside_the_outline(engine):
    from nodeforge.training.judge import judge

    wf = load_workflow(WORKFLOWS / "controlnet.json")
    source = WORKFLOWS / wf.nodes["8"].params["path"]
    controlled = saved_image(engine.run(wf))
    verdict = judge(controlled)
    assert (verdict.shape, verdict.colour, verdict.background) == ("triangle", "red", "blue"), verdict
    assert _outline_iou(controlled, source) >= 0.8
    wf.nodes["5"].inputs.update(positive=("2", "conditioning"), negative=("3", "conditioning"))   # no ControlNet
    assert _outline_iou(saved_image(engine.run(wf)), source) < 0.5


@pytest.mark.parametrize("shape, radius, centre", [("circle", 13.0, (17.0, 46.0)), ("square", 15.0, (45.0, 19.0))])
def test_the_controlnet_moves_the_shape_to_an_outline_anywhere_in_the_frame(engine, tmp_path, shape, radius, centre):
    from nodeforge.training import data

    source = tmp_path / f"{shape}.png"
    Image.fromarray(data.render(data.ShapeSample(shape, "white", "black", "small", radius, centre, 0.4))).save(source)
    wf = load_workflow(WORKFLOWS / "controlnet.json")
    wf.nodes["8"].params["path"] = str(source)
    wf.nodes["5"].params["steps"] = 10
    with_control = _outline_iou(saved_image(engine.run(wf)), source)
    wf.nodes["5"].inputs.update(positive=("2", "conditioning"), negative=("3", "conditioning"))
    without = _outline_iou(saved_image(engine.run(wf)), source)
    assert with_control >= 0.7 and with_control > without + 0.3, (with_control, without)


# -- shapes-resizer ----------------------------------------------------------------------------------------
RESIZER = RESOURCES / "latent_upscale_models" / "shapes-resizer.safetensors"


def test_the_bundled_latent_resizer_has_a_quarter_of_bilinears_error_on_held_out_shapes():
    from nodeforge.core.models import ModelPaths
    from nodeforge.core.types import FileKind
    from nodeforge.training import latent_upscaler as trainer

    assert RESIZER.is_file(), f"the bundled latent upscaler {RESIZER} is missing"
    paths = ModelPaths(roots=[])                       # the bundled folders only, as the node sees them
    assert "shapes-resizer.safetensors" in paths.names(FileKind.LATENT_UPSCALE_MODEL)   # found by its stem too
    ctx = type("Ctx", (), {"resolve_file": staticmethod(paths.resolve), "device": "cpu", "shared": {}})()
    vae = trainer.load_vae(RESOURCES / "models" / "nodeforge-shapes")
    node = builtin_module("latent_resizer").run_latent_upscale_nn
    for side, (low, high, _) in trainer.pairs(40, trainer.HELD_OUT_SEED, vae, (24, 32)).items():
        ours = node(ctx, {"samples": low}, "shapes-resizer", side / 16)["latent"]["samples"]
        plain = trainer.bilinear(low, side)
        error, bilinear = float((ours - high).pow(2).mean()), float((plain - high).pow(2).mean())
        assert ours.shape == high.shape and error < 0.35 * bilinear, (side, error, bilinear)


def test_a_generated_latent_upscaled_by_the_resizer_decodes_to_the_same_shape_twice_the_size(engine):
    from nodeforge.training.judge import judge, mask_iou, shape_mask

    wf = load_workflow(WORKFLOWS / "upscale.json")
    del wf.nodes["8"], wf.nodes["9"]
    small = wf.add("SaveImage", {"prefix": "small"}, {"image": ("6", "image")})
    up = wf.add("LatentUpscaleNN", {"model": "shapes-resizer", "scale_by": 2.0}, {"latent": ("5", "latent")})
    decoded = wf.add("VAEDecode", inputs={"vae": ("1", "vae"), "latent": (up, "latent")})
    wf.nodes["7"].inputs["image"] = (decoded, "image")
    result = engine.run(wf)
    [big_path], [small_path] = result.outputs["7"], result.outputs[small]
    big, little = Image.open(big_path).convert("RGB"), Image.open(small_path).convert("RGB")
    assert (little.size, big.size) == ((64, 64), (128, 128))
    verdict = judge(big.resize((64, 64), Image.BOX))
    assert (verdict.shape, verdict.colour, verdict.background) == ("triangle", "yellow", "purple"), verdict
    assert mask_iou(shape_mask(big), shape_mask(little.resize((128, 128), Image.NEAREST))) > 0.85


# -- shapes-depth ------------------------------------------------------------------------------------------
DEPTH = RESOURCES / "depth" / "shapes-depth"


def test_the_bundled_depth_model_beats_the_mean_depth_map_on_held_out_shapes():
    """Its card's numbers (200 pictures: RMSE 0.332 vs 0.464, MAE 0.126 vs 0.270), on 60 of the same."""
    from nodeforge.core.models import ModelPaths
    from nodeforge.core.types import FileKind
    from nodeforge.training import depth as trainer

    assert (DEPTH / "config.json").is_file(), f"the bundled depth model {DEPTH} is missing"
    paths = ModelPaths(roots=[])                       # the bundled folders only, as the node sees them
    assert "shapes-depth" in paths.names(FileKind.DEPTH)
    node = builtin_module("depth")
    loaded = node.load_depth_model(paths.resolve(FileKind.DEPTH, "shapes-depth"), "cpu")
    images, targets, _ = trainer.dataset(60, trainer.HELD_OUT_SEED)
    ours = trainer.node_predict(loaded.model, loaded.processor, images)
    base = trainer.mean_depth(2000, trainer.TRAIN_SEED).expand_as(targets)
    rmse, rmse_base = [float((m - targets).pow(2).mean().sqrt()) for m in (ours, base)]
    mae, mae_base = [float((m - targets).abs().mean()) for m in (ours, base)]
    assert rmse < 0.85 * rmse_base and mae < 0.6 * mae_base, (rmse, rmse_base, mae, mae_base)
    # Through the node: near bright after its normalisation, the shape brighter than the wall.
    ctx = type("Ctx", (), {"resolve_file": staticmethod(paths.resolve), "device": "cpu", "shared": {}})()
    grey = node.run_depth_map(ctx, images[:8].permute(0, 2, 3, 1), "shapes-depth", 64)["image"][..., 0]
    shape = targets[:8] > 1.0 + 0.5 * (targets[:8].amax(dim=(1, 2), keepdim=True) - 1.0)
    assert grey.shape == (8, 64, 64) and float(grey[shape].mean()) > float(grey[~shape].mean()) + 0.3


# -- shapes-clip-vision ------------------------------------------------------------------------------------
CLIP_VISION = RESOURCES / "clip_vision" / "shapes-clip-vision"


def test_the_bundled_clip_vision_encoder_finds_each_held_out_pictures_caption_far_above_chance():
    """Its card's numbers (500 pictures: the right caption of 168 first for 62.6%, in the first 5 for 99.6%),
    on 200 of the same through CLIP Vision Loader and CLIP Vision Encode."""
    from nodeforge.core.models import ModelPaths
    from nodeforge.core.types import FileKind
    from nodeforge.training import clip_vision as trainer

    assert (CLIP_VISION / "config.json").is_file(), f"the bundled CLIP vision encoder {CLIP_VISION} is missing"
    paths = ModelPaths(roots=[])
    encoder = builtin_module("ipadapter").load_clip_vision(paths.resolve(FileKind.CLIP_VISION, "shapes-clip-vision"),
                                                           "cpu")
    images, labels = trainer.dataset(200, trainer.HELD_OUT_SEED)
    out = builtin_module("unclip").run_clip_vision_encode(None, encoder, images.permute(0, 2, 3, 1))
    embeds = torch.nn.functional.normalize(out["clip_vision_output"]["image_embeds"], dim=-1)
    found = embeds @ trainer.caption_embeddings(RESOURCES / "models" / "nodeforge-shapes").T
    top1 = float((found.argmax(-1) == labels).float().mean())
    top5 = float((found.topk(5, dim=-1).indices == labels[:, None]).any(-1).float().mean())
    assert embeds.shape == (200, 64) and top1 > 0.5 and top5 > 0.95, (top1, top5)   # chance: 1/168
