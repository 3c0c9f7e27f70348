"""SD 2.1 unCLIP models (issue 30; ComfyUI's unCLIPCheckpointLoader) on a tiny StableUnCLIPImg2ImgPipeline
built here as diffusers' own tests build one: unCLIP Checkpoint Loader + CLIP Vision Encode + unCLIP
Conditioning give the pipeline's latents; the same weights as a single file in the original layout (OpenCLIP
image encoder under embedder.model.visual., the noise augmentor's buffers) load to the same model; several
images follow ComfyUI's sum; noise augmentation changes the picture; other checkpoints load without a CLIP
vision encoder and say so in one line where one is used; hostile files are one line naming the file."""
from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

from nodeforge.core.errors import WorkflowError
from nodeforge.core.registry import builtin_module

import tiny_models as tm

STEPS, SEED, CFG = 4, 7, 5.0
WIDTH = 16    # the image embedding (the vision encoder's projection); the class embedding reads 2 x WIDTH
VISION = dict(hidden_size=32, intermediate_size=37, num_attention_heads=4, num_hidden_layers=3, image_size=32,
              patch_size=4, projection_dim=WIDTH, hidden_act="gelu")
unclip_model = builtin_module("unclip_model")


def _processor():
    from transformers import CLIPImageProcessorPil

    return CLIPImageProcessorPil(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})


def _components():
    """tiny_models' SD parts with an unCLIP UNet (v-prediction, projection class embedding), an image encoder
    and a noise augmentor whose mean and std are not 0 and 1."""
    from diffusers import DDPMScheduler, EulerDiscreteScheduler, UNet2DConditionModel
    from diffusers.pipelines.stable_diffusion.stable_unclip_image_normalizer import StableUnCLIPImageNormalizer
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    parts = tm.make_components(11)
    torch.manual_seed(12)
    parts["unet"] = UNet2DConditionModel(
        block_out_channels=(32, 64), layers_per_block=1, sample_size=8, in_channels=4, out_channels=4,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=32, attention_head_dim=8, norm_num_groups=8, use_linear_projection=True,
        class_embed_type="projection", projection_class_embeddings_input_dim=2 * WIDTH)
    with torch.no_grad():   # a fresh class embedding is small; make the image matter as a trained one does
        parts["unet"].class_embedding.linear_1.weight.mul_(20)
    parts["scheduler"] = EulerDiscreteScheduler.from_config(parts["scheduler"].config, prediction_type="v_prediction")
    vision = CLIPVisionModelWithProjection(CLIPVisionConfig(**VISION)).eval()
    normalizer = StableUnCLIPImageNormalizer(embedding_dim=WIDTH)
    with torch.no_grad():
        normalizer.mean.copy_(torch.randn(1, WIDTH) * 0.1)
        normalizer.std.copy_(torch.rand(1, WIDTH) + 0.5)
    del parts["text_encoder_2"], parts["tokenizer_2"]
    return dict(parts, image_encoder=vision, feature_extractor=_processor(), image_normalizer=normalizer,
                image_noising_scheduler=DDPMScheduler(beta_schedule="squaredcos_cap_v2"))


def _pipeline(parts):
    from diffusers import StableUnCLIPImg2ImgPipeline

    pipe = StableUnCLIPImg2ImgPipeline(**parts)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def open_clip_vision(vision, prefix: str = "embedder.model.visual.") -> dict[str, torch.Tensor]:
    """A transformers CLIP vision tower in OpenCLIP's names (as Stability's unCLIP files keep the embedder)."""
    sd = vision.state_dict()
    out = {prefix + "class_embedding": sd["vision_model.embeddings.class_embedding"],
           prefix + "positional_embedding": sd["vision_model.embeddings.position_embedding.weight"],
           prefix + "conv1.weight": sd["vision_model.embeddings.patch_embedding.weight"],
           prefix + "proj": sd["visual_projection.weight"].T.contiguous()}
    for ours, theirs in (("pre_layrnorm", "ln_pre"), ("post_layernorm", "ln_post")):
        for p in ("weight", "bias"):
            out[f"{prefix}{theirs}.{p}"] = sd[f"vision_model.{ours}.{p}"]
    for i in range(vision.config.num_hidden_layers):
        src, dst = f"vision_model.encoder.layers.{i}.", f"{prefix}transformer.resblocks.{i}."
        for p in ("weight", "bias"):
            out[f"{dst}attn.in_proj_{p}"] = torch.cat([sd[f"{src}self_attn.{x}_proj.{p}"] for x in "qkv"])
            for ours, theirs in (("self_attn.out_proj", "attn.out_proj"), ("layer_norm1", "ln_1"),
                                 ("layer_norm2", "ln_2"), ("mlp.fc1", "mlp.c_fc"), ("mlp.fc2", "mlp.c_proj")):
                out[f"{dst}{theirs}.{p}"] = sd[f"{src}{ours}.{p}"]
    return {k: v.contiguous() for k, v in out.items()}


def single_file_state(parts) -> dict[str, torch.Tensor]:
    """The pipeline's weights in the layout of sd21-unclip-h.ckpt: SD 2.x's, the image encoder under
    embedder.model.visual. and the noise augmentor's schedule buffers (here with its mean and std too)."""
    state = tm.ldm_state(parts, "sd2")
    state.update(open_clip_vision(parts["image_encoder"]))
    noising = parts["image_noising_scheduler"]
    state["noise_augmentor.betas"] = noising.betas.clone()
    state["noise_augmentor.alphas_cumprod"] = noising.alphas_cumprod.clone()
    state["noise_augmentor.data_mean"] = parts["image_normalizer"].mean.detach().clone()
    state["noise_augmentor.data_std"] = parts["image_normalizer"].std.detach().clone()
    return state


@pytest.fixture(scope="module")
def unclip_root(tmp_path_factory):
    from safetensors.torch import save_file

    root = tmp_path_factory.mktemp("unclip-models")
    ckpts = root / "checkpoints"
    parts = _components()
    folder = ckpts / "tiny-unclip"
    _pipeline(parts).save_pretrained(str(folder))
    save_file(single_file_state(parts), str(ckpts / "tiny-unclip-single.safetensors"))
    shutil.copytree(folder, ckpts / "tiny-unclip-single.config", ignore=shutil.ignore_patterns("*.safetensors"))
    torch.save({"state_dict": single_file_state(parts)}, ckpts / "tiny-unclip-ckpt.ckpt")
    shutil.copytree(folder, ckpts / "tiny-unclip-ckpt.config", ignore=shutil.ignore_patterns("*.safetensors"))
    return root


@pytest.fixture(scope="module")
def engine(models_dir, unclip_root, registry, tmp_path_factory):
    from nodeforge import Engine
    from nodeforge.core.models import ModelPaths

    return Engine(device="cpu", output_dir=tmp_path_factory.mktemp("out"), registry=registry,
                  model_paths=ModelPaths(roots=[models_dir, unclip_root]))


def _image(seed: int) -> torch.Tensor:
    return torch.randint(0, 256, (1, 40, 48, 3), generator=torch.Generator().manual_seed(seed)).float() / 255


def _pil(image: torch.Tensor):
    from PIL import Image

    return Image.fromarray((image[0].numpy() * 255).round().astype(np.uint8))


def _workflow(folder, checkpoint, unclips, text="a red circle"):
    """unCLIP Checkpoint Loader's txt2img whose positive prompt gets unCLIP Conditioning for each (image,
    strength, noise_augmentation), chained; the images encoded with the loader's own clip_vision."""
    wf = tm.txt2img(checkpoint, text, seed=SEED, steps=STEPS, cfg=CFG)
    wf.nodes["ckpt"].type = "UnCLIPCheckpointLoader"
    positive = ("pos", "conditioning")
    for i, (image, strength, noise) in enumerate(unclips):
        path = folder / f"unclip-{i}-{abs(hash(image.numpy().tobytes()))}.png"
        _pil(image).save(path)
        wf.add("LoadImage", {"path": str(path)}, node_id=f"img{i}")
        wf.add("CLIPVisionEncode", {"crop": "center"}, {"clip_vision": ("ckpt", "clip_vision"),
                                                        "image": (f"img{i}", "image")}, node_id=f"encode{i}")
        wf.add("UnCLIPConditioning", {"strength": strength, "noise_augmentation": noise},
               {"conditioning": positive, "clip_vision_output": (f"encode{i}", "clip_vision_output")},
               node_id=f"unclip{i}")
        positive = (f"unclip{i}", "conditioning")
    wf.nodes["denoise"].inputs["positive"] = positive
    return wf


def _theirs(folder, image, level: int) -> torch.Tensor:
    """diffusers' StableUnCLIPImg2ImgPipeline on the model folder: the embedding's noise from a generator seeded
    0 (NodeForge's), the starting latent NodeForge's seed draws (given latents are not scaled by the pipeline)."""
    pipe = tm.pipeline(folder, "StableUnCLIPImg2ImgPipeline")
    pipe.feature_extractor = _processor()
    pipe.scheduler.set_timesteps(STEPS)
    latents = torch.randn((1, 4, 8, 8), generator=torch.Generator().manual_seed(SEED)) * pipe.scheduler.init_noise_sigma
    return pipe(_pil(image), prompt="a red circle", negative_prompt="", noise_level=level, num_inference_steps=STEPS,
                guidance_scale=CFG, height=32, width=32, latents=latents,
                generator=torch.Generator().manual_seed(0), output_type="latent").images


@pytest.mark.parametrize("checkpoint", ["tiny-unclip", "tiny-unclip-single"])
@pytest.mark.parametrize("level", [0, 300])
def test_one_image_at_strength_one_gives_stable_unclip_img2img_pipelines_latents(engine, unclip_root, tmp_path,
                                                                                  checkpoint, level):
    image = _image(1)
    ours = tm.denoised(engine, _workflow(tmp_path, checkpoint, [(image, 1.0, level / 999)]))
    theirs = _theirs(unclip_root / "checkpoints" / "tiny-unclip", image, level)
    torch.testing.assert_close(ours, theirs, atol=1e-4, rtol=1e-4)
    plain = tm.denoised(engine, _workflow(tmp_path, checkpoint, []))
    assert (ours - plain).abs().max() > 1e-2     # the image steers (no image: a class label of zeros)


def test_the_single_file_loads_the_same_model_as_the_folder_and_a_ckpt_as_weights_only(engine, unclip_root):
    loading = builtin_module("loading")
    ckpts = unclip_root / "checkpoints"
    folder = loading.load_checkpoint(ckpts / "tiny-unclip", "cpu")
    for name in ("tiny-unclip-single.safetensors", "tiny-unclip-ckpt.ckpt"):
        single = loading.load_checkpoint(ckpts / name, "cpu")
        for part, other in ((folder.unet_fields["unet"], single.unet_fields["unet"]),
                            (folder.extra["clip_vision"].model, single.extra["clip_vision"].model),
                            (folder.clip_fields["text_encoder"], single.clip_fields["text_encoder"]),
                            (folder.vae_fields["vae"], single.vae_fields["vae"])):
            theirs = other.state_dict()
            assert {k: v.shape for k, v in part.state_dict().items()} == {k: v.shape for k, v in theirs.items()}
            assert all(torch.equal(v, theirs[k]) for k, v in part.state_dict().items())
        a, b = folder.unet_fields["unclip"], single.unet_fields["unclip"]
        assert torch.equal(a.mean, b.mean) and torch.equal(a.std, b.std) and a.levels == b.levels == 1000
        assert single.unet_fields["prediction_type"] == "v_prediction" and single.unet_fields["family"] == "sd2"


def test_several_images_are_weighted_summed_and_augmented_again_as_comfyui(engine, unclip_root):
    """ComfyUI's rule: each image's [augmented embedding, level embedding] x strength, summed; the sum's
    embedding part augmented again at level round(999 x 0.05) = 50, with that level's embedding."""
    loading = builtin_module("loading")
    augmentor = loading.load_checkpoint(unclip_root / "checkpoints" / "tiny-unclip", "cpu").unet_fields["unclip"]
    pipe = _pipeline(_components())
    a, b = torch.randn(1, WIDTH), torch.randn(2, WIDTH)     # two unCLIPConditioning nodes, the second with 2 images
    ours = augmentor.class_label(((a, 0.7, 0.2), (b, 1.5, 0.0)), "positive")
    generator = torch.Generator().manual_seed(0)
    noised = lambda e, level: pipe.noise_image_embeddings(  # noqa: E731
        e, level, noise=torch.randn(e.shape, generator=generator))
    total = noised(a, 200) * 0.7 + noised(b[:1], 0) * 1.5 + noised(b[1:], 0) * 1.5
    torch.testing.assert_close(ours, noised(total[:, :WIDTH], 50), atol=1e-6, rtol=1e-6)
    assert augmentor.class_label((), "negative").shape == (1, 2 * WIDTH)
    assert not augmentor.class_label((), "negative").any()       # no image: zeros, as the negative prompt


def test_noise_augmentation_changes_the_image(engine, tmp_path):
    image = _image(2)
    none = tm.denoised(engine, _workflow(tmp_path, "tiny-unclip", [(image, 1.0, 0.0)]))
    some = tm.denoised(engine, _workflow(tmp_path, "tiny-unclip", [(image, 1.0, 0.5)]))
    assert (none - some).abs().max() > 1e-2
    weaker = tm.denoised(engine, _workflow(tmp_path, "tiny-unclip", [(image, 0.5, 0.0)]))
    assert (none - weaker).abs().max() > 1e-2   # the strength scales the class label


def test_load_checkpoint_runs_an_unclip_model_too_and_its_model_reads_the_images(engine, tmp_path):
    """As ComfyUI's CheckpointLoaderSimple: the MODEL carries its noise augmentor; without images the
    class label is zeros."""
    image = _image(3)
    wf = _workflow(tmp_path, "tiny-unclip", [(image, 1.0, 0.1)])
    ours = tm.denoised(engine, wf)
    wf.add("CheckpointLoader", {"checkpoint": "tiny-unclip"}, node_id="plain")
    wf.nodes["denoise"].inputs["unet"] = ("plain", "unet")
    torch.testing.assert_close(tm.denoised(engine, wf), ours, atol=0, rtol=0)


def test_an_other_checkpoint_loads_but_its_missing_clip_vision_is_one_line_saying_what_to_do(engine, tmp_path):
    wf = _workflow(tmp_path, "tiny-sd", [(_image(4), 1.0, 0.0)])
    plain = tm.denoised(engine, _workflow(tmp_path, "tiny-sd", []))
    assert plain.shape == (1, 4, 8, 8)                                     # the model itself loads
    with pytest.raises(WorkflowError) as info:
        engine.run(wf, outputs=["denoise"])
    message = str(info.value)
    assert "\n" not in message and "encode0" in message and "clip_vision" in message
    assert "tiny-sd is not an SD 2.1 unCLIP checkpoint" in message and "Load CLIP Vision" in message


def test_validation_refuses_the_missing_encoder_before_anything_loads(engine, tmp_path):
    problems = engine.validate(_workflow(tmp_path, "tiny-sd", [(_image(4), 1.0, 0.0)]))
    assert [(p.node_id, p.field) for p in problems] == [("encode0", "clip_vision")]
    assert "tiny-sd is not an SD 2.1 unCLIP checkpoint" in problems[0].message
    assert engine.validate(_workflow(tmp_path, "tiny-unclip", [(_image(4), 1.0, 0.0)])) == []
    assert engine.validate(_workflow(tmp_path, "tiny-unclip-single", [(_image(4), 1.0, 0.0)])) == []


def test_an_image_encoded_by_another_width_is_one_line(engine, unclip_root):
    loading = builtin_module("loading")
    augmentor = loading.load_checkpoint(unclip_root / "checkpoints" / "tiny-unclip", "cpu").unet_fields["unclip"]
    from nodeforge.core.errors import NodeError

    with pytest.raises(NodeError) as info:
        augmentor.class_label(((torch.zeros(1, 24), 1.0, 0.0),), "positive")
    assert "\n" not in str(info.value) and "24 wide" in str(info.value) and str(WIDTH) in str(info.value)


@pytest.mark.parametrize("variant, width", [("h", 1024), ("l", 768)])
def test_the_shipped_configs_are_stabilitys_unclip_models(variant, width):
    """configs/sd2-unclip-h and -l: an SD 2.1 v-prediction UNet whose class embedding reads [embedding, level
    embedding] (2 x the image encoder's projection: ViT-H/14 1024, ViT-L/14 768), 1000 noise levels."""
    import json

    from transformers import CLIPVisionConfig

    folder = builtin_module("loading").configs_dir() / f"sd2-unclip-{variant}"
    unet = json.loads((folder / "unet" / "config.json").read_text())
    assert (unet["class_embed_type"], unet["projection_class_embeddings_input_dim"]) == ("projection", 2 * width)
    assert unet["cross_attention_dim"] == 1024 and unet["sample_size"] == 96
    vision = CLIPVisionConfig.from_pretrained(str(folder / "image_encoder"))
    assert vision.projection_dim == width and vision.hidden_size == {1024: 1280, 768: 1024}[width]
    assert vision.hidden_act == {1024: "gelu", 768: "quick_gelu"}[width]
    assert json.loads((folder / "scheduler" / "scheduler_config.json").read_text())["prediction_type"] == "v_prediction"
    noising = json.loads((folder / "image_noising_scheduler" / "scheduler_config.json").read_text())
    assert (noising["beta_schedule"], noising["num_train_timesteps"]) == ("squaredcos_cap_v2", 1000)


@pytest.mark.parametrize("damage", ["truncated", "another family", "no vision tower", "no config"])
def test_hostile_unclip_files_are_one_line_naming_the_file(engine, unclip_root, tmp_path, damage):
    from safetensors.torch import save_file

    from nodeforge.core.errors import NodeError

    loading = builtin_module("loading")
    source = unclip_root / "checkpoints" / "tiny-unclip-single.safetensors"
    path = tmp_path / f"broken-{damage.replace(' ', '-')}.safetensors"
    if damage == "truncated":
        path.write_bytes(source.read_bytes()[: source.stat().st_size // 2])
    elif damage == "another family":     # an SD3-style transformer with an unCLIP-looking embedder key
        save_file({"joint_blocks.0.x_block.attn.qkv.weight": torch.zeros(4, 4),
                   "embedder.model.visual.conv1.weight": torch.zeros(4, 3, 2, 2)}, str(path))
    elif damage == "no config":   # a width no shipped config has, and no <name>.config beside it
        save_file(single_file_state(_components()), str(path))
    else:   # the embedder's final layer norm is missing
        state = single_file_state(_components())
        state = {k: v for k, v in state.items() if not k.startswith("embedder.model.visual.ln_post")}
        save_file(state, str(path))
        shutil.copytree(unclip_root / "checkpoints" / "tiny-unclip-single.config",
                        path.with_name(path.stem + ".config"))
    with pytest.raises(NodeError) as info:
        loading.load_checkpoint(path, "cpu")
    message = str(info.value)
    assert "\n" not in message and path.name in message, message
