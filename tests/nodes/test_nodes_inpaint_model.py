"""9-channel inpainting checkpoints (SD 1.5 / SD 2 inpaint): they load from folders and single
files, and UNetDenoise gives them the latent, the mask and the masked image's latent as diffusers'
StableDiffusionInpaintPipeline does."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image



@pytest.fixture(scope="module")
def inpaint_root(tmp_path_factory):
    from diffusers import UNet2DConditionModel

    import tiny_models as tm

    root = tmp_path_factory.mktemp("inpaint-models")
    (root / "checkpoints").mkdir()
    parts = tm.make_components(0)
    torch.manual_seed(11)
    parts["unet"] = UNet2DConditionModel.from_config(dict(parts["unet"].config, in_channels=9))
    folder = tm.save_diffusers(parts, root / "checkpoints" / "tiny-inpaint")
    tm.save_single_file(parts, folder, root / "checkpoints" / "tiny-inpaint-single.safetensors", "sd1")
    pixels = np.zeros((32, 32, 3), np.uint8)
    pixels[:] = (40, 80, 220)
    pixels[8:24, 4:20] = (220, 40, 40)
    Image.fromarray(pixels).save(root / "picture.png")
    mask = np.zeros((32, 32), np.uint8)
    mask[:, 16:] = 255          # repaint the right half (whole latent pixels: 4 image pixels each)
    Image.fromarray(mask).save(root / "mask.png")
    return root


@pytest.fixture(scope="module")
def inpaint_engine(inpaint_root, registry, tmp_path_factory):
    from nodeforge import Engine
    from nodeforge.core.models import ModelPaths

    return Engine(device="cpu", output_dir=tmp_path_factory.mktemp("out"), registry=registry,
                  model_paths=ModelPaths(roots=[inpaint_root]))


def _inpaint(root, checkpoint="tiny-inpaint", empty=False):
    import tiny_models as tm

    wf = tm.txt2img(checkpoint, seed=8, steps=4)
    if not empty:
        mask = torch.from_numpy(np.asarray(Image.open(root / "mask.png"), dtype=np.float32) / 255)
        wf.add("LoadImage", {"path": str(root / "picture.png")}, node_id="img")
        wf.add("VAEEncodeForInpaint", {"grow_mask_by": 0},
               {"vae": ("ckpt", "vae"), "image": ("img", "image"), "mask": ("mask", "mask")}, node_id="enc")
        wf.nodes["denoise"].inputs["latent"] = ("enc", "latent")
        return wf, mask
    return wf, None


def _mask_node(wf, root):
    # a MASK from the mask picture's alpha: LoadImage gives transparent pixels as 1 (repaint)
    rgba = np.zeros((32, 32, 4), np.uint8)
    rgba[..., 3] = 255 - np.asarray(Image.open(root / "mask.png"))
    Image.fromarray(rgba).save(root / "mask-alpha.png")
    wf.add("LoadImage", {"path": str(root / "mask-alpha.png")}, node_id="mask")


def _unet_inputs(model):
    seen = []
    handle = model.register_forward_pre_hook(lambda m, args: seen.append(args[0].detach().clone()))
    return seen, handle


def test_the_inpainting_unet_gets_latent_mask_and_masked_image_as_diffusers_gives_them(inpaint_engine, inpaint_root):
    from diffusers import StableDiffusionInpaintPipeline

    wf, mask = _inpaint(inpaint_root)
    _mask_node(wf, inpaint_root)
    out = inpaint_engine.run(wf, outputs=["ckpt", "enc"]).outputs
    unet, latent = out["ckpt"]["unet"], out["enc"]["latent"]
    assert unet.is_inpainting and unet.latent_channels == 4
    ours, handle = _unet_inputs(unet.unet)
    try:
        result = inpaint_engine.run(wf, outputs=["denoise"]).outputs["denoise"]["latent"]["samples"]
    finally:
        handle.remove()
    assert result.shape == (1, 4, 8, 8) and torch.isfinite(result).all()

    pipe = StableDiffusionInpaintPipeline.from_pretrained(str(inpaint_root / "checkpoints" / "tiny-inpaint"),
                                                          local_files_only=True, safety_checker=None,
                                                          requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    theirs, handle = _unet_inputs(pipe.unet)
    try:
        pipe("a red circle", negative_prompt="", image=Image.open(inpaint_root / "picture.png"),
             mask_image=Image.open(inpaint_root / "mask.png"), masked_image_latents=latent["samples"], height=32,
             width=32, num_inference_steps=4, guidance_scale=5.0, strength=1.0,
             generator=torch.Generator().manual_seed(8), output_type="latent")
    finally:
        handle.remove()
    assert ours[0].shape == theirs[0].shape == (2, 9, 8, 8) and len(ours) == len(theirs) == 4
    # channels 4..8, the mask and the masked image's latent, as the pipeline builds them, at every step
    # (0..3 are the noised latent: ComfyUI's denoise 1 noises the input latent, the pipeline starts from noise)
    for step_ours, step_theirs in zip(ours, theirs):
        torch.testing.assert_close(step_ours[:, 4:], step_theirs[:, 4:], atol=1e-6, rtol=0)
    assert torch.equal(ours[0][:, 4], torch.tensor(mask[::4, ::4]).expand(2, 8, 8))


def test_an_inpainting_model_without_a_mask_paints_everything(inpaint_engine, inpaint_root):
    wf, _ = _inpaint(inpaint_root, empty=True)
    unet = inpaint_engine.run(wf, outputs=["ckpt"]).outputs["ckpt"]["unet"]
    seen, handle = _unet_inputs(unet.unet)
    try:
        inpaint_engine.run(wf, outputs=["denoise"])
    finally:
        handle.remove()
    first = seen[0]
    assert torch.equal(first[:, 4], torch.ones_like(first[:, 4])) and torch.equal(first[:, 5:], torch.zeros_like(first[:, 5:]))


def test_a_single_file_inpainting_checkpoint_loads_and_equals_the_folder(inpaint_engine, inpaint_root):
    folder_wf, _ = _inpaint(inpaint_root)
    _mask_node(folder_wf, inpaint_root)
    single_wf, _ = _inpaint(inpaint_root, "tiny-inpaint-single")
    _mask_node(single_wf, inpaint_root)
    a = inpaint_engine.run(folder_wf, outputs=["denoise"]).outputs["denoise"]["latent"]["samples"]
    b = inpaint_engine.run(single_wf, outputs=["denoise"]).outputs["denoise"]["latent"]["samples"]
    torch.testing.assert_close(a, b, atol=1e-5, rtol=0)
