"""The generator draws exact palette colours, whole shapes, and reproducible data."""
import numpy as np

from nodeforge.training import data


def test_images_use_the_exact_palette_colours_for_shape_and_background():
    images, samples = data.generate(300, seed=3, shapes=(*data.SHAPES, "star"))
    for image, sample in zip(images, samples):
        assert image.shape == (64, 64, 3) and image.dtype == np.uint8
        assert tuple(image[0, 0]) == data.PALETTE[sample.background]
        cx, cy = (int(round(v)) for v in sample.centre)
        assert tuple(image[cy, cx]) == data.PALETTE[sample.colour]
        assert sample.colour != sample.background


def test_shapes_lie_fully_inside_the_frame():
    images, samples = data.generate(300, seed=4)
    for image, sample in zip(images, samples):
        border = np.concatenate([image[0], image[-1], image[:, 0], image[:, -1]])
        assert (border == data.PALETTE[sample.background]).all()


def test_generation_is_reproducible_from_the_seed():
    a, sa = data.generate(20, seed=7)
    b, sb = data.generate(20, seed=7)
    assert np.array_equal(a, b) and sa == sb
    assert not np.array_equal(a, data.generate(20, seed=8)[0])


def test_captions_drop_attributes_and_include_empty_ones():
    _, samples = data.generate(1, seed=0)
    rng = np.random.default_rng(0)
    captions = [data.caption(samples[0], rng) for _ in range(1000)]
    assert 0.05 < captions.count("") / len(captions) < 0.15
    full = data.full_caption(samples[0])
    assert full in captions
    assert len(set(captions)) > 10
    for c in captions:
        assert set(c.split()) <= set(full.split()) | {samples[0].size, "shape"}


def test_write_folder_pairs_each_image_with_a_caption(tmp_path):
    data.write_folder(tmp_path, 3, seed=1, shapes=("star",))
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "00000.png", "00000.txt", "00001.png", "00001.txt", "00002.png", "00002.txt"]
    assert " star on a " in (tmp_path / "00000.txt").read_text()
