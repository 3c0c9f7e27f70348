"""Qwen-Image's way to sample: Flux's flow-matching phases (nodes/families/flux_sampling.py: 2x2 packing,
sigmas linspace(1, 1/steps, steps) shifted by mu from the packed sequence's length, with Qwen-Image's
scheduler: max_image_seq_len 8192, max_shift 0.9, terminal sigma 0.02) and Qwen-Image's model call, as
QwenImagePipeline and QwenImageEditPlusPipeline do it.

- The model reads the packed latent, the prompt (no pooled vector, no guidance input) and `img_shapes`,
  the (frames, rows, columns) of each packed picture, from which it builds its positions.
- Reference latents (TextEncodeQwenImageEditPlus with a VAE; ReferenceLatent, nodes/edit_model.py) are packed the same
  way and put after the latent's tokens, each as the next frame in `img_shapes` (the pipeline's and ComfyUI's
  "index" method); only the latent's tokens of the output are kept. A reference of odd latent size is padded
  to even with its own opposite edge (ComfyUI's circular padding). With the method "index_timestep_zero"
  (FluxKontextMultiReferenceLatentMethod; Qwen-Image-Edit-2511's transformer config `zero_cond_t`) the
  references are modulated as at timestep 0.
- ModelSamplingAuraFlow / ModelSamplingSD3 give the model a fixed shift instead (ComfyUI's Qwen-Image
  workflows set 3.1 this way), which replaces the resolution-dependent one.
- CFG: with cfg above 1 the negative prompt is run too and mixed as uncond + cfg (cond - uncond), ComfyUI's
  CFG. QwenImagePipeline's `true_cfg_scale` then also rescales the result to the positive's norm per
  token; ComfyUI tames it only with CFGNorm (nodes/cfg_norm.py: the clean-image prediction's norm per
  latent pixel capped at the positive's), and so does NodeForge.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any, Iterator

import torch
import torch.nn.functional as F

from nodeforge.core.errors import NodeError

from ..sampling import DenoiseRequest, StartState
from .flow import one_prompt
from .flux_sampling import FluxSampling, pack, unpack

ZERO_TIMESTEP_METHOD = "index_timestep_zero"


class QwenImageSampling(FluxSampling):
    """FluxSampling's sigmas with Qwen-Image's model call."""

    def for_latent(self, model: Any, shape: tuple[int, int, int, int]) -> Any:
        if shape[2] % 2 or shape[3] % 2:
            raise NodeError(f"Qwen-Image packs the latent in 2x2 patches: its size ({shape[3]}x{shape[2]}) must be "
                            f"even; use a width and height divisible by {2 * model.vae_factor}", field="latent")
        return super().for_latent(model, shape)

    def predictor(self, model: Any, positive: Any, negative: Any, start: StartState,
                  request: DenoiseRequest) -> "QwenImagePredictor":
        pos = _side(positive, "positive", model)
        neg = _side(negative, "negative", model) if request.cfg > 1.0 else None
        return QwenImagePredictor(model, pos, neg, float(request.cfg))


QWENIMAGE_SAMPLING = QwenImageSampling()


@dataclass
class QwenImagePredictor:
    """The transformer's velocity for the positive prompt, mixed with the negative's when cfg > 1 (two calls,
    as the pipelines' true CFG)."""

    model: Any
    positive: dict[str, Any]
    negative: dict[str, Any] | None
    cfg: float

    def _call(self, side: dict[str, Any], packed: torch.Tensor, shape: tuple[int, int], t: torch.Tensor) -> torch.Tensor:
        module, dtype = self.model.unet, self.model.dtype
        batch, tokens = packed.shape[:2]
        refs = [_even(r.to(packed.device, dtype)).expand(batch, -1, -1, -1) for r in side["references"]]
        x = torch.cat([packed.to(dtype)] + [pack(r) for r in refs], dim=1)
        shapes = [[(1, shape[0] // 2, shape[1] // 2)] + [(1, r.shape[2] // 2, r.shape[3] // 2) for r in refs]] * batch
        timestep = t.reshape(-1)[:1].expand(batch).to(packed.device, dtype)
        with _zero_cond_t(module, bool(refs) and side["zero_cond_t"]):
            out = module(hidden_states=x, timestep=timestep / 1000, encoder_hidden_states=side["embeds"].expand(batch, -1, -1),
                         encoder_hidden_states_mask=None, img_shapes=shapes, return_dict=False)[0]
        return out[:, :tokens].float()

    def predict(self, latents: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        h, w = latents.shape[-2:]
        packed = pack(latents)
        cond = guided = self._call(self.positive, packed, (h, w), t)
        if self.negative is not None:
            uncond = self._call(self.negative, packed, (h, w), t)
            guided = uncond + self.cfg * (cond - uncond)
        strength = getattr(self.model, "cfg_norm", None)
        if strength is None:
            return unpack(guided, h, w)
        from ..cfg_norm import normalized_velocity

        sigma = t.reshape(-1)[0].float() / 1000   # the model's timestep is 1000 x sigma
        return normalized_velocity(unpack(guided, h, w), unpack(cond, h, w), latents.float(), sigma, strength)


def _even(latent: torch.Tensor) -> torch.Tensor:
    """A reference latent padded to even rows and columns with its opposite edge, as ComfyUI pads it."""
    pad_h, pad_w = latent.shape[2] % 2, latent.shape[3] % 2
    return F.pad(latent, (0, pad_w, 0, pad_h), mode="circular") if pad_h or pad_w else latent


@contextlib.contextmanager
def _zero_cond_t(module: Any, on: bool) -> Iterator[None]:
    """The transformer (and its blocks) modulating the reference tokens as at timestep 0 while `on`, as
    Qwen-Image-Edit-2511's config `zero_cond_t` makes diffusers do it."""
    parts = [module, *module.transformer_blocks]
    before = [getattr(p, "zero_cond_t", False) for p in parts]
    if on:
        for part in parts:
            part.zero_cond_t = True
    try:
        yield
    finally:
        for part, value in zip(parts, before):
            part.zero_cond_t = value


def _side(conditioning: Any, field: str, model: Any) -> dict[str, Any]:
    entry = one_prompt(conditioning, field, "qwenimage", "Qwen-Image",
                       ("area", "area_fraction", "control", "timestep_range", "mask"),
                       encoder="CLIP (its Qwen2.5-VL text encoder)", pooled=False)
    references = tuple(entry.get("reference_latents", ()))
    method = entry.get("reference_latents_method") or "index"
    if references and method not in ("index", ZERO_TIMESTEP_METHOD):
        raise NodeError(f"Qwen-Image places each reference latent as its own frame (index, or index_timestep_zero for "
                        f"Qwen-Image-Edit-2511), not {method!r}: set Reference Latent Method to index or remove it",
                        field=field)
    for ref in references:
        if ref.shape[1] != model.latent_channels:
            raise NodeError(f"a reference latent has {ref.shape[1]} channels but this model's latents have "
                            f"{model.latent_channels}; encode the reference with the Qwen-Image VAE", field=field)
    zero = bool(getattr(model.unet.config, "zero_cond_t", False)) or method == ZERO_TIMESTEP_METHOD
    return {"embeds": entry["embeds"].to(model.device, model.dtype), "references": references, "zero_cond_t": zero}
