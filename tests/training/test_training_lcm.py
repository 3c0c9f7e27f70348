"""train-lcm distils a base model into an LCM-LoRA: the formulas on values, a short run's file read by
the LoRA node and by diffusers, one `lcm` sampling step against diffusers' LCMScheduler, resume,
and one-line refusals."""
import math
import shutil

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")
pytest.importorskip("peft")

from nodeforge.training import data, lcm, lora  # noqa: E402


TINY = ["--steps", "3", "--batch", "2", "--images", "8", "--threads", "1"]


@pytest.fixture(scope="module")
def trained(tiny_base, tmp_path_factory):
    """A 3-step run at a high rate (so the LoRA visibly changes the UNet)."""
    out = tmp_path_factory.mktemp("lcm") / "lcm.safetensors"
    assert lcm.main(["--base", str(tiny_base), "--out", str(out), "--lr", "0.02", "--seed", "1", *TINY]) == 0
    return out


def _alphas_cumprod() -> np.ndarray:
    """SD's scaled-linear schedule, written out: betas from sqrt(0.00085) to sqrt(0.012), squared."""
    betas = np.linspace(math.sqrt(0.00085), math.sqrt(0.012), 1000, dtype=np.float64) ** 2
    return np.cumprod(1 - betas)


def test_boundary_scalings_are_the_lcm_schedulers_and_the_identity_at_zero():
    from diffusers import LCMScheduler

    t = torch.tensor([0, 19, 259, 999])
    c_skip, c_out = lcm.boundary_scalings(t)
    assert c_skip[0] == 1.0 and c_out[0] == 0.0          # f(x, 0) = x: the boundary condition
    assert c_skip[1] == pytest.approx(0.25 / (190 ** 2 + 0.25), rel=1e-6)
    assert c_out[1] == pytest.approx(190 / math.sqrt(190 ** 2 + 0.25), rel=1e-6)
    sched = LCMScheduler()
    for i, step in enumerate(t.tolist()):
        skip, out = sched.get_scalings_for_boundary_condition_discrete(step)
        assert float(c_skip[i]) == pytest.approx(skip, rel=1e-6, abs=1e-12)
        assert float(c_out[i]) == pytest.approx(out, rel=1e-6)


def test_the_skipping_schedule_steps_k_timesteps_on_the_lcm_samplers_grid():
    from diffusers import LCMScheduler

    schedule = lcm.SkippingSchedule.of(torch.from_numpy(_alphas_cumprod()), 50)
    assert schedule.k == 20 and schedule.timesteps[:3].tolist() == [19, 39, 59] and schedule.timesteps[-1] == 999
    start, end = schedule.pair(torch.tensor([0, 1, 49]))
    assert start.tolist() == [19, 39, 999] and end.tolist() == [0, 19, 979]
    sched = LCMScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012)
    sched.set_timesteps(4)
    assert set(sched.timesteps.tolist()) <= set(schedule.timesteps.tolist())   # the sampler's steps lie on it


def _hand_pair(index: int, x0: float, noise: float, g: float) -> tuple[float, float]:
    """The LCM paper's formulas on one number: teacher eps = 0.5 x + c (c = 0.3 prompt, -0.1 empty),
    student eps = 0.2 x, the 50-step grid."""
    a = _alphas_cumprod()
    t_s = 20 * (index + 1) - 1
    t_e = max(t_s - 20, 0)

    def scalings(t):
        return 0.25 / ((10 * t) ** 2 + 0.25), 10 * t / math.sqrt((10 * t) ** 2 + 0.25)

    x_s = math.sqrt(a[t_s]) * x0 + math.sqrt(1 - a[t_s]) * noise
    eps = (0.5 * x_s - 0.1) + g * ((0.5 * x_s + 0.3) - (0.5 * x_s - 0.1))
    x0_teacher = (x_s - math.sqrt(1 - a[t_s]) * eps) / math.sqrt(a[t_s])
    x_e = math.sqrt(a[t_e]) * x0_teacher + math.sqrt(1 - a[t_e]) * eps            # the DDIM step
    skip_s, out_s = scalings(t_s)
    skip_e, out_e = scalings(t_e)
    prediction = skip_s * x_s + out_s * (x_s - math.sqrt(1 - a[t_s]) * 0.2 * x_s) / math.sqrt(a[t_s])
    target = skip_e * x_e + out_e * (x_e - math.sqrt(1 - a[t_e]) * 0.2 * x_e) / math.sqrt(a[t_e])
    return prediction, target


def test_the_distillation_target_is_the_formulas_computed_by_hand():
    schedule = lcm.SkippingSchedule.of(torch.from_numpy(_alphas_cumprod()), 50)
    weight = torch.nn.Parameter(torch.tensor(0.2))

    def student(x, t, text):
        return weight * x

    def teacher(x, t, text):
        return 0.5 * x + text.view(-1, 1, 1, 1)

    x0, noise = torch.tensor([1.0, -0.6, 0.4]).view(3, 1, 1, 1), torch.tensor([0.5, 1.2, -0.3]).view(3, 1, 1, 1)
    index, g = torch.tensor([1, 0, 49]), torch.tensor([4.0, 2.0, 7.5])
    text, empty = torch.full((3, 1), 0.3), torch.full((3, 1), -0.1)
    prediction, target = lcm.distillation_pair(student, teacher, x0, noise, index, g, text, empty, schedule)
    assert prediction.requires_grad and not target.requires_grad   # the target network is stop-grad
    for i in range(3):
        want_prediction, want_target = _hand_pair(int(index[i]), float(x0[i]), float(noise[i]), float(g[i]))
        assert float(prediction[i].detach()) == pytest.approx(want_prediction, rel=1e-4, abs=1e-5)
        assert float(target[i]) == pytest.approx(want_target, rel=1e-4, abs=1e-5)
    # at the grid's first point the teacher steps to t = 0, where the target is its step itself
    x_end = lcm.teacher_step(teacher, prediction.new_ones(1, 1, 1, 1), torch.tensor([19]), torch.tensor([0]),
                             text[:1], empty[:1], g[:1], schedule.alphas_cumprod)
    again = lcm.consistency(student(x_end, torch.tensor([0]), text[:1]), torch.tensor([0]), x_end,
                            schedule.alphas_cumprod)
    assert torch.equal(again, x_end)
    huber = lcm.loss_of(torch.tensor([0.0, 1.0]), torch.tensor([0.0, 0.0]), "huber", 0.001)
    assert float(huber) == pytest.approx((math.sqrt(1 + 1e-6) - 0.001) / 2)


def test_a_three_step_run_writes_a_kohya_lora_that_the_node_and_diffusers_apply_alike(trained, tiny_base):
    from diffusers import StableDiffusionPipeline, UNet2DConditionModel

    from nodeforge.core.registry import builtin_module

    tensors, metadata = lora.load_kohya(trained)
    assert all(k.startswith("lora_unet_") for k in tensors)
    for layer in ("down_blocks_0_resnets_0_conv1", "down_blocks_0_resnets_0_time_emb_proj",
                  "mid_block_attentions_0_transformer_blocks_0_ff_net_0_proj", "down_blocks_0_downsamplers_0_conv",
                  "up_blocks_0_resnets_0_conv_shortcut", "mid_block_attentions_0_proj_in"):
        assert f"lora_unet_{layer}.lora_down.weight" in tensors, layer
    assert metadata["nodeforge_trainer"] == "nodeforge.training.lcm" and metadata["ss_network_dim"] == "16"
    node_lora, wrappers = builtin_module("lora"), builtin_module("wrappers")
    parts, ignored = node_lora.parse_lora(tensors)
    unet = UNet2DConditionModel.from_pretrained(tiny_base, subfolder="unet")
    patch, unmatched = node_lora.resolve(parts["unet"], unet, "lcm", 1.0, unet.config)
    assert not ignored and unmatched == 0
    pipe = StableDiffusionPipeline.from_pretrained(tiny_base, safety_checker=None)
    pipe.load_lora_weights(str(trained))
    gen = torch.Generator().manual_seed(3)
    x, t, cond = torch.randn(1, 4, 16, 16, generator=gen), torch.tensor([500]), torch.randn(1, 77, 64, generator=gen)
    with torch.no_grad():
        base = unet(x, t, encoder_hidden_states=cond).sample
        with wrappers.apply_patches({"unet": unet}, (("unet", patch),)):
            node = unet(x, t, encoder_hidden_states=cond).sample
        diffusers_out = pipe.unet(x, t, encoder_hidden_states=cond).sample
    assert (node - base).abs().max() > 1e-3                # the distillation changed the model
    torch.testing.assert_close(diffusers_out, node, atol=1e-5, rtol=0)


@pytest.mark.parametrize("steps", [1, 2])
def test_lcm_sampling_in_nodeforge_equals_diffusers_lcm_scheduler_with_the_lora(trained, tiny_base, tmp_path, steps):
    """UNetDenoise with the `lcm` sampler through LoRALoader, against StableDiffusionPipeline with
    LCMScheduler and load_lora_weights, from the same seeded noise (2 steps: the step noise too)."""
    from diffusers import LCMScheduler, StableDiffusionPipeline

    from nodeforge import Engine, Workflow
    from nodeforge.core.models import ModelPaths

    root = tmp_path / "models"
    shutil.copytree(tiny_base, root / "checkpoints" / "tiny-lcm-base")
    (root / "loras").mkdir()
    shutil.copy(trained, root / "loras" / "lcm.safetensors")
    wf = Workflow()
    wf.add("CheckpointLoader", {"checkpoint": "tiny-lcm-base"}, node_id="ckpt")
    wf.add("LoRALoader", {"lora": "lcm", "strength_unet": 1.0, "strength_clip": 1.0},
           {"unet": ("ckpt", "unet"), "clip": ("ckpt", "clip")}, node_id="lora")
    wf.add("TextEncoder", {"text": "a red circle"}, {"clip": ("lora", "clip")}, node_id="pos")
    wf.add("TextEncoder", {"text": ""}, {"clip": ("lora", "clip")}, node_id="neg")
    wf.add("EmptyLatent", {"width": 64, "height": 64, "batch_size": 1}, node_id="empty")
    wf.add("UNetDenoise", {"seed": 7, "steps": steps, "cfg": 1.0, "sampler": "lcm", "schedule": "default",
                           "denoise": 1.0},
           {"unet": ("lora", "unet"), "positive": ("pos", "conditioning"), "negative": ("neg", "conditioning"),
            "latent": ("empty", "latent")}, node_id="denoise")
    engine = Engine(device="cpu", output_dir=tmp_path / "out", model_paths=ModelPaths(roots=[root]))
    got = engine.run(wf, outputs=["denoise"]).outputs["denoise"]["latent"]["samples"]

    pipe = StableDiffusionPipeline.from_pretrained(tiny_base, safety_checker=None)
    pipe.scheduler = LCMScheduler.from_config(pipe.scheduler.config, clip_sample=False)
    pipe.load_lora_weights(str(trained))

    def sampled():
        gen = torch.Generator().manual_seed(7)
        noise = torch.randn(4, 16, 16, generator=gen)[None]      # the initial noise, then the step noise
        return pipe("a red circle", num_inference_steps=steps, guidance_scale=1.0, height=64, width=64,
                    latents=noise, generator=gen, output_type="latent").images

    unfused = sampled()
    pipe.fuse_lora()       # W + B A in the weights, as the LoRA node patches them
    fused = sampled()
    assert got.shape == fused.shape and got.abs().max() > 1
    torch.testing.assert_close(got, fused, atol=1e-5, rtol=0)
    # peft's unfused layers (x W + x A B) round differently in float32; x0 at t = 999 divides by
    # sqrt(alpha_bar) = 0.068, so that rounding shows at a millionth of the latent's largest value
    torch.testing.assert_close(got, unfused, atol=1e-6 * float(unfused.abs().max()), rtol=0)


def test_a_folder_of_captioned_images_is_distilled_on_instead_of_the_shapes(tiny_base, tmp_path):
    images = tmp_path / "imgs"
    data.write_folder(images, 3, seed=0)
    out = tmp_path / "folder.safetensors"
    assert lcm.main(["--base", str(tiny_base), "--out", str(out), "--images-dir", str(images), "--steps", "1",
                     "--batch", "2", "--threads", "1"]) == 0
    assert lora.load_kohya(out)[1]["ss_num_train_images"] == "3"


class Killed(Exception):
    pass


def test_a_killed_run_started_again_ends_with_the_lora_of_an_uninterrupted_run(tiny_base, tmp_path, monkeypatch):
    whole, resumed = tmp_path / "whole.safetensors", tmp_path / "resumed.safetensors"
    assert lcm.main(["--base", str(tiny_base), "--out", str(whole), "--lr", "0.02", *TINY, "--steps", "4"]) == 0
    real_step, calls = lcm.common.optimizer_step, []

    def dies_at_the_third_step(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise Killed
        real_step(*args, **kwargs)

    run = ["--base", str(tiny_base), "--out", str(resumed), "--lr", "0.02", *TINY, "--steps", "4",
           "--work", str(tmp_path / "work"), "--save-every", "2"]
    monkeypatch.setattr(lcm.common, "optimizer_step", dies_at_the_third_step)
    with pytest.raises(Killed):
        lcm.main(run)
    assert not resumed.exists()
    second = []
    monkeypatch.setattr(lcm.common, "optimizer_step", lambda *a, **k: (second.append(1), real_step(*a, **k)))
    assert lcm.main(run) == 0
    assert len(second) == 2   # it went on from the checkpoint at step 2, not from the start
    a, b = lora.load_kohya(whole)[0], lora.load_kohya(resumed)[0]
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(b[key], a[key], atol=1e-6, rtol=1e-5, msg=key)


@pytest.mark.parametrize("argv, message", [
    (["--guidance", "7", "3"], "--guidance: MIN 7 is above MAX 3"),
    (["--guidance", "0.5", "3"], "argument --guidance: 0.5 is out of range"),
    (["--ddim-steps", "0"], "argument --ddim-steps: 0 is out of range"),
    (["--loss", "l1"], "argument --loss: invalid choice: 'l1'"),
    (["--base", "no-such-model"], "--base 'no-such-model' is neither"),
    (["--out", "{tmp}"], "is a folder; give the LoRA (.safetensors) file to write"),
    (["--out", "{tmp}/lcm.pt"], "the LoRA is written as .safetensors; name it lcm.safetensors"),
    (["--images-dir", "{tmp}/none"], "no folder"),
])
def test_bad_options_are_one_line_errors_before_the_base_loads(argv, message, tiny_base, tmp_path, capsys, no_base_load):
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    full = ["--base", str(tiny_base), "--out", str(tmp_path / "x.safetensors"), *argv]
    with pytest.raises(SystemExit) as exc:
        lcm.main(full)
    text = str(exc.value.code) if not isinstance(exc.value.code, int) else capsys.readouterr().err
    assert message in text and len(text.strip().splitlines()) == 1, text
    assert text.strip().startswith("error:")
