"""Declarations of the latent, mask and image operation nodes that ComfyUI's core has (torch-free;
run functions in nodes/latent_ops.py, nodes/latent_files.py, nodes/masks.py,
nodes/image_filters.py, nodes/conditioning.py, nodes/freeu.py and nodes/cfg_rescale.py, imported when
a node first runs)."""
from __future__ import annotations

from functools import partial
from typing import Any

from nodeforge.core.spec import Input, NodeSpec, Output, Param
from nodeforge.core.types import ParamRole, PortType

from .declare import CROPS, LATENT_METHODS
from .declare import lazy as _lazy
from .declare import operation

LATENT, MASK, IMAGE, VAE = PortType.LATENT.value, PortType.MASK.value, PortType.IMAGE.value, PortType.VAE.value
COND, MODEL = PortType.CONDITIONING.value, PortType.MODEL.value
RES = 16384


# (name, run function, params, description, display name[, inputs=...]): the operations of each kind.
_latent_node = partial(operation, category="latent", module="latent_ops", port=LATENT)
_mask_node = partial(operation, category="image", module="masks", port=MASK)
_image_node = partial(operation, category="image", module="image_filters", port=IMAGE)


LATENT_NODES: list[NodeSpec] = [
    _latent_node(
        "LatentComposite", "run_latent_composite",
        (Param.int("x", 0, min=0, max=RES, step=8, description="left edge of the paste, in image pixels"),
         Param.int("y", 0, min=0, max=RES, step=8, description="top edge of the paste, in image pixels"),
         Param.int("feather", 0, min=0, max=RES, step=8,
                   description="pixels over which the pasted edges fade into the destination (0: a hard edge)")),
        "Paste one latent into another at (x, y), its inner edges feathered (noisy latent composition).",
        "Latent Composite", inputs=(Input("destination", LATENT, description="the latent pasted into (its size is kept)"),
                                      Input("source", LATENT, description="the latent pasted at (x, y)"))),
    _latent_node(
        "LatentCrop", "run_latent_crop",
        (Param.int("width", 512, min=8, max=RES, step=8, description="in image pixels"),
         Param.int("height", 512, min=8, max=RES, step=8, description="in image pixels"),
         Param.int("x", 0, min=0, max=RES, step=8, description="left edge, in image pixels"),
         Param.int("y", 0, min=0, max=RES, step=8, description="top edge, in image pixels")),
        "Cut a rectangle out of a latent (sizes in image pixels; its noise mask is cut too).", "Crop Latent"),
    _latent_node(
        "LatentAdd", "run_latent_add", (),
        "latent_1 + latent_2 (latent_2 resized to latent_1's size first): add a difference to a latent.",
        "Latent Add", inputs=(Input("latent_1", LATENT, description="the first term (its size is kept)"),
                                 Input("latent_2", LATENT, description="added to the first"))),
    _latent_node(
        "LatentSubtract", "run_latent_subtract", (),
        "latent_1 - latent_2 (latent_2 resized to latent_1's size first): the difference of two latents.",
        "Latent Subtract", inputs=(Input("latent_1", LATENT, description="what is subtracted from (its size is kept)"),
                                      Input("latent_2", LATENT, description="subtracted from the first"))),
    _latent_node(
        "LatentMultiply", "run_latent_multiply",
        (Param.float("multiplier", 1.0, min=-10.0, max=10.0, step=0.01, description="every value is multiplied by it"),),
        "Scale a latent's values (above 1: more contrast and detail after decoding; below: flatter).",
        "Latent Multiply"),
    _latent_node(
        "LatentFlip", "run_latent_flip",
        (Param.choice("flip_method", ("x-axis: vertically", "y-axis: horizontally"),
                      description="vertically: top and bottom swap; horizontally: a mirror image"),),
        "Flip a latent (the decoded image flips the same way).", "Flip Latent"),
    _latent_node(
        "LatentRotate", "run_latent_rotate",
        (Param.choice("rotation", ("none", "90 degrees", "180 degrees", "270 degrees"), description="clockwise"),),
        "Rotate a latent by quarter turns clockwise (the decoded image turns the same way).", "Rotate Latent"),
]


def _check_prefix(prefix: str, **_: Any) -> list[str]:
    from . import _check_prefix as check   # SaveImage's rules (the pack's __init__ defines them first)

    return check(prefix)


_SCALE_VAE = "the model's VAE, whose scaling the file's values are stored without (unconnected: SD 1.x/2.x's)"

LATENT_NODES += [
    NodeSpec(
        "SaveLatent", "latent", _lazy("latent_files", "run_save_latent"),
        inputs=(Input("latent", LATENT, description="the latent to write (an empty latent has no values yet)"),
                Input("vae", VAE, optional=True, description=_SCALE_VAE)),
        params=(Param.string("prefix", "latents/nodeforge",
                             description="file name prefix in the output folder (prefix_00001_.latent)"),),
        output_node=True, cacheable=False, validate=_check_prefix,
        description="Save a latent as a .latent file (safetensors, ComfyUI's format) to reuse or share it.",
        display_name="Save Latent"),
    NodeSpec(
        "LoadLatent", "latent", _lazy("latent_files", "run_load_latent"),
        inputs=(Input("vae", VAE, optional=True, description=_SCALE_VAE + "; a file NodeForge saved says its own"),),
        params=(Param.string("path", "", description="a .latent file (ComfyUI's or SaveLatent's): a path, or a name "
                                                     "beside the workflow or in the images folder"),),
        outputs=(Output("latent", LATENT, description="the file's latent, scaled as NodeForge's latents are"),),
        description="Load a latent from a .latent file (ComfyUI's or SaveLatent's).",
        display_name="Load Latent"),
]

# Packs' factor and blend nodes that resize as they compute (run in nodes/geometry.py).
_CROP = Param.choice("crop", CROPS, description="center: crop to the new aspect ratio first; "
                                                                  "disabled: stretch")


def _factor_param(side: str) -> Param:
    return Param.float(f"{side}_factor", 1.25, min=0.01, max=10.0, step=0.01,
                       description=f"the {side} is multiplied by this (1.25: 512 to 640)")


LATENT_NODES += [
    operation(
        "LatentScaleByFactors", "run_latent_scale_by_factors",
        (Param.choice("upscale_method", LATENT_METHODS, description="how new latent pixels are computed"),
         _factor_param("width"), _factor_param("height"), _CROP),
        "Resize a latent by a factor per side, each side then rounded to a multiple of 64 image pixels (8 latent "
        "pixels; QualityOfLifeSuit's Latent Upscale Factor).", "Upscale Latent by Factors",
        category="latent", module="geometry", port=LATENT, takes="the latent to resize",
        gives="the resized latent, its sides multiples of 8 latent pixels"),
    operation(
        "LatentWeightedBlend", "run_latent_weighted_blend",
        (Param.float("weight_1", 0.5, min=0.0, max=1.0, step=0.01,
                     description="latent_1's share, divided by weight_1 + weight_2"),
         Param.float("weight_2", 0.5, min=0.0, max=1.0, step=0.01,
                     description="latent_2's share, divided by weight_1 + weight_2"),
         Param.int("width", 1024, min=8, max=8192, step=8, role=ParamRole.WIDTH,
                   description="the result's image width in pixels (the latent's is width // 8)"),
         Param.int("height", 1024, min=8, max=8192, step=8, role=ParamRole.HEIGHT,
                   description="the result's image height in pixels (the latent's is height // 8)")),
        "Mix two latents by weights (normalised to sum 1), both first resized to one size (nearest pixel; "
        "deadinside's Latent Weighted Blend (Resize)).", "Latent Weighted Blend (Resize)",
        category="latent", module="geometry", port=LATENT,
        inputs=(Input("latent_1", LATENT, description="the latent weighted by weight_1"),
                Input("latent_2", LATENT, description="the latent weighted by weight_2")),
        gives="the mixed latent at width x height"),
]

MASK_NODES: list[NodeSpec] = [
    _mask_node(
        "FeatherMask", "run_feather_mask",
        tuple(Param.int(side, 0, min=0, max=RES, description=f"pixels at the {side} that fade to 0")
              for side in ("left", "top", "right", "bottom")),
        "Fade a mask linearly towards its edges (a soft seam where it meets the rest).", "Feather Mask"),
    _mask_node(
        "ThresholdMask", "run_threshold_mask",
        (Param.float("value", 0.5, min=0.0, max=1.0, step=0.01, description="values above it become 1, others 0"),),
        "Make a mask hard: 1 where it is above the threshold, else 0.", "Threshold Mask"),
    _mask_node(
        "MaskComposite", "run_mask_composite",
        (Param.int("x", 0, min=0, max=RES, description="where source's left edge goes in destination"),
         Param.int("y", 0, min=0, max=RES, description="where source's top edge goes in destination"),
         Param.choice("operation", ("multiply", "add", "subtract", "and", "or", "xor"),
                      description="how the overlap combines (and/or/xor round each mask to 0 or 1)")),
        "Combine two masks where source overlaps destination at (x, y); the result is kept in 0..1.",
        "Mask Composite", inputs=(Input("destination", MASK, description="the mask combined into (its size is kept)"),
                                   Input("source", MASK, description="the mask placed at (x, y)"))),
    _mask_node(
        "CropMask", "run_crop_mask",
        (Param.int("x", 0, min=0, max=RES, description="left edge of the cut, in pixels"),
         Param.int("y", 0, min=0, max=RES, description="top edge of the cut, in pixels"),
         Param.int("width", 512, min=1, max=RES, description="width of the cut, in pixels"),
         Param.int("height", 512, min=1, max=RES, description="height of the cut, in pixels")),
        "Cut a rectangle out of a mask (cut at its edges).", "Crop Mask"),
]


def _sigma() -> Param:
    return Param.float("sigma", 1.0, min=0.1, max=10.0, step=0.1,
                       description="spread of the Gaussian, in units of the radius (ComfyUI's)")


IMAGE_NODES: list[NodeSpec] = [
    _image_node(
        "ImageBlend", "run_image_blend",
        (Param.float("blend_factor", 0.5, min=0.0, max=1.0, step=0.01,
                     description="0: image1 alone; 1: the blend mode's result alone"),
         Param.choice("blend_mode", ("normal", "multiply", "screen", "overlay", "soft_light", "difference"),
                      description="how image2 combines with image1 (normal: image2 itself)")),
        "Blend image2 over image1 with a blend mode (image2 resized to image1's size first).", "Image Blend",
        inputs=(Input("image1", IMAGE, description="the base images (their size is kept)"),
                Input("image2", IMAGE, description="the images blended over them"))),
    _image_node(
        "ImageBlur", "run_image_blur",
        (Param.int("blur_radius", 1, min=1, max=31, description="kernel half-width in pixels"), _sigma()),
        "Gaussian blur (edges mirrored).", "Image Blur"),
    _image_node(
        "ImageSharpen", "run_image_sharpen",
        (Param.int("sharpen_radius", 1, min=1, max=31, description="kernel half-width in pixels"), _sigma(),
         Param.float("alpha", 1.0, min=0.0, max=5.0, step=0.01, description="strength of the sharpening")),
        "Sharpen images (unsharp masking with a Gaussian).", "Image Sharpen"),
    _image_node(
        "ImageQuantize", "run_image_quantize",
        (Param.int("colors", 256, min=1, max=256, description="colours in each image's palette"),
         Param.choice("dither", ("none", "floyd-steinberg", "bayer-2", "bayer-4", "bayer-8", "bayer-16"),
                      description="how colours between palette entries are mixed (bayer-N: an N x N ordered "
                                  "pattern)")),
        "Reduce images to a palette of a few colours (pixel-art and poster looks).", "Image Quantize"),
    _image_node(
        "ImageResize", "run_image_resize",
        (Param.choice("mode", ("rescale", "resize"), description="rescale: by the factor; resize: to the width and "
                                                                 "height (rounded up to multiples of 8)"),
         Param.bool("supersample", True, description="resize to 8x the target first, then down (smoother)"),
         Param.choice("resampling", ("lanczos", "nearest", "bilinear", "bicubic"), description="Pillow's filter"),
         Param.float("rescale_factor", 2.0, min=0.01, max=16.0, step=0.01, description="size factor in rescale mode"),
         Param.int("resize_width", 1024, min=1, max=48000, description="target width in resize mode"),
         Param.int("resize_height", 1536, min=1, max=48000, description="target height in resize mode")),
        "Resize images by a factor or to a size with Pillow (WAS Node Suite's Image Resize).", "Image Resize"),
]

IMAGE_NODES += [
    operation(
        "ImageScaleByFactors", "run_image_scale_by_factors",
        (Param.choice("upscale_method", LATENT_METHODS, description="the resampling filter"),
         _factor_param("width"), _factor_param("height"),
         Param.bool("multiple_of_8", True, description="round each side to a multiple of 8 (a remainder below 4 "
                                                       "down, else up)"),
         _CROP),
        "Resize images by a factor per side (QualityOfLifeSuit's Image Scale Factor): the sizes are cut to whole "
        "pixels, after rounding to a multiple of 8 if asked.", "Scale Image by Factors",
        category="image", module="geometry", port=IMAGE, takes="the images to resize", gives="the resized images"),
]

# RES4LYF's Film Grain (WAS Node Suite's Image Film Grain rewritten; run in nodes/film_grain.py).
IMAGE_NODES += [
    operation(
        "FilmGrain", "run_film_grain",
        (Param.float("density", 1.0, min=0.01, max=1.0, step=0.01,
                     description="the share of the enlarged grey layer's pixels given a random grey (drawn with "
                                 "replacement: 1 changes about 63%)"),
         Param.float("intensity", 1.0, min=0.01, max=1.0, step=0.01,
                     description="how much grain is mixed in: image x (1 - intensity) + grain x intensity"),
         Param.float("highlights", 1.0, min=0.01, max=255.0, step=0.01,
                     description="brightness factor applied last (1: unchanged; clipped at white)"),
         Param.int("supersample_factor", 4, min=1, max=8,
                   description="the grain is drawn this many times finer, then shrunk (Lanczos): finer grain"),
         Param.int("repeats", 1, min=1, max=1000, description="copies of the batch, each with its own grain"),
         Param.int("seed", 0, min=0, max=2 ** 63 - 1, role=ParamRole.SEED,
                   description="seeds the grain (image n: seed + n); NodeForge's own, ComfyUI's node has none")),
        "Film grain on images (RES4LYF's Film Grain, WAS's noise model): random greys sprinkled on the enlarged "
        "luma, shrunk and sharpened, mixed in by intensity, brightness times highlights.", "Film Grain",
        category="image", module="film_grain", port=IMAGE, takes="the images to grain",
        gives="the grained images (8 bits)"),
]

# ComfyUI's GLSL Shader (comfy_extras/nodes_glsl.py; run in nodes/glsl.py through EGL and OpenGL ES 3).
GLSL_SIZE_MODES = ("from_input", "custom")
DEFAULT_SHADER = """#version 300 es
precision highp float;

uniform sampler2D u_image0;
uniform vec2 u_resolution;

in vec2 v_texCoord;
layout(location = 0) out vec4 fragColor0;

void main() {
    fragColor0 = texture(u_image0, v_texCoord);
}
"""
IMAGE_NODES += [
    NodeSpec(
        "GLSLShader", "image", _lazy("glsl", "run_glsl_shader"),
        inputs=(Input("image0", IMAGE, description="the shader's u_image0 (and the output size in from_input mode)"),
                *(Input(f"image{i}", IMAGE, optional=True, description=f"u_image{i} in the shader")
                  for i in range(1, 5))),
        params=(Param.string("fragment_shader", DEFAULT_SHADER, multiline=True,
                             description="a GLSL ES 3.00 fragment shader: reads v_texCoord, u_image0-4, u_resolution, "
                                         "u_float0-4, u_int0-4 (u_pass with #pragma passes N); writes fragColor or "
                                         "fragColor0-3"),
                Param.choice("size_mode", GLSL_SIZE_MODES, default="from_input",
                             description="from_input: image0's size; custom: width x height"),
                Param.int("width", 512, min=1, max=RES, description="the output width in custom mode"),
                Param.int("height", 512, min=1, max=RES, description="the output height in custom mode"),
                *(Param.float(f"u_float{i}", 0.0, min=-1e9, max=1e9, step=0.01,
                              description=f"the shader's float u_float{i}") for i in range(5)),
                *(Param.int(f"u_int{i}", 0, min=-2 ** 31, max=2 ** 31 - 1, description=f"the shader's int u_int{i}")
                  for i in range(5))),
        outputs=tuple(Output(f"image{i}", IMAGE, description=f"what the shader writes to fragColor{i} (RGBA; black "
                                                               "if it writes none)") for i in range(4)),
        description="Run a GLSL ES fragment shader over images (ComfyUI's GLSL Shader), drawn by OpenGL ES 3 "
                    "through EGL (on the CPU with Mesa's llvmpipe where there is no GPU).",
        display_name="GLSL Shader"),
]

# ComfyUI core's and popular packs' fitting and cropping of images (run functions in nodes/geometry.py).
_POSITIONS = ("top-left", "top-center", "top-right", "right-center", "bottom-right", "bottom-center", "bottom-left",
              "left-center", "center")
INT = PortType.INT.value
LIGHT_POSITIONS = ("Left Light", "Right Light", "Top Light", "Bottom Light", "Top Left Light", "Top Right Light",
                   "Bottom Left Light", "Bottom Right Light")
IMAGE_NODES += [
    operation(
        "ResizeAndPadImage", "run_resize_and_pad_image",
        (Param.int("target_width", 512, min=1, max=RES, description="the width of the result in pixels"),
         Param.int("target_height", 512, min=1, max=RES, description="the height of the result in pixels"),
         Param.choice("padding_color", ("white", "black"), default="white",
                      description="the colour of the bands around the resized image"),
         Param.choice("interpolation", ("area", "bicubic", "nearest-exact", "bilinear", "lanczos"), default="area",
                      description="the resampling filter")),
        "Fit images inside target_width x target_height, keeping their aspect ratio (each side cut to a whole "
        "pixel), centred on a white or black canvas of that size (ComfyUI's Resize And Pad Image).",
        "Resize and Pad Image", category="image", module="geometry", port=IMAGE, takes="the images to fit",
        gives="target_width x target_height images"),
    NodeSpec(
        "ImageCropAtPosition", "image", _lazy("geometry", "run_image_crop_at_position"),
        inputs=(Input("image", IMAGE, description="the images to cut from"),),
        params=(Param.int("width", 256, min=0, max=RES, step=8,
                          description="width of the cut in pixels (at most the image's)"),
                Param.int("height", 256, min=0, max=RES, step=8,
                          description="height of the cut in pixels (at most the image's)"),
                Param.choice("position", _POSITIONS, default="top-left",
                             description="where the cut sits in the image before the offsets move it"),
                Param.int("x_offset", 0, min=-99999, max=99999, description="pixels the cut moves right (left if < 0)"),
                Param.int("y_offset", 0, min=-99999, max=99999, description="pixels the cut moves down (up if < 0)")),
        outputs=(Output("image", IMAGE, description="the cut-out rectangle (cut at the image's edges)"),
                 Output("x", INT, description="the cut's left edge in the image"),
                 Output("y", INT, description="the cut's top edge in the image")),
        description="Cut a rectangle out of images at a named position plus offsets (ComfyUI_essentials' Image "
                    "Crop).", display_name="Crop Image at Position"),
    NodeSpec(
        "ResizeImageMask", "image", _lazy("geometry", "run_resize_image_mask"),
        inputs=(Input("input", "*", description="the images (IMAGE) or masks (MASK) to resize"),),
        params=(Param.choice("resize_type", ("scale dimensions",), default="scale dimensions",
                             description="how to resize: to width x height (ComfyUI's other ways, by a factor, a "
                                         "side or a pixel count, are NodeForge's other Scale Image nodes)"),
                Param.int("width", 512, min=0, max=RES, description="0 keeps the aspect ratio from height"),
                Param.int("height", 512, min=0, max=RES, description="0 keeps the aspect ratio from width"),
                Param.choice("crop", CROPS, default="center",
                             description="center: crop to width x height's aspect ratio first; disabled: stretch"),
                Param.choice("scale_method", ("nearest-exact", "bilinear", "area", "bicubic", "lanczos"),
                             default="area", description="the resampling filter")),
        outputs=(Output("resized", "*", description="the resized images or masks (the input's type)"),),
        description="Resize images or masks to width x height (ComfyUI's Resize Image/Mask, 'scale dimensions').",
        display_name="Resize Image/Mask"),
    NodeSpec(
        "LightSource", "image", _lazy("images", "run_light_source"),
        inputs=(Input("prev_image", IMAGE, optional=True,
                      description="images put before the light maps in the batch (of the same size)"),),
        params=(Param.choice("light_position", LIGHT_POSITIONS, default="Left Light",
                             description="the side (or corner) start_color is on; end_color is on the opposite one"),
                Param.float("multiplier", 1.0, min=0.0, max=100.0, step=0.001,
                            description="the gradient's power (1: linear; above 1 the start colour falls off faster)"),
                Param.string("start_color", "#FFFFFF", description="#RRGGBB or R,G,B (0-255): the light's colour"),
                Param.string("end_color", "#000000", description="#RRGGBB or R,G,B (0-255): the far side's colour"),
                Param.int("width", 512, min=0, max=RES, step=8, description="image width in pixels"),
                Param.int("height", 512, min=0, max=RES, step=8, description="image height in pixels"),
                Param.int("batch_size", 1, min=1, max=4096, description="how many copies")),
        outputs=(Output("image", IMAGE, description="the light maps (after prev_image's images)"),),
        description="A gradient from start_color to end_color across the image, as a light map for IC-Light "
                    "(kijai's ComfyUI-IC-Light Simple Light Source).", display_name="Simple Light Source"),
]

CONDITIONING_NODES: list[NodeSpec] = [
    NodeSpec(
        "ConditioningSetMask", "conditioning", _lazy("conditioning", "run_conditioning_set_mask"),
        inputs=(Input("conditioning", COND, description="the prompt to restrict to the mask"),
                Input("mask", MASK, description="where the prompt acts (1: fully), resized to the latent")),
        params=(Param.float("strength", 1.0, min=0.0, max=10.0, step=0.01,
                            description="weight against other prompts where masks overlap"),
                Param.choice("set_cond_area", ("default", "mask bounds"),
                             description="mask bounds: denoise only the mask's bounding box with this prompt "
                                         "(faster, and the prompt sees that part as a whole image)")),
        outputs=(Output("conditioning", COND, description="the prompt, acting through the mask"),),
        description="Regional prompt through a mask: the prompt acts where the mask is, in proportion to it.",
        display_name="Conditioning (Set Mask)"),
]


def _freeu(name: str, function: str, defaults: tuple[float, float, float, float], description: str,
           display: str) -> NodeSpec:
    b1, b2, s1, s2 = defaults
    return operation(
        name, function,
        (Param.float("b1", b1, min=0.0, max=10.0, step=0.01,
                     description="backbone scale in the deepest decoder layers (4x the first block's width)"),
         Param.float("b2", b2, min=0.0, max=10.0, step=0.01,
                     description="backbone scale in the next layers (2x the first block's width)"),
         Param.float("s1", s1, min=0.0, max=10.0, step=0.01,
                     description="skip-connection low-frequency scale where b1 applies"),
         Param.float("s2", s2, min=0.0, max=10.0, step=0.01,
                     description="skip-connection low-frequency scale where b2 applies")),
        description, display, category="advanced/model", module="freeu", port=MODEL,
        gives="the same model, sampled with FreeU")


MODEL_NODES: list[NodeSpec] = [
    _freeu("FreeU", "run_freeu", (1.1, 1.2, 0.9, 0.2),
           "FreeU: strengthen the UNet's backbone features and damp its skip connections' low frequencies "
           "(often more detail and contrast, no cost); the input model is not changed.", "FreeU"),
    _freeu("FreeUV2", "run_freeu_v2", (1.3, 1.4, 0.9, 0.2),
           "FreeU version 2: the backbone scale follows each pixel's mean feature strength (gentler on flat "
           "areas); the input model is not changed.", "FreeU (V2)"),
    operation(
        "DifferentialDiffusion", "run_differential_diffusion",
        (Param.float("strength", 1.0, min=0.0, max=1.0, step=0.01,
                     description="1: each step uses the thresholded mask alone; below 1 it is mixed with the soft "
                                 "mask (0 acts as 1, as in ComfyUI)"),),
        "Differential diffusion (ComfyUI's DifferentialDiffusion): a soft inpainting mask (a noise mask on the "
        "latent) becomes how much each pixel changes: at each step only pixels whose mask reaches the step's place "
        "in the run (1 at the start, 0 at the end) are repainted, so grey areas change less than white ones. The "
        "input model is not changed.",
        "Differential Diffusion", category="advanced/model", module="differential", port=MODEL,
        takes="the model to inpaint with (any family); it is not changed", gives="the same model, its inpainting masks applied step by step"),
    operation(
        "RescaleCFG", "run_rescale_cfg",
        (Param.float("multiplier", 0.7, min=0.0, max=1.0, step=0.01,
                     description="how far the guided prediction's spread is pulled to the positive prompt's "
                                 "(0: plain CFG, 1: fully rescaled)"),),
        "Rescale CFG (Lin et al. 2023, section 3.4): scale the guided prediction to the positive "
        "prediction's standard deviation and mix by the multiplier, which tames the over-exposure of "
        "high CFG (needed for zero-terminal-SNR and v-prediction models). As diffusers' guidance_rescale "
        "it acts on the UNet's output (noise for eps models); ComfyUI rescales in v-prediction form, "
        "so eps models' images differ slightly from ComfyUI's. The input model is not changed.",
        "Rescale CFG", category="advanced/model", module="cfg_rescale", port=MODEL,
        gives="the same model, its CFG rescaled when sampled"),
    operation(
        "SelfAttentionGuidance", "run_self_attention_guidance",
        (Param.float("scale", 0.5, min=-2.0, max=5.0, step=0.01,
                     description="how far each step moves away from the prediction on the blurred latent "
                                 "(0: off)"),
         Param.float("blur_sigma", 2.0, min=0.0, max=10.0, step=0.1,
                     description="the Gaussian blur's sigma in latent pixels (9-tap kernel)")),
        "Self-attention guidance (Hong et al. 2022, as diffusers' StableDiffusionSAGPipeline): where the "
        "mid block's self-attention looks, blur the predicted image, and steer away from what the UNet makes "
        "of that; often cleaner structure, one more UNet call per step. UNet models, one plain prompt per side.",
        "Self-Attention Guidance", category="advanced/model", module="sag", port=MODEL,
        gives="the same model, sampled with self-attention guidance"),
    operation(
        "PerturbedAttentionGuidance", "run_perturbed_attention_guidance",
        (Param.float("scale", 3.0, min=0.0, max=100.0, step=0.01,
                     description="how far each step moves away from the prediction with perturbed self-attention "
                                 "(0: off)"),
         Param.float("adaptive_scale", 0.0, min=0.0, max=1.0, step=0.001,
                     description="lowers the scale at high noise: scale x (1 - adaptive^4 x (1000 - t)), not "
                                 "below 0 (0: the same scale at every step)")),
        "Perturbed-attention guidance (Ahn et al. 2024; ComfyUI's PerturbedAttentionGuidance): each step the "
        "UNet also predicts the positive prompt with its middle block's self-attention made the identity, and "
        "the guided prediction moves away from that; often cleaner structure, one more UNet call per step. UNet "
        "models, one plain prompt per side.",
        "Perturbed-Attention Guidance", category="advanced/model", module="pag", port=MODEL,
        gives="the same model, sampled with perturbed-attention guidance"),
    operation(
        "CADS", "run_cads",
        (Param.float("noise_scale", 0.25, min=-5.0, max=5.0, step=0.01,
                     description="how much noise the conditioning gets at high noise (0: off)"),
         Param.float("t1", 0.6, min=0.0, max=1.0, step=0.01,
                     description="below this point of sampling (1: pure noise, 0: clean) the prompt is left as it is"),
         Param.float("t2", 0.9, min=0.0, max=1.0, step=0.01,
                     description="above this point the prompt gets the full noise; between t1 and t2 it fades"),
         Param.float("rescale", 0.0, min=0.0, max=1.0, step=0.01,
                     description="how much of the noised prompt is standardised back to the prompt's mean and std "
                                 "(0: none)"),
         Param.choice("apply_to", ("both", "cond", "uncond"), default="both",
                      description="which prompts get noise: the positive (cond), the negative (uncond) or both"),
         Param.choice("key", ("y", "c_crossattn", "both"), default="y",
                      description="what is noised: y (SDXL's pooled prompt and size vector; SD 1.x has none), "
                                  "c_crossattn (the prompt's token embeddings) or both"),
         Param.choice("noise_type", ("normal", "uniform", "exponential"), default="normal",
                      description="the distribution of the added noise"),
         Param.int("seed", 0, min=0, max=2 ** 32, role=ParamRole.SEED,
                   description="the noise's seed (drawn afresh at each step from it, per run)")),
        "Condition-annealed sampling (Sadat et al. 2023, as asagi4's ComfyUI-CADS): noise the conditioning "
        "early in sampling and fade it out between t2 and t1, for more varied images from one prompt. UNet models; "
        "the input model is not changed.",
        "CADS", category="advanced/model", module="cads", port=MODEL,
        gives="the same model, its conditioning noised early in sampling"),
]

OPERATION_NODES: list[NodeSpec] = LATENT_NODES + MASK_NODES + IMAGE_NODES + CONDITIONING_NODES + MODEL_NODES
