"""Values a node would change without a word, said through `NodeContext.warn` (ComfyUI and diffusers
stretch, crop or skip silently): a mask of another shape, an image not a multiple of the VAE factor,
a denoise that runs no step. The run goes on and draws the same pixels; the user hears of it."""
from __future__ import annotations

import pytest

from nodeforge.core import events as ev


def _warnings(engine, wf, outputs):
    heard = []
    engine.run(wf, outputs=outputs, on_event=heard.append)
    return [(e.node_id, e.message) for e in heard if isinstance(e, ev.NodeWarning)]


def _encoded(wf, width, height):
    wf.add("EmptyImage", {"width": width, "height": height, "color": 0x808080}, node_id="img")
    wf.add("VAEEncode", {}, {"vae": ("ckpt", "vae"), "image": ("img", "image")}, node_id="enc")


def test_an_image_not_a_multiple_of_the_vae_factor_is_said_to_lose_its_edges(engine, make_txt2img):
    wf = make_txt2img()
    _encoded(wf, 34, 29)
    assert _warnings(engine, wf, ["enc"]) == [
        ("enc", "the image is 34x29, not a multiple of 4 as the VAE needs: its centre 32x28 is encoded and the edges "
                "are cut; scale or crop it to a multiple of 4 to choose what is kept")]
    wf = make_txt2img()
    _encoded(wf, 32, 28)
    assert _warnings(engine, wf, ["enc"]) == []


@pytest.mark.parametrize("mask_size, warned", [((48, 16), True), ((64, 64), False), ((32, 32), False)])
def test_a_noise_mask_of_another_shape_is_said_to_be_stretched(engine, make_txt2img, mask_size, warned):
    wf = make_txt2img()
    _encoded(wf, 32, 32)
    wf.add("SolidMask", {"value": 1.0, "width": mask_size[0], "height": mask_size[1]}, node_id="mask")
    wf.add("SetLatentMask", {}, {"latent": ("enc", "latent"), "mask": ("mask", "mask")}, node_id="masked")
    said = _warnings(engine, wf, ["masked"])
    expected = [("masked", f"the mask is {mask_size[0]}x{mask_size[1]} but the latent's image is 32x32: the mask is "
                           "stretched to that shape and may miss what it was painted over; give a mask of the same "
                           "shape")]
    assert said == (expected if warned else [])


def test_an_inpaint_mask_of_another_shape_is_said_to_be_stretched(engine, make_txt2img):
    wf = make_txt2img()
    wf.add("EmptyImage", {"width": 32, "height": 32}, node_id="img")
    wf.add("SolidMask", {"value": 1.0, "width": 16, "height": 32}, node_id="mask")
    wf.add("VAEEncodeForInpaint", {"grow_mask_by": 0}, {"vae": ("ckpt", "vae"), "image": ("img", "image"),
                                                         "mask": ("mask", "mask")}, node_id="enc")
    assert _warnings(engine, wf, ["enc"]) == [
        ("enc", "the mask is 16x32 but the image is 32x32: the mask is stretched to that shape and may miss what it "
                "was painted over; give a mask of the same shape")]


@pytest.mark.parametrize("params, why", [
    ({"denoise": 0.0}, "denoise is 0"),
    ({"start_at_step": 3}, "start_at_step 3 is at or past the last step (3)"),
])
def test_a_denoise_that_runs_no_step_says_the_latent_passes_through(engine, make_txt2img, params, why):
    wf = make_txt2img(steps=3)
    wf.nodes["denoise"].params.update(params)
    assert _warnings(engine, wf, ["denoise"]) == [
        ("denoise", f"{why}: no step runs and the latent passes through unchanged; raise denoise (or lower "
                    "start_at_step) to draw")]


def test_a_latent_upscale_to_a_size_between_latent_cells_says_what_it_made(engine, make_txt2img):
    wf = make_txt2img()
    _encoded(wf, 32, 32)
    wf.add("LatentUpscale", {"upscale_method": "bilinear", "width": 50, "height": 40, "crop": "disabled"},
           {"latent": ("enc", "latent")}, node_id="up")
    assert _warnings(engine, wf, ["up"]) == [
        ("up", "50x40 is not a multiple of 4, the size of a latent cell: the latent is scaled to 48x40; choose a "
               "multiple of 4")]
    assert engine.run(wf, outputs=["up"]).outputs["up"]["latent"]["samples"].shape[-2:] == (10, 12)


def test_an_image_batch_of_two_shapes_says_the_second_is_cropped(engine):
    from nodeforge import Workflow

    wf = Workflow()
    wf.add("EmptyImage", {"width": 32, "height": 32}, node_id="a")
    wf.add("EmptyImage", {"width": 64, "height": 32}, node_id="b")
    wf.add("ImageBatch", {}, {"image1": ("a", "image"), "image2": ("b", "image")}, node_id="both")
    assert _warnings(engine, wf, ["both"]) == [
        ("both", "image2 is 64x32 but image1 is 32x32: image2's centre is cropped to that shape and resized, so its "
                 "edges are lost; give images of one shape")]


def _two_latents(make_txt2img, first, second):
    """The tiny model's encodes of two grey images of the given (width, height): nodes "one" and "two"."""
    wf = make_txt2img()
    for nid, (width, height) in (("one", first), ("two", second)):
        wf.add("EmptyImage", {"width": width, "height": height, "color": 0x808080}, node_id=f"{nid}-img")
        wf.add("VAEEncode", {}, {"vae": ("ckpt", "vae"), "image": (f"{nid}-img", "image")}, node_id=nid)
    return wf


@pytest.mark.parametrize("node_type, params", [("LatentAdd", {}), ("LatentSubtract", {}),
                                               ("LatentBlend", {"blend_factor": 0.5})])
def test_latent_maths_on_a_latent_of_another_shape_says_its_edges_are_cropped(engine, make_txt2img, node_type,
                                                                               params):
    wf = _two_latents(make_txt2img, (32, 32), (64, 32))
    wf.add(node_type, params, {"latent_1": ("one", "latent"), "latent_2": ("two", "latent")}, node_id="maths")
    heard = []
    out = engine.run(wf, outputs=["maths"], on_event=heard.append).outputs
    said = [(e.node_id, e.node_type, e.message) for e in heard if isinstance(e, ev.NodeWarning)]
    assert said == [("maths", node_type, "latent_2 is 64x32 but latent_1 is 32x32: latent_2's centre is cropped to "
                                         "that shape and resized, so its edges are lost; give latents of one shape "
                                         "(crop or upscale latent_2 to 32x32 first)")]
    assert out["maths"]["latent"]["samples"].shape[-2:] == (8, 8)   # the run goes on, in latent_1's shape
    same_aspect = _two_latents(make_txt2img, (32, 32), (64, 64))     # only resized: nothing lost, nothing said
    same_aspect.add(node_type, params, {"latent_1": ("one", "latent"), "latent_2": ("two", "latent")},
                    node_id="maths")
    assert _warnings(engine, same_aspect, ["maths"]) == []


@pytest.mark.parametrize("x, y, said", [
    (16, 0, "only its top-left 16x16 is pasted, the rest is cut"),
    (32, 0, "nothing of it is pasted"),
    (0, 16, None),
])
def test_latent_composite_says_what_the_destination_s_edges_cut_from_the_source(engine, make_txt2img, x, y, said):
    wf = _two_latents(make_txt2img, (32, 32), (32, 16))
    wf.add("LatentComposite", {"x": x, "y": y, "feather": 0},
           {"destination": ("one", "latent"), "source": ("two", "latent")}, node_id="paste")
    expected = [] if said is None else [
        ("paste", f"the source is 32x16 but the destination is 32x32 and the source goes at x {x}, y {y}: {said}; "
                  "move x/y, or crop or scale the source to fit")]
    assert _warnings(engine, wf, ["paste"]) == expected


def _batches(make_txt2img, first, second):
    """_two_latents of 32x32 grey images, repeated to batches of `first` ("one") and `second` ("two")."""
    wf = _two_latents(make_txt2img, (32, 32), (32, 32))
    for nid, amount in (("one", first), ("two", second)):
        wf.add("RepeatLatentBatch", {"amount": amount}, {"latent": (nid, "latent")}, node_id=f"{nid}-batch")
    return wf


@pytest.mark.parametrize("node_type, params, first, second, result, said", [
    ("LatentAdd", {}, 3, 1, 3, "the result has 3, latent_2 repeated to 3; give latents of one batch size "
                               "(RepeatLatentBatch on latent_2 first)"),
    ("LatentSubtract", {}, 2, 4, 2, "the result has 2, only latent_2's first 2 used; give latents of one batch size "
                                    "(LatentFromBatch (length 2) on latent_2 first)"),
    ("LatentBlend", {"blend_factor": 0.25}, 2, 1, 2, "the result has 2, latent_2 repeated to 2; give latents of one "
                                                     "batch size (RepeatLatentBatch on latent_2 first)"),
    ("LatentBlend", {"blend_factor": 0.25}, 1, 3, 3, "the result has 3, latent_1 repeated to 3; give latents of one "
                                                     "batch size (RepeatLatentBatch on latent_1 first)"),
    ("LatentAdd", {}, 2, 2, 2, None),
])
def test_latent_maths_on_two_batch_sizes_says_which_batch_is_repeated_or_cut(engine, make_txt2img, node_type, params,
                                                                             first, second, result, said):
    wf = _batches(make_txt2img, first, second)
    wf.add(node_type, params, {"latent_1": ("one-batch", "latent"), "latent_2": ("two-batch", "latent")},
           node_id="maths")
    heard = []
    out = engine.run(wf, outputs=["maths"], on_event=heard.append).outputs
    expected = [] if said is None else [("maths", node_type, f"latent_2 has a batch of {second} but latent_1 has "
                                                             f"{first}: {said}")]
    assert [(e.node_id, e.node_type, e.message) for e in heard if isinstance(e, ev.NodeWarning)] == expected
    assert out["maths"]["latent"]["samples"].shape[0] == result   # the run goes on, as before


def test_latent_blend_of_two_batch_sizes_neither_one_is_refused_on_latent_2(engine, make_txt2img):
    from nodeforge.core.errors import NodeExecutionError

    wf = _batches(make_txt2img, 2, 3)
    wf.add("LatentBlend", {"blend_factor": 0.5}, {"latent_1": ("one-batch", "latent"),
                                                   "latent_2": ("two-batch", "latent")}, node_id="blend")
    with pytest.raises(NodeExecutionError) as info:
        engine.run(wf, outputs=["blend"])
    assert info.value.node_id == "blend" and info.value.field == "latent_2"
    assert "latent_2 has a batch of 3 but latent_1 has 2: a blend pairs them item by item, or repeats a batch of 1; " \
           "give latents of one batch size (RepeatLatentBatch or LatentFromBatch first)" in str(info.value)
