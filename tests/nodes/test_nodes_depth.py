"""DepthMap (comfyui_controlnet_aux's MiDaS / Zoe / Depth Anything preprocessors): tiny random DPT and
Depth Anything models built from configs here and saved as the folders models/depth/ holds."""
from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from nodeforge import Workflow
from nodeforge.core.errors import NodeError
from nodeforge.core.registry import builtin_module


def _processor():
    from transformers import DPTImageProcessor

    return DPTImageProcessor(size={"height": 32, "width": 32}, keep_aspect_ratio=False)


def _dpt():
    from transformers import DPTConfig, DPTForDepthEstimation

    torch.manual_seed(0)
    config = DPTConfig(hidden_size=32, num_hidden_layers=4, num_attention_heads=4, intermediate_size=37, image_size=32,
                       patch_size=8, backbone_out_indices=[0, 1, 2, 3], neck_hidden_sizes=[8, 8, 16, 16],
                       fusion_hidden_size=16, head_in_index=-1)
    model = DPTForDepthEstimation(config).eval()
    with torch.no_grad():       # a random head's ReLU output is near zero: give it a visible range
        model.head.head[-2].bias.fill_(1.0)
    return model


def _depth_anything(kind="relative"):
    from transformers import DepthAnythingConfig, DepthAnythingForDepthEstimation, Dinov2Config

    torch.manual_seed(1)
    backbone = Dinov2Config(hidden_size=32, num_hidden_layers=4, num_attention_heads=4, intermediate_size=37,
                            image_size=32, patch_size=8, out_indices=[1, 2, 3, 4], reshape_hidden_states=False)
    config = DepthAnythingConfig(backbone_config=backbone, neck_hidden_sizes=[8, 8, 16, 16], fusion_hidden_size=16,
                                 head_hidden_size=8, reassemble_hidden_size=32, patch_size=8,
                                 depth_estimation_type=kind, max_depth=20)
    return DepthAnythingForDepthEstimation(config).eval()


@pytest.fixture(scope="module")
def depth_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("depthmodels")
    for name, model in (("tiny-dpt", _dpt()), ("tiny-depth-anything", _depth_anything()),
                        ("tiny-metric", _depth_anything("metric"))):
        model.save_pretrained(str(root / "depth" / name))
        _processor().save_pretrained(str(root / "depth" / name))
    return root


def _ctx(root):
    from nodeforge.core.models import ModelPaths

    paths = ModelPaths(roots=[root], include_builtin=False)
    return SimpleNamespace(resolve_file=lambda kind, name: paths.resolve(kind, name), device="cpu", shared={})


def _ramp(height=40, width=56):
    """A synthetic picture: dark at the top, bright at the bottom, a bright square on the left."""
    image = torch.linspace(0, 1, height)[:, None, None].expand(height, width, 3).clone()
    image[10:20, 5:15] = 1.0
    return image[None]


def _raw_prediction(folder, image, size):
    """The model's own prediction resized as its processor does: what the node normalises."""
    from transformers import AutoImageProcessor, AutoModelForDepthEstimation

    model = AutoModelForDepthEstimation.from_pretrained(str(folder)).eval()
    processor = AutoImageProcessor.from_pretrained(str(folder))
    inputs = processor(images=[image[0].numpy()], do_rescale=False, return_tensors="pt")
    with torch.no_grad():
        outputs = model(**inputs)
    return processor.post_process_depth_estimation(outputs, target_sizes=[size])[0]["predicted_depth"]


@pytest.mark.parametrize("name", ["tiny-dpt", "tiny-depth-anything"])
def test_a_relative_model_gives_its_prediction_from_0_to_1_with_the_nearest_brightest(depth_root, name):
    depth = builtin_module("depth")
    image = _ramp()
    out = depth.run_depth_map(_ctx(depth_root), image, name, 64)["image"]
    assert out.shape == (1, 64, 90, 3)                     # shorter side 64, 56 x 64/40 = 89.6 -> 90
    assert torch.equal(out[..., 0], out[..., 1]) and torch.equal(out[..., 0], out[..., 2])
    assert float(out.min()) == 0.0 and float(out.max()) == pytest.approx(1.0)
    raw = _raw_prediction(depth_root / "depth" / name, image, (64, 90))   # inverse depth: large = near
    torch.testing.assert_close(out[0, ..., 0], (raw - raw.min()) / (raw.max() - raw.min()), atol=1e-5, rtol=1e-5)
    assert int(out[0, ..., 0].argmax()) == int(raw.argmax()) and int(out[0, ..., 0].argmin()) == int(raw.argmin())


def test_a_metric_model_is_turned_over_so_near_is_still_bright(depth_root):
    depth = builtin_module("depth")
    image = _ramp()
    out = depth.run_depth_map(_ctx(depth_root), image, "tiny-metric", 64)["image"][0, ..., 0]
    raw = _raw_prediction(depth_root / "depth" / "tiny-metric", image, (64, 90))   # metres: large = far
    low, high = torch.quantile(raw.flatten(), torch.tensor([0.02, 0.85]))
    torch.testing.assert_close(out, (1 - (raw - low) / (high - low)).clamp(0, 1), atol=1e-5, rtol=1e-5)
    nearest, farthest = int(raw.argmin()), int(raw.argmax())
    assert float(out.flatten()[nearest]) == 1.0 and float(out.flatten()[farthest]) == 0.0


def test_resolution_sets_the_shorter_side_and_a_batch_keeps_each_image_apart(depth_root):
    depth = builtin_module("depth")
    ctx = _ctx(depth_root)
    tall = _ramp(60, 30)
    assert depth.run_depth_map(ctx, tall, "tiny-dpt", 128)["image"].shape == (1, 256, 128, 3)
    assert depth.output_size(512, 768, 1024) == (1024, 1536)
    assert depth.run_depth_map(ctx, tall, "tiny-dpt", 0)["image"].shape == (1, 60, 30, 3)   # 0: its own size
    pair = torch.cat([_ramp(), _ramp().flip(1)])
    both = depth.run_depth_map(ctx, pair, "tiny-dpt", 64)["image"]
    alone = depth.run_depth_map(ctx, pair[1:], "tiny-dpt", 64)["image"]
    assert both.shape == (2, 64, 90, 3)
    torch.testing.assert_close(both[1], alone[0], atol=1e-5, rtol=1e-5)
    flat = depth.normalised(torch.full((4, 4), 3.0), metric=False)
    assert torch.equal(flat, torch.zeros(4, 4))              # a flat prediction is black, not NaN


def test_a_missing_model_or_a_folder_that_is_not_one_says_what_to_put_where(depth_root, make_engine, tmp_path):
    engine = make_engine(tmp_path, depth_root)
    wf = Workflow()
    wf.add("EmptyImage", {"width": 32, "height": 32}, node_id="img")
    wf.add("DepthMap", {"model": "dpt-hybrid-midas", "resolution": 64}, {"image": ("img", "image")}, node_id="d")
    problems = engine.validate(wf)
    assert [(p.node_id, p.field) for p in problems] == [("d", "model")]
    message = problems[0].message
    assert "depth 'dpt-hybrid-midas' not found" in message and str(depth_root / "depth") in message
    assert "\n" not in message
    (tmp_path / "depth" / "empty").mkdir(parents=True)
    with pytest.raises(NodeError, match="empty is not a transformers depth model folder: put the whole folder"):
        builtin_module("depth").read_depth_model(tmp_path / "depth" / "empty", "cpu")
    (tmp_path / "depth" / "single.pt").write_bytes(b"x")
    wf.nodes["d"].params["model"] = str(tmp_path / "depth" / "single.pt")
    problems = engine.validate(wf)
    assert problems[0].message.startswith("single.pt is a single file; a depth model is a folder")


def test_a_model_in_the_hugging_face_cache_is_found_by_its_name_or_id(depth_root, make_engine, tmp_path, monkeypatch):
    import shutil

    cache = tmp_path / "hub"
    repo = cache / "models--Intel--tiny-cached-dpt"
    shutil.copytree(depth_root / "depth" / "tiny-dpt", repo / "snapshots" / "abc123")
    (repo / "snapshots" / "old").mkdir()                   # an older revision without the model: passed over
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("abc123")
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    engine = make_engine(tmp_path / "out", tmp_path / "models")
    wf = Workflow()
    wf.add("EmptyImage", {"width": 48, "height": 32}, node_id="img")
    wf.add("DepthMap", {"model": "", "resolution": 64}, {"image": ("img", "image")}, node_id="d")
    wf.add("Preview", {}, {"image": ("d", "image")}, node_id="p")
    for name in ("tiny-cached-dpt", "Intel/tiny-cached-dpt"):
        wf.nodes["d"].params["model"] = name
        assert engine.validate(wf) == [], name
    ctx = _ctx(tmp_path / "models")
    cached = builtin_module("depth").run_depth_map(ctx, _ramp(), "tiny-cached-dpt", 64)["image"]
    local = builtin_module("depth").run_depth_map(_ctx(depth_root), _ramp(), "tiny-dpt", 64)["image"]
    assert torch.equal(cached, local)
    wf.nodes["d"].params["model"] = "dpt-hybrid-midas"
    message = engine.validate(wf)[0].message
    assert message.endswith(f"or download its Hugging Face repository into the Hugging Face cache ({cache})")
