"""IP-Adapter's nodes as NodeForge declarations (torch-free; run functions in nodes/ipadapter.py,
imported when a node first runs): the adapter and CLIP vision loaders and the node that applies an
image prompt to a MODEL; and CLIP Vision Encode / unCLIP Conditioning (nodes/unclip.py) and the SD 2.1
unCLIP checkpoint loader (nodes/unclip_model.py)."""
from __future__ import annotations

from typing import Any

from nodeforge.core.spec import Input, NodeSpec, Output, Param
from nodeforge.core.types import FileKind, PortType

from .declare import lazy, model_names as _names

MODEL, IMAGE = PortType.MODEL.value, PortType.IMAGE.value
IPADAPTER, CLIP_VISION = PortType.IPADAPTER.value, PortType.CLIP_VISION.value


def _adapter_facts(files: dict[str, Any], **_: Any) -> dict[str, dict[str, Any]]:
    return {"ipadapter": {"encoder": False}}   # Load IP-Adapter gives no image encoder with it


def _check_encoder(facts: dict[str, dict[str, Any]], **_: Any) -> list[str]:
    if facts.get("clip_vision", {}).get("absent"):
        return _check_vision_encoder(facts)
    if "clip_vision" not in facts and facts.get("ipadapter", {}).get("encoder") is False:
        return ["clip_vision: the IP-Adapter comes without its image encoder: link Load CLIP Vision to clip_vision "
                "(or load the adapter with Load IP-Adapter and Encoder)"]
    return []


def _check_range(start_percent: float = 0.0, end_percent: float = 1.0, **_: Any) -> list[str]:
    if start_percent >= end_percent:
        return ["start_percent: must be before end_percent, or the IP-Adapter never acts"]
    return []


IPADAPTER_NODES: list[NodeSpec] = [
    NodeSpec(
        "IPAdapterLoader", "loaders", lazy("ipadapter", "run_ipadapter_loader"),
        params=(Param.choice("ipadapter", _names(FileKind.IPADAPTER), default="", file=FileKind.IPADAPTER,
                             description="an IP-Adapter file from the ipadapter folder (ip-adapter_sd15.safetensors, "
                                         "ip-adapter-plus_sd15, ip-adapter_sdxl_vit-h ...; .bin read as weights only)"),),
        outputs=(Output("ipadapter", IPADAPTER, description="the IP-Adapter, for Apply IP-Adapter"),),
        facts=_adapter_facts,
        description="Load an IP-Adapter (plain, Plus or Full Face; h94/diffusers layout) for image prompts.",
        display_name="Load IP-Adapter"),
    NodeSpec(
        "CLIPVisionLoader", "loaders", lazy("ipadapter", "run_clip_vision_loader"),
        params=(Param.choice("clip_vision", _names(FileKind.CLIP_VISION), default="", file=FileKind.CLIP_VISION,
                             description="a CLIP image encoder from the clip_vision folder: a transformers folder or "
                                         "a single .safetensors file (CLIP-ViT-H-14-laion2B-s32B-b79K.safetensors)"),),
        outputs=(Output("clip_vision", CLIP_VISION, description="the image encoder, for Apply IP-Adapter"),),
        description="Load a CLIP vision encoder (the image encoder an IP-Adapter reads pictures with).",
        display_name="Load CLIP Vision"),
    NodeSpec(
        "IPAdapterLoaderWithEncoder", "loaders", lazy("ipadapter", "run_ipadapter_loader_with_encoder"),
        inputs=(Input("unet", MODEL, description="the model the adapter is for (passed through unchanged)"),),
        params=(Param.choice("ipadapter", _names(FileKind.IPADAPTER), default="", file=FileKind.IPADAPTER,
                             description="an IP-Adapter file from the ipadapter folder"),
                Param.choice("clip_vision", _names(FileKind.CLIP_VISION), default="", file=FileKind.CLIP_VISION,
                             description="the image encoder it was trained with, from the clip_vision folder")),
        outputs=(Output("unet", MODEL, description="the input model, unchanged"),
                 Output("ipadapter", IPADAPTER, description="the IP-Adapter with its image encoder, for Apply IP-Adapter")),
        description="Load an IP-Adapter together with its CLIP vision encoder (IPAdapter_plus's unified loader), "
                    "so Apply IP-Adapter needs no encoder link.",
        display_name="Load IP-Adapter and Encoder"),
    NodeSpec(
        "IPAdapterApply", "conditioning", lazy("ipadapter", "run_ipadapter_apply"),
        inputs=(Input("unet", MODEL, description="the model to steer (left unchanged; several IP-Adapters stack)"),
                Input("ipadapter", IPADAPTER, description="the IP-Adapter from Load IP-Adapter"),
                Input("image", IMAGE, description="the reference image (several in a batch: their tokens are joined)"),
                Input("clip_vision", CLIP_VISION, optional=True,
                      description="the image encoder the IP-Adapter was trained with (unlinked: the one loaded "
                                  "with the adapter by Load IP-Adapter and Encoder)")),
        params=(Param.float("weight", 1.0, min=-1.0, max=5.0, step=0.05,
                            description="how strongly the image steers (diffusers' ip_adapter_scale; 0: not at all)"),
                Param.float("start_percent", 0.0, min=0.0, max=1.0, step=0.001,
                            description="where in the schedule it starts acting (0: from pure noise)"),
                Param.float("end_percent", 1.0, min=0.0, max=1.0, step=0.001,
                            description="where it stops (1: to the end)")),
        outputs=(Output("unet", MODEL, description="the same model, its cross-attention also reading the image"),),
        validate=_check_range, check_inputs=_check_encoder,
        description="Prompt with an image: the UNet's cross-attention also attends to the image's IP-Adapter "
                    "tokens, times the weight (diffusers' IP-Adapter).",
        display_name="Apply IP-Adapter"),
]


def _unclip_checkpoint_facts(files: dict[str, Any], **_: Any) -> dict[str, dict[str, Any]]:
    # Torch-free, as Load Checkpoint's: the family from the folder's config or the file's header, and whether
    # it holds an image encoder (clip_vision "absent": the checkpoint's name, where it is known to have none).
    from .families.probe import has_unclip_encoder, model_facts

    path = files.get("checkpoint")
    found = model_facts(path) if path is not None else {}
    facts = {"unet": found, "clip": {"family": found["family"]} if found else {}}
    if path is not None and has_unclip_encoder(path) is False:
        facts["clip_vision"] = {"absent": path.name if path.is_dir() else path.stem}
    return facts


def absent_encoder(checkpoint: str) -> str:
    """What a node given unCLIP Checkpoint Loader's clip_vision of a checkpoint without one says (at validate and run)."""
    return (f"{checkpoint} is not an SD 2.1 unCLIP checkpoint, so unCLIP Checkpoint Loader gives no CLIP vision "
            "encoder: pick an unCLIP checkpoint (sd21-unclip-h.ckpt) in it, or load the encoder with Load CLIP Vision")


def _check_vision_encoder(facts: dict[str, dict[str, Any]], **_: Any) -> list[str]:
    absent = facts.get("clip_vision", {}).get("absent")
    return [f"clip_vision: {absent_encoder(absent)}"] if absent else []


# An image's CLIP embedding as a prompt (nodes/unclip.py): ComfyUI's CLIPVisionEncode and unCLIPConditioning.
CONDITIONING, CLIP_VISION_OUTPUT = PortType.CONDITIONING.value, PortType.CLIP_VISION_OUTPUT.value

IPADAPTER_NODES += [
    NodeSpec(
        "CLIPVisionEncode", "conditioning", lazy("unclip", "run_clip_vision_encode"),
        inputs=(Input("clip_vision", CLIP_VISION, description="the CLIP image encoder from Load CLIP Vision (or an "
                                                              "unCLIP checkpoint's, from unCLIP Checkpoint Loader)"),
                Input("image", IMAGE, description="the image to encode (a batch: one embedding each)")),
        params=(Param.choice("crop", ("center", "none"), default="center",
                             description="center: the shortest side fills the encoder's square, the rest is cut; "
                                         "none: the whole image is stretched to the square"),),
        outputs=(Output("clip_vision_output", CLIP_VISION_OUTPUT,
                        description="the image's CLIP embedding and hidden states, for unCLIP Conditioning"),),
        check_inputs=_check_vision_encoder,
        description="Encode an image with a CLIP vision encoder (CLIP's own preparation: resize, crop, "
                    "normalise), for unCLIP Conditioning.",
        display_name="CLIP Vision Encode"),
    NodeSpec(
        "UnCLIPConditioning", "conditioning", lazy("unclip", "run_unclip_conditioning"),
        inputs=(Input("conditioning", CONDITIONING, description="the prompt to add the image to"),
                Input("clip_vision_output", CLIP_VISION_OUTPUT, description="the image's embedding from CLIP "
                                                                            "Vision Encode")),
        params=(Param.float("strength", 1.0, min=-10.0, max=10.0, step=0.01,
                            description="how much of the image's embedding goes in (several images add up)"),
                Param.float("noise_augmentation", 0.0, min=0.0, max=1.0, step=0.01,
                            description="noise mixed into the embedding first (0: none; 1: all noise), which "
                                        "loosens how closely the image is followed")),
        outputs=(Output("conditioning", CONDITIONING, description="the prompt carrying the image"),),
        description="Prompt with an image's CLIP embedding (unCLIP). An SD 2.1 unCLIP model (unCLIP Checkpoint "
                    "Loader) reads the noise-augmented images as its UNet's class label; an SDXL model reads them in "
                    "place of the prompt's pooled vector (Revision: encode with CLIP ViT-bigG, clip_vision_g); other "
                    "SD 1.x and 2.x models do not read them (as in ComfyUI).",
        display_name="unCLIP Conditioning"),
]


IPADAPTER_NODES += [
    NodeSpec(
        "UnCLIPCheckpointLoader", "loaders", lazy("unclip_model", "run_unclip_checkpoint_loader"),
        params=(Param.choice("checkpoint", _names(FileKind.CHECKPOINT), default="", file=FileKind.CHECKPOINT,
                             description="an SD 2.1 unCLIP checkpoint: sd21-unclip-h.ckpt or -l (.safetensors, or "
                                         ".ckpt read as weights only) or a StableUnCLIPImg2ImgPipeline folder"),),
        outputs=(Output("unet", MODEL, description="the denoising UNet with its noise augmentor, for UNet Denoise"),
                 Output("clip", PortType.CLIP.value, description="the text encoder, for the prompt nodes"),
                 Output("vae", PortType.VAE.value, description="the image encoder/decoder"),
                 Output("clip_vision", CLIP_VISION, description="the checkpoint's CLIP image encoder, for CLIP "
                                                                "Vision Encode (none for other checkpoints)")),
        facts=_unclip_checkpoint_facts,
        description="Load an SD 2.1 unCLIP model (Stability's stable-diffusion-2-1-unclip, -h or -l): its UNet "
                    "reads images given by CLIP Vision Encode and unCLIP Conditioning. Other checkpoints load as "
                    "with Load Checkpoint, without a CLIP vision encoder (as in ComfyUI).",
        display_name="unCLIP Checkpoint Loader"),
]
