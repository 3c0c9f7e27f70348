"""Declarations of the edit-model nodes (torch-free; run functions in nodes/edit_model.py,
nodes/cfg_norm.py and nodes/lanpaint.py, imported when a node first runs): reference latents for edit
models (FLUX.1 Kontext), how several are placed, Kontext's image sizes, CFGNorm, and LanPaint's
inpainting sampler."""
from __future__ import annotations

from typing import Any

from nodeforge.core.spec import Input, NodeSpec, Output, Param
from nodeforge.core.types import InputRole, ParamRole, PortType

from .declare import lazy

COND, LATENT, IMAGE, MODEL = (PortType.CONDITIONING.value, PortType.LATENT.value, PortType.IMAGE.value,
                              PortType.MODEL.value)
VAE, MASK = PortType.VAE.value, PortType.MASK.value

# The `family` of the models whose guidance step applies CFGNorm (nodes/cfg_norm.py).
APPLIES_CFG_NORM = {"flux": "Flux", "sd3": "SD3/SD3.5", "qwenimage": "Qwen-Image"}


def cfg_norm_refusal(family: str | None, model: str = "the model") -> str | None:
    """Why CFGNorm cannot patch a model of `family` (None: it can): one wording for validate and the run."""
    if family is None or family in APPLIES_CFG_NORM:
        return None
    which = ", ".join(APPLIES_CFG_NORM.values())
    return (f"{model} is a {family} model; CFGNorm is applied by the guidance of {which} models here: remove the "
            "node (RescaleCFG tames high CFG on UNet models)")


def _cfg_norm_checks(facts: dict[str, dict[str, Any]], **_: Any) -> list[str]:
    model = facts.get("unet", {})
    if model.get("family") in APPLIES_CFG_NORM:
        return []
    family = model.get("model_family") or ("UNet (SD 1.x/2.x/XL)" if model.get("family") == "unet"
                                           else model.get("family"))
    refusal = cfg_norm_refusal(family)
    return [f"unet: {refusal}"] if refusal else []


_METHODS = ("offset", "index", "uxo/uno", "index_timestep_zero")   # nodes/edit_model.py REFERENCE_METHODS

EDIT_NODES: list[NodeSpec] = [
    NodeSpec(
        "ReferenceLatent", "advanced/conditioning", lazy("edit_model", "run_reference_latent"),
        inputs=(Input("conditioning", COND, description="the prompt of an edit model (both sides usually)"),
                Input("latent", LATENT, optional=True,
                      description="the image to edit or refer to, VAE-encoded; unlinked: the prompt as it was")),
        outputs=(Output("conditioning", COND, description="the prompt with this reference latent appended"),),
        description="Give an edit model (FLUX.1 Kontext) an image to work from: the latent is appended to the "
                    "prompt's reference latents (chain several for several images), and the model sees their tokens "
                    "beside the ones it draws (ComfyUI's ReferenceLatent; diffusers' FluxKontextPipeline image).",
        display_name="Reference Latent"),
    NodeSpec(
        "ReferenceLatentMethod", "advanced/conditioning", lazy("edit_model", "run_reference_latents_method"),
        inputs=(Input("conditioning", COND, description="a prompt with reference latents"),),
        params=(Param.choice("reference_latents_method", list(_METHODS), default="offset",
                             description="offset (Kontext's): one frame, references side by side; index: frame 1, "
                                         "2, 3 ... per reference; uxo/uno: frame 0, diagonally past the image; "
                                         "index_timestep_zero: as index, for Qwen-Image-Edit 2511 and Flux 2 (not "
                                         "FLUX.1)"),),
        outputs=(Output("conditioning", COND, description="the prompt with this placement of its references"),),
        description="How several reference latents are placed in the edit model's positions (ComfyUI's "
                    "FluxKontextMultiReferenceLatentMethod).",
        display_name="Reference Latent Method"),
    NodeSpec(
        "FluxKontextImageScale", "image", lazy("edit_model", "run_kontext_image_scale"),
        inputs=(Input("image", IMAGE, description="the image to edit"),),
        outputs=(Output("image", IMAGE, description="the image at the Kontext size nearest its aspect ratio"),),
        description="Scale an image to the one of FLUX.1 Kontext's preferred sizes (672x1568 ... 1024x1024 ... "
                    "1568x672, about one megapixel) whose aspect ratio is nearest its own: centre-cropped to that "
                    "aspect, Lanczos (ComfyUI's FluxKontextImageScale, FluxKontextPipeline's auto-resize).",
        display_name="Flux Kontext Image Scale"),
    NodeSpec(
        "CFGNorm", "advanced/model", lazy("cfg_norm", "run_cfg_norm"),
        inputs=(Input("unet", MODEL, description="a Flux, SD3 or Qwen-Image model (left unchanged)"),),
        params=(Param.float("strength", 1.0, min=0.0, max=100.0, step=0.01,
                            description="multiplies the capped prediction (1: only capped; 0 draws nothing)"),),
        outputs=(Output("unet", MODEL, description="the model with its guided prediction normalised"),),
        check_inputs=_cfg_norm_checks,
        description="CFG normalisation (ComfyUI's CFGNorm): after guidance, each pixel's clean-image prediction "
                    "is scaled down so its norm over the latent channels is no larger than the positive prompt's "
                    "prediction's, then multiplied by the strength; it keeps strong guidance from over-saturating. "
                    "The input model is not changed.",
        display_name="CFG Norm"),
]


def _lanpaint_sampler() -> NodeSpec:
    # UNetDenoise's sampling params and checks, declared once in nodes/__init__.py (imported before this module).
    from . import SEED_MAX, _check_model_sampler, _check_sampler
    from .schedulers import SAMPLERS, SCHEDULES

    return NodeSpec(
        "LanPaintSampler", "sampling", lazy("lanpaint", "run_lanpaint_ksampler"),
        inputs=(Input("unet", MODEL, description="the denoising model (any family; UNet models with an Euler-type "
                                                 "sampler)"),
                Input("positive", COND, role=InputRole.POSITIVE, description="what the repainted area should show"),
                Input("negative", COND, role=InputRole.NEGATIVE, description="what to steer away from"),
                Input("latent", LATENT, description="the image to inpaint, encoded, with its mask (1: repaint)")),
        params=(Param.int("seed", 0, min=0, max=SEED_MAX, role=ParamRole.SEED,
                          description="the noise's seed (and the Langevin iterations')"),
                Param.int("steps", 30, min=1, max=1000, role=ParamRole.STEPS, description="sampling steps"),
                Param.float("cfg", 5.0, min=0.0, max=100.0, step=0.1, role=ParamRole.CFG,
                            description="classifier-free guidance, as UNetDenoise's"),
                Param.choice("sampler", tuple(SAMPLERS), default="euler", role=ParamRole.SAMPLER,
                             description="the stepping method (LanPaint recommends euler)"),
                Param.choice("schedule", tuple(SCHEDULES), default="default", role=ParamRole.SCHEDULE,
                             description="where the steps fall on the noise levels"),
                Param.float("denoise", 1.0, min=0.0, max=1.0, step=0.01, role=ParamRole.DENOISE,
                            description="how much to repaint, as UNetDenoise's"),
                Param.int("lanpaint_steps", 5, min=0, max=100,
                          description="Langevin iterations before each step's model call at full noise (fewer as "
                                      "the noise falls, none at the last step; 0: plain inpainting); each costs a "
                                      "model call"),
                Param.choice("prompt_mode", ("Image First", "Prompt First"), default="Image First",
                             description="Image First: the known area is matched with the step's guidance (image "
                                         "quality); Prompt First: with guidance -0.5 (follows the prompt more); Flux "
                                         "models use their prompt alone"),
                Param.float("lanpaint_lambda", 5.0, min=0.1, max=50.0, step=0.1,
                            description="how strongly the known area is pulled to the image (higher: closer, but "
                                        "may be unstable)"),
                Param.float("lanpaint_step_size", 0.2, min=0.0001, max=1.0, step=0.01,
                            description="each Langevin iteration's time step (higher: faster, may be unstable)"),
                Param.int("start_at_step", 0, min=0, max=10000,
                          description="first step of the schedule to run (a later stage)"),
                Param.int("end_at_step", 10000, min=0, max=10000, description="step to stop at"),
                Param.bool("add_noise", True, description="off: take the latent as it is (an earlier stage's noise)"),
                Param.bool("return_with_leftover_noise", False,
                           description="on: stop at end_at_step without denoising fully, for a next stage")),
        outputs=(Output("latent", LATENT, description="the inpainted latent"),),
        validate=_check_sampler, check_inputs=_check_model_sampler,
        description="Inpaint with LanPaint (scraed/LanPaint's LanPaint_KSampler and LanPaint_KSamplerAdvanced): before each step the latent "
                    "follows a few Langevin iterations that pull the known area to the image and the masked area to "
                    "what the model makes of it, so the two agree; works with any model, no inpainting model needed.",
        display_name="LanPaint Sampler")


def _lanpaint_image_nodes() -> list[NodeSpec]:
    return [
        NodeSpec(
            "LanPaintImageEncode", "latent", lazy("lanpaint_images", "run_lanpaint_image_encode"),
            inputs=(Input("vae", VAE, description="the model's VAE"),
                    Input("image", IMAGE, description="the image to inpaint"),
                    Input("mask", MASK, optional=True, description="where to repaint (1); unlinked: a plain encode")),
            outputs=(Output("latent", LATENT, description="the encoded image with its mask, for LanPaint Sampler"),),
            description="Encode an image and attach its inpainting mask, resized to the latent by nearest-exact "
                        "(scraed/LanPaint's LanPaint_ImageEncode: VAEEncode + SetLatentMask in one).",
            display_name="LanPaint Image Encode"),
        NodeSpec(
            "LanPaintImageDecode", "latent", lazy("lanpaint_images", "run_lanpaint_image_decode"),
            inputs=(Input("vae", VAE, description="the model's VAE"),
                    Input("latent", LATENT, description="the inpainted latent"),
                    Input("image", IMAGE, optional=True,
                          description="the original image: the decoded one is resized to its size"),
                    Input("mask", MASK, optional=True,
                          description="with the image: the decoded pixels replace the original's inside it (1)")),
            params=(Param.int("blend_overlap", 9, min=1, max=51, step=2,
                              description="pixels over which the mask's edge is widened and blurred into the "
                                          "original (odd; 1: a hard edge)"),),
            outputs=(Output("image", IMAGE, description="the decoded image, blended into the original"),),
            description="Decode an inpainted latent and paste it into the original inside the mask with a soft "
                        "edge (scraed/LanPaint's LanPaint_ImageDecode: VAEDecode + resize + LanPaint_MaskBlend).",
            display_name="LanPaint Image Decode"),
        NodeSpec(
            "LanPaintMaskBlend", "image", lazy("lanpaint_images", "run_lanpaint_mask_blend"),
            inputs=(Input("image1", IMAGE, description="the image before inpainting (kept outside the mask)"),
                    Input("image2", IMAGE, description="the image after inpainting (taken inside the mask)"),
                    Input("mask", MASK, description="where image2 is taken (1), the images' size")),
            params=(Param.int("blend_overlap", 1, min=1, max=51, step=2,
                              description="pixels over which the mask's edge is widened and blurred (odd; 1: a hard "
                                          "edge)"),),
            outputs=(Output("image", IMAGE, description="the blended images"),),
            description="Paste the inpainted image into the original inside the mask with a soft edge "
                        "(scraed/LanPaint's LanPaint_MaskBlend).",
            display_name="LanPaint Mask Blend")]


def _lanpaint_sampler_custom() -> NodeSpec:
    return NodeSpec(
            "LanPaintSamplerCustomAdvanced", "sampling", lazy("lanpaint", "run_lanpaint_sampler_custom_advanced"),
            inputs=(Input("noise", PortType.NOISE.value, description="the noise to start from (Random Noise)"),
                    Input("guider", PortType.GUIDER.value, description="how the prompts steer (CFG Guider, Basic "
                                                                       "Guider)"),
                    Input("sampler", PortType.SAMPLER.value, description="the stepping method (Sampler Select)"),
                    Input("sigmas", PortType.SIGMAS.value, description="the noise levels to step through"),
                    Input("latent", LATENT, description="the image to inpaint, encoded, with its mask (1: repaint)")),
            params=(Param.int("lanpaint_steps", 5, min=0, max=100,
                              description="Langevin iterations before each step's model call at full noise"),
                    Param.float("lanpaint_lambda", 5.0, min=0.1, max=50.0, step=0.1,
                                description="how strongly the known area is pulled to the image"),
                    Param.float("lanpaint_step_size", 0.2, min=0.0001, max=1.0, step=0.01,
                                description="each Langevin iteration's time step"),
                    Param.choice("prompt_mode", ("Image First", "Prompt First"), default="Image First",
                                 description="Image First: the known area matched at the guider's cfg; Prompt First: "
                                             "at -0.5")),
            outputs=(Output("output", LATENT, description="the latent at the last sigma"),
                     Output("denoised_output", LATENT, description="the clean latent the model predicted at the last "
                                                                  "step")),
            description="Sampler Custom (Advanced) with LanPaint's inpainting iterations (scraed/LanPaint's "
                        "LanPaint_SamplerCustomAdvanced).",
            display_name="LanPaint Sampler Custom (Advanced)")


EDIT_NODES += [_lanpaint_sampler(), *_lanpaint_image_nodes(), _lanpaint_sampler_custom()]
