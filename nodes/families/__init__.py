"""Model families: the one place that says which kinds of model the pack runs and how.

A family is a module in this package with the same functions (see `FamilyModule`): tell its
files apart (`claims_folder`, `claims_state`), load its parts into the MODEL/CLIP/VAE wrappers
(`load_folder`, `load_file`) and encode a prompt (`encode`). It samples through the one denoise
loop (nodes/sampling.py): its MODEL wrapper's `sampling_behaviour` is its `SamplingBehaviour`
subclass, which replaces the phases that differ (SD3: `FlowSampling` in flow.py; Flux:
`FluxSampling` in flux_sampling.py). The latent's
shape comes from the loaded model (`UNetModel.latent_channels` and `vae_factor`), so EmptyLatent
stays lazy and works for every family. CheckpointLoader and TextEncoder ask this table which
family a file or a CLIP belongs to, so a graph moves to another family by picking another
checkpoint. Importing this module does not import torch; a family's module is imported
when it is first used.

To add a family: a module here with those functions, one row in `FAMILIES` (before the UNet
generation, which claims what nobody else does), and its equivalence tests against diffusers'
own pipeline in tests/nodes/.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol


class FamilyModule(Protocol):
    MODEL_FAMILIES: tuple[str, ...]   # the `family` names its loaded models carry

    def claims_folder(self, path: Path) -> bool: ...
    def claims_state(self, keys: Any) -> bool: ...
    def load_folder(self, path: Path, device: str) -> Any: ...
    def load_file(self, path: Path, device: str, state: dict, metadata: dict) -> Any: ...
    def encode(self, clip: Any, text: str, embeddings: Any = None, **texts: str) -> dict[str, Any]: ...


@dataclass(frozen=True)
class Family:
    name: str
    module: str          # nodes.families.<module>
    description: str

    def impl(self) -> FamilyModule:
        return importlib.import_module(f"{__name__}.{self.module}")  # type: ignore[return-value]


FAMILIES: tuple[Family, ...] = (
    Family("flux", "flux", "Flux.1 dev / schnell: rectified-flow transformer over packed latents, CLIP-L + T5-XXL, "
                           "distilled guidance"),
    Family("zimage", "zimage", "Z-Image / Z-Image-Turbo: single-stream transformer, rectified flow, Qwen3-4B text "
                               "encoder, the Flux VAE"),
    Family("qwenimage", "qwenimage", "Qwen-Image / Qwen-Image-Edit: MMDiT over packed latents, rectified flow, "
                                     "Qwen2.5-VL-7B text encoder (reads the edit models' pictures), Qwen's VAE"),
    Family("cascade", "cascade", "Stable Cascade (Würstchen v3): stage C draws a 16-channel latent at 1/42 of the "
                                 "image from CLIP-G, stage B draws stage A's latent from it, stage A decodes"),
    Family("sd3", "sd3", "Stable Diffusion 3 / 3.5: MMDiT transformer, rectified flow, CLIP-L + CLIP-G (+ T5)"),
    Family("unet", "unet", "the UNet generation: SD 1.x, 2.x, SDXL base and refiner (epsilon or v prediction)"),
)


def for_folder(path: Path) -> Family | None:
    """The family whose diffusers folder layout `path` has, or None."""
    return next((f for f in FAMILIES if f.impl().claims_folder(path)), None)


def for_state(keys: Any) -> Family | None:
    """The family whose single-file layout these state-dict keys are, or None."""
    return next((f for f in FAMILIES if f.impl().claims_state(keys)), None)


def of_model(family: str) -> FamilyModule:
    """The family module that runs a loaded model or CLIP (by its `family` field)."""
    for row in FAMILIES:
        module = row.impl()
        if family in module.MODEL_FAMILIES:
            return module
    return FAMILIES[-1].impl()   # "custom" and other UNet models


# Files of model kinds no family runs yet, told apart by a key they always have: a clear refusal
# instead of "no UNet keys".
OTHER_KINDS: tuple[tuple[str, str, str], ...] = (
    ("single_transformer_blocks.", "a Flux transformer alone in diffusers' layout",
     "put it in its FluxPipeline folder as transformer/diffusion_pytorch_model.safetensors and pick the folder"),
    ("transformer_blocks.0.attn.add_q_proj.", "an SD3 transformer alone in diffusers' layout",
     "put it in its StableDiffusion3Pipeline folder as transformer/diffusion_pytorch_model.safetensors and pick "
     "the folder"),
    # parts that are not checkpoints at all, each with the loader that takes it
    (".lora_A.", "a LoRA", "put it in models/loras and apply it with LoRALoader"),
    (".lora_down.", "a LoRA", "put it in models/loras and apply it with LoRALoader"),
    ("encoder.block.0.layer.0.SelfAttention.", "a T5 text encoder alone",
     "put it in models/text_encoders and load it with TextEncoderLoaderSD3 (SD3) or DualTextEncoderLoader (Flux)"),
    ("layers.0.self_attn.q_norm.", "a Qwen3 text encoder alone (Z-Image's qwen_3_4b)",
     "put it in models/text_encoders and load it with TextEncoderLoader (type lumina2)"),
    ("visual.blocks.0.attn.qkv.", "a Qwen2.5-VL text encoder alone (Qwen-Image's qwen_2.5_vl_7b)",
     "put it in models/text_encoders and load it with TextEncoderLoader (type qwen_image)"),
    ("encoder.layers.0.self_attn.", "a CLIP text encoder alone",
     "put it in models/text_encoders and load it with TextEncoderLoaderSD3 (SD3) or DualTextEncoderLoader (Flux)"),
    ("decoder.up", "a VAE alone", "put it in models/vae and load it with VAELoader"),
)


def refuse_unknown(path: Path, keys: Any) -> None:
    """Raise the one-line refusal for a file of a model kind no family runs; return if unknown."""
    from nodeforge.core.errors import NodeError

    for marker, kind, fix in OTHER_KINDS:
        if any(marker in k for k in keys):
            raise NodeError(f"{path.name} is {kind}, which CheckpointLoader cannot load: {fix}", field="checkpoint")
    if not any(str(k).startswith("model.diffusion_model.") for k in keys):
        raise NodeError(f"{path.name} holds no model CheckpointLoader knows (no SD 1.x/2.x/XL UNet, SD3 or Flux "
                        "transformer keys); it may be an upscaler, an embedding or another kind of model: load it "
                        "with the loader for its kind", field="checkpoint")
