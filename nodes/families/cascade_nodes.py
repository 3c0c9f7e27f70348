"""Stable Cascade's nodes (ComfyUI's StableCascade_EmptyLatentImage, StableCascade_StageB_Conditioning,
StableCascade_StageC_VAEEncode, ModelSamplingStableCascade and Inspire's StableCascade_CheckpointLoader) and
the VAE modules of the stages: stage A (Paella's VQ-GAN) as a VAE, and the refusals of a checkpoint without
stage C's EfficientNet encoder (nodes/families/cascade_effnet.py) or stage A."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from nodeforge.core.errors import NodeError
from nodeforge.core.types import FileKind

from ..conditioning import entries

STAGE_C_CHANNELS = 16
STAGE_B_CHANNELS = 4
STAGE_C_ENCODER_FACTOR = 32   # the EfficientNet encoder's pixels per stage C latent pixel


class _Output:
    """What the VAE nodes read from a diffusers VAE's encode / decode."""

    def __init__(self, sample: torch.Tensor) -> None:
        self.sample = sample
        self.latent_dist = self

    def mode(self) -> torch.Tensor:
        return self.sample


class StageA(torch.nn.Module):
    """Stage A (diffusers' PaellaVQModel) behind the VAE nodes' calls: pixels in -1..1 (it works in 0..1),
    decoding without the codebook (as StableCascadeDecoderPipeline)."""

    def __init__(self, vqgan: Any) -> None:
        super().__init__()
        self.vqgan = vqgan

    @property
    def config(self) -> Any:
        return self.vqgan.config

    def encode(self, pixels: torch.Tensor) -> _Output:
        return _Output(self.vqgan.encode((pixels + 1) / 2).latents)

    def decode(self, latents: torch.Tensor) -> _Output:
        return _Output(self.vqgan.decode(latents, force_not_quantize=True).sample * 2 - 1)


class _AbsentCoder(torch.nn.Module):
    """A VAE a Stable Cascade checkpoint cannot give: encoding or decoding with it is refused in one line."""

    def __init__(self, message: str) -> None:
        super().__init__()
        self.message = message
        self.register_parameter("placeholder", torch.nn.Parameter(torch.zeros(0), requires_grad=False))

    def encode(self, pixels: torch.Tensor) -> Any:
        raise NodeError(self.message, field="vae")

    def decode(self, latents: torch.Tensor) -> Any:
        raise NodeError(self.message, field="vae")


class AbsentStageCCoder(_AbsentCoder):
    """Stage C's VAE where the checkpoint has no EfficientNet encoder (a diffusers prior folder has none)."""

    def __init__(self, name: str, bundled: bool = False) -> None:
        why = ("the file's vae. tensors hold no EfficientNet encoder" if bundled else
               "diffusers' StableCascadePriorPipeline folder does not include one")
        super().__init__(f"{name}'s stage C encoder (EfficientNet) cannot encode or decode: {why}; start stage C "
                         "from Empty Latent (Stable Cascade), or decode stage B's latent with stage B's VAE (stage A)")


class AbsentStageA(_AbsentCoder):
    """The VAE of a stage B file that holds only the UNet."""

    def __init__(self, name: str) -> None:
        super().__init__(f"{name} holds only the stage B UNet, no stage A to decode with: use ComfyUI's "
                         "comfyui_checkpoints/stable_cascade_stage_b.safetensors (stage B with stage A) or the "
                         "StableCascadeDecoderPipeline folder as stage_b")


# -- the nodes -----------------------------------------------------------------------------------------------
def run_empty_latent(ctx: Any, width: int, height: int, compression: int, batch_size: int) -> dict[str, Any]:
    """Zero latents for both stages: stage C's 16 channels at size // compression, stage B's 4 at size // 4."""
    c_h, c_w = height // compression, width // compression
    if c_h < 1 or c_w < 1:
        raise NodeError(f"{width}x{height} at compression {compression} leaves no stage C latent; make the image at "
                        f"least {compression} pixels on each side or lower compression", field="compression")
    return {"stage_c": {"samples": torch.zeros(batch_size, STAGE_C_CHANNELS, c_h, c_w), "factor": compression},
            "stage_b": {"samples": torch.zeros(batch_size, STAGE_B_CHANNELS, height // 4, width // 4), "factor": 4}}


def run_stage_b_conditioning(ctx: Any, conditioning: Any, stage_c: dict[str, Any]) -> dict[str, Any]:
    """Every entry carries stage C's latent, which stage B reads as its EfficientNet features."""
    samples = stage_c.get("samples")
    if samples is None or samples.ndim != 4 or samples.shape[1] != STAGE_C_CHANNELS:
        got = "an empty latent" if samples is None else f"a {samples.shape[1]}-channel latent"
        raise NodeError(f"stage_c must be stage C's 16-channel latent (from a sampler with the stage C model), got "
                        f"{got}", field="stage_c")
    return {"conditioning": [dict(e, stable_cascade_prior=samples) for e in entries(conditioning)]}


def run_stage_c_vae_encode(ctx: Any, image: torch.Tensor, vae: Any, compression: int) -> dict[str, Any]:
    """Stage C's latent of an image: centre-cropped to the latent's aspect, resized (bicubic) to size //
    compression x 32 and encoded by stage C's EfficientNet encoder; a zero stage B latent of size // 4."""
    from ..vae import encode

    batch, height, width, _ = image.shape
    c_h, c_w = height // compression, width // compression
    if c_h < 1 or c_w < 1:
        raise NodeError(f"the image ({width}x{height}) is smaller than compression {compression}; lower "
                        "compression or use a larger image", field="compression")
    if int(vae.latent_channels) != STAGE_C_CHANNELS:
        raise NodeError(f"this VAE gives {vae.latent_channels}-channel latents, not stage C's 16; connect the stage C "
                        "checkpoint's VAE (Stable Cascade Checkpoint Loader's c_vae)", field="vae")
    pixels = centre_resize(image, c_w * STAGE_C_ENCODER_FACTOR, c_h * STAGE_C_ENCODER_FACTOR)
    stage_c = encode(vae, pixels)
    stage_b = torch.zeros(stage_c.shape[0], STAGE_B_CHANNELS, height // 8 * 2, width // 8 * 2)
    return {"stage_c": {"samples": stage_c, "factor": compression}, "stage_b": {"samples": stage_b, "factor": 4}}


def centre_resize(image: torch.Tensor, width: int, height: int) -> torch.Tensor:
    """IMAGE [B, H, W, C] cropped about its centre to width:height and resized to it (bicubic, clamped to 0..1)."""
    _, h, w, _ = image.shape
    if w * height > h * width:      # wider than the target: cut the sides
        keep = round(h * width / height)
        image = image[:, :, (w - keep) // 2:(w - keep) // 2 + keep]
    elif w * height < h * width:    # taller: cut top and bottom
        keep = round(w * height / width)
        image = image[:, (h - keep) // 2:(h - keep) // 2 + keep]
    pixels = torch.nn.functional.interpolate(image.movedim(-1, 1).float(), size=(height, width), mode="bicubic",
                                             align_corners=False)
    return pixels.clamp(0, 1).movedim(1, -1)


def run_checkpoint_loader(ctx: Any, stage_b: str, stage_c: str) -> dict[str, Any]:
    """Both stages (Inspire's StableCascade_CheckpointLoader): stage B with stage A as its VAE, stage C with its
    VAE (the EfficientNet encoder where the file has one), its CLIP vision encoder and the CLIP both read."""
    from ..loading import load_checkpoint
    from ..unclip_model import AbsentClipVision

    loaded = {}
    for field, name, stage in (("stage_b", stage_b, "b"), ("stage_c", stage_c, "c")):
        path = Path(ctx.resolve_file(FileKind.CHECKPOINT, name))
        found = load_checkpoint(path, ctx.device, ctx.shared)
        check_stage(found, path, field, stage)
        loaded[stage] = (found, path)
    b_unet, _, b_vae = loaded["b"][0].wrappers()
    c_unet, clip, c_vae = loaded["c"][0].wrappers()
    c_path = loaded["c"][1]
    clip_vision = loaded["c"][0].extra.get("clip_vision") or AbsentClipVision(c_path.stem if c_path.is_file()
                                                                               else c_path.name)
    return {"b_model": b_unet, "b_vae": b_vae, "c_model": c_unet, "c_vae": c_vae, "c_clip_vision": clip_vision,
            "clip": clip}


def check_stage(loaded: Any, path: Path, field: str, stage: str) -> None:
    """A checkpoint given for stage `stage` that is not that stage of Stable Cascade, in one line."""
    from .cascade import stage_of

    fields = loaded.unet_fields
    if fields.get("family") != "cascade":
        raise NodeError(f"{path.name} is not a Stable Cascade model (its family is {fields.get('family')}); pick "
                        f"the stage {stage.upper()} checkpoint for {field}", field=field)
    found = stage_of(fields["unet"])
    if found != stage:
        other = "stage_b" if found == "b" else "stage_c"
        raise NodeError(f"{path.name} is Stable Cascade's stage {found.upper()}, not stage {stage.upper()}; swap it "
                        f"into {other} and pick the stage {stage.upper()} checkpoint for {field}", field=field)


def run_model_sampling(ctx: Any, unet: Any, shift: float) -> dict[str, Any]:
    """The same Stable Cascade model sampling with its noise levels shifted by `shift` (ComfyUI's
    ModelSamplingStableCascade; 2 is ComfyUI's own for stage C, 1 the pipelines' unshifted schedule)."""
    import dataclasses

    if getattr(unet, "family", None) != "cascade":
        raise NodeError(f"unet is a {getattr(unet, 'family', 'non-Stable Cascade')} model; Model Sampling (Stable "
                        "Cascade) applies to Stable Cascade's stage B or C (remove it, or connect one)", field="unet")
    return {"unet": dataclasses.replace(unet, scheduler_config=dict(unet.scheduler_config, _shift=float(shift)))}
