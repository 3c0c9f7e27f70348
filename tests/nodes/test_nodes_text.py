"""TextEncoder: chunking long prompts, emphasis weights, the empty prompt."""
from __future__ import annotations

import torch

from nodeforge.core.registry import builtin_module


def _clip(engine, make_txt2img):
    return engine.run(make_txt2img(), outputs=["ckpt"]).outputs["ckpt"]["clip"]


def test_a_200_token_prompt_is_three_chunks_of_77(engine, make_txt2img):
    prompt = builtin_module("prompt")
    clip = _clip(engine, make_txt2img)
    one_token = "red"
    assert len(clip.tokenizer(one_token, add_special_tokens=False)["input_ids"]) == 1
    text = " ".join([one_token] * 200)
    ids, _ = prompt.tokenize_weighted(clip.tokenizer, text)
    assert len(ids) == 200
    cond = prompt.encode(clip, text)
    assert cond["embeds"].shape == (1, 231, 32)
    short = prompt.encode(clip, "red")
    assert short["embeds"].shape == (1, 77, 32)


def test_weighting_scales_the_weighted_tokens_and_keeps_the_mean(engine, make_txt2img):
    prompt = builtin_module("prompt")
    clip = _clip(engine, make_txt2img)
    plain = prompt.encode(clip, "a red circle")["embeds"]
    weighted = prompt.encode(clip, "a (red:1.5) circle")["embeds"]
    ids, weights = prompt.tokenize_weighted(clip.tokenizer, "a (red:1.5) circle")
    red = 1 + weights.index(1.5)   # position after BOS
    assert torch.allclose(weighted.mean(), plain.mean(), atol=1e-5)
    correction = plain.mean() / (plain * torch.tensor([1.5 if i == red else 1.0 for i in range(77)])[None, :, None]).mean()
    torch.testing.assert_close(weighted[0, red], plain[0, red] * 1.5 * correction)
    torch.testing.assert_close(weighted[0, 0], plain[0, 0] * correction)


def test_empty_prompt_is_the_encoding_of_the_empty_string(engine, make_txt2img):
    prompt = builtin_module("prompt")
    clip = _clip(engine, make_txt2img)
    tok = clip.tokenizer
    ids = tok("", padding="max_length", max_length=77, return_tensors="pt").input_ids
    with torch.inference_mode():
        expected = clip.text_encoder(ids).last_hidden_state
    torch.testing.assert_close(prompt.encode(clip, "")["embeds"], expected)


def test_long_and_short_prompts_mix_in_one_denoise(engine, make_txt2img):
    wf = make_txt2img(text=" ".join(["red circle"] * 60), steps=2)
    samples = engine.run(wf, outputs=["denoise"]).outputs["denoise"]["latent"]["samples"]
    assert torch.isfinite(samples).all()


def test_break_starts_a_new_window(engine, make_txt2img):
    prompt = builtin_module("prompt")
    clip = _clip(engine, make_txt2img)
    assert prompt.encode(clip, "red BREAK circle")["embeds"].shape == (1, 154, 32)
    assert prompt.encode(clip, "red circle BREAK")["embeds"].shape == (1, 77, 32)
    torch.testing.assert_close(prompt.encode(clip, "red BREAK circle")["embeds"][:, 77:],
                               prompt.encode(clip, "circle")["embeds"])
