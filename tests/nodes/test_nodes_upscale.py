"""UpscaleModelLoader and ImageUpscaleWithModel: random ESRGAN-family upscalers written in the
layouts Real-ESRGAN and ESRGAN save (Compact, RRDBNet in new and original names), tiling."""
from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file

from nodeforge import Workflow
from nodeforge.core.cache import estimate_nbytes
from nodeforge.core.errors import WorkflowError
from nodeforge.core.registry import builtin_module

upscale = builtin_module("upscale")


class NeedsCode:
    """An object torch.load(weights_only=True) must refuse to rebuild."""


def _randomised(module, seed):
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.1)
    return module.eval()


def _esrgan_original_names(state):
    """Real-ESRGAN RRDBNet names -> the original ESRGAN `model.N` names (x4)."""
    blocks = len({k.split(".")[1] for k in state if k.startswith("body.")})
    top = {"conv_first.": "model.0.", "conv_body.": f"model.1.sub.{blocks}.", "conv_up1.": "model.3.",
           "conv_up2.": "model.6.", "conv_hr.": "model.8.", "conv_last.": "model.10."}
    out = {}
    for key, value in state.items():
        if key.startswith("body."):
            _, i, rdb, conv, kind = key.split(".")
            out[f"model.1.sub.{i}.RDB{rdb[-1]}.{conv}.0.{kind}"] = value
        else:
            prefix = next(p for p in top if key.startswith(p))
            out[top[prefix] + key[len(prefix):]] = value
    return out


@pytest.fixture(scope="module")
def up_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("upscalers")
    folder = root / "upscale_models"
    folder.mkdir()
    compact = _randomised(upscale.Compact(3, 3, 8, 2, 4), 1)
    torch.save({"params": compact.state_dict()}, folder / "compact-x4.pth")
    save_file(compact.state_dict(), str(folder / "compact-x4.safetensors"))
    rrdb = _randomised(upscale.RRDBNet(3, 3, 4, 8, 2, 4), 2)
    torch.save({"params_ema": rrdb.state_dict()}, folder / "rrdb-x4.pth")
    save_file(_esrgan_original_names(rrdb.state_dict()), str(folder / "esrgan-original-x4.safetensors"))
    rrdb2 = _randomised(upscale.RRDBNet(3, 3, 2, 8, 1, 4), 3)
    save_file(rrdb2.state_dict(), str(folder / "rrdb-x2.safetensors"))
    torch.save({"params": compact.state_dict(), "extra": NeedsCode()}, folder / "pickled.pth")
    save_file({"lora_unet_x.lora_down.weight": torch.zeros(2, 4)}, str(folder / "not-an-upscaler.safetensors"))
    return root, {"compact-x4": compact, "rrdb-x4": rrdb, "rrdb-x2": rrdb2}


@pytest.fixture(scope="module")
def up_engine(up_root, registry, tmp_path_factory):
    from nodeforge import Engine
    from nodeforge.core.models import ModelPaths

    return Engine(device="cpu", output_dir=tmp_path_factory.mktemp("out"), registry=registry,
                  model_paths=ModelPaths(roots=[up_root[0]]))


def _image(seed, size=24, batch=1):
    return torch.rand(batch, size, size, 3, generator=torch.Generator().manual_seed(seed))


def _upscaled(engine, name, image, tile=512, overlap=32):
    model = engine.run(_loader(name), outputs=["load"]).outputs["load"]["upscale_model"]
    return upscale.run_image_upscale_with_model(None, model, image, tile, overlap)["image"], model


def _loader(name):
    wf = Workflow()
    wf.add("UpscaleModelLoader", {"upscale_model": name}, node_id="load")
    return wf


@pytest.mark.parametrize("name, reference, scale", [("compact-x4.pth", "compact-x4", 4),
                                                     ("compact-x4.safetensors", "compact-x4", 4),
                                                     ("rrdb-x4.pth", "rrdb-x4", 4),
                                                     ("esrgan-original-x4.safetensors", "rrdb-x4", 4),
                                                     ("rrdb-x2.safetensors", "rrdb-x2", 2)])
def test_each_layout_loads_and_upscales_as_the_network_itself(up_engine, up_root, name, reference, scale):
    image = _image(1)
    out, model = _upscaled(up_engine, name, image)
    assert model.scale == scale and out.shape == (1, 24 * scale, 24 * scale, 3)
    # what the output cache counts for it (wrappers.OnModule: its module): the network's parameters and buffers
    network = up_root[1][reference]
    assert estimate_nbytes(model) == sum(t.numel() * t.element_size() for t in (*network.parameters(), *network.buffers()))
    with torch.no_grad():
        expected = up_root[1][reference](image.permute(0, 3, 1, 2)).clamp(0, 1).permute(0, 2, 3, 1)
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=0)


def test_tiles_blend_into_the_untiled_result_and_never_exceed_the_tile_size(up_engine):
    image = _image(2, size=70, batch=2)
    whole, model = _upscaled(up_engine, "compact-x4.safetensors", image)
    seen = []
    handle = model.module.register_forward_pre_hook(lambda m, args: seen.append(tuple(args[0].shape[-2:])))
    try:
        tiled, _ = _upscaled(up_engine, "compact-x4.safetensors", image, tile=32, overlap=16)
    finally:
        handle.remove()
    # starts 0, 16, 32 and 38 on each side: 4 x 4 tiles per image, one image at a time
    assert max(max(s) for s in seen) <= 32 and len(seen) == 2 * 16
    # the network sees 3 pixels around each output pixel (3 convolutions): away from a tile edge by
    # more than that the tiles agree, and the ramps blend the rest
    difference = (tiled - whole).abs()
    assert difference.mean() < 1e-3 and difference.max() < 0.05


def test_unsafe_and_unknown_files_are_refused_naming_them(up_engine):
    with pytest.raises(WorkflowError, match="cannot read pickled.pth safely"):
        up_engine.run(_loader("pickled.pth"), outputs=["load"])
    with pytest.raises(WorkflowError, match="not-an-upscaler.safetensors is not an upscale model"):
        up_engine.run(_loader("not-an-upscaler"), outputs=["load"])


def test_the_upscale_node_in_a_graph_reports_progress_per_image(up_engine, up_root, tmp_path):
    from PIL import Image

    Image.new("RGB", (16, 12), (200, 30, 30)).save(tmp_path / "red.png")
    wf = _loader("compact-x4.safetensors")
    wf.add("LoadImage", {"path": str(tmp_path / "red.png")}, node_id="img")
    wf.add("ImageUpscaleWithModel", {"tile": 512, "overlap": 32},
           {"upscale_model": ("load", "upscale_model"), "image": ("img", "image")}, node_id="up")
    out = up_engine.run(wf, outputs=["up"]).outputs["up"]["image"]
    assert out.shape == (1, 48, 64, 3)


def test_a_4x_upscale_of_a_1024px_image_runs_in_tiles_of_the_tile_size(up_engine):
    image = torch.rand(1, 1024, 1024, 3, generator=torch.Generator().manual_seed(3))
    model = up_engine.run(_loader("compact-x4.safetensors"), outputs=["load"]).outputs["load"]["upscale_model"]
    seen = []
    handle = model.module.register_forward_pre_hook(lambda m, args: seen.append(tuple(args[0].shape[-2:])))
    try:
        out = upscale.run_image_upscale_with_model(None, model, image, 512, 32)["image"]
    finally:
        handle.remove()
    assert out.shape == (1, 4096, 4096, 3)
    assert max(max(s) for s in seen) <= 512 and len(seen) == 9    # starts 0, 480, 512 on each side
