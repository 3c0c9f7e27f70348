"""The node types the model families add (torch-free declarations; run functions in
nodes/families/sd3_nodes.py and flux_nodes.py, imported when a node first runs)."""
from __future__ import annotations

from typing import Any

from nodeforge.core.spec import Input, NodeSpec, Output, Param
from nodeforge.core.types import FileKind, ParamRole, PortType

from ..declare import lazy
from ..declare import model_names as _names

MODEL, CLIP, COND = PortType.MODEL.value, PortType.CLIP.value, PortType.CONDITIONING.value
_GUIDANCE = ("distilled guidance Flux dev reads (FluxPipeline's guidance_scale; 3.5 by default); schnell "
             "ignores it. Not CFG: UNetDenoise's cfg above 1 runs the negative prompt too")


def _changed(ctx: Any, clip_l: str, clip_g: str, t5xxl: str) -> Any:
    from ..embeddings import referenced_files

    return (referenced_files(ctx, clip_l), referenced_files(ctx, clip_g))


def _encoder_names() -> list[str]:
    from nodeforge.core.models import ModelPaths

    return ModelPaths.default().names(FileKind.TEXT_ENCODER)


def _encoder_file(name: str, default: str, what: str) -> Param:
    return Param.choice(name, _encoder_names, default=default, file=FileKind.TEXT_ENCODER,
                        description=f"the {what} file in text_encoders/ (transformers layout; a <name>.config/ folder "
                                    "beside it for other shapes)")


def _diffusion_model_facts(files: dict[str, Any], **_: Any) -> dict[str, dict[str, Any]]:
    from .probe import model_facts     # torch-free: the family from the file's header

    return {"unet": model_facts(files["model"]) if "model" in files else {}}


# ModelSamplingSD3's one fixed shift is not how Flux samples (dev's shift follows the image size).
FLUX_SHIFT = ("is a Flux model, whose shift ModelSamplingSD3 does not set (Flux dev's follows the image size); "
              "use ModelSamplingFlux (max_shift, base_shift, width, height) instead")


def _needs_flow_model(facts: dict[str, dict[str, Any]], **_: Any) -> list[str]:
    model = facts.get("unet", {})
    if model.get("flow") is False:
        return [f"unet: comes from a {model.get('family')} checkpoint, which is not a flow model; ModelSamplingSD3 "
                "applies to SD3/SD3.5 models (remove it, or pick an SD3 checkpoint)"]
    if model.get("family") == "flux":
        return [f"unet: {FLUX_SHIFT}"]
    return []


def _needs_sd3_model(facts: dict[str, dict[str, Any]], **_: Any) -> list[str]:
    family = facts.get("unet", {}).get("family")
    if family is not None and family != "sd3":
        what = "a UNet (SD 1.x/2.x/XL)" if family == "unet" else f"a {family}"
        return [f"unet: the model is {what} one; SkipLayerGuidanceSD3 skips blocks of an SD3/SD3.5 transformer "
                "(remove it, or pick an SD3 checkpoint)"]
    return []


def single_encoder_refusal(type: str) -> str:
    """Why one text encoder file of this ComfyUI type is not loaded, and what loads it."""
    fixes = {"sd3": "SD3 takes CLIP-L, CLIP-G and T5-XXL: load them with TextEncoderLoaderSD3 (ComfyUI's "
                    "TripleCLIPLoader)",
             "flux": "Flux takes CLIP-L and T5-XXL: load both with DualTextEncoderLoader (ComfyUI's DualCLIPLoader)"}
    return (f"type {type!r}: " + fixes.get(type, "one text encoder file loads for stable_diffusion (an SD 1.x "
                                                 "CLIP-L), lumina2 (Z-Image's Qwen3-4B) and qwen_image (Qwen-Image's "
                                                 "Qwen2.5-VL) only; for other models "
                                                 "load their checkpoint"))


def _single_encoder_type(type: str, **_: Any) -> list[str]:
    if type in ("stable_diffusion", "lumina2", "z_image", "qwen_image"):
        return []
    return [f"type: {single_encoder_refusal(type)}"]


def _changed_flux(ctx: Any, clip_l: str, t5xxl: str, guidance: float) -> Any:
    from ..embeddings import referenced_files

    return referenced_files(ctx, clip_l)


def timestep_noise_refusals(mode: str, family: str | None, model: str = "the model") -> list[tuple[str, str]]:
    """(field, message) for each reason Timestep Noise cannot run: the one wording validate
    (before the run, the family from the file's header or config) and the node's run (`model`: its name) give."""
    problems = [] if mode == "flow" else [("mode", f"{mode!r} (for UNet models) is not supported; flow is, for "
                                                   "Z-Image models")]
    if family is not None and family != "zimage":
        problems.append(("unet", f"{model} is a {family} model; Timestep Noise is for Z-Image models here: remove "
                                 "the node, or load a Z-Image model"))
    return problems


def _timestep_noise_checks(facts: dict[str, dict[str, Any]], mode: str = "flow", **_: Any) -> list[str]:
    model = facts.get("unet", {})
    # The loaded model's own family (sd1, sdxl...) as the run names it; a UNet file that does not tell: SD 1.x/2.x/XL.
    family = model.get("model_family") or ("UNet (SD 1.x/2.x/XL)" if model.get("family") == "unet"
                                           else model.get("family"))
    return [f"{field}: {message}" for field, message in timestep_noise_refusals(mode, family)]


def _nag_checks(facts: dict[str, dict[str, Any]], **_: Any) -> list[str]:
    from .nag import nag_refusal

    model = facts.get("unet", {})
    family = model.get("model_family") or ("UNet (SD 1.x/2.x/XL)" if model.get("family") == "unet"
                                           else model.get("family"))
    refusal = nag_refusal(family)
    return [f"unet: {refusal}"] if refusal else []


FAMILY_NODES: list[NodeSpec] = [
    NodeSpec(
        "TextEncoderSD3", "conditioning", lazy("families.sd3_nodes", "run_text_encoder_sd3"),
        inputs=(Input("clip", CLIP, description="the SD3 text encoders from Load Checkpoint"),),
        params=(Param.string("clip_l", "", multiline=True, role=ParamRole.PROMPT,
                             description="prompt for CLIP-L (its pooled vector is half of the pooled prompt)"),
                Param.string("clip_g", "", multiline=True, description="prompt for CLIP-G (often the same text)"),
                Param.string("t5xxl", "", multiline=True,
                             description="prompt for T5-XXL (ignored by a model loaded without T5)")),
        outputs=(Output("conditioning", COND, description="the encoded prompt, for a sampler"),), is_changed=_changed,
        description="SD3 prompt with one text per encoder (ComfyUI's CLIPTextEncodeSD3); TextEncoder gives "
                    "all three the same text.",
        display_name="Text Encoder (SD3)"),
    NodeSpec(
        "TextEncoderLoaderSD3", "loaders", lazy("families.sd3_nodes", "run_text_encoder_loader_sd3"),
        params=(_encoder_file("clip_l", "clip_l.safetensors", "CLIP-L (OpenAI ViT-L/14 text encoder, 768 wide)"),
                _encoder_file("clip_g", "clip_g.safetensors", "CLIP-G (OpenCLIP bigG text encoder, 1280 wide)"),
                _encoder_file("t5xxl", "t5xxl_fp16.safetensors", "T5-XXL encoder (t5xxl_fp16 or _fp8)")),
        outputs=(Output("clip", CLIP, description="the SD3 text encoders, for TextEncoder or TextEncoderSD3"),),
        facts=lambda files, **_: {"clip": {"family": "sd3"}},
        description="Load SD3's three text encoders from separate files (ComfyUI's TripleCLIPLoader), for a "
                    "checkpoint that holds only the transformer and the VAE.",
        display_name="Load Text Encoders (SD3)"),
    NodeSpec(
        "ModelSamplingSD3", "advanced/model", lazy("families.sd3_nodes", "run_model_sampling_sd3"),
        inputs=(Input("unet", MODEL, description="the flow model to shift"),),
        params=(Param.float("shift", 3.0, min=0.0, max=100.0, step=0.01,
                            description="sigma shift: higher spends more steps at high noise (SD3: 3.0)"),),
        outputs=(Output("unet", MODEL,
                        description="the same model sampling with the new shift"),), check_inputs=_needs_flow_model,
        description="Set a flow model's sigma shift (sigma' = shift s / (1 + (shift - 1) s)) without changing "
                    "the input model.",
        display_name="Model Sampling (SD3)"),
    NodeSpec(
        "ModelSamplingDiscrete", "advanced/model", lazy("families.unet", "run_model_sampling_discrete"),
        inputs=(Input("unet", MODEL, description="an SD 1.x/2.x/XL model (left unchanged)"),),
        params=(Param.choice("sampling", ("eps", "v_prediction", "lcm", "x0", "img_to_img"), default="eps",
                             description="what the model predicts: eps (noise) or v_prediction (lcm, x0 and "
                                         "img_to_img are not supported yet)"),
                Param.bool("zsnr", False, description="the noise schedule rescaled to zero terminal SNR, for "
                                                      "models trained so (some v-prediction SDXL finetunes)")),
        outputs=(Output("unet", MODEL, description="the same model sampled as set here"),),
        description="Say what a UNet model predicts (noise or v) and whether it was trained with zero terminal "
                    "SNR, for a checkpoint whose file does not say it.",
        display_name="Model Sampling (Discrete)"),
    NodeSpec(
        "ModelSamplingContinuousEDM", "advanced/model", lazy("edm_sampling", "run_model_sampling_continuous_edm"),
        inputs=(Input("unet", MODEL, description="an SD 1.x/2.x/XL model trained as a continuous EDM model, as "
                                                 "CosXL (left unchanged)"),),
        params=(Param.choice("sampling", ("v_prediction", "edm", "edm_playground_v2.5", "eps", "cosmos_rflow"),
                             default="v_prediction",
                             description="what the model predicts: v_prediction (CosXL) or edm (EDM's own "
                                         "preconditioning); edm_playground_v2.5, eps and cosmos_rflow are not "
                                         "supported yet"),
                Param.float("sigma_max", 120.0, min=0.0, max=1000.0, step=0.001,
                            description="the highest noise level the model was trained at (CosXL: 120)"),
                Param.float("sigma_min", 0.002, min=0.0, max=1000.0, step=0.001,
                            description="the lowest noise level the model was trained at (CosXL: 0.002)")),
        outputs=(Output("unet", MODEL, description="the same model sampled as a continuous EDM model (euler, "
                                                   "dpmpp_2m or dpmpp_2m_sde; karras or exponential sigmas)"),),
        description="Sample a UNet model as a continuous-noise EDM model (its timestep 0.25 ln sigma, its input "
                    "and output scaled by sigma), for CosXL and other EDM finetunes whose file does not say it.",
        display_name="Model Sampling (Continuous EDM)"),
    NodeSpec(
        "SkipLayerGuidanceSD3", "advanced/guidance", lazy("families.skip_layers", "run_skip_layer_guidance_sd3"),
        inputs=(Input("unet", MODEL, description="an SD3/SD3.5 model (left unchanged)"),),
        params=(Param.string("layers", "7, 8, 9",
                             description="the transformer blocks to skip, by number (SD3.5 medium: 7, 8, 9)"),
                Param.float("scale", 3.0, min=0.0, max=10.0, step=0.1,
                            description="how far the guided velocity moves away from the skipped-blocks one "
                                        "(0: off)"),
                Param.float("start_percent", 0.01, min=0.0, max=1.0, step=0.001,
                            description="where in sampling it starts (0: the first step, at sigma 1)"),
                Param.float("end_percent", 0.15, min=0.0, max=1.0, step=0.001,
                            description="where in sampling it stops (1: the last step)")),
        outputs=(Output("unet", MODEL, description="the model with skip-layer guidance, for a sampler"),),
        check_inputs=_needs_sd3_model,
        description="Skip-layer guidance for SD3/SD3.5 (ComfyUI's SkipLayerGuidanceSD3, diffusers' "
                    "skip_guidance_layers): in the window, steer away from the positive prompt's prediction with "
                    "these blocks skipped, for cleaner structure; costs one more transformer call per step there.",
        display_name="Skip Layer Guidance (SD3)"),
    NodeSpec(
        "FluxGuidance", "advanced/conditioning", lazy("families.flux_nodes", "run_flux_guidance"),
        inputs=(Input("conditioning", COND, description="a Flux prompt (from TextEncoder or TextEncoderFlux)"),),
        params=(Param.float("guidance", 3.5, min=0.0, max=100.0, step=0.1, description=_GUIDANCE),),
        outputs=(Output("conditioning", COND, description="the same prompt with this guidance value"),),
        description="Set the guidance value of a Flux prompt (ComfyUI's FluxGuidance).",
        display_name="Flux Guidance"),
    NodeSpec(
        "TextEncoderFlux", "conditioning", lazy("families.flux_nodes", "run_text_encoder_flux"),
        inputs=(Input("clip", CLIP, description="a Flux model's text encoders (CLIP-L and T5-XXL)"),),
        params=(Param.string("clip_l", "", multiline=True,
                             description="prompt for CLIP-L (only its pooled vector is used)"),
                Param.string("t5xxl", "", multiline=True, role=ParamRole.PROMPT,
                             description="prompt for T5-XXL (the prompt the image follows)"),
                Param.float("guidance", 3.5, min=0.0, max=100.0, step=0.1, description=_GUIDANCE)),
        outputs=(Output("conditioning", COND, description="the encoded Flux prompt"),), is_changed=_changed_flux,
        description="Flux prompt with one text per encoder and its guidance (ComfyUI's CLIPTextEncodeFlux); "
                    "TextEncoder gives both the same text and guidance 3.5.",
        display_name="Text Encoder (Flux)"),
    NodeSpec(
        "ModelSamplingFlux", "advanced/model", lazy("families.flux_nodes", "run_model_sampling_flux"),
        inputs=(Input("unet", MODEL, description="a Flux model (left unchanged)"),),
        params=(Param.float("max_shift", 1.15, min=0.0, max=100.0, step=0.01,
                            description="mu at 4096 packed latent tokens (1024x1024)"),
                Param.float("base_shift", 0.5, min=0.0, max=100.0, step=0.01,
                            description="mu at 256 packed latent tokens (256x256)"),
                Param.int("width", 1024, min=16, max=16384, step=8,
                          description="the image width the shift is computed for"),
                Param.int("height", 1024, min=16, max=16384, step=8,
                          description="the image height the shift is computed for")),
        outputs=(Output("unet", MODEL, description="the model with this shift"),),
        description="Fix a Flux model's resolution-dependent sigma shift to the one for width x height, "
                    "between base_shift and max_shift (without it, the shift follows the latent's size).",
        display_name="Model Sampling (Flux)"),
    NodeSpec(
        "DiffusionModelLoader", "loaders", lazy("families.separate", "run_diffusion_model_loader"),
        params=(Param.choice("model", _names(FileKind.DIFFUSION_MODEL), default="", file=FileKind.DIFFUSION_MODEL,
                             description="a Flux transformer alone (flux1-dev.safetensors, an fp8 or GGUF file), "
                                         "an SD3/SD3.5 one, a Z-Image one (z_image_turbo_bf16.safetensors) or a "
                                         "Qwen-Image one (qwen_image_fp8_e4m3fn, qwen_image_edit_2509), from "
                                         "the diffusion_models folder"),),
        outputs=(Output("unet", MODEL, description="the transformer, for UNet Denoise and LoRAs"),),
        facts=_diffusion_model_facts,
        description="Load a diffusion model kept apart from its text encoders and VAE (ComfyUI's UNETLoader); "
                    "pair it with Dual Text Encoder Loader (Flux), Load Text Encoders (SD3) or Load Text Encoder (Z-Image, type "
                    "lumina2; Qwen-Image, type qwen_image) and Load VAE.",
        display_name="Load Diffusion Model"),
    NodeSpec(
        "DualTextEncoderLoader", "loaders", lazy("families.separate", "run_dual_text_encoder_loader"),
        params=(Param.choice("text_encoder_1", _names(FileKind.TEXT_ENCODER), default="", file=FileKind.TEXT_ENCODER,
                             description="CLIP-L (clip_l.safetensors) or T5-XXL, from the text_encoders folder"),
                Param.choice("text_encoder_2", _names(FileKind.TEXT_ENCODER), default="", file=FileKind.TEXT_ENCODER,
                             description="the other one (t5xxl_fp16 / t5xxl_fp8_e4m3fn.safetensors)"),
                Param.choice("family", ["flux"], default="flux", description="the model family they encode for")),
        outputs=(Output("clip", CLIP, description="the text encoders, for Text Encoder"),),
        description="Load two text encoders kept as separate files (ComfyUI's DualCLIPLoader with type flux); "
                    "either order.",
        display_name="Load Dual Text Encoders"),
    NodeSpec(
        "TextEncoderLoader", "loaders", lazy("families.separate", "run_text_encoder_loader"),
        params=(Param.choice("text_encoder", _names(FileKind.TEXT_ENCODER), default="", file=FileKind.TEXT_ENCODER,
                             description="a CLIP-L text encoder (clip_l.safetensors), Z-Image's Qwen3-4B "
                                         "(qwen_3_4b.safetensors) or Qwen-Image's Qwen2.5-VL-7B "
                                         "(qwen_2.5_vl_7b_fp8_scaled.safetensors) from the text_encoders folder"),
                Param.string("type", "stable_diffusion",
                             description="the model it encodes for, as ComfyUI's CLIPLoader says it: "
                                         "stable_diffusion (SD 1.x), lumina2 (Z-Image) or qwen_image (Qwen-Image)")),
        outputs=(Output("clip", CLIP, description="the text encoder, for Text Encoder"),),
        validate=_single_encoder_type,
        description="Load one text encoder kept as its own file (ComfyUI's CLIPLoader), e.g. another CLIP-L "
                    "for an SD 1.x checkpoint, Z-Image's Qwen3-4B or Qwen-Image's Qwen2.5-VL; SD3 and Flux take several (Load Text Encoders (SD3), Load Dual "
                    "Text Encoders).",
        display_name="Load Text Encoder"),
    NodeSpec(
        "TimestepNoise", "advanced/model", lazy("families.timestep_noise", "run_timestep_noise"),
        inputs=(Input("unet", MODEL, description="a Z-Image model (left unchanged)"),
                Input("sigmas", PortType.SIGMAS.value,
                      description="the sigmas the sampler steps through: where each step is in them gives its "
                                  "progress for the window"),
                Input("mask", PortType.MASK.value, optional=True,
                      description="where the noise applies (1), bilinear to the latent; unconnected: everywhere")),
        params=(Param.choice("mode", ("flow", "sigma"), default="flow",
                             description="flow: the noise level moves up or down by up to noise_strength, within "
                                         "0..1 (sigma, the pack's mode for UNet models, is not supported)"),
                Param.float("noise_strength", 0.05, min=0.0, max=2.0, step=0.01,
                            description="the largest move of the noise level the model is told (0: off)"),
                Param.int("seed", 0, min=0, max=2 ** 64 - 1, role=ParamRole.SEED,
                          description="seeds the moves (call n of a run draws with seed + n)"),
                Param.float("start_percent", 0.0, min=0.0, max=1.0, step=0.01,
                            description="where in the sigmas the noise starts (0: the first step)"),
                Param.float("end_percent", 0.5, min=0.0, max=1.0, step=0.01,
                            description="where it stops (1: the last step)")),
        outputs=(Output("unet", MODEL, description="the model told slightly wrong noise levels in the window"),),
        check_inputs=_timestep_noise_checks,
        description="Tell a Z-Image model a slightly wrong noise level in part of the sampling, so that different "
                    "seeds give more different images (LG_SamplingUtils' ZImageTimestepNoise, flow mode).",
        display_name="Timestep Noise"),
]

FAMILY_NODES += [
    NodeSpec(
        "NormalizedAttentionGuidance", "advanced/guidance", lazy("families.nag", "run_normalized_attention_guidance"),
        inputs=(Input("unet", MODEL, description="a Z-Image model (left unchanged)"),),
        params=(Param.float("nag_scale", 5.0, min=0.0, max=50.0, step=0.1,
                            description="how far the attention is pushed from the negative prompt's (1: not at all)"),
                Param.float("nag_alpha", 0.5, min=0.0, max=1.0, step=0.01,
                            description="how much of the guided attention replaces the plain one (0: none, 1: all)"),
                Param.float("nag_tau", 1.5, min=1.0, max=10.0, step=0.01,
                            description="the guided attention's L1 norm is held to tau x the plain one's")),
        outputs=(Output("unet", MODEL, description="the model guided away from the negative prompt in its attention"),),
        check_inputs=_nag_checks,
        description="Normalized Attention Guidance (ComfyUI's NAGuidance): the negative prompt steers the image "
                    "tokens' attention in every call, so it works at cfg 1 (distilled models such as "
                    "Z-Image-Turbo); Z-Image models.",
        display_name="Normalized Attention Guidance"),
]

# Z-Image's Fun ControlNet Union as ComfyUI's model patch (nodes/families/zimage_control.py).
MODEL_PATCH, VAE, IMAGE, MASK = (PortType.MODEL_PATCH.value, PortType.VAE.value, PortType.IMAGE.value,
                                 PortType.MASK.value)

def fun_controlnet_refusal(family: str | None, model: str = "the model") -> str | None:
    """Why a Fun ControlNet cannot steer a model of `family`: the one wording validate (the family from the
    file's header or config) and the node's run give."""
    if family is None or family == "zimage":
        return None
    return (f"{model} is a {family} model; the Z-Image Fun ControlNet steers Z-Image models: link a Z-Image "
            "model (DiffusionModelLoader or a ZImagePipeline folder)")


def _fun_controlnet_checks(facts: dict[str, dict[str, Any]], **_: Any) -> list[str]:
    model = facts.get("unet", {})
    family = model.get("model_family") or ("UNet (SD 1.x/2.x/XL)" if model.get("family") == "unet"
                                           else model.get("family"))
    refusal = fun_controlnet_refusal(family)
    return [f"unet: {refusal}"] if refusal else []


FAMILY_NODES += [
    NodeSpec(
        "ModelPatchLoader", "loaders", lazy("families.zimage_control", "run_model_patch_loader"),
        params=(Param.choice("model_patch", _names(FileKind.MODEL_PATCH), default="", file=FileKind.MODEL_PATCH,
                             description="a model patch from the model_patches folder: a Z-Image Fun ControlNet "
                                         "Union file (Z-Image-Turbo-Fun-Controlnet-Union-2.1.safetensors, 2.0, 1.0)"),),
        outputs=(Output("model_patch", MODEL_PATCH, description="the patch, for Apply Z-Image Fun ControlNet"),),
        description="Load a model patch (ComfyUI's ModelPatchLoader): alibaba-pai's Z-Image Fun ControlNet Union "
                    "(canny, depth, pose, HED, MLSD control images; 2.x also inpaints).",
        display_name="Load Model Patch"),
    NodeSpec(
        "ZImageFunControlNet", "conditioning", lazy("families.zimage_control", "run_zimage_fun_controlnet"),
        inputs=(Input("unet", MODEL, description="a Z-Image model (left unchanged; several patches stack)"),
                Input("model_patch", MODEL_PATCH, description="the Fun ControlNet from Load Model Patch"),
                Input("vae", VAE, description="the Z-Image VAE (the Flux VAE): it encodes the images"),
                Input("image", IMAGE, description="the control image (canny edges, depth, pose ...), scaled to "
                                                  "the image being made"),
                Input("mask", MASK, optional=True,
                      description="2.x only: the area to repaint (1), with inpaint_image"),
                Input("inpaint_image", IMAGE, optional=True,
                      description="2.x only: the image to inpaint, kept outside the mask")),
        params=(Param.float("strength", 1.0, min=-10.0, max=10.0, step=0.01,
                            description="how strongly the control image steers (diffusers' "
                                        "controlnet_conditioning_scale; 0: not at all)"),),
        outputs=(Output("unet", MODEL, description="the model steered by the control image"),),
        check_inputs=_fun_controlnet_checks,
        description="Steer a Z-Image model with a control image through alibaba-pai's Fun ControlNet Union "
                    "(ComfyUI's QwenImageDiffsynthControlnet; diffusers' ZImageControlNetPipeline); 2.x files "
                    "also inpaint with a mask and the image to inpaint.",
        display_name="Apply Z-Image Fun ControlNet"),
]

# Stable Cascade (nodes/families/cascade_nodes.py): both stages' latents, stage B's conditioning on stage C's
# result, stage C's image encoding and both stages' loader.
LATENT, CLIP_VISION = PortType.LATENT.value, PortType.CLIP_VISION.value
_COMPRESSION = Param.int("compression", 42, min=4, max=128, step=1,
                         description="image pixels per stage C latent pixel (42: 1024 px -> 24; lower spends more "
                                     "of stage C on detail)")
FAMILY_NODES += [
    NodeSpec(
        "EmptyLatentCascade", "latent", lazy("families.cascade_nodes", "run_empty_latent"),
        params=(Param.int("width", 1024, min=32, max=16384, step=8, description="image width in pixels"),
                Param.int("height", 1024, min=32, max=16384, step=8, description="image height in pixels"),
                _COMPRESSION,
                Param.int("batch_size", 1, min=1, max=4096, description="images at once")),
        outputs=(Output("stage_c", LATENT, description="zeros, 16 channels at size // compression: for the stage C "
                                                       "sampler"),
                 Output("stage_b", LATENT, description="zeros, 4 channels at size // 4: for the stage B sampler")),
        description="Empty latents for Stable Cascade's two stages (ComfyUI's StableCascade_EmptyLatentImage).",
        display_name="Empty Latent (Stable Cascade)"),
    NodeSpec(
        "StageBConditioning", "conditioning", lazy("families.cascade_nodes", "run_stage_b_conditioning"),
        inputs=(Input("conditioning", COND, description="the prompt for stage B"),
                Input("stage_c", LATENT, description="stage C's sampled latent")),
        outputs=(Output("conditioning", COND, description="the prompt carrying stage C's latent, for the stage B "
                                                          "sampler's positive"),),
        description="Give stage B what stage C drew (ComfyUI's StableCascade_StageB_Conditioning): stage B reads "
                    "the latent as its EfficientNet features; a prompt without it (the negative) reads zeros.",
        display_name="Stage B Conditioning (Stable Cascade)"),
    NodeSpec(
        "StageCVAEEncode", "latent", lazy("families.cascade_nodes", "run_stage_c_vae_encode"),
        inputs=(Input("image", IMAGE, description="the image to start from"),
                Input("vae", VAE, description="stage C's VAE (its EfficientNet encoder: the checkpoint loader's "
                                              "c_vae)")),
        params=(_COMPRESSION,),
        outputs=(Output("stage_c", LATENT, description="the image's stage C latent, for an image-to-image stage C "
                                                       "sampler (denoise below 1)"),
                 Output("stage_b", LATENT, description="zeros at the image's size // 4, for the stage B sampler")),
        description="Encode an image for Stable Cascade's stage C (ComfyUI's StableCascade_StageC_VAEEncode): "
                    "centre-cropped and resized to size // compression x 32, then encoded.",
        display_name="Stage C VAE Encode (Stable Cascade)"),
    NodeSpec(
        "ModelSamplingStableCascade", "advanced/model", lazy("families.cascade_nodes", "run_model_sampling"),
        inputs=(Input("unet", MODEL, description="a Stable Cascade stage B or C model (left unchanged)"),),
        params=(Param.float("shift", 2.0, min=0.0, max=100.0, step=0.01,
                            description="noise-level shift: the log-SNR moved by -2 ln(shift) (stage C loads with "
                                        "2, stage B with 1: the pipelines' unshifted schedule)"),),
        outputs=(Output("unet", MODEL, description="the same model sampling with this shift"),),
        description="Set a Stable Cascade model's noise-level shift (ComfyUI's ModelSamplingStableCascade).",
        display_name="Model Sampling (Stable Cascade)"),
    NodeSpec(
        "CascadeCheckpointLoader", "loaders", lazy("families.cascade_nodes", "run_checkpoint_loader"),
        params=(Param.choice("stage_b", _names(FileKind.CHECKPOINT), default="", file=FileKind.CHECKPOINT,
                             description="stage B: ComfyUI's stable_cascade_stage_b.safetensors (with stage A), a "
                                         "stage_b UNet file alone, or a StableCascadeDecoderPipeline folder"),
                Param.choice("stage_c", _names(FileKind.CHECKPOINT), default="", file=FileKind.CHECKPOINT,
                             description="stage C: ComfyUI's stable_cascade_stage_c.safetensors (with CLIP-G and the "
                                         "image encoder), a stage_c UNet file alone, or a StableCascadePriorPipeline "
                                         "folder")),
        outputs=(Output("b_model", MODEL, description="stage B, for the second sampler"),
                 Output("b_vae", VAE, description="stage A, which decodes stage B's latent"),
                 Output("c_model", MODEL, description="stage C, for the first sampler"),
                 Output("c_vae", VAE, description="stage C's image encoder, for Stage C VAE Encode"),
                 Output("c_clip_vision", CLIP_VISION, description="stage C's CLIP image encoder, for CLIP Vision "
                                                                  "Encode (image prompts)"),
                 Output("clip", CLIP, description="stage C's text encoder, for both stages' prompts")),
        facts=lambda files, **_: {"clip": {"family": "cascade"}},
        description="Load Stable Cascade's stage B and stage C together (Inspire pack's "
                    "StableCascade_CheckpointLoader).",
        display_name="Stable Cascade Checkpoint Loader"),
]

# Qwen-Image-Edit's prompt with pictures (nodes/families/qwenimage_nodes.py).
FAMILY_NODES += [
    NodeSpec(
        "TextEncodeQwenImageEdit", "advanced/conditioning",
        lazy("families.qwenimage_nodes", "run_text_encode_qwen_image_edit"),
        inputs=(Input("clip", CLIP, description="Qwen-Image's Qwen2.5-VL (TextEncoderLoader type qwen_image)"),
                Input("vae", VAE, optional=True,
                      description="Qwen-Image's VAE: with it the picture is also a reference latent"),
                Input("image", IMAGE, optional=True, description="the picture to edit")),
        params=(Param.string("prompt", "", multiline=True, role=ParamRole.PROMPT, description="the edit"),),
        outputs=(Output("conditioning", COND, description="the prompt with the picture, for a sampler"),),
        description="Prompt of the first Qwen-Image-Edit (ComfyUI's TextEncodeQwenImageEdit; diffusers' "
                    "QwenImageEditPipeline): the picture, scaled to about 1024x1024, is read by Qwen2.5-VL with the "
                    "text and, with a VAE, becomes a reference latent.",
        display_name="Text Encode Qwen Image Edit"),
    NodeSpec(
        "TextEncodeQwenImageEditPlus", "advanced/conditioning",
        lazy("families.qwenimage_nodes", "run_text_encode_qwen_image_edit_plus"),
        inputs=(Input("clip", CLIP, description="Qwen-Image's Qwen2.5-VL (TextEncoderLoader type qwen_image)"),
                Input("vae", VAE, optional=True,
                      description="Qwen-Image's VAE: with it each picture is also a reference latent"),
                *(Input(f"image{n}", IMAGE, optional=True, description=f"picture {n} the prompt refers to")
                  for n in (1, 2, 3))),
        params=(Param.string("prompt", "", multiline=True, role=ParamRole.PROMPT,
                             description="the edit, referring to the pictures as Picture 1, 2, 3"),),
        outputs=(Output("conditioning", COND, description="the prompt with the pictures, for a sampler"),),
        description="Prompt of Qwen-Image-Edit 2509 / 2511 (ComfyUI's TextEncodeQwenImageEditPlus; diffusers' "
                    "QwenImageEditPlusPipeline): Qwen2.5-VL reads up to three pictures (scaled to about 384x384) with "
                    "the text, and with a VAE each picture (about 1024x1024) becomes a reference latent the model "
                    "sees beside the image it draws.",
        display_name="Text Encode Qwen Image Edit Plus"),
]
