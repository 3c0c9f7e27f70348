"""--dora trains a weight-decomposed LoRA through peft's use_dora; the file it writes gives the same
UNet as peft's merged trained model, through the LoRA node and through diffusers. --qlora says in
one line what it needs where it cannot run."""
import pytest

np = pytest.importorskip("numpy")
torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")
pytest.importorskip("peft")

from nodeforge.training import data, lora  # noqa: E402


@pytest.fixture(scope="module")
def trained(tiny_base, tmp_path_factory):
    """A 3-step --dora --conv --text-encoder run (a high rate, so the change is visible): the file and peft's trained UNet."""
    tmp = tmp_path_factory.mktemp("dora")
    images = tmp / "stars"
    data.write_folder(images, 4, seed=0, shapes=("star",))
    out, kept = tmp / "star-dora.safetensors", {}
    real_train = lora.train

    def keep(unet, *rest):
        kept["unet"] = unet
        real_train(unet, *rest)

    lora.train = keep
    try:
        assert lora.main([str(images), "--base", str(tiny_base), "--out", str(out), "--steps", "3", "--batch", "2",
                          "--rank", "4", "--alpha", "2", "--lr", "0.05", "--dora", "--conv", "--text-encoder", "--seed", "1"]) == 0
    finally:
        lora.train = real_train
    x, t, cond = _inputs()
    peft_unet = kept["unet"].eval()
    with torch.no_grad():
        unmerged = peft_unet(x, t, encoder_hidden_states=cond).sample
        merged = _peft_merged(peft_unet)(x, t, encoder_hidden_states=cond).sample
    torch.testing.assert_close(unmerged, merged, atol=1e-5, rtol=0)   # peft's DoRA forward is its merge
    return out, merged


def _inputs():
    gen = torch.Generator().manual_seed(3)
    return torch.randn(1, 4, 16, 16, generator=gen), torch.tensor([500]), torch.randn(1, 77, 64, generator=gen)


def _peft_merged(unet):
    """The trained peft UNet with every DoRA layer merged into its base weight (peft's own merge)."""
    for module in unet.modules():
        if hasattr(module, "lora_magnitude_vector") and "default" in module.lora_magnitude_vector:
            module.merge(adapter_names=["default"])
    return unet


def test_dora_file_holds_magnitudes_and_the_lora_node_gives_peft_merged_forward(trained, tiny_base):
    from diffusers import UNet2DConditionModel

    from nodeforge.core.registry import builtin_module

    out, expected = trained
    tensors, metadata = lora.load_kohya(out)
    q = "unet.down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k"
    assert tensors[q + ".lora_A.weight"].shape == (4, 64) and tensors[q + ".lora_B.weight"].shape == (16, 4)
    assert tensors[q + ".lora_magnitude_vector"].shape == (16,)
    conv = "unet.down_blocks.0.resnets.0.conv1"
    assert tensors[conv + ".lora_A.weight"].shape == (4, 16, 3, 3)
    assert tensors[conv + ".lora_magnitude_vector"].shape == (1, 16, 1, 1)   # peft's conv shape
    assert '"dora_wd": "true"' in metadata["ss_network_args"]
    magnitudes = [k for k in tensors if k.endswith(("lora_magnitude_vector", "lora_magnitude_vector.weight"))]
    assert len(magnitudes) == len([k for k in tensors if k.endswith("lora_A.weight")]) > 0

    node_lora, wrappers = builtin_module("lora"), builtin_module("wrappers")
    parts, ignored = node_lora.parse_lora(tensors)
    unet = UNet2DConditionModel.from_pretrained(tiny_base, subfolder="unet")
    patch, unmatched = node_lora.resolve(parts["unet"], unet, "dora", 1.0, unet.config)
    assert not ignored and unmatched == 0
    x, t, cond = _inputs()
    with torch.no_grad():
        base = unet(x, t, encoder_hidden_states=cond).sample
        with wrappers.apply_patches({"unet": unet}, (("unet", patch),)):
            got = unet(x, t, encoder_hidden_states=cond).sample
    assert (base - expected).abs().max() > 1e-3          # training changed the model visibly
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)


def test_diffusers_loads_the_dora_file_as_a_dora_and_gives_the_same_unet(trained, tiny_base):
    from diffusers import StableDiffusionPipeline

    from nodeforge.core.registry import builtin_module

    out, expected = trained
    pipe = StableDiffusionPipeline.from_pretrained(tiny_base, safety_checker=None)
    pipe.load_lora_weights(str(out))
    layer = pipe.unet.down_blocks[0].attentions[0].transformer_blocks[0].attn2.to_k
    assert layer.use_dora["default_0"]
    x, t, cond = _inputs()
    with torch.no_grad():
        got = pipe.unet(x, t, encoder_hidden_states=cond).sample
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)

    # the text encoder's DoRA: diffusers (through transformers) and the LoRA node read it alike
    node_lora, wrappers = builtin_module("lora"), builtin_module("wrappers")
    parts, _ = node_lora.parse_lora(lora.load_kohya(out)[0])
    plain = StableDiffusionPipeline.from_pretrained(tiny_base, safety_checker=None).text_encoder
    patch, unmatched = node_lora.resolve(parts["te"], plain, "dora", 1.0, None)
    assert unmatched == 0 and len(patch.deltas) == 4
    ids = pipe.tokenizer(["a red star"], padding="max_length", max_length=77, return_tensors="pt").input_ids
    with torch.no_grad():
        via_diffusers = pipe.text_encoder(ids)[0]
        with wrappers.apply_patches({"te": plain}, (("te", patch),)):
            via_node = plain(ids)[0]
    torch.testing.assert_close(via_diffusers, via_node, atol=1e-5, rtol=0)


def test_qlora_without_cuda_and_bitsandbytes_is_refused_in_one_line(tiny_base, tmp_path, no_base_load):
    images = tmp_path / "stars"
    data.write_folder(images, 2, seed=0, shapes=("star",))
    with pytest.raises(SystemExit) as exc:
        lora.main([str(images), "--base", str(tiny_base), "--out", str(tmp_path / "q.safetensors"), "--qlora",
                   "--dora", "--device", "cpu"])
    message = str(exc.value)
    assert message.startswith("error: train-lora: --qlora") and "\n" not in message
    assert "has no CUDA GPU (--device cuda)" in message and "train without --qlora" in message
    assert not (tmp_path / "q.safetensors").exists()


def test_the_evaluator_applies_a_dora_file_as_the_trained_model_and_nothing_at_strength_0(trained, tiny_base):
    # evaluate --lora merged kohya keys only, so a DoRA file was measured as the bare base model
    from nodeforge.training import evaluate

    out, expected = trained
    x, t, cond = _inputs()
    with torch.no_grad():
        got = evaluate.load_pipeline(tiny_base, out, 1.0).unet(x, t, encoder_hidden_states=cond).sample
        base = evaluate.load_pipeline(tiny_base).unet(x, t, encoder_hidden_states=cond).sample
        zero = evaluate.load_pipeline(tiny_base, out, 0.0).unet(x, t, encoder_hidden_states=cond).sample
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)
    assert torch.equal(zero, base) and (got - base).abs().max() > 1e-3


def test_the_evaluators_strength_0_check_draws_the_base_in_a_batch_of_the_same_size(trained, tiny_base, monkeypatch):
    # evaluate --lora compared 8 strength-0 images with the first 8 of a batch of 48 base images; with one
    # thread the demo model's convolutions round a batch of 48 and one of 8 differently (pixels 1/255
    # apart), so identical weights were reported as different images. Here a batch over 8 is made to
    # round differently on purpose: the check must still see strength 0 = the base.
    from nodeforge.training import evaluate

    real = evaluate.sample

    def batch_rounding(pipe, prompts, *args, **kwargs):
        images = real(pipe, prompts, *args, **kwargs)
        return images ^ np.uint8(len(prompts) > 8)   # the last bit depends on the batch size

    monkeypatch.setattr(evaluate, "sample", batch_rounding)
    out, _ = trained
    result, images = evaluate.lora_star_rate(tiny_base, out, 12, seed=1)
    assert result["seeds"] == 12 and result["strength0_weights_identical"] is True
    assert result["strength0_images_identical"] is True
    assert images.shape == (24, 64, 64, 3) and not np.array_equal(images[:12], images[12:])   # the DoRA draws
