"""Normalized Attention Guidance (ComfyUI's NAGuidance) on the tiny Z-Image model: the formula on hand-made
tensors, the guided attention output of one layer checked against that formula applied before the output
projection, scale 1 and alpha 0 the plain run, a real change at scale 5 (at cfg 1: the negative prompt now
counts), and other families refused at validate and at run in the same words."""
from __future__ import annotations

from functools import partial

import pytest
import torch

import tiny_models as tm
import tiny_zimage as tz
from tiny_models import latent_of

shipped_txt2img = partial(tm.shipped_txt2img, "tiny-zimage", steps=3)


@pytest.fixture(scope="module")
def zimage_dir(tmp_path_factory):
    torch.set_num_threads(2)
    root = tmp_path_factory.mktemp("zimagenag")
    (root / "checkpoints").mkdir()
    tz.save_zimage_folder(tz.make_zimage_components(0), root / "checkpoints" / "tiny-zimage")
    return root


@pytest.fixture(scope="module")
def zimage_engine(make_engine, zimage_dir, tmp_path_factory):
    return make_engine(tmp_path_factory.mktemp("zimagenagout"), zimage_dir)


def _guided(cfg=1.0, negative="a green square", **nag):
    """The shipped graph on the tiny Z-Image with NormalizedAttentionGuidance between checkpoint and sampler."""
    wf = shipped_txt2img(seed=3, cfg=cfg)
    wf.nodes["3"].params["text"] = negative
    wf.add("NormalizedAttentionGuidance", dict({"nag_scale": 5.0, "nag_alpha": 0.5, "nag_tau": 1.5}, **nag),
           {"unet": ("1", "unet")}, node_id="nag")
    wf.nodes["5"].inputs["unet"] = ("nag", "unet")
    return wf


def test_the_formula_on_hand_made_tensors():
    from nodes.families.nag import NormalizedAttention, nag_mix

    pos = torch.tensor([[1.0, -2.0, 0.5], [0.0, 1.0, 1.0]])
    neg = torch.tensor([[0.5, -1.0, 1.5], [0.0, 1.0, 1.0]])
    # scale 2, alpha 1, tau high: plain extrapolation 2 pos - neg
    loose = nag_mix(pos, neg, NormalizedAttention(2.0, 1.0, 10.0))
    assert torch.allclose(loose, torch.tensor([[1.5, -3.0, -0.5], [0.0, 1.0, 1.0]]))
    # tau 1.2: row 0's L1 norm (5.0 against pos's 3.5: 1.43 times) is cut to 1.2 x 3.5; row 1 (pos = neg) stays
    held = nag_mix(pos, neg, NormalizedAttention(2.0, 1.0, 1.2))
    assert torch.allclose(held[0], torch.tensor([1.5, -3.0, -0.5]) * (1.2 * 3.5 / 5.0))
    assert torch.allclose(held[0].abs().sum(), torch.tensor(1.2 * 3.5))
    assert torch.equal(nag_mix(pos, neg, NormalizedAttention(2.0, 1.0, 1.5)), loose)   # 1.43 < 1.5: not cut
    assert torch.equal(held[1], pos[1])
    # alpha mixes the held extrapolation with the positive
    half = nag_mix(pos, neg, NormalizedAttention(2.0, 0.25, 1.2))
    assert torch.allclose(half, 0.25 * held + 0.75 * pos)
    # scale 1 or alpha 0: the positive itself
    assert torch.equal(nag_mix(pos, neg, NormalizedAttention(1.0, 0.5, 1.5)), pos)
    assert torch.equal(nag_mix(pos, neg, NormalizedAttention(7.0, 0.0, 1.5)), pos)


def test_a_main_layer_guides_the_image_tokens_before_its_output_projection():
    from nodes.families.nag import NormalizedAttention, guided_attention, nag_mix

    transformer = tz.make_zimage_components(0)["transformer"].eval()
    attention = transformer.layers[0].attention
    torch.manual_seed(0)
    hidden = torch.randn(2, 12, 32)            # [positive, negative], 12 tokens: 8 of the image, 4 of text
    seen = []
    hook = attention.to_out[0].register_forward_pre_hook(lambda module, args: seen.append(args[0].clone()))
    with torch.no_grad():
        plain = attention(hidden)
        settings = NormalizedAttention(4.0, 0.7, 1.2)
        with guided_attention(transformer, settings, batch=1, image_tokens=8):
            guided = attention(hidden)
        after = attention(hidden)
    hook.remove()
    before_projection = seen[0]
    mixed = nag_mix(before_projection[:1, :8], before_projection[1:, :8], settings)
    expected = before_projection.clone()
    expected[:1, :8] = mixed
    expected[1:, :8] = mixed
    with torch.no_grad():
        assert torch.allclose(guided, attention.to_out[0](expected), atol=1e-6)
    assert torch.equal(guided[:, 8:], plain[:, 8:])           # the text tokens are left as they were
    assert torch.equal(after, plain)                         # the processors are put back


def test_scale_1_and_alpha_0_are_the_plain_run_and_scale_5_steers_at_cfg_1(zimage_engine):
    plain = latent_of(zimage_engine, shipped_txt2img(seed=3, cfg=1.0))
    assert (latent_of(zimage_engine, _guided(nag_scale=1.0)) - plain).abs().max() < 1e-5
    assert (latent_of(zimage_engine, _guided(nag_alpha=0.0)) - plain).abs().max() < 1e-5
    steered = latent_of(zimage_engine, _guided())
    assert (steered - plain).abs().max() > 1e-3
    # another negative prompt steers elsewhere: the negative is what guides
    assert (latent_of(zimage_engine, _guided(negative="a blue triangle")) - steered).abs().max() > 1e-4


def test_other_families_are_refused_at_validate_and_at_run_in_the_same_words(engine):
    from types import SimpleNamespace

    from nodeforge.core.errors import NodeError
    from nodes.families.nag import run_normalized_attention_guidance

    wf = _guided()
    wf.nodes["1"].params["checkpoint"] = "tiny-sd"
    found = {(p.node_id, p.field): p.message for p in engine.validate(wf)}
    words = ("is a sd1 model; Normalized Attention Guidance runs on Z-Image models here: remove or bypass the "
             "node, or load a Z-Image model")
    assert found[("nag", "unet")] == "the model " + words
    with pytest.raises(NodeError) as refused:
        run_normalized_attention_guidance(None, SimpleNamespace(family="sd1", name="tiny-sd"))
    assert (refused.value.field, str(refused.value)) == ("unet", "tiny-sd " + words)
