"""Qwen-Image-Edit (2509 / 2511) through TextEncodeQwenImageEditPlus, checked against diffusers'
QwenImageEditPlusPipeline on tiny random models (tests/nodes/tiny_qwenimage.py): the prompt with its pictures
read by Qwen2.5-VL's vision tower, the pictures' reference latents beside the drawn latent, 2511's
timestep-zero references, and refusals. The vision tower's picture is the ComfyUI node's "area" scaling to
about 384 x 384 (the pipeline scales with Lanczos to multiples of 32), so the pipeline is given that picture's
prompt; the VAE's picture is 1024 x 1024 in both."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import tiny_models as tm
import tiny_qwenimage as tq
from nodeforge.core.errors import NodeError

PROMPT = "make the circle red"


@pytest.fixture(scope="module")
def setup(tmp_path_factory) -> dict:
    torch.set_num_threads(2)
    root = tmp_path_factory.mktemp("qweneditmodels")
    (root / "checkpoints").mkdir()
    parts = tq.make_qwenimage_components(0)
    tq.save_qwenimage_folder(parts, root / "checkpoints" / "tiny-qwen")
    picture = np.random.default_rng(5).integers(0, 255, (1024, 1024, 3), dtype=np.uint8)
    Image.fromarray(picture).save(root / "picture.png")
    small = np.random.default_rng(6).integers(0, 255, (96, 160, 3), dtype=np.uint8)
    Image.fromarray(small).save(root / "small.png")
    return {"root": root, "parts": parts, "picture": root / "picture.png", "small": root / "small.png"}


@pytest.fixture(scope="module")
def qwen_engine(make_engine, setup, tmp_path_factory):
    return make_engine(tmp_path_factory.mktemp("qweneditout"), setup["root"])


def _edit_pipe(parts):
    from nodes.families.qwenimage_text import EDIT_TEMPLATE

    pipe = tq.edit_plus_pipeline(parts)
    pipe.prompt_template_encode_start_idx = tq.prefix_length(pipe.tokenizer, EDIT_TEMPLATE)   # 64 in Qwen's
    return pipe


@pytest.fixture(scope="module")
def pipe(setup):
    return _edit_pipe(setup["parts"])


def vision_picture(path: Path) -> Image.Image:
    """The picture as the ComfyUI node hands it to the vision tower: "area"-scaled to about 384 x 384, 8 bits."""
    import math

    x = torch.from_numpy(np.asarray(Image.open(path).convert("RGB"))).float().div(255).permute(2, 0, 1)[None]
    h, w = x.shape[2:]
    scale = math.sqrt(384 * 384 / (w * h))
    x = torch.nn.functional.interpolate(x, size=(round(h * scale), round(w * scale)), mode="area")
    return Image.fromarray((x[0].permute(1, 2, 0) * 255).round().to(torch.uint8).numpy())


def edit_graph(pictures: list[Path], *, seed: int = 4, vae: bool = True, method: str | None = None):
    """The shipped txt2img graph with both prompts as TextEncodeQwenImageEditPlus on the pictures, cfg 1."""
    wf = tm.shipped_txt2img("tiny-qwen", width=64, height=64, steps=2, seed=seed, cfg=1.0)
    for n, path in enumerate(pictures, 1):
        wf.add("LoadImage", {"path": str(path)}, node_id=f"img{n}")
    for node, text in (("2", PROMPT), ("3", "")):
        links = {"clip": ("1", "clip"), **({"vae": ("1", "vae")} if vae else {}),
                 **{f"image{n}": (f"img{n}", "image") for n in range(1, len(pictures) + 1)}}
        wf.add("TextEncodeQwenImageEditPlus", {"prompt": text}, links, node_id=f"edit{node}")
        source = f"edit{node}"
        if method is not None:
            wf.add("ReferenceLatentMethod", {"reference_latents_method": method},
                   {"conditioning": (source, "conditioning")}, node_id=f"method{node}")
            source = f"method{node}"
        wf.nodes["5"].inputs["positive" if node == "2" else "negative"] = (source, "conditioning")
        del wf.nodes[node]
    return wf


def theirs(pipe, picture: Path, seed: int) -> torch.Tensor:
    embeds, mask = pipe.encode_prompt(PROMPT, image=[vision_picture(picture)])
    packed = pipe(image=[Image.open(picture).convert("RGB")], prompt_embeds=embeds, prompt_embeds_mask=mask,
                  num_inference_steps=2, height=64, width=64, true_cfg_scale=1.0,
                  generator=torch.Generator().manual_seed(seed), output_type="latent").images
    return type(pipe)._unpack_latents(packed, 64, 64, 8)[:, :, 0]


def test_the_prompt_with_two_pictures_is_the_pipelines(qwen_engine, setup, pipe):
    wf = edit_graph([setup["picture"], setup["small"]], vae=False)
    entry = qwen_engine.run(wf, outputs=["edit2"]).outputs["edit2"]["conditioning"][0]
    expected, mask = pipe.encode_prompt(PROMPT, image=[vision_picture(setup["picture"]), vision_picture(setup["small"])])
    assert mask is None and "reference_latents" not in entry   # no VAE: the pictures are only in the prompt
    assert entry["embeds"].shape == expected.shape and expected.shape[1] > 2 * 100   # two pictures' tokens
    torch.testing.assert_close(entry["embeds"], expected, atol=1e-5, rtol=1e-5)


def test_one_picture_with_the_vae_gives_qwenimage_edit_plus_pipelines_latents(qwen_engine, setup, pipe):
    run = qwen_engine.run(edit_graph([setup["picture"]]), outputs=["5", "edit2"])
    refs = run.outputs["edit2"]["conditioning"][0]["reference_latents"]
    assert [tuple(r.shape) for r in refs] == [(1, 16, 128, 128)]   # 1024 x 1024 pixels, whole
    ours = run.outputs["5"]["latent"]["samples"]
    expected = theirs(pipe, setup["picture"], seed=4)
    assert float((ours - expected).abs().max()) < 1e-4
    plain = qwen_engine.run(edit_graph([setup["picture"]], vae=False), outputs=["5"]).outputs["5"]["latent"]["samples"]
    assert float((ours - plain).abs().max()) > 1e-3   # the reference latent steered


def test_index_timestep_zero_gives_the_2511_transformers_latents(qwen_engine, setup):
    ours = qwen_engine.run(edit_graph([setup["picture"]], method="index_timestep_zero"),
                           outputs=["5"]).outputs["5"]["latent"]["samples"]
    parts_2511 = dict(setup["parts"], transformer=tq.make_transformer(0, zero_cond_t=True))
    expected = theirs(_edit_pipe(parts_2511), setup["picture"], seed=4)
    assert float((ours - expected).abs().max()) < 1e-4
    index = qwen_engine.run(edit_graph([setup["picture"]], method="index"), outputs=["5"]).outputs["5"]["latent"]
    assert float((ours - index["samples"]).abs().max()) > 1e-4


def test_the_first_edit_models_node_gives_qwenimage_edit_pipelines_latents(qwen_engine, setup):
    """TextEncodeQwenImageEdit: one picture (1024 x 1024 here, so neither side scales it) in the template, read by
    the vision tower and as the reference latent, as QwenImageEditPipeline does."""
    from diffusers import QwenImageEditPipeline

    from nodes.families.qwenimage_text import EDIT_ONE_TEMPLATE

    wf = tm.shipped_txt2img("tiny-qwen", width=64, height=64, steps=2, seed=5, cfg=1.0)
    wf.add("LoadImage", {"path": str(setup["picture"])}, node_id="img")
    wf.add("TextEncodeQwenImageEdit", {"prompt": PROMPT}, {"clip": ("1", "clip"), "vae": ("1", "vae"),
                                                           "image": ("img", "image")}, node_id="edit")
    wf.nodes["5"].inputs["positive"] = ("edit", "conditioning")
    ours = qwen_engine.run(wf, outputs=["5"]).outputs["5"]["latent"]["samples"]
    parts = setup["parts"]
    pipe = QwenImageEditPipeline(processor=tq.make_processor(parts["tokenizer"]), **parts)
    pipe.set_progress_bar_config(disable=True)
    user = EDIT_ONE_TEMPLATE.index("<|im_start|>user\n") + len("<|im_start|>user\n")
    pipe.prompt_template_encode_start_idx = len(pipe.tokenizer(EDIT_ONE_TEMPLATE[:user]).input_ids)   # 64 in Qwen's
    packed = pipe(image=Image.open(setup["picture"]).convert("RGB"), prompt=PROMPT, num_inference_steps=2, height=64,
                  width=64, true_cfg_scale=1.0, generator=torch.Generator().manual_seed(5), output_type="latent").images
    assert float((ours - type(pipe)._unpack_latents(packed, 64, 64, 8)[:, :, 0]).abs().max()) < 1e-4


def test_the_pictures_sizes_follow_comfyuis_node(setup):
    from nodes.families.qwenimage_nodes import VAE_PIXELS, VISION_PIXELS, area_scale

    small = torch.rand(1, 96, 160, 3)
    assert area_scale(small, VISION_PIXELS).shape[1:3] == (297, 496)   # 384^2 px, aspect kept, rounded
    assert area_scale(small, VAE_PIXELS, 8).shape[1:3] == (792, 1320)   # 1024^2 px, sides multiples of 8
    assert area_scale(torch.rand(1, 1024, 1024, 3), VAE_PIXELS, 8).shape[1:3] == (1024, 1024)


def test_an_offset_reference_method_is_refused_naming_index(qwen_engine, setup):
    from nodeforge.core.errors import NodeExecutionError

    with pytest.raises(NodeExecutionError) as info:
        qwen_engine.run(edit_graph([setup["small"]], method="offset"), outputs=["5"])
    assert "'offset'" in str(info.value) and "index" in str(info.value) and "\n" not in str(info.value)


def test_a_zimage_clip_is_refused_naming_the_loader(setup):
    from nodes.families.qwenimage_nodes import run_text_encode_qwen_image_edit_plus
    from nodes.wrappers import ClipModel

    with pytest.raises(NodeError) as info:
        run_text_encode_qwen_image_edit_plus(None, ClipModel(None, None, "zimage"), "x")
    assert "type qwen_image" in str(info.value) and "zimage" in str(info.value)
