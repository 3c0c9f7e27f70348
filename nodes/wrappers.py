"""The values that travel on MODEL, CLIP and VAE wires: loaded modules plus what running them needs.

A wrapper shares its modules with every wrapper derived from it. LoRAs are recorded as patches
(`with_lora` returns a new wrapper) and applied to the shared weights only inside `patched()`,
which restores the exact original tensors when it exits, so a model is never changed by a node.
"""
from __future__ import annotations

import contextlib
import dataclasses
from dataclasses import dataclass, field
from typing import Any, Iterator

import torch

from nodeforge.lora_format import delta as lora_delta


@dataclass(frozen=True)
class LoraPatch:
    """One LoRA's deltas for one model part: module path -> (down, up, scale) for a plain LoRA or
    LoCon, or a lora_variants.VariantDelta (LoHa, LoKr, DoRA, full diff)."""

    name: str
    deltas: dict[str, tuple[torch.Tensor, torch.Tensor, float]]
    strength: float


class OnModule:
    """`device` and `dtype` of a wrapper: its module's (the field `module_field` names), read from
    the first parameter; what it holds for the output cache: the module and its loader's record."""

    module_field = "module"

    def nodeforge_holds(self) -> tuple:
        return (getattr(self, self.module_field), getattr(self, "owner", None))

    @property
    def device(self) -> torch.device:
        from .placement import device_of

        return device_of(getattr(self, self.module_field))

    @property
    def dtype(self) -> torch.dtype:
        return next(getattr(self, self.module_field).parameters()).dtype


def loaded_modules(*fields: dict[str, Any]) -> list[Any]:
    """The modules among a loader's record's fields: what keeps a loaded file in memory (its configs and
    tokenizers are small; walking a tokenizer's vocabulary would take longer than the run)."""
    return [value for group in fields for value in group.values() if isinstance(value, torch.nn.Module)]


@contextlib.contextmanager
def apply_patches(modules: dict[str, torch.nn.Module], patches: tuple[tuple[str, LoraPatch], ...]) -> Iterator[None]:
    """Add every patch's `strength * scale * up @ down` to the named weights; restore them on exit.

    `patches` holds (part, patch) where part keys `modules` ("unet", "te", "te2"). Strength 0
    patches are skipped, so they give bitwise the base model's output.
    """
    originals: dict[tuple[str, str], tuple[torch.Tensor, torch.Tensor]] = {}
    hooks: list[Any] = []
    try:
        with torch.no_grad():
            for part, patch in patches:
                if patch.strength == 0 or part not in modules:
                    continue
                root = modules[part]
                for path, value in patch.deltas.items():
                    module = root.get_submodule(path)
                    weight = module.weight
                    if is_quantized(weight):   # packed GGUF blocks: add the LoRA's output instead
                        hooks.append(module.register_forward_hook(_low_rank(value, patch.strength, path)))
                        continue
                    if (part, path) not in originals:
                        originals[(part, path)] = (weight, weight.detach().clone())
                    if not isinstance(value, tuple):   # a LoRA variant (lora_variants.VariantDelta)
                        bias = getattr(module, "bias", None)
                        if value.touches_bias and bias is not None and (part, path, "bias") not in originals:
                            originals[(part, path, "bias")] = (bias, bias.detach().clone())
                        value.apply(module, patch.strength)
                        continue
                    down, up, scale = value
                    change = lora_delta(down, up, tuple(weight.shape))
                    weight.add_((patch.strength * scale * change).to(device=weight.device, dtype=weight.dtype))
        yield
    finally:
        for hook in hooks:
            hook.remove()
        with torch.no_grad():
            for weight, saved in originals.values():
                weight.copy_(saved)


def is_quantized(weight: Any) -> bool:
    """A weight stored in quantised blocks (diffusers' GGUFParameter), which cannot be patched in place."""
    return type(weight).__name__ == "GGUFParameter"


def weight_shape(weight: Any) -> tuple[int, ...]:
    """A weight's shape in elements (a GGUF weight's tensor holds its packed blocks' bytes)."""
    if not is_quantized(weight):
        return tuple(weight.shape)
    from gguf import GGML_QUANT_SIZES

    block, size = GGML_QUANT_SIZES[weight.quant_type]
    return (*weight.shape[:-1], weight.shape[-1] // size * block)


def _low_rank(value: Any, strength: float, path: str) -> Any:
    """A forward hook adding a LoRA's `strength * scale * up(down(x))` to a quantised linear layer's
    output: the unmerged LoRA, as PEFT runs one on diffusers' GGUF layers."""
    if not isinstance(value, tuple) or value[0].ndim != 2:
        from nodeforge.core.errors import NodeError

        raise NodeError(f"the LoRA's {getattr(value, 'kind', 'conv')} change to {path} cannot be added to a quantised "
                        "(GGUF) layer; only plain LoRA (down/up) layers can: load the safetensors transformer",
                        field="unet")
    down, up, scale = value

    def hook(module: Any, args: Any, output: torch.Tensor) -> torch.Tensor:
        x = args[0]
        d, u = down.to(x.device, x.dtype), up.to(x.device, x.dtype)
        return output + (strength * scale) * torch.nn.functional.linear(torch.nn.functional.linear(x, d), u)
    return hook


@dataclass(frozen=True)
class UNetModel(OnModule):
    """MODEL: the denoising UNet and what sampling needs to drive it."""

    module_field = "unet"

    unet: Any                         # diffusers UNet2DConditionModel
    scheduler_config: dict[str, Any]
    prediction_type: str              # "epsilon" or "v_prediction"
    latent_channels: int
    vae_factor: int                   # pixels per latent pixel
    family: str                       # "sd1", "sd2", "sdxl" or "custom"
    name: str
    loras: tuple[LoraPatch, ...] = ()
    owner: Any = field(default=None, compare=False, repr=False)   # the LoadedCheckpoint, kept alive
    # The model's own latent -> RGB preview map, ((factors per channel), (bias)), from the optional
    # latent_preview.json of a diffusers folder; None: the family's table.
    preview_rgb: Any = field(default=None, compare=False, repr=False)
    # The family's denoise phases (nodes/sampling.py SamplingBehaviour); None: the UNet families'.
    sampling_behaviour: Any = field(default=None, compare=False, repr=False)
    freeu: Any = None                 # nodes/freeu.py FreeU settings, hooked on only inside patched()
    # nodes/ipadapter.py AppliedIPAdapter each, their attention processors set only inside patched()
    ip_adapters: tuple = ()
    cfg_rescale: float = 0.0          # nodes/cfg_rescale.py RescaleCFG's multiplier (0: off), used by the guidance step
    skip_layer_guidance: Any = None   # nodes/families/skip_layers.py settings (SD3), used by the flow guidance step
    self_attention_guidance: Any = None   # nodes/sag.py settings (UNet models), used by the guidance step
    perturbed_attention: Any = None  # nodes/pag.py settings (UNet models), used by the guidance step
    cads: Any = None                  # nodes/cads.py settings (UNet models), used by the guidance step's UNet calls
    timestep_noise: Any = None        # nodes/families/timestep_noise.py settings (Z-Image), used by its model call
    zimage_controls: tuple = ()       # nodes/families/zimage_control.py ZImageControl each (Z-Image's Fun ControlNet)
    normalized_attention: Any = None  # nodes/families/nag.py settings (Z-Image), used by its model call
    cfg_norm: float | None = None     # nodes/cfg_norm.py CFGNorm's strength (None: off), used by the guidance step
    differential_diffusion: float | None = None   # DifferentialDiffusion's strength, used by the mask blend (sampling.py)
    # an SD 2.1 unCLIP model's noise augmentor (nodes/unclip_model.py), which makes its UNet's class labels
    unclip: Any = field(default=None, compare=False, repr=False)
    # nodes/iclight.py ICLightInput: an IC-Light file's widened conv_in, swapped in only inside patched()
    iclight: Any = None
    torch_compile: Any = None         # nodes/torch_compile.py CompileSettings: the network compiled inside patched()

    @property
    def in_channels(self) -> int:
        """The channels the UNet takes: the latent's, and an inpainting, InstructPix2Pix or IC-Light UNet's more."""
        return self.iclight.in_channels if self.iclight is not None else self.unet.config.in_channels

    @property
    def is_inpainting(self) -> bool:
        """An inpainting UNet (SD 1.5/2 inpaint): it also takes the mask and the masked image's latent."""
        return self.in_channels == 2 * self.latent_channels + 1

    def with_lora(self, patch: LoraPatch) -> "UNetModel":
        return dataclasses.replace(self, loras=self.loras + (patch,))

    def with_ip_adapter(self, applied: Any) -> "UNetModel":
        return dataclasses.replace(self, ip_adapters=self.ip_adapters + (applied,))

    @contextlib.contextmanager
    def patched(self) -> Iterator[None]:
        with contextlib.ExitStack() as stack:
            stack.enter_context(apply_patches({"unet": self.unet}, tuple(("unet", p) for p in self.loras)))
            if self.iclight is not None:   # after the LoRAs: the widened conv_in starts from their weight
                from .iclight import widened_conv_in

                stack.enter_context(widened_conv_in(self.unet, self.iclight))
            if self.freeu is not None:
                from .freeu import freeu_applied

                stack.enter_context(freeu_applied(self.unet, self.freeu))
            if self.ip_adapters:
                from .ipadapter import ip_attention

                stack.enter_context(ip_attention(self.unet, self.ip_adapters))
            if self.torch_compile is not None:   # last: it wraps the blocks as the patches above left them
                from .torch_compile import compiled

                stack.enter_context(compiled(self.unet, self.torch_compile))
            yield

    def nodeforge_holds(self) -> tuple:
        """For the output cache: the network, what the model nodes added (LoRA deltas, IP-Adapters, masks in
        settings) and the loader's record, which a copy (dataclasses.replace) keeps alive as its base does;
        the cache counts each once across the copies it holds."""
        return (self.unet, self.owner, *(getattr(self, name) for name in _UNET_ADDED))


# What the model nodes add to a copy of a UNetModel (dataclasses.replace), which shares its base's weights.
_UNET_ADDED = ("loras", "freeu", "ip_adapters", "skip_layer_guidance", "self_attention_guidance", "perturbed_attention",
               "cads", "timestep_noise", "zimage_controls", "normalized_attention",
               "iclight", "torch_compile")


@dataclass(frozen=True)
class ClipModel:
    """CLIP: one tokenizer and text encoder (two for SDXL: `te2` gives the pooled embedding; an SDXL
    refiner has only the second, OpenCLIP bigG, and None as the first, as diffusers' refiner). SD3
    (family "sd3") has CLIP-L, CLIP-G and optionally T5 as the third; `context_width` is the width
    its transformer reads prompts at (joint_attention_dim), for padding and for a missing T5."""

    tokenizer: Any
    text_encoder: Any
    family: str
    tokenizer_2: Any = None
    text_encoder_2: Any = None
    loras: tuple[tuple[str, LoraPatch], ...] = ()   # (part "te"/"te2"/"te3", patch)
    stop_at_layer: int | None = None   # clip skip (CLIPSetLastLayer); None: the family's default
    owner: Any = field(default=None, compare=False, repr=False)
    tokenizer_3: Any = None
    text_encoder_3: Any = None        # SD3's T5 (None when the model is used without it)
    context_width: int | None = None
    missing: str = ""                 # why a checkpoint without text encoders gives no usable CLIP

    @property
    def device(self) -> torch.device:
        from .placement import device_of

        return device_of(self.text_encoder if self.text_encoder is not None else self.text_encoder_2)

    def with_lora(self, patches: tuple[tuple[str, LoraPatch], ...]) -> "ClipModel":
        return dataclasses.replace(self, loras=self.loras + tuple(patches))

    def patched(self) -> contextlib.AbstractContextManager:
        modules = {}
        if self.text_encoder is not None:
            modules["te"] = self.text_encoder
        if self.text_encoder_2 is not None:
            modules["te2"] = self.text_encoder_2
        if self.text_encoder_3 is not None:
            modules["te3"] = self.text_encoder_3
        return apply_patches(modules, self.loras)

    def nodeforge_holds(self) -> tuple:
        """For the output cache: the text encoders, the LoRA deltas and the loader's record (as UNetModel's)."""
        return (self.text_encoder, self.text_encoder_2, self.text_encoder_3, self.loras, self.owner)


@dataclass(frozen=True)
class VAEModel(OnModule):
    """VAE: the autoencoder and its latent scaling."""

    module_field = "vae"

    vae: Any                          # diffusers AutoencoderKL
    scaling_factor: float
    shift_factor: float
    factor: int                       # pixels per latent pixel
    latent_channels: int
    owner: Any = field(default=None, compare=False, repr=False)


@dataclass
class LoadedCheckpoint:
    """What one checkpoint file gives; the engine's shared registry holds it weakly.

    It holds the base wrappers' fields, not the wrappers: each wrapper points back here (`owner`)
    to keep it alive, and a reference cycle would delay freeing gigabytes until a gc pass.
    """

    unet_fields: dict[str, Any]
    clip_fields: dict[str, Any]
    vae_fields: dict[str, Any]
    extra: dict[str, Any] = field(default_factory=dict)

    def nodeforge_holds(self) -> list[Any]:
        """What keeps this checkpoint in memory while any of its wrappers lives (the output cache's count)."""
        return loaded_modules(self.unet_fields, self.clip_fields, self.vae_fields, self.extra)

    def wrappers(self) -> tuple[UNetModel, ClipModel, VAEModel]:
        return (UNetModel(**self.unet_fields, owner=self), ClipModel(**self.clip_fields, owner=self),
                VAEModel(**self.vae_fields, owner=self))
