"""`nodeforge train-flow` on a 3-step run: it writes a StableDiffusion3Pipeline folder (no T5) that
diffusers and NodeForge's CheckpointLoader both load, trained on the flow-matching objective."""
from __future__ import annotations

import json

import pytest
import torch

from nodeforge.training import flow


def test_the_flow_target_is_the_velocity_from_the_clean_latent_to_the_noise():
    x0 = torch.randn(4, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    x_t, t, target = flow.flow_batch(x0, 3.0, torch.Generator().manual_seed(1))
    sigma = (t / 1000).view(-1, 1, 1, 1)
    noise = target + x0
    torch.testing.assert_close(x_t, (1 - sigma) * x0 + sigma * noise)
    assert ((t > 0) & (t < 1000)).all() and t.float().mean() > 500   # shift 3 leans to high noise


def test_a_share_of_the_noise_levels_is_drawn_uniformly_so_low_noise_is_learned_too():
    x0 = torch.zeros(4000, 1, 1, 1)
    _, shifted, _ = flow.flow_batch(x0, 3.0, torch.Generator().manual_seed(0))
    _, mixed, _ = flow.flow_batch(x0, 3.0, torch.Generator().manual_seed(0), uniform=0.5)
    low = lambda t: float((t < 200).float().mean())
    assert low(shifted) < 0.02 and 0.08 < low(mixed) < 0.13   # half uniform: about 0.5 x 0.2 below 200


def tiny_transformer(qk_norm=None):
    from diffusers import SD3Transformer2DModel

    torch.manual_seed(0)
    return SD3Transformer2DModel(sample_size=16, patch_size=2, in_channels=4, out_channels=4, num_layers=2,
                                 attention_head_dim=16, num_attention_heads=2, caption_projection_dim=32,
                                 joint_attention_dim=32, pooled_projection_dim=16, pos_embed_max_size=16,
                                 qk_norm=qk_norm)


@pytest.mark.parametrize("qk_norm", [None, "rms_norm"])
def test_one_zero_token_with_a_log_256_attention_bias_is_the_pipelines_256_zero_t5_tokens(qk_norm):
    transformer = tiny_transformer(qk_norm)
    g = torch.Generator().manual_seed(1)
    x, clip = torch.randn(2, 4, 8, 8, generator=g), torch.randn(2, 77, 32, generator=g)
    pooled, t = torch.randn(2, 16, generator=g), torch.tensor([250.0, 900.0])
    with torch.no_grad():
        full = transformer(hidden_states=x, timestep=t, encoder_hidden_states=torch.cat([clip, torch.zeros(2, 256, 32)], 1),
                           pooled_projections=pooled, return_dict=False)[0]
        flow.use_shared_zero_token(transformer, image_tokens=16)
        shared = transformer(hidden_states=x, timestep=t, encoder_hidden_states=torch.cat([clip, torch.zeros(2, 1, 32)], 1),
                             pooled_projections=pooled, return_dict=False)[0]
    torch.testing.assert_close(shared, full, atol=1e-5, rtol=1e-5)
    assert full.abs().mean() > 0.1   # a real output, not zeros on both sides


def test_both_clip_encoders_start_as_the_base_models_trained_text_encoder():
    import argparse

    from transformers import CLIPTextModel, CLIPTokenizer

    from nodeforge.paths import builtin_dir

    base = builtin_dir("resources") / "models" / "nodeforge-shapes"
    vae, tokenizer = flow.load_base(base)
    parts = flow.make_parts(argparse.Namespace(seed=0, width=64, layers=1, patch=2), vae, base)
    trained = CLIPTextModel.from_pretrained(str(base / "text_encoder"), local_files_only=True)
    ids = CLIPTokenizer.from_pretrained(str(base / "tokenizer"))(["a red circle"], return_tensors="pt").input_ids
    with torch.no_grad():
        want = trained(ids).last_hidden_state
        for key in ("text_encoder", "text_encoder_2"):
            torch.testing.assert_close(parts[key](ids).last_hidden_state, want)
    assert parts["transformer"].config.joint_attention_dim == 2 * trained.config.hidden_size


TINY = ["--batch", "4", "--images", "16", "--layers", "1", "--width", "64", "--threads", "1"]


class Killed(Exception):
    pass


def test_a_killed_run_started_again_ends_with_the_weights_of_an_uninterrupted_run(tmp_path, monkeypatch):
    from safetensors.torch import load_file

    assert flow.main(["--out", str(tmp_path / "whole"), "--steps", "4", *TINY]) == 0
    real_step, calls = flow.optimizer_step, []

    def dies_at_the_third_step(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise Killed
        real_step(*args, **kwargs)

    run = ["--out", str(tmp_path / "resumed"), "--steps", "4", "--work", str(tmp_path / "work"), "--save-every", "2", *TINY]
    monkeypatch.setattr(flow, "optimizer_step", dies_at_the_third_step)
    with pytest.raises(Killed):
        flow.main(run)
    assert not (tmp_path / "resumed").exists()
    second = []
    monkeypatch.setattr(flow, "optimizer_step", lambda *a, **k: (second.append(1), real_step(*a, **k)))
    assert flow.main(run) == 0
    assert len(second) == 2   # it went on from the checkpoint at step 2, not from the start
    for part in ("transformer/diffusion_pytorch_model.safetensors", "text_encoder/model.safetensors"):
        whole, resumed = load_file(str(tmp_path / "whole" / part)), load_file(str(tmp_path / "resumed" / part))
        assert whole.keys() == resumed.keys()
        for key in whole:
            torch.testing.assert_close(resumed[key], whole[key], atol=1e-6, rtol=1e-5, msg=key)


def test_a_three_step_run_saves_a_flow_model_both_loaders_read(tmp_path):
    from diffusers import StableDiffusion3Pipeline

    from nodeforge.core.registry import builtin_module

    load_checkpoint = builtin_module("loading").load_checkpoint   # the pack, as installed or checked out

    out = tmp_path / "shapes-flow"
    numbers = tmp_path / "numbers.json"
    assert flow.main(["--out", str(out), "--steps", "3", "--batch", "4", "--images", "16", "--layers", "1",
                      "--width", "64", "--json", str(numbers)]) == 0
    report = json.loads(numbers.read_text())
    assert report["steps"] == 3 and torch.isfinite(torch.tensor(report["final_loss"]))
    pipe = StableDiffusion3Pipeline.from_pretrained(str(out), local_files_only=True, text_encoder_3=None,
                                                    tokenizer_3=None)   # diffusers asks for the absent T5 by name
    assert pipe.text_encoder_3 is None and pipe.scheduler.config.shift == 1.0   # the default: no shift at 64 px
    config = pipe.transformer.config   # positions one unit apart; the pipeline's default size is the training size
    assert (config.sample_size, config.pos_embed_max_size) == (16, None) and pipe.default_sample_size == 16
    embeds, _, _, _ = pipe.encode_prompt("a small red circle on a blue background", None, None,
                                         do_classifier_free_guidance=False)
    assert pipe.tokenizer_max_length == 16 and embeds.shape[1] == 16 + 256   # --context: what training read
    unet, clip, vae = load_checkpoint(out, "cpu").wrappers()
    assert (unet.family, unet.latent_channels, vae.factor) == ("sd3", 4, 4) and clip.text_encoder_3 is None
    image = pipe("a red circle", num_inference_steps=2, height=64, width=64, output_type="np",
                 generator=torch.Generator().manual_seed(0)).images
    assert image.shape == (1, 64, 64, 3)


def test_the_teacher_reads_a_flow_noise_level_as_the_ddpm_timestep_with_the_same_signal_to_noise():
    from diffusers import DDPMScheduler
    from transformers import CLIPTokenizer

    from nodeforge.paths import builtin_dir

    base = builtin_dir("resources") / "models" / "nodeforge-shapes"
    teacher = flow.Teacher(base, CLIPTokenizer.from_pretrained(str(base), subfolder="tokenizer"))
    done = DDPMScheduler.from_pretrained(str(base), subfolder="scheduler").alphas_cumprod
    steps = torch.tensor([3, 250, 500, 997])
    s = 1 / (1 + torch.sqrt(done[steps] / (1 - done[steps])))   # ((1 - s) / s)^2 = alpha_bar / (1 - alpha_bar)
    t, valid = teacher.timesteps(s)
    torch.testing.assert_close(t, steps.float(), atol=1e-3, rtol=0)
    assert valid.all()
    _, outside = teacher.timesteps(torch.tensor([0.001, 0.999]))   # cleaner / noisier than SD's schedule reaches
    assert not outside.any()


def test_the_teachers_velocity_is_far_closer_to_the_true_one_than_the_data_target_is_to_zero():
    from transformers import CLIPTokenizer

    from nodeforge.paths import builtin_dir
    from nodeforge.training import data
    from nodeforge.training.shapes import encode_latents

    base = builtin_dir("resources") / "models" / "nodeforge-shapes"
    vae, tokenizer = flow.load_base(base)
    teacher = flow.Teacher(base, tokenizer)
    images, samples = data.generate(8, 3)
    x0 = encode_latents(vae, images, torch.device("cpu")) * vae.config.scaling_factor
    captions = [f"a {s.colour} {s.shape} on a {s.background} background" for s in samples]
    noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(0))
    s = torch.full((8,), 0.4)
    taught, valid = teacher.velocity(0.6 * x0 + 0.4 * noise, s, captions)
    error = float(((taught - (noise - x0)) ** 2).mean())
    assert valid.all() and error < 0.1 * float(((noise - x0) ** 2).mean())
    mixed = flow.distilled_target(teacher, 0.6 * x0 + 0.4 * noise, s * 1000, noise - x0, captions, 0.5, 0.9)
    torch.testing.assert_close(mixed, 0.5 * taught + 0.5 * (noise - x0))
    kept = flow.distilled_target(teacher, 0.6 * x0 + 0.4 * noise, s * 1000, noise - x0, captions, 1.0, 0.3)
    torch.testing.assert_close(kept, noise - x0)   # above --teacher-max-noise: the data's own target


def test_every_block_starts_as_the_identity_and_the_model_predicts_zero_velocity():
    """adaLN-Zero (DiT): the modulation and the output layer start at zero, so a fresh transformer's
    blocks pass their input through unchanged and its first prediction is zero velocity."""
    import argparse

    from nodeforge.paths import builtin_dir

    base = builtin_dir("resources") / "models" / "nodeforge-shapes"
    vae, tokenizer = flow.load_base(base)
    parts = flow.make_parts(argparse.Namespace(seed=0, width=64, layers=2, patch=2), vae, base)
    transformer = parts["transformer"]
    x = torch.randn(2, 4, 16, 16)
    embeds, pooled = flow.prompt_embeds(parts, tokenizer, ["a red circle", "a blue square"], zeros=1)
    block = transformer.transformer_blocks[0]
    hidden = transformer.pos_embed(x)
    context = transformer.context_embedder(embeds)
    temb = transformer.time_text_embed(torch.tensor([500.0, 500.0]), pooled)
    with torch.no_grad():
        context_out, hidden_out = block(hidden_states=hidden, encoder_hidden_states=context, temb=temb)
        velocity = transformer(hidden_states=x, timestep=torch.tensor([500.0, 500.0]), encoder_hidden_states=embeds,
                               pooled_projections=pooled, return_dict=False)[0]
    torch.testing.assert_close(hidden_out, hidden)
    torch.testing.assert_close(context_out, context)
    assert velocity.shape == x.shape and float(velocity.abs().max()) == 0.0


def test_ddpm_levels_are_sds_timesteps_read_as_flow_levels_and_min_snr_weights_the_middle():
    """--levels ddpm draws SD's DDPM timesteps as flow levels (a DDPM sample alpha x0 + sigma n is the
    flow sample at s = sigma / (alpha + sigma), scaled); --weighting min-snr reads epsilon's Min-SNR-5
    weight on the velocity error. The 64-square test drew 7 of 12 squares with both, 1 of 12 without."""
    from diffusers import DDPMScheduler

    from nodeforge.training.models import NOISE_SCHEDULE

    table = flow.ddpm_levels()
    done = DDPMScheduler(**NOISE_SCHEDULE).alphas_cumprod
    alpha, sigma = done.sqrt(), (1 - done).sqrt()
    torch.testing.assert_close(table, sigma / (alpha + sigma), atol=1e-6, rtol=1e-5)
    assert table.shape == (1000,) and 0.02 < float(table[0]) < 0.04 and 0.93 < float(table[-1]) < 0.94
    latents = torch.randn(4000, 4, 2, 2)
    x_t, t, target = flow.flow_batch(latents, 1.0, torch.Generator().manual_seed(0), 0.3, "ddpm")
    s = t / 1000
    assert all(bool((table - v).abs().min() < 1e-6) for v in s[:50])   # every level is one of the table's
    assert 0.58 < float(s.median()) < 0.66                            # more high noise than logit-normal's 0.5
    torch.testing.assert_close(x_t, (1 - s.view(-1, 1, 1, 1)) * latents + s.view(-1, 1, 1, 1) * (target + latents))
    w = flow.min_snr_weight(torch.tensor([0.05, 0.309, 0.9]))
    assert float(w[1]) > 1.8 and float(w[0]) < 0.06 and float(w[2]) < 0.05   # the middle counts, the ends hardly
    # below SNR 5 the weight is epsilon's (1 - s)^2 x 4; above it 5 s^2 x 4
    torch.testing.assert_close(flow.min_snr_weight(torch.tensor([0.8, 0.1])), torch.tensor([4 * 0.2 ** 2, 4 * 5 * 0.01]))


def test_a_run_with_ddpm_levels_and_min_snr_weighting_trains(tmp_path):
    numbers = tmp_path / "n.json"
    assert flow.main(["--out", str(tmp_path / "m"), "--steps", "2", *TINY, "--levels", "ddpm", "--weighting", "min-snr",
                      "--qk-norm", "--json", str(numbers)]) == 0
    assert torch.isfinite(torch.tensor(json.loads(numbers.read_text())["final_loss"]))
    from diffusers import SD3Transformer2DModel   # --qk-norm: SD3.5's normed attention, kept in the saved config

    transformer = SD3Transformer2DModel.from_pretrained(str(tmp_path / "m" / "transformer"), local_files_only=True)
    assert transformer.config.qk_norm == "rms_norm" and transformer.transformer_blocks[0].attn.norm_q is not None


def test_the_loop_ends_early_when_asked_after_a_step_and_the_saved_attention_is_diffusers_own(monkeypatch):
    from diffusers.models.attention_processor import JointAttnProcessor2_0

    from nodeforge.paths import builtin_dir

    args = flow.parse_args(["--out", "unused", "--steps", "50", *TINY])
    base = builtin_dir("resources") / "models" / "nodeforge-shapes"
    vae, tokenizer = flow.load_base(base, args.context)
    parts = flow.make_parts(args, vae, base)
    steps, asked = [], []
    real_step = flow.optimizer_step
    monkeypatch.setattr(flow, "optimizer_step", lambda *a, **k: (steps.append(1), real_step(*a, **k)))
    latents = torch.randn(8, 4, 16, 16, generator=torch.Generator().manual_seed(0))
    flow.train(args, parts, latents, ["a red square"] * 8, tokenizer, stop=lambda step: asked.append(step) or step == 3)
    assert len(steps) == 3 and asked == [1, 2, 3]   # a budget's stop: three of the fifty steps
    processors = parts["transformer"].attn_processors.values()
    assert all(isinstance(p, JointAttnProcessor2_0) for p in processors)


def test_reflow_pairs_are_the_base_models_own_drawings_from_that_noise_kept_for_a_restart(tmp_path, monkeypatch):
    from nodeforge.paths import builtin_dir
    from nodeforge.training import evaluate

    base = builtin_dir("resources") / "models" / "nodeforge-shapes"
    args = flow.parse_args(["--out", "unused", "--reflow", "12", "--reflow-steps", "2", "--reflow-cfg", "4",
                            "--work", str(tmp_path / "work")])
    captions = ["a red square on a blue background", "a green circle"]
    noise, latents, texts = flow.reflow_pairs(args, base, (4, 16, 16), captions)
    assert noise.shape == latents.shape == (12, 4, 16, 16) and len(texts) == 12
    assert "" in texts and {t for t in texts if t} == set(captions)   # a tenth unconditional, else the captions in turn
    pipe = evaluate.load_pipeline(base)
    for i in (texts.index(""), texts.index(captions[0])):
        empty = texts[i] == ""
        with torch.no_grad():
            drawn = pipe([texts[i]], negative_prompt=None if empty else [""], latents=noise[i:i + 1],
                         num_inference_steps=2, guidance_scale=1.0 if empty else 4.0, height=64, width=64,
                         output_type="latent").images
        torch.testing.assert_close(latents[i:i + 1], drawn, atol=1e-4, rtol=1e-4)
    monkeypatch.setattr(evaluate, "load_pipeline", lambda *a: pytest.fail("the kept pairs were drawn again"))
    again = flow.reflow_pairs(args, base, (4, 16, 16), captions)
    assert torch.equal(again[0], noise) and torch.equal(again[1], latents) and again[2] == texts


def test_with_reflow_pairs_each_latent_keeps_its_own_noise_and_its_caption(monkeypatch):
    x0, noise = torch.randn(6, 4, 8, 8), torch.randn(6, 4, 8, 8)
    x_t, t, target = flow.flow_batch(x0, 1.0, torch.Generator().manual_seed(1), noise=noise)
    sigma = (t / 1000).view(-1, 1, 1, 1)
    torch.testing.assert_close(target, noise - x0)   # the straight path from this latent to its own noise
    torch.testing.assert_close(x_t, (1 - sigma) * x0 + sigma * noise)

    from nodeforge.paths import builtin_dir

    args = flow.parse_args(["--out", "unused", "--steps", "30", *TINY])
    base = builtin_dir("resources") / "models" / "nodeforge-shapes"
    vae, tokenizer = flow.load_base(base, args.context)
    parts = flow.make_parts(args, vae, base)
    seen, real_embeds = [], flow.prompt_embeds
    monkeypatch.setattr(flow, "prompt_embeds", lambda p, tok, texts, **k: (seen.extend(texts), real_embeds(p, tok, texts, **k))[1])
    latents = torch.randn(4, 4, 16, 16)
    flow.train(args, parts, latents, ["a red square"] * 4, tokenizer, noise=torch.randn(4, 4, 16, 16))
    assert len(seen) == 30 * args.batch and set(seen) == {"a red square"}   # no caption dropped: "" pairs are their own


def test_freeze_text_keeps_both_clip_encoders_as_trained_and_lets_their_pooled_projections_learn():
    from nodeforge.paths import builtin_dir

    args = flow.parse_args(["--out", "unused", "--steps", "3", "--freeze-text", "--lr", "1e-2", *TINY])
    base = builtin_dir("resources") / "models" / "nodeforge-shapes"
    vae, tokenizer = flow.load_base(base, args.context)
    parts = flow.make_parts(args, vae, base)
    before = {k: {n: p.detach().clone() for n, p in parts[k].named_parameters()} for k in ("text_encoder", "text_encoder_2")}
    flow.train(args, parts, torch.randn(8, 4, 16, 16), ["a red square on a blue background"] * 8, tokenizer)
    for key, weights in before.items():
        for name, param in parts[key].named_parameters():
            moved = not torch.equal(param, weights[name])
            assert moved == name.startswith("text_projection"), (key, name)
