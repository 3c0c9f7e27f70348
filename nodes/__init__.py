"""The built-in diffusion node pack: loaders, text encoding, latents, denoising, LoRA, images.

This module only declares the nodes. torch, diffusers, transformers, peft and PIL are imported
inside the run functions (from the sibling modules), so listing and validating stay fast.
"""
from __future__ import annotations

from typing import Any

from nodeforge.core.spec import Input, NodeSpec, Output, Param
from nodeforge.core.types import FileKind, InputRole, ParamRole, PortType

from .declare import CROPS, IMAGE_METHODS, LATENT_METHODS
from .declare import lazy as _lazy
from .declare import model_names as _names
from .declare import operation
from .schedulers import SAMPLERS, SCHEDULES, check_pair

SEED_MAX = 0xFFFFFFFFFFFFFFFF


def _empty_latent(ctx: Any, width: int, height: int, batch_size: int) -> dict:
    # No model here, so the latent stays lazy: UNetDenoise gives it the model's channels and factor.
    return {"latent": {"samples": None, "width": width, "height": height, "batch_size": batch_size}}


def _text_encoder_changed(ctx: Any, text: str) -> Any:
    # The embedding files a prompt names are part of its cache key (torch-free: only file names).
    from .embeddings import referenced_files

    return referenced_files(ctx, text)


def _text_encoder_sdxl_changed(ctx: Any, text_g: str, text_l: str, **_: Any) -> Any:
    from .embeddings import referenced_files

    return (referenced_files(ctx, text_g), referenced_files(ctx, text_l))


def _text_encoder_refiner_changed(ctx: Any, text: str, **_: Any) -> Any:
    return _text_encoder_changed(ctx, text)


def _latent_method() -> Param:
    return Param.choice("upscale_method", LATENT_METHODS, default="nearest-exact",
                        description="how new latent pixels are computed (nearest-exact keeps them crisp, bicubic smooth)")


def _image_method() -> Param:
    return Param.choice("upscale_method", IMAGE_METHODS, default="nearest-exact",
                        description="the resampling filter (lanczos and bicubic are sharp, nearest-exact keeps hard pixels)")


def _crop() -> Param:
    return Param.choice("crop", CROPS, default="disabled",
                        description="center: crop to keep the aspect ratio; disabled: stretch")


MAX_PREFIX_CHARS = 200       # a file name holds 255 bytes; "_00001.png" and a folder or two must fit


def _check_prefix(prefix: str, **_: Any) -> list[str]:
    if not prefix.strip():
        return ["prefix: give a file name prefix such as 'nodeforge'"]
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in prefix):
        return ["prefix: has a control character (NUL, newline or tab), which no file name may hold; use letters, "
                "digits, '-' and '_'"]
    if len(prefix) > MAX_PREFIX_CHARS or any(len(p.encode("utf-8")) > 240 for p in prefix.split("/")):
        return [f"prefix: {len(prefix)} characters is too long for a file name; use at most {MAX_PREFIX_CHARS}"]
    parts = prefix.replace("\\", "/").split("/")
    if prefix.startswith(("/", "\\")) or ".." in parts or ":" in prefix:
        return ["prefix: must stay inside the output folder (no absolute path, drive or '..')"]
    return []


def _check_painted_mask(mask: str = "", **_: Any) -> list[str]:
    from nodeforge.core import painted_mask

    reason = painted_mask.check(mask)
    return [f"mask: {reason}; open Edit Mask on the node and paint it again, or Clear it"] if reason else []


def _check_sampler(sampler: str = "euler", schedule: str = "default", **_: Any) -> list[str]:
    return check_pair(sampler, schedule)


def _checkpoint_facts(files: dict[str, Any], **_: Any) -> dict[str, dict[str, Any]]:
    # Torch-free: the family from the folder's config or the file's header (nodes/families/probe.py).
    from .families.probe import model_facts

    path = files.get("checkpoint")
    found = model_facts(path) if path is not None else {}
    return {"unet": found, "clip": {"family": found["family"]} if found else {}}


def _controlnet_facts(files: dict[str, Any], **_: Any) -> dict[str, dict[str, Any]]:
    from .families.probe import controlnet_facts

    path = files.get("controlnet")
    return {"controlnet": controlnet_facts(path) if path is not None else {}}


def _check_control_vae(facts: dict[str, dict[str, Any]], **_: Any) -> list[str]:
    # An SD3 ControlNet (and InstantX's Flux ones) reads its image as latents: without the VAE it cannot run.
    found = facts.get("controlnet", {})
    if found.get("flow") and found.get("latents", True) and "vae" not in facts:
        label = "a Flux" if found.get("family") == "flux" else "an SD3"
        return [f"vae: the ControlNet is {label} ControlNet, which reads its image as latents: link the "
                "checkpoint's VAE to vae"]
    return []


def _check_model_sampler(facts: dict[str, dict[str, Any]], sampler: str = "euler", schedule: str = "default",
                         **_: Any) -> list[str]:
    # A flow model follows flow sigmas: refuse the DDPM-only samplers and the schedules it cannot follow.
    from .families.flow_samplers import check_flow_pair

    if not facts.get("unet", {}).get("flow") or check_pair(sampler, schedule):
        return []
    problem = check_flow_pair(sampler, schedule)
    return [problem] if problem else []


MODEL, CLIP, VAE = PortType.MODEL.value, PortType.CLIP.value, PortType.VAE.value
COND, LATENT = PortType.CONDITIONING.value, PortType.LATENT.value
IMAGE, MASK = PortType.IMAGE.value, PortType.MASK.value
CONTROLNET, UPSCALE_MODEL = PortType.CONTROLNET.value, PortType.UPSCALE_MODEL.value

# The resize nodes' one port (nodes/geometry.py runs them).
_RESIZE_LATENT = dict(category="latent", module="geometry", port=LATENT, takes="the latent to resize",
                      gives="the resized latent")
_RESIZE_IMAGE = dict(category="image", module="geometry", port=IMAGE, takes="the images to resize",
                     gives="the resized images")

NODES: list[NodeSpec] = [
    NodeSpec(
        "CheckpointLoader", "loaders", _lazy("loading", "run_checkpoint_loader"),
        params=(Param.choice("checkpoint", _names(FileKind.CHECKPOINT), default="nodeforge-shapes",
                             file=FileKind.CHECKPOINT,
                             description="a diffusers folder or a single .safetensors (SD 1.x, 2.x, XL base or refiner)"),),
        outputs=(Output("unet", MODEL, description="the denoising network, for UNet Denoise (through any LoRAs)"),
                 Output("clip", CLIP, description="the tokenizer and text encoder(s), for the prompt nodes"),
                 Output("vae", VAE,
                        description="the image encoder/decoder, for VAE Encode and VAE Decode")), facts=_checkpoint_facts,
        description="Load a Stable Diffusion model: denoising UNet, text encoder and VAE.",
        display_name="Load Checkpoint"),
    NodeSpec(
        "LoRALoader", "loaders", _lazy("lora", "run_lora_loader"),
        inputs=(Input("unet", MODEL, description="the model to patch (left unchanged; several LoRA nodes stack)"),
                Input("clip", CLIP, description="the text encoder to patch")),
        params=(Param.choice("lora", _names(FileKind.LORA), default="shapes-star", file=FileKind.LORA,
                             description="a kohya-style or diffusers/PEFT LoRA (.safetensors) from the loras folder, or a path"),
                Param.float("strength_unet", 1.0, min=-10.0, max=10.0, step=0.05, role=ParamRole.LORA_STRENGTH,
                            description="how strongly the LoRA changes the denoising network (0: not at all, 1: as trained)"),
                Param.float("strength_clip", 1.0, min=-10.0, max=10.0, step=0.05,
                            description="how strongly the LoRA changes the text encoder (0: not at all, 1: as trained)")),
        outputs=(Output("unet", MODEL, description="the model with the LoRA applied"),
                 Output("clip", CLIP, description="the text encoder with the LoRA applied")),
        description="Apply a LoRA (kohya or diffusers/PEFT format) without changing the input model.",
        display_name="Load LoRA"),
    NodeSpec(
        "TextEncoder", "conditioning", _lazy("prompt", "run_text_encoder"),
        inputs=(Input("clip", CLIP,
                      description="the text encoder from Load Checkpoint (or a LoRA / CLIP Set Last Layer after it)"),),
        params=(Param.string("text", "", multiline=True, role=ParamRole.PROMPT,
                             description="prompt; (word:1.3) emphasises, [word] de-emphasises; "
                                         "embedding:NAME uses a textual-inversion embedding"),),
        outputs=(Output("conditioning", COND,
                        description="the encoded prompt, for a sampler's positive or negative input"),), is_changed=_text_encoder_changed,
        description="Encode a prompt (any length, with (emphasis:1.2)) for the UNet.",
        display_name="Text Encoder"),
    NodeSpec(
        "EmptyLatent", "latent", _empty_latent,
        params=(Param.int("width", 512, min=16, max=8192, step=4, multiple_of=4, role=ParamRole.WIDTH,
                          description="image width in pixels (the latent is this divided by the VAE factor)"),
                Param.int("height", 512, min=16, max=8192, step=4, multiple_of=4, role=ParamRole.HEIGHT,
                          description="image height in pixels (the latent is this divided by the VAE factor)"),
                Param.int("batch_size", 1, min=1, max=64, role=ParamRole.BATCH_SIZE,
                          description="how many images to make at once, each with its own noise")),
        outputs=(Output("latent", LATENT, description="a blank latent to denoise from (txt2img)"),),
        description="A blank latent of an image size (checked against the model's VAE factor when denoising).",
        display_name="Empty Latent"),
    NodeSpec(
        "LoadImage", "image", _lazy("images", "run_load_image"),
        params=(Param.string("path", "", file=FileKind.IMAGE, description="PNG, JPEG or WebP"),
                Param.string("mask", "", role=ParamRole.PAINTED_MASK,
                             description="a mask painted on the picture in the editor (Edit Mask on the node), kept "
                                         "in the workflow; empty: the picture's transparent pixels")),
        outputs=(Output("image", IMAGE, description="the picture, RGB"),
                 Output("mask", MASK,
                        description="where to repaint (1): the painted mask, or else the image's transparent pixels")),
        validate=_check_painted_mask,
        description="Load an image; the mask painted on it in the editor (or else its transparent pixels) becomes "
                    "the mask (1 = repaint).",
        display_name="Load Image"),
    NodeSpec(
        "VAEEncode", "latent", _lazy("vae", "run_vae_encode"),
        inputs=(Input("vae", VAE, description="the VAE that encodes (the checkpoint's or a Load VAE's)"),
                Input("image", IMAGE, description="the images to encode")),
        outputs=(Output("latent", LATENT, description="the images in latent space, for img2img (denoise below 1)"),),
        description="Encode an image into the model's latent space.",
        display_name="VAE Encode"),
    NodeSpec(
        "SetLatentMask", "latent", _lazy("latents", "run_set_latent_mask"),
        inputs=(Input("latent", LATENT, description="the latent to restrict"),
                Input("mask", MASK, description="where to repaint (1 = repaint, 0 = keep), resized to the latent")),
        outputs=(Output("latent", LATENT, description="the latent carrying the mask, for UNet Denoise"),),
        description="Restrict denoising to the masked area (inpainting).",
        display_name="Set Latent Mask"),
    NodeSpec(
        "UNetDenoise", "sampling", _lazy("sampling", "run_unet_denoise"),
        inputs=(Input("unet", MODEL, description="the denoising model"),
                Input("positive", COND, role=InputRole.POSITIVE, description="what the image should show"),
                Input("negative", COND, role=InputRole.NEGATIVE,
                      description="what to steer away from (an empty prompt is fine)"),
                Input("latent", LATENT,
                      description="the starting latent: an Empty Latent, or an encoded image for img2img and inpainting")),
        params=(Param.int("seed", 0, min=0, max=SEED_MAX, role=ParamRole.SEED,
                          description="the noise's seed: the same seed and settings give the same image"),
                Param.int("steps", 20, min=1, max=1000, role=ParamRole.STEPS,
                          description="how many denoising steps: more is slower and usually finer"),
                Param.float("cfg", 7.0, min=0.0, max=100.0, step=0.5, role=ParamRole.CFG,
                            description="classifier-free guidance: how strongly the prompt steers (about 5-8 is usual; 1 ignores the negative)"),
                Param.choice("sampler", tuple(SAMPLERS), default="euler", role=ParamRole.SAMPLER,
                             description="the stepping method (ComfyUI's sampler_name)"),
                Param.choice("schedule", tuple(SCHEDULES), default="default", role=ParamRole.SCHEDULE,
                             description="where the steps fall on the noise levels (ComfyUI's scheduler); "
                                         "default: the model's own"),
                Param.float("denoise", 1.0, min=0.0, max=1.0, step=0.01, role=ParamRole.DENOISE,
                            description="how much of the latent to repaint: 1 from pure noise, below 1 keeps the input's composition (img2img)"),
                Param.int("start_at_step", 0, min=0, max=10000,
                          description="first step of the schedule to run (a refiner stage starts where the base stopped)"),
                Param.int("end_at_step", 10000, min=0, max=10000,
                          description="step to stop at (the whole schedule when >= steps)"),
                Param.bool("add_noise", True,
                           description="off: take the latent as it is (an earlier stage's leftover noise)"),
                Param.bool("return_with_leftover_noise", False,
                           description="on: stop at end_at_step without denoising fully, for a next stage")),
        outputs=(Output("latent", LATENT,
                        description="the denoised latent, for VAE Decode or a next stage"),), validate=_check_sampler, check_inputs=_check_model_sampler,
        description="Denoise a latent with the UNet, guided by the prompts (txt2img, img2img, inpainting).",
        display_name="UNet Denoise"),
    NodeSpec(
        "VAEDecode", "latent", _lazy("vae", "run_vae_decode"),
        inputs=(Input("vae", VAE, description="the VAE that decodes (the checkpoint's or a Load VAE's)"),
                Input("latent", LATENT, description="the latent to turn into pixels")),
        outputs=(Output("image", IMAGE, description="the decoded images"),),
        description="Decode a latent into an image (tiled for large sizes).",
        display_name="VAE Decode"),
    NodeSpec(
        "Preview", "image", _lazy("images", "run_preview"),
        inputs=(Input("image", IMAGE, description="the images to show on the node and in the Images panel"),),
        output_node=True,
        description="Show the images (written to the output folder only with --previews).",
        display_name="Preview Image"),
    NodeSpec(
        "SaveImage", "image", _lazy("images", "run_save_image"),
        inputs=(Input("image", IMAGE, description="the images to save as PNG"),),
        params=(Param.string("prefix", "nodeforge",
                             description="start of the file names (a sub/folder/ prefix writes into that folder of the output folder)"),),
        output_node=True, cacheable=False, validate=_check_prefix,
        description="Save PNGs (prefix_00001.png, ...) carrying the workflow that made them.",
        display_name="Save Image"),
    NodeSpec(
        "SaveAnimatedWEBP", "image", _lazy("images", "run_save_animated_webp"),
        inputs=(Input("images", IMAGE, description="the frames, in batch order"),),
        params=(Param.string("prefix", "nodeforge",
                             description="start of the file name (a sub/folder/ prefix writes into that folder of the "
                                         "output folder)"),
                Param.float("fps", 6.0, min=0.01, max=1000.0, step=0.01,
                            description="frames a second (each frame shows int(1000 / fps) milliseconds)"),
                Param.bool("lossless", True, description="lossless WebP (quality then sets the effort)"),
                Param.int("quality", 80, min=0, max=100, description="0-100: lossy quality, or lossless effort"),
                Param.choice("method", ("default", "fastest", "slowest"), default="default",
                             description="encoder speed against size (libwebp's method 4, 0 or 6)")),
        output_node=True, cacheable=False, validate=_check_prefix,
        description="Save the images as one animated WebP (prefix_00001_.webp) carrying the workflow that made it, "
                    "as ComfyUI's Save Animated WEBP.",
        display_name="Save Animated WEBP"),
    NodeSpec(
        "CLIPSetLastLayer", "conditioning", _lazy("prompt", "run_clip_set_last_layer"),
        inputs=(Input("clip", CLIP, description="the text encoder to cut"),),
        params=(Param.int("stop_at_layer", -1, min=-24, max=-1,
                          description="-1: the last layer (no clip skip); -2: the one before (A1111's clip skip 2)"),),
        outputs=(Output("clip", CLIP, description="the text encoder that stops at the chosen layer"),),
        description="Clip skip: read the prompt from an earlier layer of the text encoder.",
        display_name="CLIP Set Last Layer"),
    operation(
        "LatentUpscale", "run_latent_upscale",
        (_latent_method(),
         Param.int("width", 1024, min=0, max=16384, step=8, role=ParamRole.WIDTH,
                   description="image width in pixels; 0 keeps the aspect ratio"),
         Param.int("height", 1024, min=0, max=16384, step=8, role=ParamRole.HEIGHT,
                   description="image height in pixels; 0 keeps the aspect ratio"),
         _crop()),
        "Resize a latent to an image size (hires fix: upscale, then denoise again below 1).", "Upscale Latent",
        **_RESIZE_LATENT),
    operation(
        "LatentUpscaleBy", "run_latent_upscale_by",
        (_latent_method(),
         Param.float("scale_by", 1.5, min=0.01, max=8.0, step=0.01,
                     description="the factor each side is multiplied by (1.5: 512 to 768)")),
        "Resize a latent by a factor.", "Upscale Latent By", **_RESIZE_LATENT),
    NodeSpec(
        "LatentUpscaleNN", "latent", _lazy("latent_resizer", "run_latent_upscale_nn"),
        inputs=(Input("latent", LATENT, description="an SD 1.x or SDXL latent (4 channels)"),),
        params=(Param.choice("model", _names(FileKind.LATENT_UPSCALE_MODEL), default="",
                             file=FileKind.LATENT_UPSCALE_MODEL,
                             description="the NN latent upscaler for the latent's model: ComfyUi_NNLatentUpscale's "
                                         "sdxl_resizer.pt or sd15_resizer.pt"),
                Param.float("scale_by", 1.5, min=1.0, max=2.0, step=0.01,
                            description="the factor each side is multiplied by (sizes rounded)")),
        outputs=(Output("latent", LATENT, description="the larger latent, for a second denoise below 1"),),
        description="Upscale a latent 1 to 2 times with a small trained network (Ttl's NN latent upscale): "
                    "sharper than Upscale Latent By before a hires pass, with no VAE round trip.",
        display_name="Upscale Latent (Neural Network)"),
    operation(
        "ImageScale", "run_image_scale",
        (_image_method(),
         Param.int("width", 512, min=0, max=16384, description="0 keeps the aspect ratio"),
         Param.int("height", 512, min=0, max=16384, description="0 keeps the aspect ratio"),
         _crop()),
        "Resize images to a size (center crop keeps the aspect ratio).", "Scale Image", **_RESIZE_IMAGE),
    operation(
        "ImageScaleBy", "run_image_scale_by",
        (_image_method(),
         Param.float("scale_by", 1.0, min=0.01, max=8.0, step=0.01,
                     description="the factor each side is multiplied by")),
        "Resize images by a factor.", "Scale Image By", **_RESIZE_IMAGE),
    NodeSpec(
        "ImagePadForOutpaint", "image", _lazy("geometry", "run_image_pad_for_outpaint"),
        inputs=(Input("image", IMAGE, description="the images to extend"),),
        params=(Param.int("left", 0, min=0, max=8192, step=8, description="pixels added on the left"),
                Param.int("top", 0, min=0, max=8192, step=8, description="pixels added at the top"),
                Param.int("right", 0, min=0, max=8192, step=8, description="pixels added on the right"),
                Param.int("bottom", 0, min=0, max=8192, step=8, description="pixels added at the bottom"),
                Param.int("feathering", 40, min=0, max=8192,
                          description="pixels inside the old edge that blend into the new area")),
        outputs=(Output("image", IMAGE, description="the images on the larger canvas, margins grey"),
                 Output("mask", MASK,
                        description="1 over the new margins (fading in over the feathering), 0 over the old image")),
        description="Grow the canvas for outpainting: grey margins, and a mask of what to paint.",
        display_name="Pad Image for Outpainting"),
    NodeSpec(
        "VAEEncodeForInpaint", "latent", _lazy("geometry", "run_vae_encode_for_inpaint"),
        inputs=(Input("vae", VAE, description="the VAE that encodes"),
                Input("image", IMAGE, description="the image to inpaint"),
                Input("mask", MASK, description="where to repaint (1 = repaint)")),
        params=(Param.int("grow_mask_by", 6, min=0, max=64,
                          description="pixels the mask grows by, so the seam is repainted too"),),
        outputs=(Output("latent", LATENT,
                        description="the encoded image with the masked area greyed, carrying the mask, for UNet Denoise at denoise 1"),),
        description="Encode for inpainting: the masked area is greyed out and becomes the latent's noise mask.",
        display_name="VAE Encode for Inpainting"),
    NodeSpec(
        "VAELoader", "loaders", _lazy("vae_loading", "run_vae_loader"),
        params=(Param.choice("vae", _names(FileKind.VAE), default="", file=FileKind.VAE,
                             description="a diffusers VAE folder or a single file (.safetensors) from the vae folder"),),
        outputs=(Output("vae", VAE, description="the VAE, for VAE Encode and VAE Decode"),),
        description="Load a VAE on its own, to decode and encode with it instead of the checkpoint's.",
        display_name="Load VAE"),
    NodeSpec(
        "ControlNetLoader", "loaders", _lazy("controlnet", "run_controlnet_loader"),
        params=(Param.choice("controlnet", _names(FileKind.CONTROLNET), default="", file=FileKind.CONTROLNET,
                             description="a diffusers ControlNet or T2I-Adapter folder, or a single file "
                                         "(control_*.safetensors, t2iadapter_*)"),),
        outputs=(Output("controlnet", CONTROLNET,
                        description="the ControlNet or T2I-Adapter, for Apply ControlNet"),), facts=_controlnet_facts,
        description="Load a ControlNet (SD 1.x, 2.x or XL; diffusers folder or original single file; SD3 or Flux) "
                    "or a T2I-Adapter.",
        display_name="Load ControlNet"),
    NodeSpec(
        "ControlNetApply", "conditioning", _lazy("controlnet", "run_controlnet_apply"),
        inputs=(Input("positive", COND, role=InputRole.POSITIVE,
                      description="the positive prompt to add the control to"),
                Input("negative", COND, role=InputRole.NEGATIVE,
                      description="the negative prompt to add the control to"),
                Input("controlnet", CONTROLNET, description="the ControlNet or T2I-Adapter from Load ControlNet"),
                Input("image", IMAGE,
                      description="the control image (edges, depth, pose... as the ControlNet expects), resized to the latent"),
                Input("vae", VAE, optional=True,
                      description="the checkpoint's VAE: an SD3 or InstantX Flux ControlNet reads the control image as "
                                  "latents")),
        params=(Param.float("strength", 1.0, min=0.0, max=10.0, step=0.01,
                            description="how strongly the control image steers (0: not at all)"),
                Param.float("start_percent", 0.0, min=0.0, max=1.0, step=0.001,
                            description="where in the schedule it starts acting (0: from pure noise)"),
                Param.float("end_percent", 1.0, min=0.0, max=1.0, step=0.001,
                            description="where it stops (1: to the end)")),
        outputs=(Output("positive", COND, description="the positive prompt carrying the control"),
                 Output("negative", COND, description="the negative prompt carrying the control")),
        check_inputs=_check_control_vae,
        description="Steer composition with a ControlNet or T2I-Adapter and a control image; several stack.",
        display_name="Apply ControlNet"),
    NodeSpec(
        "ImageToEdges", "image", _lazy("edges", "run_image_to_edges"),
        inputs=(Input("image", IMAGE, description="the images to find edges in"),),
        params=(Param.float("low_threshold", 0.4, min=0.01, max=0.99, step=0.01,
                            description="weaker edges count where they touch strong ones"),
                Param.float("high_threshold", 0.8, min=0.01, max=0.99, step=0.01,
                            description="edges at least this strong always count")),
        outputs=(Output("image", IMAGE, description="white edges on black"),),
        description="Canny edges: white outlines on black, a control image for an edges ControlNet.",
        display_name="Image to Edges (Canny)"),
    NodeSpec(
        "DepthMap", "image", _lazy("depth", "run_depth_map"),
        inputs=(Input("image", IMAGE, description="the images to estimate depth in"),),
        params=(Param.choice("model", _names(FileKind.DEPTH), default="", file=FileKind.DEPTH,
                             description="a transformers depth model folder from the depth folder (DPT/MiDaS as "
                                         "Intel/dpt-hybrid-midas, ZoeDepth, Depth Anything v1/v2)"),
                Param.int("resolution", 512, min=0, max=16384, step=64,
                          description="the map's shorter side in pixels (the aspect ratio is kept; 0: the image's "
                                      "own size)")),
        outputs=(Output("image", IMAGE, description="the depth map, grey, near bright and far dark, 0 to 1 per image"),),
        description="Estimate a depth map (near bright, as MiDaS maps are): a control image for a depth ControlNet.",
        display_name="Image to Depth Map"),
    NodeSpec(
        "PoseMap", "image", _lazy("pose", "run_pose_map"),
        inputs=(Input("image", IMAGE, description="the images, one person in each (the whole image is searched "
                                                  "as that person's box)"),),
        params=(Param.choice("model", _names(FileKind.POSE), default="", file=FileKind.POSE,
                             description="a transformers ViTPose model folder from the pose folder (COCO's 17 "
                                         "body points, as usyd-community/vitpose-base-simple)"),
                Param.int("resolution", 512, min=64, max=16384, step=64,
                          description="the map's shorter side in pixels (the aspect ratio is kept)"),
                Param.float("threshold", 0.3, min=0.0, max=1.0, step=0.01,
                            description="the least score a keypoint needs to be drawn"),
                Param.bool("xinsir_sticks", False,
                           description="wider sticks on large maps, for xinsir's OpenPose ControlNets")),
        outputs=(Output("image", IMAGE, description="the body in OpenPose's 18-point colours on black"),),
        description="Estimate a person's pose and draw it as OpenPose's body skeleton: a control image for an "
                    "OpenPose ControlNet (hands and face are not drawn).",
        display_name="Image to Pose Map"),
    NodeSpec(
        "UpscaleModelLoader", "loaders", _lazy("upscale", "run_upscale_model_loader"),
        params=(Param.choice("upscale_model", _names(FileKind.UPSCALE_MODEL), default="", file=FileKind.UPSCALE_MODEL,
                             description="an ESRGAN-family upscaler (.safetensors, or .pth read safely)"),),
        outputs=(Output("upscale_model", UPSCALE_MODEL,
                        description="the upscaler, for Upscale Image (using Model)"),),
        description="Load an image upscaler (ESRGAN, Real-ESRGAN Compact; others through spandrel).",
        display_name="Load Upscale Model"),
    NodeSpec(
        "ImageUpscaleWithModel", "image", _lazy("upscale", "run_image_upscale_with_model"),
        inputs=(Input("upscale_model", UPSCALE_MODEL, description="the upscaler from Load Upscale Model"),
                Input("image", IMAGE, description="the images to upscale")),
        params=(Param.int("tile", 512, min=32, max=4096, step=32,
                          description="input pixels per tile side: smaller tiles use less memory"),
                Param.int("overlap", 32, min=0, max=512, step=8,
                          description="pixels neighbouring tiles share, blended so no seams show")),
        outputs=(Output("image", IMAGE, description="the upscaled images (the model's factor larger)"),),
        description="Upscale images with a model (x2, x4...), tile by tile.",
        display_name="Upscale Image (using Model)"),
    NodeSpec(
        "ConditioningSetArea", "conditioning", _lazy("conditioning", "run_conditioning_set_area"),
        inputs=(Input("conditioning", COND, description="the prompt to confine to the area"),),
        params=(Param.int("width", 64, min=8, max=16384, step=8, multiple_of=8, description="area width in pixels"),
                Param.int("height", 64, min=8, max=16384, step=8, multiple_of=8, description="area height in pixels"),
                Param.int("x", 0, min=0, max=16384, step=8, multiple_of=8, description="area left edge in pixels"),
                Param.int("y", 0, min=0, max=16384, step=8, multiple_of=8, description="area top edge in pixels"),
                Param.float("strength", 1.0, min=0.0, max=10.0, step=0.01,
                            description="weight against other prompts where areas overlap")),
        outputs=(Output("conditioning", COND, description="the prompt acting only in the area"),),
        description="Regional prompt: the conditioning applies only to a rectangle of the image.",
        display_name="Conditioning (Set Area)"),
    NodeSpec(
        "ConditioningCombine", "conditioning", _lazy("conditioning", "run_conditioning_combine"),
        inputs=(Input("conditioning_1", COND, description="the first prompt (with its area, if any)"),
                Input("conditioning_2", COND, description="the second prompt (with its area, if any)")),
        outputs=(Output("conditioning", COND, description="both prompts, for one sampler input"),),
        description="Use both prompts (each in its area): the UNet's predictions are blended by area weights.",
        display_name="Conditioning (Combine)"),
    NodeSpec(
        "ConditioningSetAestheticScore", "conditioning", _lazy("conditioning", "run_conditioning_set_aesthetic_score"),
        inputs=(Input("conditioning", COND, description="an SDXL refiner prompt"),),
        params=(Param.float("aesthetic_score", 6.0, min=0.0, max=1000.0, step=0.5,
                            description="what an SDXL refiner aims for (diffusers' default: 6.0 for the positive, "
                                        "2.5 for the negative)"),),
        outputs=(Output("conditioning", COND, description="the prompt with the aesthetic score set"),),
        description="SDXL refiner: the aesthetic score its micro-conditioning takes (other models ignore it).",
        display_name="Conditioning (Aesthetic Score)"),
    NodeSpec(
        "TextEncoderSDXL", "conditioning", _lazy("prompt", "run_text_encoder_sdxl"),
        inputs=(Input("clip", CLIP, description="the SDXL text encoders from Load Checkpoint"),),
        params=(Param.string("text_g", "", multiline=True, role=ParamRole.PROMPT,
                             description="prompt for the big OpenCLIP encoder (bigG), which also gives the pooled vector"),
                Param.string("text_l", "", multiline=True,
                             description="prompt for the CLIP-L encoder (often the same text)"),
                Param.int("width", 1024, min=0, max=16384, step=8,
                          description="the size the image is said to have (SDXL's original_size)"),
                Param.int("height", 1024, min=0, max=16384, step=8,
                          description="the size the image is said to have (SDXL's original_size)"),
                Param.int("crop_w", 0, min=0, max=16384, step=8,
                          description="left edge of the crop (crops_coords_top_left)"),
                Param.int("crop_h", 0, min=0, max=16384, step=8,
                          description="top edge of the crop (crops_coords_top_left)"),
                Param.int("target_width", 1024, min=0, max=16384, step=8, description="SDXL's target_size"),
                Param.int("target_height", 1024, min=0, max=16384, step=8, description="SDXL's target_size")),
        outputs=(Output("conditioning", COND,
                        description="the encoded prompt with its size conditioning"),), is_changed=_text_encoder_sdxl_changed,
        description="SDXL prompt with its micro-conditioning: one text per encoder, the size, crop and target size "
                    "the UNet is told (TextEncoder uses the image size, no crop).",
        display_name="Text Encoder (SDXL)"),
    NodeSpec(
        "TextEncoderSDXLRefiner", "conditioning", _lazy("prompt", "run_text_encoder_sdxl_refiner"),
        inputs=(Input("clip", CLIP, description="the SDXL refiner's text encoder"),),
        params=(Param.string("text", "", multiline=True, role=ParamRole.PROMPT,
                             description="prompt; (word:1.3) emphasises, embedding:NAME as in TextEncoder"),
                Param.float("aesthetic_score", 6.0, min=0.0, max=1000.0, step=0.5,
                            description="what the refiner aims for (6 for a positive, 2.5 for a negative is usual)"),
                Param.int("width", 1024, min=0, max=16384, step=8, description="the size the image is said to have"),
                Param.int("height", 1024, min=0, max=16384, step=8,
                          description="the size the image is said to have")),
        outputs=(Output("conditioning", COND,
                        description="the encoded prompt with its aesthetic score and size"),), is_changed=_text_encoder_refiner_changed,
        description="SDXL refiner prompt with its micro-conditioning: aesthetic score and image size.",
        display_name="Text Encoder (SDXL Refiner)"),
    NodeSpec(
        "ConditioningSetAreaPercentage", "conditioning", _lazy("conditioning", "run_conditioning_set_area_percentage"),
        inputs=(Input("conditioning", COND, description="the prompt to confine to the area"),),
        params=(Param.float("width", 1.0, min=0.0, max=1.0, step=0.01,
                            description="area width, a fraction of the image"),
                Param.float("height", 1.0, min=0.0, max=1.0, step=0.01,
                            description="area height, a fraction of the image"),
                Param.float("x", 0.0, min=0.0, max=1.0, step=0.01, description="left edge, a fraction of the image"),
                Param.float("y", 0.0, min=0.0, max=1.0, step=0.01, description="top edge, a fraction of the image"),
                Param.float("strength", 1.0, min=0.0, max=10.0, step=0.01,
                            description="weight against other prompts where areas overlap")),
        outputs=(Output("conditioning", COND, description="the prompt acting only in the area"),),
        description="Regional prompt on a rectangle given in fractions of the image (any image size).",
        display_name="Conditioning (Set Area with Percentage)"),
    NodeSpec(
        "ConditioningSetTimestepRange", "conditioning", _lazy("conditioning", "run_conditioning_set_timestep_range"),
        inputs=(Input("conditioning", COND, description="the prompt to confine in time"),),
        params=(Param.float("start", 0.0, min=0.0, max=1.0, step=0.001,
                            description="where in the schedule it starts acting (0: from pure noise)"),
                Param.float("end", 1.0, min=0.0, max=1.0, step=0.001, description="where it stops (1: to the end)")),
        outputs=(Output("conditioning", COND, description="the prompt acting only between start and end"),),
        description="The prompt acts only in part of the schedule (e.g. one prompt for the composition, "
                    "another for the details: combine both).",
        display_name="Conditioning (Set Timestep Range)"),
    NodeSpec(
        "ConditioningZeroOut", "conditioning", _lazy("conditioning", "run_conditioning_zero_out"),
        inputs=(Input("conditioning", COND, description="the prompt whose shape to keep"),),
        outputs=(Output("conditioning", COND, description="the same shape, all zeros"),),
        description="The conditioning with its prompt and pooled vector set to zeros (a 'nothing' prompt).",
        display_name="Conditioning (Zero Out)"),
    NodeSpec(
        "ConditioningAverage", "conditioning", _lazy("conditioning", "run_conditioning_average"),
        inputs=(Input("conditioning_to", COND, description="the prompt weighted by conditioning_to_strength"),
                Input("conditioning_from", COND, description="the prompt weighted by 1 - conditioning_to_strength")),
        params=(Param.float("conditioning_to_strength", 1.0, min=0.0, max=1.0, step=0.01,
                            description="1: conditioning_to alone; 0: conditioning_from's prompt alone"),),
        outputs=(Output("conditioning", COND, description="the blended prompt"),),
        description="Blend two prompts' embeddings: to x strength + from x (1 - strength).",
        display_name="Conditioning (Average)"),
    NodeSpec(
        "ConditioningConcat", "conditioning", _lazy("conditioning", "run_conditioning_concat"),
        inputs=(Input("conditioning_to", COND, description="the prompt that comes first"),
                Input("conditioning_from", COND, description="the prompt whose tokens are appended")),
        outputs=(Output("conditioning", COND, description="the longer prompt"),),
        description="Append conditioning_from's tokens to conditioning_to's (one longer prompt, encoded in parts).",
        display_name="Conditioning (Concat)"),
    NodeSpec(
        "RepeatLatentBatch", "latent", _lazy("latents", "run_repeat_latent_batch"),
        inputs=(Input("latent", LATENT, description="the latent batch to repeat"),),
        params=(Param.int("amount", 1, min=1, max=64, description="copies of the batch"),),
        outputs=(Output("latent", LATENT, description="the batch, amount times as long"),),
        description="Repeat a latent batch; each copy denoises with its own noise.",
        display_name="Repeat Latent Batch"),
    NodeSpec(
        "LatentFromBatch", "latent", _lazy("latents", "run_latent_from_batch"),
        inputs=(Input("latent", LATENT, description="the latent batch to take from"),),
        params=(Param.int("batch_index", 0, min=0, max=63, description="first item to take (0 = the first)"),
                Param.int("length", 1, min=1, max=64, description="how many items")),
        outputs=(Output("latent", LATENT, description="the chosen items"),),
        description="Take some items of a latent batch; they keep their noise, so one image re-runs alone the same.",
        display_name="Latent From Batch"),
    NodeSpec(
        "LoadImageMask", "image", _lazy("images", "run_load_image_mask"),
        params=(Param.string("path", "", file=FileKind.IMAGE, description="PNG, JPEG or WebP"),
                Param.choice("channel", ("alpha", "red", "green", "blue"), default="alpha",
                             description="alpha: transparent = 1 (repaint); a colour channel as it is")),
        outputs=(Output("mask", MASK, description="the chosen channel, 0 to 1"),),
        description="Load one channel of an image as a mask.",
        display_name="Load Image (as Mask)"),
    NodeSpec(
        "InvertMask", "image", _lazy("images", "run_invert_mask"),
        inputs=(Input("mask", MASK, description="the mask to invert"),),
        outputs=(Output("mask", MASK, description="1 - the mask"),),
        description="1 - mask: repaint what was kept and keep what was repainted.",
        display_name="Invert Mask"),
    NodeSpec(
        "ImageInvert", "image", _lazy("images", "run_image_invert"),
        inputs=(Input("image", IMAGE, description="the images to invert"),),
        outputs=(Output("image", IMAGE, description="the inverted images"),),
        description="Invert the colours of images (1 - image).",
        display_name="Invert Image"),
    NodeSpec(
        "ImageToMask", "image", _lazy("images", "run_image_to_mask"),
        inputs=(Input("image", IMAGE, description="the images to read the channel from"),),
        params=(Param.choice("channel", ("red", "green", "blue"), default="red",
                             description="which colour channel becomes the mask"),),
        outputs=(Output("mask", MASK, description="the channel, 0 to 1"),),
        description="One colour channel of images as a mask (white = 1 = repaint).",
        display_name="Convert Image to Mask"),
    NodeSpec(
        "JoinImageWithAlpha", "image", _lazy("images", "run_join_image_with_alpha"),
        inputs=(Input("image", IMAGE, description="the images to give transparency (their colour channels)"),
                Input("alpha", MASK, description="where they are transparent: 1 = fully (a mask, as Load Image "
                                                 "gives a PNG's transparency), resized to the images")),
        outputs=(Output("image", IMAGE, description="the images with an alpha channel (1 - the mask): Save Image "
                                                    "writes them as RGBA PNGs"),),
        description="Join images and a mask into images with transparency (ComfyUI's JoinImageWithAlpha).",
        display_name="Join Image with Alpha"),
    NodeSpec(
        "MaskToImage", "image", _lazy("images", "run_mask_to_image"),
        inputs=(Input("mask", MASK, description="the mask to show as an image"),),
        outputs=(Output("image", IMAGE, description="the mask as a grey image"),),
        description="A mask as a grey image (1 = white), to preview or process it as an image.",
        display_name="Convert Mask to Image"),
    NodeSpec(
        "SolidMask", "image", _lazy("images", "run_solid_mask"),
        params=(Param.float("value", 1.0, min=0.0, max=1.0, step=0.01,
                            description="the mask's value everywhere (1 = repaint, 0 = keep)"),
                Param.int("width", 512, min=1, max=16384, step=8, description="mask width in pixels"),
                Param.int("height", 512, min=1, max=16384, step=8, description="mask height in pixels")),
        outputs=(Output("mask", MASK, description="the mask"),),
        description="A mask of one value everywhere.",
        display_name="Solid Mask"),
    NodeSpec(
        "GrowMask", "image", _lazy("images", "run_grow_mask"),
        inputs=(Input("mask", MASK, description="the mask to grow or shrink"),),
        params=(Param.int("expand", 0, min=-16384, max=16384, description="pixels to grow by (negative: shrink)"),
                Param.bool("tapered_corners", True, description="grow diagonally more slowly (rounder corners)")),
        outputs=(Output("mask", MASK, description="the grown or shrunk mask"),),
        description="Grow or shrink a mask by whole pixels.",
        display_name="Grow Mask"),
    operation(
        "ImageScaleToTotalPixels", "run_image_scale_to_total_pixels",
        (_image_method(),
         Param.float("megapixels", 1.0, min=0.01, max=16.0, step=0.01,
                     description="target size in millions of pixels (x 1024 x 1024)"),
         Param.int("resolution_steps", 1, min=1, max=256, description="each side a multiple of this")),
        "Resize images to a number of pixels, keeping the aspect ratio.", "Scale Image to Total Pixels",
        **_RESIZE_IMAGE),
    operation(
        "ImageScaleToMaxDimension", "run_image_scale_to_max_dimension",
        (Param.choice("upscale_method", IMAGE_METHODS, default="area",
                      description="the resampling filter (area averages when shrinking; lanczos and bicubic are "
                                  "sharp; nearest-exact keeps hard pixels)"),
         Param.int("largest_size", 512, min=1, max=16384,
                   description="the longer side's new length in pixels (a square gets this on both sides)")),
        "Resize images so their longer side is largest_size pixels, keeping the aspect ratio.",
        "Scale Image to Max Dimension", **_RESIZE_IMAGE),
    NodeSpec(
        "ImageConcat", "image", _lazy("geometry", "run_image_concat"),
        inputs=tuple(Input(f"image_{i}", IMAGE, optional=i > 2,
                           description="the first images (their size is what match_image_size matches)" if i == 1
                           else f"the images joined {'next' if i == 2 else 'after those before'}")
                     for i in range(1, 9)),
        params=(Param.int("inputcount", 2, min=2, max=8,
                          description="how many images are joined: image_1 to image_<inputcount>"),
                Param.choice("direction", ("right", "down", "left", "up"), default="right",
                             description="where each next image goes: right of, below, left of or above the result"),
                Param.bool("match_image_size", True,
                           description="resize each next image (Lanczos, aspect ratio kept) to the first one's height "
                                       "(right, left) or width (down, up)")),
        outputs=(Output("image", IMAGE, description="the images side by side (a shorter batch repeats its last image)"),),
        description="Join up to 8 images side by side or one above another (KJNodes' Image Concatenate Multi).",
        display_name="Image Concatenate"),
    operation(
        "ResizeImagesByLongerEdge", "run_resize_images_by_longer_edge",
        (Param.int("longer_edge", 1024, min=1, max=8192,
                   description="the longer side's new length in pixels; the shorter keeps the aspect ratio, cut "
                               "down to a whole pixel"),),
        "Resize images with Lanczos so their longer side is longer_edge pixels (ComfyUI's Resize Images by Longer "
        "Edge).", "Resize Images by Longer Edge", **_RESIZE_IMAGE),
    NodeSpec(
        "ConditioningSetAreaStrength", "conditioning", _lazy("conditioning", "run_conditioning_set_area_strength"),
        inputs=(Input("conditioning", COND, description="the prompt to weight"),),
        params=(Param.float("strength", 1.0, min=0.0, max=10.0, step=0.01,
                            description="weight against other prompts where areas overlap"),),
        outputs=(Output("conditioning", COND, description="the prompt with its new weight"),),
        description="Set a prompt's weight against the others where areas overlap.",
        display_name="Conditioning (Set Area Strength)"),
    NodeSpec(
        "ImageCrop", "image", _lazy("geometry", "run_image_crop"),
        inputs=(Input("image", IMAGE, description="the images to cut from"),),
        params=(Param.int("width", 512, min=1, max=16384, step=8,
                          description="width of the cut in pixels"), Param.int("height", 512, min=1, max=16384, step=8, description="height of the cut in pixels"),
                Param.int("x", 0, min=0, max=16384, step=8,
                          description="left edge of the cut in pixels"), Param.int("y", 0, min=0, max=16384, step=8, description="top edge of the cut in pixels")),
        outputs=(Output("image", IMAGE, description="the cut-out rectangle"),),
        description="Cut a rectangle out of images (cut at their edges).",
        display_name="Crop Image"),
    NodeSpec(
        "ImageBatch", "image", _lazy("geometry", "run_image_batch"),
        inputs=(Input("image1", IMAGE, description="the first images (their size is kept)"),
                Input("image2", IMAGE, description="the images appended after them")),
        outputs=(Output("image", IMAGE, description="one batch of both"),),
        description="One batch of both inputs' images (the second resized to the first's size).",
        display_name="Batch Images"),
    NodeSpec(
        "LatentBlend", "latent", _lazy("geometry", "run_latent_blend"),
        inputs=(Input("latent_1", LATENT, description="the latent weighted by blend_factor"),
                Input("latent_2", LATENT, description="the latent weighted by 1 - blend_factor")),
        params=(Param.float("blend_factor", 0.5, min=0.0, max=1.0, step=0.01,
                            description="1: latent_1 alone; 0: latent_2 alone"),),
        outputs=(Output("latent", LATENT, description="the mixed latent"),),
        description="Mix two latents: latent_1 x factor + latent_2 x (1 - factor).",
        display_name="Latent Blend"),
    NodeSpec(
        "EmptyImage", "image", _lazy("images", "run_empty_image"),
        params=(Param.int("width", 512, min=1, max=16384, step=8,
                          description="image width in pixels"), Param.int("height", 512, min=1, max=16384, step=8, description="image height in pixels"),
                Param.int("batch_size", 1, min=1, max=4096, description="how many images"),
                Param.int("color", 0, min=0, max=0xFFFFFF, description="0xRRGGBB as a number (white: 16777215)")),
        outputs=(Output("image", IMAGE, description="the images"),),
        description="Images of one colour.",
        display_name="Empty Image"),
    NodeSpec(
        "ImageCompositeMasked", "image", _lazy("geometry", "run_image_composite_masked"),
        inputs=(Input("destination", IMAGE, description="the images to paste onto"),
                Input("source", IMAGE, description="the images to paste"),
                Input("mask", MASK, optional=True,
                      description="how much of the source shows at each pixel (1 = source)")),
        params=(Param.int("x", 0, min=0, max=16384,
                          description="where the source's left edge goes on the destination, in pixels"), Param.int("y", 0, min=0, max=16384, description="where the source's top edge goes on the destination, in pixels"),
                Param.bool("resize_source", False, description="resize source to destination's size first")),
        outputs=(Output("image", IMAGE, description="the destination with the source pasted in"),),
        description="Paste source onto destination at (x, y) through the mask (all of it without one).",
        display_name="Composite Images (Masked)"),
    NodeSpec(
        "LatentCompositeMasked", "latent", _lazy("geometry", "run_latent_composite_masked"),
        inputs=(Input("destination", LATENT, description="the latent to paste onto"),
                Input("source", LATENT, description="the latent to paste"),
                Input("mask", MASK, optional=True,
                      description="how much of the source shows at each pixel (1 = source)")),
        params=(Param.int("x", 0, min=0, max=16384, step=8, description="in image pixels"),
                Param.int("y", 0, min=0, max=16384, step=8, description="in image pixels"),
                Param.bool("resize_source", False, description="resize source to destination's size first")),
        outputs=(Output("latent", LATENT, description="the destination with the source pasted in"),),
        description="Paste one latent onto another at (x, y) through the mask.",
        display_name="Composite Latents (Masked)"),
]

# The model families' own nodes (SD3's per-encoder prompt and sigma shift), declared beside them.
from .families.specs import FAMILY_NODES  # noqa: E402

NODES += FAMILY_NODES

# ComfyUI's core latent, mask and image operations (LatentComposite, FeatherMask, ImageBlend, ...).
from .operation_specs import OPERATION_NODES  # noqa: E402

NODES += OPERATION_NODES

# ComfyUI's custom sampling (noise, guider, sampler and sigmas as their own nodes).
from .custom_specs import CUSTOM_SAMPLING_NODES  # noqa: E402

NODES += CUSTOM_SAMPLING_NODES

# An XYZ plot: a sampler's settings on one wire, every combination of value lists in one batch, a grid of it.
from .xyz_specs import XYZ_NODES  # noqa: E402

NODES += XYZ_NODES

# IP-Adapter: image prompts through the UNet's cross-attention, and the CLIP vision encoder they read with.
from .ipadapter_specs import IPADAPTER_NODES  # noqa: E402

NODES += IPADAPTER_NODES

# Edit models: reference latents (FLUX.1 Kontext), Kontext's image sizes, CFGNorm.
from .edit_specs import EDIT_NODES  # noqa: E402

NODES += EDIT_NODES

# Plain values on wires: an image's size, math expressions, text joined or rewritten, and a value shown.
from .value_specs import VALUE_NODES  # noqa: E402

NODES += VALUE_NODES

# How a graph runs: a model through torch.compile, memory given back.
from .runtime_specs import RUNTIME_NODES  # noqa: E402

NODES += RUNTIME_NODES

# Masks from a text prompt: Grounding DINO's boxes made masks by Segment Anything (nodes/segment.py).
GROUNDING_DINO, SAM_MODEL = PortType.GROUNDING_DINO.value, PortType.SAM_MODEL.value
NODES += [
    NodeSpec(
        "GroundingDinoLoader", "loaders", _lazy("segment", "run_grounding_dino_loader"),
        params=(Param.choice("model", _names(FileKind.GROUNDING_DINO), default="", file=FileKind.GROUNDING_DINO,
                             description="a transformers Grounding DINO folder from the grounding-dino folder "
                                         "(IDEA-Research/grounding-dino-tiny or -base)"),),
        outputs=(Output("grounding_dino", GROUNDING_DINO, description="the detector that finds what a text names"),),
        description="Load a Grounding DINO model, which finds the boxes of what a text prompt names.",
        display_name="Load Grounding DINO"),
    NodeSpec(
        "SegmentAnythingLoader", "loaders", _lazy("segment", "run_sam_loader"),
        params=(Param.choice("model", _names(FileKind.SAM), default="", file=FileKind.SAM,
                             description="a transformers Segment Anything folder from the sams folder "
                                         "(facebook/sam-vit-base, -large or -huge)"),),
        outputs=(Output("sam", SAM_MODEL, description="the model that turns boxes into masks"),),
        description="Load a Segment Anything model, which turns boxes into masks.",
        display_name="Load Segment Anything"),
    NodeSpec(
        "TextSegment", "mask", _lazy("segment", "run_text_segment"),
        inputs=(Input("image", IMAGE, description="the images to find the prompt in"),
                Input("grounding_dino", GROUNDING_DINO, description="the detector (Load Grounding DINO)"),
                Input("sam", SAM_MODEL, description="the segmenter (Load Segment Anything)")),
        params=(Param.string("prompt", "", description="what to mask, e.g. 'person' ('cat . dog' for several)",
                             role=None),
                Param.float("threshold", 0.3, min=0.0, max=1.0, step=0.01,
                            description="how sure Grounding DINO must be of a box (its best token score)")),
        outputs=(Output("image", IMAGE, description="the images, black outside the mask"),
                 Output("mask", MASK, description="1 where SAM found what the prompt names (the union of its boxes)")),
        description="Mask what a text prompt names: Grounding DINO finds its boxes, Segment Anything makes them a mask "
                    "(comfyui_segment_anything's GroundingDinoSAMSegment).",
        display_name="Mask from Text (Grounding DINO + SAM)"),
]

# IC-Light (nodes/iclight.py): an SD 1.5 UNet relit from a foreground (and background) latent.
NODES += [
    NodeSpec(
        "LoadAndApplyICLightUnet", "loaders", _lazy("iclight", "run_load_iclight"),
        inputs=(Input("unet", MODEL, description="an SD 1.5 checkpoint's model"),),
        params=(Param.choice("iclight", _names(FileKind.DIFFUSION_MODEL), default="", file=FileKind.DIFFUSION_MODEL,
                             description="an IC-Light file from the diffusion_models (unet) folder: "
                                         "iclight_sd15_fc.safetensors (foreground) or iclight_sd15_fbc.safetensors "
                                         "(foreground and background), lllyasviel/ic-light"),),
        outputs=(Output("unet", MODEL, description="the model with IC-Light's offsets added and its conv_in widened "
                                                   "to take the foreground (and background) latent"),),
        description="Make an SD 1.5 model IC-Light: its file's offsets are added to every weight and conv_in takes the "
                    "latents IC-Light Conditioning gives (kijai's LoadAndApplyICLightUnet).",
        display_name="Load And Apply IC-Light"),
    NodeSpec(
        "ICLightConditioning", "conditioning", _lazy("iclight", "run_iclight_conditioning"),
        inputs=(Input("positive", COND, role=InputRole.POSITIVE, description="the prompt"),
                Input("negative", COND, role=InputRole.NEGATIVE, description="the negative prompt"),
                Input("vae", VAE, description="the VAE that encoded the latents"),
                Input("foreground", LATENT, description="the subject's latent (VAE Encode of it on grey)"),
                Input("opt_background", LATENT, optional=True,
                      description="the background's latent, for an IC-Light fbc model only")),
        params=(Param.float("multiplier", 0.18215, min=0.0, max=1.0, step=0.001,
                            description="the latents' scale (SD 1.5's VAE factor 0.18215 gives what IC-Light was "
                                        "trained on)"),),
        outputs=(Output("positive", COND, description="the prompt with the latents for the UNet's extra channels"),
                 Output("negative", COND, description="the negative with the same latents"),
                 Output("empty_latent", LATENT, description="an empty latent of the foreground's size")),
        description="Give an IC-Light model its foreground (and background) latent, times multiplier, with both "
                    "prompts (kijai's ICLightConditioning).",
        display_name="IC-Light Conditioning"),
]

# Background removal with BRIA RMBG-1.4 (nodes/background_removal.py).
NODES += [
    NodeSpec(
        "RemoveBackground", "image", _lazy("background_removal", "run_remove_background"),
        inputs=(Input("image", IMAGE, description="the pictures to cut out"),),
        params=(Param.choice("model", _names(FileKind.BACKGROUND_REMOVAL), default="",
                             file=FileKind.BACKGROUND_REMOVAL,
                             description="briaai/RMBG-1.4's model.safetensors (or its folder) from the rmbg folder"),
                Param.string("bg_color", "#7F7F7F", description="what replaces the background: a colour name or "
                                                                "#hex (grey suits IC-Light)")),
        outputs=(Output("image", IMAGE, description="the pictures over bg_color outside the subject"),
                 Output("mask", MASK, description="RMBG's matte: 1 on the subject, 0 on the background")),
        description="Remove the background with BRIA RMBG-1.4 (ComfyUI-Video-Matting's BRIAAI Matting).",
        display_name="Remove Background (BRIA RMBG)"),
]

# comfyui_controlnet_aux's inpaint and lineart preprocessors (nodes/inpaint_control.py, nodes/lineart.py).
NODES += [
    NodeSpec(
        "InpaintControlImage", "image", _lazy("inpaint_control", "run_inpaint_control"),
        inputs=(Input("image", IMAGE, description="the pictures to inpaint"),
                Input("mask", MASK, description="where to inpaint (above 0.5 after resizing to the picture)")),
        params=(Param.bool("xinsir_black", False,
                           description="masked pixels black (0), as xinsir's ControlNets expect, instead of -1"),),
        outputs=(Output("image", IMAGE, description="the pictures with the masked pixels at -1 (or 0), for an "
                                                    "inpaint ControlNet"),),
        description="Mark the pixels to inpaint with -1, the control image an inpaint ControlNet takes "
                    "(comfyui_controlnet_aux's Inpaint Preprocessor).",
        display_name="Inpaint Control Image"),
    NodeSpec(
        "LineartStandard", "image", _lazy("lineart", "run_lineart_standard"),
        inputs=(Input("image", IMAGE, description="the pictures to draw lines from"),),
        params=(Param.float("guassian_sigma", 6.0, min=0.0, max=100.0, step=0.01,
                            description="the blur's sigma in pixels of the resized picture (wider: thicker lines)"),
                Param.int("intensity_threshold", 8, min=0, max=16,
                          description="the least line strength (0..255) counted when the lines are normalised"),
                Param.int("resolution", 512, min=64, max=16384, step=64,
                          description="the map's shorter side in pixels (the aspect ratio is kept)")),
        outputs=(Output("image", IMAGE, description="the lines, grey to white on black"),),
        description="Lines where the picture is darker than its blurred surround, no model needed "
                    "(comfyui_controlnet_aux's Standard Lineart).",
        display_name="Standard Lineart"),
    NodeSpec(
        "LineArt", "image", _lazy("lineart", "run_lineart"),
        inputs=(Input("image", IMAGE, description="the pictures to draw lines from"),),
        params=(Param.choice("model", _names(FileKind.LINEART), default="", file=FileKind.LINEART,
                             description="sk_model.pth (fine) or sk_model2.pth (coarse) from lllyasviel/Annotators, "
                                         "in the lineart folder"),
                Param.int("resolution", 512, min=64, max=16384, step=64,
                          description="the map's shorter side in pixels (the aspect ratio is kept)")),
        outputs=(Output("image", IMAGE, description="the lines, white on black"),),
        description="Line drawing by the informative-drawings network, for a lineart ControlNet "
                    "(comfyui_controlnet_aux's Realistic Lineart).",
        display_name="Realistic Lineart"),
]

# comfyui_controlnet_aux's LeReS depth preprocessor (nodes/leres.py).
NODES += [
    NodeSpec(
        "LeReSDepthMap", "image", _lazy("leres", "run_leres_depth_map"),
        inputs=(Input("image", IMAGE, description="the images to estimate depth in"),),
        params=(Param.choice("model", _names(FileKind.LERES), default="", file=FileKind.LERES,
                             description="res101.pth from lllyasviel/Annotators, in the leres folder"),
                Param.float("rm_nearest", 0.0, min=0.0, max=100.0, step=0.01,
                            description="depth levels up to this percent of white (the nearest) set to 0 before the "
                                        "map is turned over, so they come out white (0: off)"),
                Param.float("rm_background", 0.0, min=0.0, max=100.0, step=0.01,
                            description="map levels up to this percent of white (the farthest) set to black (0: off)"),
                Param.int("resolution", 512, min=64, max=16384, step=64,
                          description="the map's shorter side in pixels (the aspect ratio is kept)")),
        outputs=(Output("image", IMAGE, description="the depth map, grey, near bright"),),
        description="Estimate a depth map with LeReS's ResNeXt-101 network (comfyui_controlnet_aux's LeReS "
                    "preprocessor, without its boost).",
        display_name="LeReS Depth Map"),
]
