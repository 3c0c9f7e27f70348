"""The edit-model nodes on the values ComfyUI's code gives: ReferenceLatent appends (and chains),
FluxKontextMultiReferenceLatentMethod stores ComfyUI's spelling, FluxKontextImageScale picks the
Kontext size nearest the image's aspect ratio, CFGNorm's formula on hand-made tensors, and CFGNorm
refused on models whose guidance does not apply it (validate and run, one line)."""
from __future__ import annotations

import pytest
import torch

import tiny_models as tm
from nodeforge.core.errors import NodeError


def _prompt():
    return [{"embeds": torch.zeros(1, 4, 8), "pooled": torch.zeros(1, 8), "family": "flux"}]


def test_reference_latent_appends_each_latent_in_order_and_leaves_the_input_prompt_alone():
    from nodes.edit_model import run_reference_latent

    first, second = torch.ones(1, 16, 4, 4), torch.full((1, 16, 2, 6), 2.0)
    prompt = _prompt()
    one = run_reference_latent(None, prompt, {"samples": first})["conditioning"]
    two = run_reference_latent(None, one, {"samples": second})["conditioning"]
    assert "reference_latents" not in prompt[0] and len(one[0]["reference_latents"]) == 1
    assert [r.shape for r in two[0]["reference_latents"]] == [first.shape, second.shape]
    assert two[0]["reference_latents"][1] is second
    assert run_reference_latent(None, prompt, None)["conditioning"] == prompt   # unlinked: the prompt as it was


@pytest.mark.parametrize("choice, stored", [("offset", "offset"), ("index", "index"), ("uxo/uno", "uxo"),
                                            ("index_timestep_zero", "index_timestep_zero")])
def test_the_method_node_stores_comfyuis_spelling(choice, stored):
    from nodes.edit_model import run_reference_latents_method

    out = run_reference_latents_method(None, _prompt(), choice)["conditioning"]
    assert out[0]["reference_latents_method"] == stored


@pytest.mark.parametrize("size, expected", [
    ((1000, 1000), (1024, 1024)), ((1920, 1080), (1392, 752)), ((1080, 1920), (752, 1392)),
    ((600, 900), (832, 1248)), ((4000, 1000), (1568, 672)), ((64, 48), (1184, 880)),
])
def test_kontext_image_scale_picks_the_preferred_size_nearest_the_aspect_ratio(size, expected):
    from nodes.edit_model import kontext_resolution, run_kontext_image_scale

    assert kontext_resolution(*size) == expected
    width, height = size
    if width * height <= 64 * 48:   # scale one small image for real: the output has that size, values in 0..1
        image = torch.rand(1, height, width, 3)
        out = run_kontext_image_scale(None, image)["image"]
        assert out.shape == (1, expected[1], expected[0], 3) and 0 <= out.min() and out.max() <= 1


def test_kontext_image_scale_crops_to_the_aspect_before_scaling():
    """A 4:1 image goes to 1568x672 (7:3): its left and right edges are cut, as ComfyUI's centre crop does."""
    from nodes.edit_model import run_kontext_image_scale

    image = torch.zeros(1, 100, 400, 3)
    image[:, :, :10] = 1.0          # a white band on the left edge only, cut by the crop
    out = run_kontext_image_scale(None, image)["image"]
    assert out.shape == (1, 672, 1568, 3) and out.max() < 0.05


def test_cfg_norm_caps_each_pixels_channel_norm_at_the_positives_and_scales_by_strength():
    from nodes.cfg_norm import normalized_x0

    cond = torch.zeros(1, 2, 1, 2)
    cond[0, :, 0, 0] = torch.tensor([3.0, 4.0])      # norm 5
    cond[0, :, 0, 1] = torch.tensor([0.0, 1.0])      # norm 1
    guided = torch.zeros(1, 2, 1, 2)
    guided[0, :, 0, 0] = torch.tensor([6.0, 8.0])    # norm 10 > 5: halved
    guided[0, :, 0, 1] = torch.tensor([0.0, 0.5])    # norm 0.5 < 1: kept
    out = normalized_x0(guided, cond, 1.0)
    torch.testing.assert_close(out[0, :, 0, 0], torch.tensor([3.0, 4.0]), atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(out[0, :, 0, 1], torch.tensor([0.0, 0.5]), atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(normalized_x0(guided, cond, 0.5), out * 0.5)


def test_cfg_norm_on_velocities_works_on_the_clean_image_and_back():
    from nodes.cfg_norm import normalized_velocity, normalized_x0

    gen = torch.Generator().manual_seed(0)
    x, v_cond, v_guided = (torch.randn(1, 4, 3, 3, generator=gen) for _ in range(3))
    sigma = 0.6
    out = normalized_velocity(v_guided, v_cond, x, sigma, 0.8)
    expected_x0 = normalized_x0(x - sigma * v_guided, x - sigma * v_cond, 0.8)
    torch.testing.assert_close(x - sigma * out, expected_x0, atol=1e-5, rtol=1e-5)
    same = normalized_velocity(v_cond, v_cond, x, sigma, 1.0)      # the positive alone: unchanged
    torch.testing.assert_close(same, v_cond, atol=1e-5, rtol=1e-5)


def test_cfg_norm_on_a_unet_model_is_refused_at_validate_and_at_the_run(engine):
    from nodes.cfg_norm import run_cfg_norm

    wf = tm.shipped_txt2img("tiny-sd", seed=1)
    wf.add("CFGNorm", {"strength": 1.0}, {"unet": ("1", "unet")}, node_id="norm")
    wf.nodes["5"].inputs["unet"] = ("norm", "unet")
    problems = [str(p) for p in engine.validate(wf)]
    assert len(problems) == 1 and "norm" in problems[0] and "CFGNorm" in problems[0], problems
    assert "remove the node" in problems[0] and "\n" not in problems[0]
    unet = engine.run(wf, outputs=["1"]).outputs["1"]["unet"]
    with pytest.raises(NodeError) as info:
        run_cfg_norm(None, unet, 1.0)
    assert info.value.field == "unet" and "\n" not in str(info.value) and "remove the node" in str(info.value)
