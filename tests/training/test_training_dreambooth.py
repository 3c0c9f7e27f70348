"""train-dreambooth: a subject from a few pictures, with prior preservation. The combined loss's
gradient is the instance gradient plus the weight times the class gradient; at weight 0 the class
images change nothing; the base model draws the class images once and later runs reuse them; the
LoRA it writes loads in NodeForge's LoRA node; bad inputs are refused in one line."""
import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")
pytest.importorskip("peft")

from PIL import Image  # noqa: E402

from nodeforge.training import data, dreambooth, lora  # noqa: E402
from nodeforge.training.models import min_snr_loss as min_snr  # noqa: E402


@pytest.fixture(scope="module")
def instances(tmp_path_factory):
    folder = tmp_path_factory.mktemp("db") / "stars"
    data.write_folder(folder, 3, seed=0, shapes=("star",))
    for caption in folder.glob("*.txt"):   # DreamBooth trains every picture with the instance prompt
        caption.unlink()
    return folder


@pytest.fixture
def counted(monkeypatch):
    """The number of images each call of the class-image pipeline draws."""
    calls = []
    real = dreambooth.class_pipeline

    def counting(parts):
        pipe = real(parts)

        def call(prompts, *args, **kwargs):
            calls.append(len(prompts))
            return pipe(prompts, *args, **kwargs)
        return call

    monkeypatch.setattr(dreambooth, "class_pipeline", counting)
    return calls


def _train(base, instances, out, *extra):
    argv = ["--instance-dir", str(instances), "--instance-prompt", "a sks shape", "--base", str(base),
            "--out", str(out), "--steps", "2", "--batch", "2", "--rank", "2", "--threads", "1", "--seed", "3", *extra]
    assert dreambooth.main(argv) == 0
    return lora.load_kohya(out)


def _refused(argv) -> str:
    with pytest.raises(SystemExit) as exit_:
        dreambooth.main(argv)
    message = str(exit_.value.code)
    assert message.startswith("error: train-dreambooth: ") and "\n" not in message
    return message


# -- the loss -----------------------------------------------------------------------------------------------
def test_the_prior_loss_gradient_is_instance_gradient_plus_weight_times_class_gradient(tiny_base):
    from argparse import Namespace

    from diffusers import DDPMScheduler, UNet2DConditionModel
    from transformers import CLIPTextModel

    unet = UNet2DConditionModel.from_pretrained(tiny_base, subfolder="unet").requires_grad_(False)
    text_encoder = CLIPTextModel.from_pretrained(tiny_base, subfolder="text_encoder").requires_grad_(False)
    args = Namespace(rank=2, alpha=2.0, dora=False, conv=True, text_encoder=False)
    unet, text_encoder, trainable = lora.add_adapters(unet, text_encoder, args)
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in trainable:   # lora_B starts at zero, which would leave lora_A without a gradient
            p.copy_(torch.randn(p.shape, generator=gen) * 0.1)
    scheduler = DDPMScheduler.from_pretrained(tiny_base, subfolder="scheduler")
    snr = scheduler.alphas_cumprod / (1 - scheduler.alphas_cumprod)
    z0, noise = torch.randn(4, 4, 16, 16, generator=gen), torch.randn(4, 4, 16, 16, generator=gen)
    ids, t = torch.randint(0, 100, (4, 77), generator=gen), torch.tensor([100, 700, 300, 900])

    def grads(rows, instances, weight):
        loss = lora.batch_loss(unet, text_encoder, scheduler, z0[rows], ids[rows], noise[rows], t[rows],
                               snr[t[rows]], False, instances, weight)
        return loss.item(), torch.autograd.grad(loss, trainable)

    weight = 0.7
    combined, g = grads(slice(0, 4), 2, weight)     # two instance images, then two class images
    instance, g_instance = grads(slice(0, 2), 2, 0.0)
    cls, g_class = grads(slice(2, 4), 2, 0.0)
    assert combined == pytest.approx(instance + weight * cls, rel=1e-6)
    assert min(g_class[i].abs().max().item() for i in range(len(g_class))) > 0   # every LoRA weight feels the class
    for got, gi, gc in zip(g, g_instance, g_class):
        torch.testing.assert_close(got, gi + weight * gc, atol=1e-7, rtol=1e-5)
    # and not a plain mean over all four images (that would halve both parts)
    assert not all(torch.allclose(a, (gi + gc) / 2, atol=1e-6) for a, gi, gc in zip(g, g_instance, g_class))


def test_with_the_base_as_prior_target_the_class_half_learns_the_base_prediction(tiny_base):
    from argparse import Namespace

    from diffusers import DDPMScheduler, UNet2DConditionModel
    from transformers import CLIPTextModel

    unet = UNet2DConditionModel.from_pretrained(tiny_base, subfolder="unet").requires_grad_(False)
    text_encoder = CLIPTextModel.from_pretrained(tiny_base, subfolder="text_encoder").requires_grad_(False)
    base_unet = UNet2DConditionModel.from_pretrained(tiny_base, subfolder="unet")
    teacher = dreambooth.teacher(unet, text_encoder)   # taken before the adapters go in, as main() does
    args = Namespace(rank=2, alpha=2.0, dora=False, conv=True, text_encoder=True)
    unet, text_encoder, trainable = lora.add_adapters(unet, text_encoder, args)
    gen = torch.Generator().manual_seed(1)
    scheduler = DDPMScheduler.from_pretrained(tiny_base, subfolder="scheduler")
    snr = scheduler.alphas_cumprod / (1 - scheduler.alphas_cumprod)
    z0, noise = torch.randn(4, 4, 16, 16, generator=gen), torch.randn(4, 4, 16, 16, generator=gen)
    ids, t = torch.randint(0, 100, (4, 77), generator=gen), torch.tensor([100, 700, 300, 900])

    def loss(teach, weight=0.7):
        return lora.batch_loss(unet, text_encoder, scheduler, z0, ids, noise, t, snr[t], True, 2, weight, teach)

    # at the start (lora_B is zero) the LoRA model is the base: the class half has nothing to learn
    # (up to float rounding: the teacher runs on the class half alone, the LoRA model on the whole batch)
    g_teacher = torch.autograd.grad(loss(teacher), trainable, allow_unused=True)
    g_instance = torch.autograd.grad(loss(None, 0.0), trainable, allow_unused=True)
    for a, b in zip(g_teacher, g_instance):
        assert (a is None and b is None) or (a - b).abs().max() <= 1e-4 * b.abs().max()
    with torch.no_grad():
        for p in trainable:
            p.copy_(torch.randn(p.shape, generator=gen) * 0.1)
        zt = scheduler.add_noise(z0, noise, t)
        pred = unet(zt, t, encoder_hidden_states=text_encoder(ids)[0]).sample
        plain_te = CLIPTextModel.from_pretrained(tiny_base, subfolder="text_encoder")
        target = base_unet(zt[2:], t[2:], encoder_hidden_states=plain_te(ids[2:])[0]).sample
        expected = min_snr(pred[:2], noise[:2], snr[t[:2]]) + 0.7 * min_snr(pred[2:], target, snr[t[2:]])
        assert loss(teacher).item() == pytest.approx(expected.item(), rel=1e-5)
        assert abs(loss(teacher).item() - loss(None).item()) > 1e-4   # not the noise target


def test_the_prior_target_help_says_what_the_teacher_predicts_the_prompted_base_without_guidance(tiny_base, capsys):
    from diffusers import UNet2DConditionModel
    from transformers import CLIPTextModel

    with pytest.raises(SystemExit):
        dreambooth.main(["--help"])
    help_text = " ".join(capsys.readouterr().out.split()).replace("- ", "-")   # argparse wraps at hyphens
    assert "guidance included" not in help_text
    assert "without guidance: the base runs on the class prompt alone, whatever --class-cfg drew" in help_text
    unet = UNet2DConditionModel.from_pretrained(tiny_base, subfolder="unet")
    text_encoder = CLIPTextModel.from_pretrained(tiny_base, subfolder="text_encoder")
    gen = torch.Generator().manual_seed(2)
    zt, t = torch.randn(2, 4, 16, 16, generator=gen), torch.tensor([300, 800])
    ids, empty = torch.randint(0, 100, (2, 77), generator=gen), torch.zeros(2, 77, dtype=torch.long)
    with torch.no_grad():
        prompted = unet(zt, t, encoder_hidden_states=text_encoder(ids)[0]).sample
        unprompted = unet(zt, t, encoder_hidden_states=text_encoder(empty)[0]).sample
        taught = dreambooth.teacher(unet, text_encoder)(zt, t, ids)
    assert torch.allclose(taught, prompted, atol=1e-6)
    guided = unprompted + 5.0 * (prompted - unprompted)   # what CFG 5 would have taught
    assert (taught - guided).abs().max() > 1e-3


def test_with_qlora_the_base_prior_target_is_the_full_precision_base_not_the_4bit_unet_that_trains(
        tiny_base, instances, tmp_path, monkeypatch):
    from diffusers import UNet2DConditionModel
    from transformers import CLIPTextModel

    def quantised(base):   # a stand-in for bitsandbytes' NF4 UNet (CUDA only): the base's weights, rounded
        unet = UNet2DConditionModel.from_pretrained(base, subfolder="unet")
        with torch.no_grad():
            for p in unet.parameters():
                p.copy_(torch.round(p * 8) / 8)
        return unet.requires_grad_(False)

    seen = {}
    monkeypatch.setattr(lora, "check_qlora", lambda *a: None)
    monkeypatch.setattr(lora, "quantised_unet", quantised)
    monkeypatch.setattr(lora, "train", lambda unet, *a, prior=None, **k: seen.update(unet=unet, prior=prior))
    _train(tiny_base, instances, tmp_path / "q.safetensors", "--qlora", "--class-prompt", "a shape",
           "--class-images", "2", "--class-dir", str(tmp_path / "class"), "--prior-target", "base")
    gen = torch.Generator().manual_seed(4)
    zt, t, ids = torch.randn(2, 4, 16, 16, generator=gen), torch.tensor([200, 700]), seen["prior"].ids[:2]
    base = UNet2DConditionModel.from_pretrained(tiny_base, subfolder="unet")
    with torch.no_grad():
        cond = CLIPTextModel.from_pretrained(tiny_base, subfolder="text_encoder")(ids)[0]
        taught = seen["prior"].teacher(zt, t, ids)
        assert torch.allclose(taught, base(zt, t, encoder_hidden_states=cond).sample, atol=1e-5)
        four_bit = quantised(tiny_base)(zt, t, encoder_hidden_states=cond).sample
        assert (taught - four_bit).abs().max() > 1e-3   # the rounded UNet (what trains) predicts otherwise
        trains = seen["unet"](zt, t, encoder_hidden_states=cond).sample   # lora_B is zero: the 4-bit UNet
        assert torch.allclose(trains, four_bit, atol=1e-5)


def test_with_prior_weight_zero_the_class_images_do_not_change_the_update(tiny_base, instances, tmp_path, counted):
    a, b = tmp_path / "class-a", tmp_path / "class-b"
    _train(tiny_base, instances, tmp_path / "first.safetensors", "--class-prompt", "a shape", "--class-images", "3",
           "--class-dir", str(a))
    b.mkdir()
    for f in a.iterdir():   # the same record, other pictures: flipped and inverted
        if f.suffix == ".png":
            Image.fromarray(255 - np.asarray(Image.open(f))[::-1]).save(b / f.name)
        else:
            (b / f.name).write_bytes(f.read_bytes())
    runs = {}
    for weight in ("0", "1"):
        for folder in (a, b):
            out = tmp_path / f"w{weight}-{folder.name}.safetensors"
            runs[weight, folder.name] = _train(tiny_base, instances, out, "--class-prompt", "a shape",
                                               "--class-images", "3", "--class-dir", str(folder),
                                               "--prior-weight", weight)[0]
    assert counted == [3], "the class images are drawn once, then read back"
    zero_a, zero_b = runs["0", "class-a"], runs["0", "class-b"]
    assert all(torch.equal(zero_a[k], zero_b[k]) for k in zero_a)
    one_a, one_b = runs["1", "class-a"], runs["1", "class-b"]
    assert max((one_a[k] - one_b[k]).abs().max().item() for k in one_a) > 1e-6   # at weight 1 they count


# -- class images -------------------------------------------------------------------------------------------
def test_class_images_are_drawn_once_and_reused_while_prompt_count_and_base_match(tiny_base, instances, tmp_path,
                                                                                  counted, capsys):
    import shutil

    base = shutil.copytree(tiny_base, tmp_path / "base")   # this test retrains it (a newer file)
    folder = tmp_path / "shape-class"
    options = ["--class-prompt", "a shape", "--class-dir", str(folder)]
    _, metadata = _train(base, instances, tmp_path / "a.safetensors", *options, "--class-images", "3")
    assert counted == [3]
    record = json.loads((folder / "class_images.json").read_text())
    assert record["prompt"] == "a shape" and record["images"] == [f"class-0000{i}.png" for i in range(3)]
    assert record["steps"] == 20 and record["cfg"] == 5.0 and record["base"] == str(base.resolve())
    assert "unet/diffusion_pytorch_model.safetensors" in record["base_files"]
    first = {f.name: f.read_bytes() for f in folder.glob("*.png")}
    assert metadata["ss_num_reg_images"] == "3" and metadata["ss_prior_loss_weight"] == "1.0"
    assert metadata["nodeforge_class_prompt"] == "a shape" and metadata["nodeforge_instance_prompt"] == "a sks shape"

    _train(base, instances, tmp_path / "b.safetensors", *options, "--class-images", "3")
    assert counted == [3], "the second run must not draw again"
    assert "3 class images of 'a shape' reused" in capsys.readouterr().err
    _train(base, instances, tmp_path / "c.safetensors", *options, "--class-images", "2")
    assert counted == [3], "fewer class images come from the same cache"
    _train(base, instances, tmp_path / "d.safetensors", *options, "--class-images", "5")
    assert counted == [3, 2], "more class images: only the missing two are drawn"
    assert {f.name: f.read_bytes() for f in folder.glob("class-0000[012].png")} == first

    _train(base, instances, tmp_path / "e.safetensors", "--class-prompt", "a red shape",
           "--class-dir", str(folder), "--class-images", "2")
    assert counted == [3, 2, 2], "another prompt draws them again"
    assert sorted(f.name for f in folder.glob("*.png")) == ["class-00000.png", "class-00001.png"]
    (base / "unet" / "diffusion_pytorch_model.safetensors").touch()   # a retrained base
    _train(base, instances, tmp_path / "f.safetensors", "--class-prompt", "a red shape",
           "--class-dir", str(folder), "--class-images", "2")
    assert counted == [3, 2, 2, 2], "another base draws them again"


def test_class_prompts_from_a_file_are_drawn_and_trained_in_turn(tiny_base, instances, tmp_path, monkeypatch):
    from nodeforge.training.vocab import build_tokenizer

    first, second = "a red circle on a blue background", "a green square on a white background"
    prompts, folder = tmp_path / "class.txt", tmp_path / "class-many"
    prompts.write_text(f"{first}\n\n  {second} \n", encoding="utf-8")
    drawn, trained = [], {}
    real_pipeline, real_train = dreambooth.class_pipeline, lora.train

    def recording(parts):
        pipe = real_pipeline(parts)
        return lambda batch, *args, **kwargs: (drawn.extend(batch), pipe(batch, *args, **kwargs))[1]

    def keep(*args, prior=None, **kwargs):
        trained["ids"] = prior.ids
        return real_train(*args, prior=prior, **kwargs)

    monkeypatch.setattr(dreambooth, "class_pipeline", recording)
    monkeypatch.setattr(lora, "train", keep)
    _, metadata = _train(tiny_base, instances, tmp_path / "m.safetensors", "--class-prompts", str(prompts),
                         "--class-images", "3", "--class-dir", str(folder))
    assert drawn == [first, second, first]   # image i from line i, cycling; blank lines skipped
    assert json.loads((folder / "class_images.json").read_text())["prompt"] == [first, second]
    assert torch.equal(trained["ids"], lora.token_ids(build_tokenizer(), [first, second, first]))
    assert metadata["nodeforge_class_prompt"] == f"{first}\n{second}" and metadata["ss_num_reg_images"] == "3"
    _train(tiny_base, instances, tmp_path / "n.safetensors", "--class-prompts", str(prompts), "--class-images", "3",
           "--class-dir", str(folder))
    assert len(drawn) == 3, "the same file's class images are reused"


def test_class_cfg_sets_the_guidance_the_class_images_are_drawn_with_and_a_change_draws_them_again(
        tiny_base, instances, tmp_path, monkeypatch):
    guidance = []
    real = dreambooth.class_pipeline

    def recording(parts):
        pipe = real(parts)
        return lambda batch, *args, **kwargs: (guidance.append(kwargs["guidance_scale"]), pipe(batch, *args, **kwargs))[1]

    monkeypatch.setattr(dreambooth, "class_pipeline", recording)
    folder = tmp_path / "cfg-class"
    options = ["--class-prompt", "a shape", "--class-dir", str(folder), "--class-images", "2"]
    _, metadata = _train(tiny_base, instances, tmp_path / "a.safetensors", *options, "--class-cfg", "1",
                         "--prior-target", "base")
    assert metadata["nodeforge_prior_target"] == "base"
    assert guidance == [1.0] and json.loads((folder / "class_images.json").read_text())["cfg"] == 1.0
    _train(tiny_base, instances, tmp_path / "b.safetensors", *options, "--class-cfg", "1")
    assert guidance == [1.0], "the same guidance reuses the class images"
    _train(tiny_base, instances, tmp_path / "c.safetensors", *options)
    assert guidance == [1.0, 5.0], "another guidance draws them again (default 5)"


# -- the file -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("variant", ["lora", "dora"])
def test_the_lora_loads_in_the_lora_node_and_changes_the_output(tiny_base, instances, tmp_path, variant):
    from diffusers import UNet2DConditionModel

    from nodeforge.core.registry import builtin_module

    out = tmp_path / f"sks-{variant}.safetensors"
    extra = ["--dora"] if variant == "dora" else []
    tensors, metadata = _train(tiny_base, instances, out, "--prior-weight", "0", "--lr", "0.05", "--steps", "3",
                               "--conv", "--text-encoder", *extra)
    assert metadata["ss_num_reg_images"] == "0" and json.loads(metadata["ss_tag_frequency"]) == {
        "stars": {"a": 3, "sks": 3, "shape": 3}}
    node_lora, wrappers = builtin_module("lora"), builtin_module("wrappers")
    parts, ignored = node_lora.parse_lora(tensors)
    assert not ignored and set(parts) == {"unet", "te"}
    unet = UNet2DConditionModel.from_pretrained(tiny_base, subfolder="unet")
    patch, unmatched = node_lora.resolve(parts["unet"], unet, variant, 1.0, unet.config)
    assert unmatched == 0 and "down_blocks.0.resnets.0.conv1" in patch.deltas
    gen = torch.Generator().manual_seed(3)
    x, t, cond = torch.randn(1, 4, 16, 16, generator=gen), torch.tensor([500]), torch.randn(1, 77, 64, generator=gen)
    with torch.no_grad():
        base = unet(x, t, encoder_hidden_states=cond).sample
        with wrappers.apply_patches({"unet": unet}, (("unet", patch),)):
            got = unet(x, t, encoder_hidden_states=cond).sample
    assert (got - base).abs().max() > 1e-3
    if variant == "lora":   # the node applies what the trainer's own merge gives
        merged = UNet2DConditionModel.from_pretrained(tiny_base, subfolder="unet")
        lora.apply_kohya_lora(merged, tensors, lora.UNET_PREFIX, 1.0)
        with torch.no_grad():
            torch.testing.assert_close(got, merged(x, t, encoder_hidden_states=cond).sample, atol=1e-5, rtol=1e-4)


# -- refusals -----------------------------------------------------------------------------------------------
def test_bad_instance_folders_are_refused_in_one_line_naming_the_option(tmp_path, no_base_load):
    def argv(folder, *extra):
        return ["--instance-dir", str(folder), "--instance-prompt", "a sks shape", "--base", "nodeforge-shapes",
                "--out", str(tmp_path / "x.safetensors"), "--prior-weight", "0", *extra]

    empty = tmp_path / "empty"
    empty.mkdir()
    assert _refused(argv(empty)) == (f"error: train-dreambooth: --instance-dir {empty} holds no images (it is "
                                     "empty): put 5-10 pictures of the subject there (.bmp, .jpeg, .jpg, .png, .webp)")
    texts = tmp_path / "texts"
    texts.mkdir()
    (texts / "a.txt").write_text("a sks shape")
    (texts / "b.safetensors").write_bytes(b"")
    assert "holds no images (it holds only .safetensors, .txt): put 5-10 pictures" in _refused(argv(texts))
    fake = tmp_path / "fake"
    fake.mkdir()
    (fake / "0.png").write_text("not a picture")
    assert _refused(argv(fake)) == (f"error: train-dreambooth: --instance-dir: {fake / '0.png'} is not an image PIL "
                                    "can read; remove it or fix its extension")
    assert "--instance-dir" in _refused(argv(tmp_path / "nowhere")) and "does not exist" in _refused(
        argv(tmp_path / "nowhere"))


def test_prompt_mistakes_are_refused_in_one_line_with_the_fix(instances, tmp_path, no_base_load):
    def argv(*extra):
        return ["--instance-dir", str(instances), "--base", "nodeforge-shapes",
                "--out", str(tmp_path / "x.safetensors"), *extra]

    assert _refused(argv("--instance-prompt", "a sks shape")) == (
        "error: train-dreambooth: --prior-weight 1 needs --class-prompt: give the subject's class without the "
        "token (--class-prompt 'a shape'), or --prior-weight 0 to train without prior preservation")
    assert "--prior-weight 0.5 needs --class-prompt" in _refused(argv("--instance-prompt", "a sks shape",
                                                                      "--prior-weight", "0.5"))
    assert "--instance-prompt is empty" in _refused(argv("--instance-prompt", " ", "--prior-weight", "0"))
    assert "--class-prompt is the same as --instance-prompt" in _refused(
        argv("--instance-prompt", "a shape", "--class-prompt", "a shape"))
    listed = tmp_path / "class.txt"
    listed.write_text("a red circle on a blue background\n", encoding="utf-8")
    assert _refused(argv("--instance-prompt", "a sks shape", "--class-prompt", "a shape", "--class-prompts",
                         str(listed))) == ("error: train-dreambooth: --class-prompt and --class-prompts both given: "
                                           "give one prompt with --class-prompt or a file of them with --class-prompts")
    blank = tmp_path / "blank.txt"
    blank.write_text("\n  \n", encoding="utf-8")
    assert _refused(argv("--instance-prompt", "a sks shape", "--class-prompts", str(blank))) == (
        f"error: train-dreambooth: --class-prompts {blank} holds no prompt: write the class's prompts into it, "
        "one a line ('a red circle on a blue background')")
    assert f"--class-prompts {tmp_path / 'none.txt'} cannot be read (FileNotFoundError)" in _refused(
        argv("--instance-prompt", "a sks shape", "--class-prompts", str(tmp_path / "none.txt")))
    assert "--class-prompt is the same as --instance-prompt" in _refused(
        argv("--instance-prompt", "a red circle on a blue background", "--class-prompts", str(listed)))
    foreign = tmp_path / "mine"
    foreign.mkdir()
    Image.new("RGB", (64, 64)).save(foreign / "photo.png")
    assert _refused(argv("--instance-prompt", "a sks shape", "--class-prompt", "a shape", "--class-dir",
                         str(foreign))) == (f"error: train-dreambooth: --class-dir {foreign} holds images "
                                            "train-dreambooth did not draw (no class_images.json): give a new or "
                                            "empty folder")


def test_the_demo_subject_pictures_are_yellow_crescents_on_blue(tmp_path):
    from nodeforge.training import evaluate_dreambooth
    from nodeforge.training.judge import judge

    evaluate_dreambooth.write_instances(tmp_path / "moons", 8, seed=0)
    verdicts = [judge(p) for p in sorted((tmp_path / "moons").glob("*.png"))]
    assert [(v.shape, v.colour, v.background) for v in verdicts] == [("crescent", "yellow", "blue")] * 8
    assert len({v.area for v in verdicts}) == 8   # sizes, places and rotations differ


def test_the_class_prompts_file_holds_every_prompt_the_class_measure_draws_from(tmp_path):
    from nodeforge.training import evaluate_dreambooth

    assert evaluate_dreambooth.main(["--write-class-prompts", str(tmp_path / "class.txt")]) == 0
    lines = (tmp_path / "class.txt").read_text(encoding="utf-8").splitlines()
    assert len(lines) == len(set(lines)) == 168 and lines[0] == "a red circle on a green background"
    words = [line.split() for line in lines]
    assert all(w[1] != w[5] and w[3:5] == ["on", "a"] and w[6] == "background" for w in words)
    assert {s: sum(w[2] == s for w in words) for s in data.SHAPES} == {s: 56 for s in data.SHAPES}


def test_the_class_prompts_are_the_training_captions_and_the_prompts_the_class_measure_draws(tmp_path, monkeypatch):
    from nodeforge.training import evaluate, evaluate_dreambooth

    assert evaluate_dreambooth.main(["--write-class-prompts", str(tmp_path / "class.txt")]) == 0
    lines = (tmp_path / "class.txt").read_text(encoding="utf-8").splitlines()
    triangle = data.ShapeSample("triangle", "yellow", "blue", "large", 20, (32, 32), 0.0)
    assert data.full_caption(triangle) == "a yellow triangle on a blue background" and data.full_caption(triangle) in lines
    drawn = []

    def drawing(pipe, prompts, seeds, **_):
        drawn.extend(prompts)
        return np.stack([data.render(triangle)] * len(prompts))

    monkeypatch.setattr(evaluate, "sample", drawing)
    result, _ = evaluate.prompt_following(None, 20, seed=7)
    assert result["samples"] == 20 and len(drawn) == 20 and set(drawn) <= set(lines)
    assert result["all_three_accuracy"] == round(sum(p == data.full_caption(triangle) for p in drawn) / 20, 3)


def test_the_shipped_moon_lora_draws_crescents_through_the_lora_node():
    """resources/loras/shapes-moon.safetensors (the DreamBooth demo, see its card), applied by the
    LoRA node's code: 'a sks shape' is a crescent on most seeds, and never without it."""
    from nodeforge.core.registry import builtin_module
    from nodeforge.paths import builtin_dir
    from nodeforge.training import evaluate
    from nodeforge.training.judge import judge

    node_lora, wrappers = builtin_module("lora"), builtin_module("wrappers")
    pipe = evaluate.load_pipeline(builtin_dir("resources") / "models" / "nodeforge-shapes")
    moon = builtin_dir("resources") / "loras" / "shapes-moon.safetensors"
    parts, ignored = node_lora.parse_lora(lora.load_kohya(moon)[0])
    unet_patch, unmatched_unet = node_lora.resolve(parts["unet"], pipe.unet, "lora", 1.0, pipe.unet.config)
    te_patch, unmatched_te = node_lora.resolve(parts["te"], pipe.text_encoder, "lora", 1.0, None)
    assert not ignored and unmatched_unet == unmatched_te == 0
    seeds = [500_000 + i for i in range(6)]   # the card's first six seeds
    without = [judge(im).shape for im in evaluate.sample(pipe, ["a sks shape"] * 6, seeds)]
    with wrappers.apply_patches({"unet": pipe.unet, "te": pipe.text_encoder}, (("unet", unet_patch), ("te", te_patch))):
        moons = [judge(im).shape for im in evaluate.sample(pipe, ["a sks shape"] * 6, seeds)]
    assert "crescent" not in without
    assert moons.count("crescent") >= 5, moons


def test_the_shipped_moon_lora_was_trained_as_its_card_says():
    """shapes-moon's metadata: prior preservation against the base's own predictions, weight 3, the 96
    class prompts shipped beside it ('a shape' and the coloured class prompts in turn)."""
    from nodeforge.paths import builtin_dir

    folder = builtin_dir("resources") / "loras"
    prompts = (folder / "shapes-moon-class-prompts.txt").read_text(encoding="utf-8").splitlines()
    assert len(prompts) == 96 and prompts[::2] == ["a shape"] * 48
    assert {p.split()[2] for p in prompts[1::2]} == set(data.SHAPES)
    metadata = lora.load_kohya(folder / "shapes-moon.safetensors")[1]
    assert metadata["nodeforge_prior_target"] == "base" and metadata["ss_prior_loss_weight"] == "3.0"
    assert metadata["ss_num_reg_images"] == "96" and metadata["nodeforge_class_prompt"].split("\n") == prompts
    assert metadata["nodeforge_instance_prompt"] == "a sks shape"
