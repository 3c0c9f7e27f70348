"""The pixel judge classifies generated images (the ground truth) correctly."""
import numpy as np
import pytest
from PIL import Image

from nodeforge.training import data
from nodeforge.training.judge import judge


@pytest.mark.parametrize("shape", [*data.SHAPES, "star"])
def test_judge_classifies_at_least_98_percent_of_200_generated_images(shape):
    images, samples = data.generate(200, seed=21, shapes=(shape,))
    verdicts = [judge(im) for im in images]
    correct = [v.shape == s.shape and v.colour == s.colour and v.background == s.background
               for v, s in zip(verdicts, samples)]
    assert np.mean(correct) >= 0.98


def test_judge_accepts_pil_images_paths_and_float_arrays(tmp_path):
    images, samples = data.generate(1, seed=5)
    path = tmp_path / "x.png"
    Image.fromarray(images[0]).save(path)
    expected = judge(images[0])
    assert judge(Image.open(path)) == expected
    assert judge(path) == expected
    assert judge(images[0].astype(np.float32) / 255).shape == expected.shape


def test_an_empty_background_has_no_shape():
    flat = np.full((64, 64, 3), data.PALETTE["green"], np.uint8)
    verdict = judge(flat)
    assert verdict.shape == "none" and verdict.background == "green"


def test_generated_stars_have_exactly_five_points():
    images, samples = data.generate(100, seed=4, shapes=("star",))
    assert [judge(im).points for im in images] == [5] * 100


def test_a_non_convex_blob_without_five_points_is_a_crescent_or_a_blob_not_a_star():
    """A crescent is non-convex but has two points (its horns), not five; an L-shape is non-convex
    too, but its one notch is not a round bite out of a round shape: a blob."""
    yy, xx = np.mgrid[:64, :64]
    crescent = ((yy - 32) ** 2 + (xx - 32) ** 2 < 16**2) & ((yy - 32) ** 2 + (xx - 40) ** 2 >= 14**2)
    image = np.where(crescent[..., None], np.uint8(data.PALETTE["yellow"]), np.uint8(data.PALETTE["blue"]))
    verdict = judge(image.astype(np.uint8))
    assert verdict.shape == "crescent" and verdict.solidity < 0.8 and verdict.points == 2, verdict
    ell = np.full((64, 64, 3), data.PALETTE["blue"], np.uint8)
    ell[12:48, 14:26] = data.PALETTE["red"]
    ell[36:48, 14:50] = data.PALETTE["red"]
    verdict = judge(ell)
    assert verdict.shape == "blob" and verdict.solidity < 0.8, verdict


def test_drawn_crescents_are_crescents_and_no_other_drawn_shape_is():
    """The DreamBooth demo's detector: every drawn crescent (any size, place, rotation and colours)
    is one, and no drawn circle, square, triangle or star."""
    crescents, _ = data.generate(150, seed=21, shapes=("crescent",))
    assert [judge(im).shape for im in crescents] == ["crescent"] * 150
    others, samples = data.generate(200, seed=22, shapes=(*data.SHAPES, "star"))
    assert [judge(im).shape for im in others] == [s.shape for s in samples]
