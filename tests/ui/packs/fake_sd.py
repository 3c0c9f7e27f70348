"""A stand-in for the diffusion pack with the real node types' ports and params (nodes/__init__.py,
nodes/README.md), computed with numpy so screenshots and benchmarks run anywhere in seconds.
"""
from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

from nodeforge.core.spec import Input, NodeSpec, Output, Param
from nodeforge.core.types import FileKind, InputRole, ParamRole

SAMPLERS = ("euler", "euler_a", "ddim", "dpm++_2m", "lms")


def _checkpoints():
    return ["nodeforge-shapes", "sd15-photoreal.safetensors"]


def _ckpt(ctx, checkpoint, **_):
    return {"unet": {"name": checkpoint}, "clip": {"name": checkpoint}, "vae": {"name": checkpoint}}


def _lora(ctx, unet, clip, lora, strength_unet, strength_clip, **_):
    return {"unet": unet, "clip": clip}


def _encode(ctx, clip, text, **_):
    return {"conditioning": [{"text": text}]}


def _latent(ctx, width, height, batch_size, **_):
    return {"latent": np.zeros((batch_size, 4, height // 8, width // 8), np.float32)}


def _picture(seed: int, text: str, size: int, t: float) -> Image.Image:
    rng = np.random.default_rng(seed)
    img = Image.new("RGB", (size, size), tuple(int(v) for v in rng.integers(10, 90, 3)))
    draw = ImageDraw.Draw(img)
    for _ in range(4):
        x, y = rng.integers(0, size, 2)
        r = int(rng.integers(size // 10, size // 4))
        color = tuple(int(v) for v in rng.integers(80, 255, 3))
        (draw.ellipse if rng.random() < 0.5 else draw.rectangle)([x - r, y - r, x + r, y + r], fill=color)
    arr = np.asarray(img).astype(np.float32)
    noise = rng.normal(0, 90, arr.shape)
    return Image.fromarray(np.clip(arr + noise * (1 - t), 0, 255).astype(np.uint8))


def _denoise(ctx, unet, positive, negative, latent, seed, steps, cfg, sampler, schedule, denoise, **_):
    size = latent.shape[-1] * 8
    work = np.random.default_rng(0).random((320, 320), dtype=np.float32)
    for i in range(1, steps + 1):
        for _ in range(int(ctx.settings.get("fake_work", 0))):   # stands in for a UNet step
            work = np.tanh(work @ work.T * 0.01)
        ctx.progress(i, steps, _picture(seed, positive, 64, i / steps))
    return {"latent": {"seed": seed, "text": positive, "size": size}}


def _decode(ctx, vae, latent, **_):
    return {"image": _picture(latent["seed"], latent["text"], max(64, latent["size"]), 1.0)}


def _encode_img(ctx, vae, image, **_):
    return {"latent": {"seed": 0, "text": "", "size": image.size[0]}}


def _load(ctx, path, **_):
    img = Image.open(ctx.resolve_file("image", path)).convert("RGB")
    return {"image": img, "mask": img.convert("L")}


def _preview(ctx, image, **_):
    return [image]


def _save(ctx, image, prefix, **_):
    ctx.output_dir.mkdir(parents=True, exist_ok=True)
    n = len(list(ctx.output_dir.glob(f"{prefix}_*.png")))
    path = ctx.output_dir / f"{prefix}_{n:05d}.png"
    image.save(path)
    return [str(path)]


def _set_mask(ctx, latent, mask, **_):
    return {"latent": latent}


NODES = [
    NodeSpec("CheckpointLoader", "loaders", _ckpt,
             params=(Param.choice("checkpoint", _checkpoints, "nodeforge-shapes"),),
             outputs=(Output("unet", "MODEL"), Output("clip", "CLIP"), Output("vae", "VAE")),
             display_name="Load Checkpoint"),
    NodeSpec("LoRALoader", "loaders", _lora, inputs=(Input("unet", "MODEL"), Input("clip", "CLIP")),
             params=(Param.choice("lora", lambda: ["shapes-style.safetensors"], "shapes-style.safetensors"),
                     Param.float("strength_unet", 1.0, min=-2.0, max=2.0, step=0.05, role=ParamRole.LORA_STRENGTH),
                     Param.float("strength_clip", 1.0, min=-2.0, max=2.0, step=0.05)),
             outputs=(Output("unet", "MODEL"), Output("clip", "CLIP")), display_name="Load LoRA"),
    NodeSpec("TextEncoder", "conditioning", _encode, inputs=(Input("clip", "CLIP"),),
             params=(Param.string("text", "", multiline=True, role=ParamRole.PROMPT),), outputs=(Output("conditioning", "CONDITIONING"),),
             display_name="Text Encoder"),
    NodeSpec("EmptyLatent", "latent", _latent,
             params=(Param.int("width", 64, min=64, max=2048, step=8, multiple_of=8, role=ParamRole.WIDTH),
                     Param.int("height", 64, min=64, max=2048, step=8, multiple_of=8, role=ParamRole.HEIGHT),
                     Param.int("batch_size", 1, min=1, max=16, role=ParamRole.BATCH_SIZE)),
             outputs=(Output("latent", "LATENT"),), display_name="Empty Latent"),
    NodeSpec("LoadImage", "image", _load, params=(Param.string("path", "", file=FileKind.IMAGE),),
             outputs=(Output("image", "IMAGE"), Output("mask", "MASK")), display_name="Load Image"),
    NodeSpec("VAEEncode", "latent", _encode_img, inputs=(Input("vae", "VAE"), Input("image", "IMAGE")),
             outputs=(Output("latent", "LATENT"),), display_name="VAE Encode"),
    NodeSpec("SetLatentMask", "latent", _set_mask, inputs=(Input("latent", "LATENT"), Input("mask", "MASK")),
             outputs=(Output("latent", "LATENT"),), display_name="Set Latent Mask"),
    NodeSpec("UNetDenoise", "sampling", _denoise,
             inputs=(Input("unet", "MODEL"), Input("positive", "CONDITIONING", role=InputRole.POSITIVE),
                     Input("negative", "CONDITIONING", role=InputRole.NEGATIVE),
                     Input("latent", "LATENT")),
             params=(Param.int("seed", 42, min=0, max=2**32 - 1, role=ParamRole.SEED),
                     Param.int("steps", 20, min=1, max=150, role=ParamRole.STEPS),
                     Param.float("cfg", 5.0, min=0.0, max=30.0, step=0.5, role=ParamRole.CFG),
                     Param.choice("sampler", SAMPLERS, "euler", role=ParamRole.SAMPLER),
                     Param.choice("schedule", ("default", "karras"), "default", role=ParamRole.SCHEDULE),
                     Param.float("denoise", 1.0, min=0.0, max=1.0, step=0.01, role=ParamRole.DENOISE)),
             outputs=(Output("latent", "LATENT"),), display_name="UNet Denoise"),
    NodeSpec("VAEDecode", "latent", _decode, inputs=(Input("vae", "VAE"), Input("latent", "LATENT")),
             outputs=(Output("image", "IMAGE"),), display_name="VAE Decode"),
    NodeSpec("Preview", "image", _preview, inputs=(Input("image", "IMAGE"),), output_node=True,
             display_name="Preview Image"),
    NodeSpec("SaveImage", "image", _save, inputs=(Input("image", "IMAGE"),),
             params=(Param.string("prefix", "nodeforge"),), output_node=True, cacheable=False,
             display_name="Save Image"),
]
