"""Area prompts (ConditioningSetArea, ConditioningCombine): entries, batched UNet calls per area
size, and ComfyUI's blending by feathered area weights."""
from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from nodeforge.core.errors import NodeError
from nodeforge.core.registry import builtin_module


def _area(wf, nid, src, width, height, x=0, y=0, strength=1.0):
    wf.add("ConditioningSetArea", {"width": width, "height": height, "x": x, "y": y, "strength": strength},
           {"conditioning": (src, "conditioning")}, node_id=nid)
    return nid


def _combine(wf, nid, a, b):
    wf.add("ConditioningCombine", {}, {"conditioning_1": (a, "conditioning"), "conditioning_2": (b, "conditioning")},
           node_id=nid)
    return nid


def _latent(engine, wf):
    return engine.run(wf, outputs=["denoise"]).outputs["denoise"]["latent"]["samples"]


def test_a_full_frame_area_and_a_prompt_combined_with_itself_equal_the_plain_prompt(engine, make_txt2img):
    plain = _latent(engine, make_txt2img(seed=3, batch_size=2))
    wf = make_txt2img(seed=3, batch_size=2)
    _area(wf, "full", "pos", 32, 32)
    wf.nodes["denoise"].inputs["positive"] = ("full", "conditioning")
    torch.testing.assert_close(_latent(engine, wf), plain, atol=1e-5, rtol=0)
    wf = make_txt2img(seed=3, batch_size=2)
    _combine(wf, "twice", _area(wf, "full", "pos", 32, 32), "pos")
    wf.nodes["denoise"].inputs["positive"] = ("twice", "conditioning")
    # Two equal weighted predictions summed and divided: float32 rounding, 1e-5 of the latent's range.
    torch.testing.assert_close(_latent(engine, wf), plain, atol=1e-5, rtol=1e-4)
    # ...while a second, different prompt over the whole frame does change the result
    wf = make_txt2img(seed=3, batch_size=2)
    wf.add("TextEncoder", {"text": "green square"}, {"clip": ("ckpt", "clip")}, node_id="other")
    wf.nodes["denoise"].inputs["positive"] = (_combine(wf, "both", "pos", "other"), "conditioning")
    assert (_latent(engine, wf) - plain).abs().max() > 1e-3


def _halves(make_txt2img, right_text):
    """Left and right prompts on the two halves of a 32x32 image, the negative split the same way."""
    wf = make_txt2img(seed=9)
    wf.add("TextEncoder", {"text": right_text}, {"clip": ("ckpt", "clip")}, node_id="right")
    _combine(wf, "positive", _area(wf, "pl", "pos", 16, 32), _area(wf, "pr", "right", 16, 32, x=16))
    _combine(wf, "negative", _area(wf, "nl", "neg", 16, 32), _area(wf, "nr", "neg", 16, 32, x=16))
    wf.nodes["denoise"].inputs.update(positive=("positive", "conditioning"), negative=("negative", "conditioning"))
    return wf


def test_each_area_is_denoised_with_its_own_prompt_only(engine, make_txt2img):
    """Areas that do not overlap are independent: the right prompt changes only the right half."""
    a = _latent(engine, _halves(make_txt2img, "green square"))
    b = _latent(engine, _halves(make_txt2img, "yellow triangle on a white background"))
    torch.testing.assert_close(a[..., :4], b[..., :4], atol=1e-6, rtol=0)   # latent pixels 0..3 = image 0..15
    assert (a[..., 4:] - b[..., 4:]).abs().max() > 1e-2


class _FakeUNet:
    """Predicts, for every latent pixel, the first embedding value of the prompt; records calls."""

    def __init__(self):
        self.config = SimpleNamespace(addition_embed_type=None)
        self.calls: list[tuple[int, tuple[int, int]]] = []

    def __call__(self, x, t, encoder_hidden_states, added_cond_kwargs=None):
        self.calls.append((x.shape[0], tuple(x.shape[2:])))
        value = encoder_hidden_states[:, 0, 0].reshape(-1, 1, 1, 1)
        return SimpleNamespace(sample=value.expand(x.shape).clone())


def _fake_model():
    return SimpleNamespace(unet=_FakeUNet(), device=torch.device("cpu"), dtype=torch.float32, vae_factor=4)


def _prompt(value, length=77):
    return {"embeds": torch.full((1, length, 8), float(value)), "pooled": None, "family": "sd1"}


def _set_area(cond, width, height, x=0, y=0, strength=1.0):
    run = builtin_module("conditioning").run_conditioning_set_area
    return run(None, cond, width=width, height=height, x=x, y=y, strength=strength)["conditioning"]


def test_overlapping_areas_blend_by_comfyui_feathered_weights():
    conditioning = builtin_module("conditioning")
    model = _fake_model()
    # a 64x64 image = 16x16 latent; A covers latent columns 0..9, B columns 6..15, each the full height
    a = _set_area([_prompt(1.0)], width=40, height=64)
    b = _set_area([_prompt(5.0)], width=40, height=64, x=24, strength=2.0)
    guidance = conditioning.Guidance(model, a + b, [_prompt(0.0)], 1, (16, 16), cfg=1.0)
    out = guidance.predict(torch.zeros(1, 4, 16, 16), 10)[0, 0, 0]

    def weight_a(col):   # A's right edge is inside the frame: its last 8 columns ramp 8/8 .. 1/8
        return min(1.0, (10 - col) / 8) if col < 10 else 0.0

    def weight_b(col):   # B's left edge is inside the frame: its first 8 columns ramp 1/8 .. 8/8
        return 2.0 * min(1.0, (col - 5) / 8) if col >= 6 else 0.0

    for col in range(16):
        wa, wb = weight_a(col), weight_b(col)
        assert out[col].item() == pytest.approx((1.0 * wa + 5.0 * wb) / (wa + wb), abs=1e-6), col
    # all the way across a row of the image: only the columns' weights matter
    assert torch.equal(guidance.predict(torch.zeros(1, 4, 16, 16), 10)[0, 0, 15], out)


def test_areas_of_one_size_share_a_batched_unet_call_with_cfg():
    conditioning = builtin_module("conditioning")
    model = _fake_model()
    left = _set_area([_prompt(1.0)], width=32, height=64)
    right = _set_area([_prompt(3.0, length=154)], width=32, height=64, x=32)   # two windows: repeated to match
    guidance = conditioning.Guidance(model, left + right, [_prompt(0.0)], 2, (16, 16), cfg=4.0)
    assert guidance.unet_calls_per_step() == 2
    pred = guidance.predict(torch.zeros(2, 4, 16, 16), 10)
    # the full-frame negative in one call, both half-frame prompts (2 items each) in another
    assert sorted(model.unet.calls) == [(2, (16, 16)), (4, (16, 8))]
    assert torch.allclose(pred[:, :, :, :8], torch.tensor(4.0)) and torch.allclose(pred[:, :, :, 8:], torch.tensor(12.0))


def test_an_area_outside_the_image_is_refused_naming_the_input():
    conditioning = builtin_module("conditioning")
    outside = _set_area([_prompt(1.0)], width=32, height=32, x=64)
    with pytest.raises(NodeError, match=r"32x32 at x=64, y=0\) lies outside the 64x64 image") as err:
        conditioning.Guidance(_fake_model(), outside, [_prompt(0.0)], 1, (16, 16), cfg=5.0)
    assert err.value.field == "positive"
    # an area reaching past the edge is cut to the image
    partly = _set_area([_prompt(1.0)], width=64, height=64, x=32, y=32)
    [(units, _, _)] = conditioning.Guidance(_fake_model(), partly, [_prompt(0.0)], 1, (16, 16), cfg=1.0).groups
    assert units[0].box == (8, 8, 8, 8)


def test_combine_keeps_every_entry_in_order_and_set_area_marks_them_all(engine, make_txt2img):
    wf = make_txt2img()
    wf.add("TextEncoder", {"text": "green square"}, {"clip": ("ckpt", "clip")}, node_id="other")
    _area(wf, "area", _combine(wf, "both", "pos", "other"), 16, 24, x=8, y=8, strength=0.5)
    out = engine.run(wf, outputs=["both", "area", "pos", "other"]).outputs
    both = out["both"]["conditioning"]
    inputs = out["pos"]["conditioning"] + out["other"]["conditioning"]
    assert len(both) == 2 and all(torch.equal(e["embeds"], o["embeds"]) for e, o in zip(both, inputs))
    assert [(e["area"], e["strength"]) for e in out["area"]["conditioning"]] == [((24, 16, 8, 8), 0.5)] * 2
    assert all("area" not in e for e in both)   # the input entries are not changed
