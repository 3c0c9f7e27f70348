"""PoseMap (comfyui_controlnet_aux's OpenPose preprocessor): OpenPose's body drawing checked pixel by pixel on
known points, and the whole node on a tiny random ViTPose model built from a config here and saved as the
folder models/pose/ holds."""
from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from nodeforge import Workflow
from nodeforge.core.errors import NodeError
from nodeforge.core.registry import builtin_module


@pytest.fixture(scope="module")
def pose_root(tmp_path_factory):
    from transformers import VitPoseBackboneConfig, VitPoseConfig, VitPoseForPoseEstimation, VitPoseImageProcessorPil

    torch.manual_seed(0)
    backbone = VitPoseBackboneConfig(image_size=[64, 48], patch_size=[16, 16], hidden_size=32, num_hidden_layers=2,
                                     num_attention_heads=2, out_indices=[2])
    root = tmp_path_factory.mktemp("posemodels")
    folder = root / "pose" / "tiny-vitpose"
    VitPoseForPoseEstimation(VitPoseConfig(backbone_config=backbone, num_labels=17)).eval().save_pretrained(str(folder))
    VitPoseImageProcessorPil(size={"height": 64, "width": 48}).save_pretrained(str(folder))
    return root


def _ctx(root):
    from nodeforge.core.models import ModelPaths

    paths = ModelPaths(roots=[root], include_builtin=False)
    return SimpleNamespace(resolve_file=lambda kind, name: paths.resolve(kind, name), device="cpu", shared={})


def _pixel(image, x, y):
    return tuple(round(float(v) * 255) for v in image[y, x])


def test_coco_points_become_openpose_points_with_the_neck_between_the_shoulders():
    pose = builtin_module("pose")
    keypoints = torch.tensor([[float(i), float(10 * i)] for i in range(17)])
    scores = torch.full((17,), 0.9)
    scores[3] = 0.1                                   # COCO's left ear unseen
    points = pose.openpose_points(keypoints, scores, 0.3)
    assert len(points) == 18
    assert points[0] == (0.0, 0.0)                    # nose
    assert points[1] == (5.5, 55.0)                   # neck: between COCO's shoulders 5 and 6
    assert points[2] == (6.0, 60.0) and points[5] == (5.0, 50.0)      # right and left shoulder
    assert points[14] == (2.0, 20.0) and points[15] == (1.0, 10.0)    # right and left eye
    assert points[16] == (4.0, 40.0) and points[17] is None           # right ear; left ear below the threshold
    scores[6] = 0.0                                   # one shoulder unseen: no neck
    assert pose.openpose_points(keypoints, scores, 0.3)[1] is None


def test_limbs_are_ellipses_in_six_tenths_of_their_colour_and_points_full_discs_on_black():
    pose = builtin_module("pose")
    points = [None] * 18
    points[1], points[2] = (10.0, 32.0), (50.0, 32.0)      # neck -> right shoulder: limb 0, red
    image = pose.draw_pose(points, 64, 64)
    assert image.shape == (64, 64, 3) and image.dtype == torch.float32
    assert _pixel(image, 30, 32) == (153, 0, 0)            # the limb's middle: 0.6 x (255, 0, 0)
    assert _pixel(image, 30, 35) == (153, 0, 0)            # 3 px off the line: inside the 4 px half-width
    assert _pixel(image, 30, 38) == (0, 0, 0)              # 6 px off: outside
    assert _pixel(image, 10, 32) == (255, 85, 0)           # the neck's disc (OpenPose colour 1) over the limb
    assert _pixel(image, 50, 35) == (255, 170, 0)          # the right shoulder's disc (colour 2), radius 4
    assert _pixel(image, 5, 5) == (0, 0, 0)
    wide = pose.draw_pose(points, 64, 64, stick=8)
    assert _pixel(wide, 30, 38) == (153, 0, 0)             # xinsir's wider sticks reach 6 px off
    lone = [None] * 18
    lone[4] = (20.0, 20.0)                                  # a point alone: its disc, no limb
    alone = pose.draw_pose(lone, 40, 40)
    assert _pixel(alone, 20, 20) == (170, 255, 0) and int((alone.sum(-1) > 0).sum()) < 100


def test_xinsir_sticks_grow_with_the_longer_side():
    pose = builtin_module("pose")
    assert [pose.stick_width(h, w, True) for h, w in ((480, 499), (400, 500), (1024, 1536), (6000, 8000))] == [
        4, 8, 12, 28]
    assert pose.stick_width(6000, 8000, False) == 4


def test_the_node_draws_what_the_model_finds_at_the_resolution(pose_root):
    pose = builtin_module("pose")
    ctx = _ctx(pose_root)
    torch.manual_seed(3)
    image = torch.rand(2, 80, 100, 3)
    out = pose.run_pose_map(ctx, image, "tiny-vitpose", 64, 0.0)["image"]
    assert out.shape == (2, 64, 80, 3)                       # shorter side 64, aspect kept
    model = pose.load_pose_model(pose_root / "pose" / "tiny-vitpose", "cpu")
    for i, (keypoints, scores) in enumerate(pose.estimate(model, image)):
        assert keypoints.shape == (17, 2) and scores.shape == (17,)
        points = pose.openpose_points(keypoints, scores, 0.0)
        seen = [(p[0] * 0.8, p[1] * 0.8) if p is not None else None for p in points]
        assert torch.equal(out[i], pose.draw_pose(seen, 64, 80))     # keypoints scaled from 100 x 80 to 80 x 64
    assert torch.equal(pose.run_pose_map(ctx, image[1:], "tiny-vitpose", 64, 0.0)["image"][0], out[1])
    blank = pose.run_pose_map(ctx, image, "tiny-vitpose", 64, 1.0)["image"]
    assert float(blank.max()) == 0.0                          # nothing scores 1: nothing drawn


def test_a_missing_model_or_a_folder_that_is_not_one_says_what_to_put_where(pose_root, make_engine, tmp_path):
    engine = make_engine(tmp_path, pose_root)
    wf = Workflow()
    wf.add("EmptyImage", {"width": 32, "height": 32}, node_id="img")
    wf.add("PoseMap", {"model": "vitpose-base-simple", "resolution": 64}, {"image": ("img", "image")}, node_id="p")
    wf.add("Preview", {}, {"image": ("p", "image")}, node_id="show")
    problems = engine.validate(wf)
    assert [(p.node_id, p.field) for p in problems] == [("p", "model")]
    message = problems[0].message
    assert "pose 'vitpose-base-simple' not found" in message and str(pose_root / "pose") in message
    assert "\n" not in message
    wf.nodes["p"].params["model"] = "tiny-vitpose"
    assert engine.validate(wf) == []
    (tmp_path / "pose" / "empty").mkdir(parents=True)
    with pytest.raises(NodeError, match="empty is not a transformers pose model folder: put the whole folder"):
        builtin_module("pose").read_pose_model(tmp_path / "pose" / "empty", "cpu")
