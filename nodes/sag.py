"""SelfAttentionGuidance: Hong et al. 2022's self-attention guidance ("Improving Sample Quality of
Diffusion Models Using Self-Attention Guidance"), as diffusers' StableDiffusionSAGPipeline and
ComfyUI's SelfAttentionGuidance node apply it to UNet models.

Each step the mid block's first self-attention map of the negative prompt's call is kept (the
positive's without CFG); where a latent pixel draws more attention than the average (the map
averaged over heads, summed over queries, above 1) the predicted clean latent x0 is blurred (9-tap
Gaussian of sigma `blur_sigma`, reflected at the edges), noised back to the step's level with the
same noise, and the UNet is called once more on it with the negative prompt: the guided prediction
moves away from that degraded one by `scale` x (negative - degraded). x0 and the re-noising are
taken in DDPM form on the model's input (alphas_cumprod at the timestep; for sigma samplers the
scaled input is that form), which is diffusers' computation for DDIM and PNDM. The wrapper records
the settings; the guidance step (nodes/conditioning.py Guidance.predict) applies them.
"""
from __future__ import annotations

import contextlib
import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Iterator

import torch
import torch.nn.functional as F

from nodeforge.core.errors import NodeError

KERNEL = 9
THRESHOLD = 1.0


@dataclass(frozen=True)
class SelfAttentionGuidance:
    scale: float
    blur_sigma: float


def run_self_attention_guidance(ctx: Any, unet: Any, scale: float, blur_sigma: float) -> dict[str, Any]:
    if not hasattr(unet, "self_attention_guidance") or getattr(unet.unet, "mid_block", None) is None \
            or unet.prediction_type not in ("epsilon", "v_prediction"):
        raise NodeError(f"SelfAttentionGuidance works on UNet models (SD 1.x, 2.x, XL); {unet.name} is a "
                        f"{unet.family} model: remove the node", field="unet")
    if blur_sigma <= 0:
        raise NodeError("blur_sigma must be above 0 (ComfyUI's default: 2.0)", field="blur_sigma")
    if scale == 0:
        return {"unet": unet}
    return {"unet": dataclasses.replace(unet, self_attention_guidance=SelfAttentionGuidance(float(scale),
                                                                                           float(blur_sigma)))}


class _StoredAttention:
    """The self-attention processor of the mid block's first transformer block, keeping its map."""

    def __init__(self) -> None:
        self.probs: torch.Tensor | None = None
        self.map_size: tuple[int, int] | None = None

    def __call__(self, attn: Any, hidden_states: torch.Tensor, encoder_hidden_states: Any = None,
                 attention_mask: Any = None, **_: Any) -> torch.Tensor:
        batch, length, _ = hidden_states.shape
        mask = attn.prepare_attention_mask(attention_mask, length, batch)
        source = hidden_states if encoder_hidden_states is None else encoder_hidden_states
        query, key, value = (attn.head_to_batch_dim(f(x)) for f, x in
                             ((attn.to_q, hidden_states), (attn.to_k, source), (attn.to_v, source)))
        self.probs = attn.get_attention_scores(query, key, mask)
        out = attn.batch_to_head_dim(torch.bmm(self.probs, value))
        return attn.to_out[1](attn.to_out[0](out))


@contextlib.contextmanager
def stored_attention(unet: Any) -> Iterator[_StoredAttention]:
    """The UNet with its mid-block self-attention map kept (and the map's size) while inside."""
    store = _StoredAttention()
    attention = unet.mid_block.attentions[0]
    attn1 = attention.transformer_blocks[0].attn1
    before = attn1.processor

    def size(module: Any, inputs: Any, output: Any) -> None:
        store.map_size = tuple(output[0].shape[-2:])

    attn1.set_processor(store)
    hook = attention.register_forward_hook(size)
    try:
        yield store
    finally:
        hook.remove()
        attn1.set_processor(before)


def blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """A 9-tap Gaussian blur of [B, C, H, W] per channel, edges reflected."""
    half = (KERNEL - 1) / 2
    pdf = torch.exp(-0.5 * (torch.linspace(-half, half, KERNEL) / sigma) ** 2)
    line = (pdf / pdf.sum()).to(x.device, x.dtype)
    kernel = (line[:, None] * line[None, :]).expand(x.shape[1], 1, KERNEL, KERNEL)
    pad = KERNEL // 2
    return F.conv2d(F.pad(x, [pad] * 4, mode="reflect"), kernel, groups=x.shape[1])


def alpha_at(scheduler_config: dict[str, Any], t: Any) -> torch.Tensor:
    """alphas_cumprod at timestep t of the model's training schedule (between two timesteps, from
    the log-sigma interpolated as the sigma samplers place them)."""
    import diffusers

    alphas = diffusers.DDPMScheduler.from_config(
        {k: v for k, v in scheduler_config.items() if not k.startswith("_")}).alphas_cumprod
    step = float(t)
    low = min(int(math.floor(step)), len(alphas) - 1)
    if step == low:
        return alphas[low]
    log_sigmas = (((1 - alphas) / alphas) ** 0.5).log()
    high = min(low + 1, len(alphas) - 1)
    sigma = (log_sigmas[low] + (step - low) * (log_sigmas[high] - log_sigmas[low])).exp()
    return 1 / (1 + sigma ** 2)


def _alpha(model: Any, t: Any) -> torch.Tensor:
    """alphas_cumprod at t: an EDM model's (ModelSamplingContinuousEDM) from its sigma, else the training schedule's."""
    edm = getattr(getattr(model, "sampling_behaviour", None), "alpha_at", None)
    return edm(t) if edm is not None else alpha_at(model.scheduler_config, t)


def degraded_input(x: torch.Tensor, prediction: torch.Tensor, probs: torch.Tensor, map_size: tuple[int, int],
                   alpha: torch.Tensor, prediction_type: str, sigma: float) -> torch.Tensor:
    """The model input with its predicted x0 blurred where the attention map says, noised back with the
    prediction's own noise."""
    alpha = alpha.to(x.device, x.dtype)
    if prediction_type == "v_prediction":
        x0, eps = alpha.sqrt() * x - (1 - alpha).sqrt() * prediction, (1 - alpha).sqrt() * x + alpha.sqrt() * prediction
    else:
        x0, eps = (x - (1 - alpha).sqrt() * prediction) / alpha.sqrt(), prediction
    b, channels, h, w = x0.shape
    mask = probs.reshape(b, -1, *probs.shape[-2:]).mean(1).sum(1) > THRESHOLD
    mask = mask.reshape(b, 1, *map_size).to(x.dtype).expand(b, channels, *map_size)
    mask = F.interpolate(mask, (h, w))
    kept = blur(x0, sigma) * mask + x0 * (1 - mask)
    return alpha.sqrt() * kept + (1 - alpha).sqrt() * eps


def guidance_term(guidance: Any, x: torch.Tensor, t: Any, base: torch.Tensor, store: _StoredAttention) -> torch.Tensor:
    """scale x (base - the prediction on the degraded input): `base` is the negative prompt's prediction
    (the positive's without CFG), `guidance` the step's Guidance, whose one UNet call `store` watched."""
    model, settings = guidance.model, guidance.model.self_attention_guidance
    [(units, embeds, added)] = plain_call(guidance)
    from .conditioning import unet_conditions

    rows = slice(0, guidance.batch)                   # the side `base` is: the call's first unit
    heads = model.unet.mid_block.attentions[0].transformer_blocks[0].attn1.heads
    probs = store.probs[: guidance.batch * heads]
    degraded = degraded_input(x, base, probs, store.map_size, _alpha(model, t), model.prediction_type,
                              settings.blur_sigma)
    extra_channels = guidance.extra_channels(0)       # the negative's (an inpainting, InstructPix2Pix or IC-Light UNet)
    if extra_channels is not None:
        degraded = torch.cat([degraded, extra_channels.to(x.device, x.dtype)], 1)
    extra = None if added is None else {k: v[rows] for k, v in added.items()}
    pred = model.unet(degraded.to(model.dtype), t, encoder_hidden_states=embeds[rows],
                      **unet_conditions(extra)).sample.float()
    return settings.scale * (base - pred)


def plain_call(guidance: Any, node: str = "SelfAttentionGuidance") -> list[tuple[Any, torch.Tensor, Any]]:
    """The step's one UNet call, refused (naming what, and `node`) when the prompts need more than a plain one."""
    groups = guidance.groups
    full = (guidance.frame[0], guidance.frame[1], 0, 0)
    units = groups[0][0] if len(groups) == 1 else []
    sides = [0, 2, 1] if guidance.middle is not None else [0, 1] if guidance.use_cfg else [1]
    plain = units and all(u.box == full and isinstance(u.weight, float) and not u.entry.get("control")
                          and u.entry.get("timestep_range") is None for u in units) \
        and [u.side for u in units] == sides
    if not plain or getattr(guidance.model, "ip_adapters", ()):
        raise NodeError(f"{node} works with one plain prompt per side for now (no area, mask, timestep range, "
                        "combined prompts, ControlNet or IP-Adapter); remove it or simplify the prompts", field="unet")
    return groups
