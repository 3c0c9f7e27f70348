"""CONDITIONING as a list of entries, area prompts, and how UNetDenoise evaluates them.

A CONDITIONING value is a list of entries (ComfyUI's design), each a dict {"embeds", "pooled",
"family"} plus optional "area" (height, width, y, x in image pixels), "area_fraction" (the same in
fractions of the image, ConditioningSetAreaPercentage), "strength", "aesthetic_score"
(ConditioningSetAestheticScore; an SDXL refiner's, else 6.0 / negative 2.5), "timestep_range"
(ConditioningSetTimestepRange: (start, end) percent of the schedule it acts in), "mask",
"mask_strength" and "mask_bounds" (ConditioningSetMask), "unclip" (unCLIPConditioning's images, which
an SDXL UNet reads as its pooled vector: nodes/unclip.py) and SDXL's "size",
"crop" and "target_size" (TextEncoderSDXL; else the image size, no crop, the size). TextEncoder gives one entry; ConditioningCombine concatenates lists;
ConditioningSetArea marks every entry with an area. A lone dict (a pack written before lists) is
read as one entry.

Each step, `Guidance.predict` crops the latent to every entry's area, runs the UNet once per
distinct area size and set of ControlNets (all entries of that size, negative and positive,
batched; each active ControlNet called once on that batch, its residuals summed; each T2I-Adapter
run once per denoise on that batch's images, its features added in the down blocks), and blends the
predictions as ComfyUI does: each entry adds prediction x weight over its area, where the weight is
its strength ramped down over 8 latent pixels at area edges inside the frame, and every pixel is
divided by the sum of the weights that cover it. One full-frame entry per side is therefore
exactly the plain two-prompt batch. An entry with a "mask" (ConditioningSetMask) weighs each latent
pixel by the mask resized to the latent, times its "mask_strength" and strength, with no ramp, over
the whole frame or ("mask_bounds") the mask's bounding box.
"""
from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from typing import Any

import torch

from nodeforge.core.errors import NodeError

from .sag import guidance_term, stored_attention

FEATHER = 8          # latent pixels an area's weight ramps over at edges inside the frame (ComfyUI's)
EMPTY_WEIGHT = 1e-37  # what a pixel no entry covers divides by (ComfyUI's), so it stays 0, not NaN
# SDXL refiner conditioning: aesthetic scores in place of the target size (diffusers' defaults).
AESTHETIC_SCORE, NEGATIVE_AESTHETIC_SCORE = 6.0, 2.5


def entries(conditioning: Any) -> list[dict[str, Any]]:
    """The entries of a CONDITIONING value (a list; a lone dict is one entry)."""
    if isinstance(conditioning, dict):
        return [conditioning]
    return list(conditioning)


# -- the nodes ----------------------------------------------------------------------------------------------
def run_conditioning_set_area(ctx: Any, conditioning: Any, width: int, height: int, x: int, y: int,
                              strength: float) -> dict[str, Any]:
    """Every entry applies to the rectangle (x, y, width, height) in image pixels only."""
    area = (int(height), int(width), int(y), int(x))
    return {"conditioning": [dict(_without(e, "area_fraction"), area=area, strength=float(strength))
                             for e in entries(conditioning)]}


def run_conditioning_set_area_percentage(ctx: Any, conditioning: Any, width: float, height: float, x: float,
                                         y: float, strength: float) -> dict[str, Any]:
    """ConditioningSetArea in fractions of the image (0..1), resolved against the latent when it is
    denoised: ComfyUI's rounding, max(1, round(height x latent height)) and so on."""
    fraction = (float(height), float(width), float(y), float(x))
    return {"conditioning": [dict(_without(e, "area"), area_fraction=fraction, strength=float(strength))
                             for e in entries(conditioning)]}


def _without(entry: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in entry.items() if k != key}


def run_conditioning_set_mask(ctx: Any, conditioning: Any, mask: torch.Tensor, strength: float,
                              set_cond_area: str) -> dict[str, Any]:
    """ComfyUI's ConditioningSetMask: every entry acts through the mask (resized to the latent when
    denoising), weighted mask x strength; "mask bounds" runs the UNet on the mask's bounding box only."""
    if set_cond_area not in ("default", "mask bounds"):
        raise NodeError(f"unknown set_cond_area {set_cond_area!r}; choose 'default' or 'mask bounds'",
                        field="set_cond_area")
    value = mask.float()
    value = value[None] if value.ndim == 2 else value
    return {"conditioning": [dict(_without(_without(e, "area"), "area_fraction"), mask=value,
                                  mask_strength=float(strength), mask_bounds=set_cond_area == "mask bounds")
                             for e in entries(conditioning)]}


def run_conditioning_set_area_strength(ctx: Any, conditioning: Any, strength: float) -> dict[str, Any]:
    """ComfyUI's ConditioningSetAreaStrength: every entry's weight where prompts overlap."""
    return {"conditioning": [dict(e, strength=float(strength)) for e in entries(conditioning)]}


def run_conditioning_set_timestep_range(ctx: Any, conditioning: Any, start: float, end: float) -> dict[str, Any]:
    """ComfyUI's ConditioningSetTimestepRange: the entries act only from `start` to `end` of the
    schedule (0 = pure noise, 1 = clean; the same percent rule as ControlNetApply's)."""
    return {"conditioning": [dict(e, timestep_range=(float(start), float(end))) for e in entries(conditioning)]}


def in_timestep_range(percent_range: tuple[float, float] | None, timestep: float) -> bool:
    """Whether an entry acts at this timestep: (1 - end) x 999 <= t <= (1 - start) x 999, open at 0 and 1."""
    if percent_range is None:
        return True
    start, end = percent_range
    if end <= 0 or start >= end:
        return False
    first = float("inf") if start <= 0 else (1 - start) * 999
    last = float("-inf") if end >= 1 else (1 - end) * 999
    return last <= timestep <= first


def run_conditioning_zero_out(ctx: Any, conditioning: Any) -> dict[str, Any]:
    """Every entry's prompt and pooled vector set to zeros (what SD3/Flux-style negatives and
    some SDXL graphs use in place of an encoded empty prompt); areas and other keys stay."""
    out = []
    for e in entries(conditioning):
        zeroed = dict(e, embeds=torch.zeros_like(e["embeds"]))
        if e.get("pooled") is not None:
            zeroed["pooled"] = torch.zeros_like(e["pooled"])
        out.append(zeroed)
    return {"conditioning": out}


def _first_of(conditioning: Any, field: str) -> dict[str, Any]:
    found = entries(conditioning)
    if not found:
        raise NodeError("this conditioning has no prompt in it", field=field)
    return found[0]   # ComfyUI also reads only the first entry of conditioning_from


def run_conditioning_average(ctx: Any, conditioning_to: Any, conditioning_from: Any,
                             conditioning_to_strength: float) -> dict[str, Any]:
    """ComfyUI's ConditioningAverage: each entry of conditioning_to becomes to x s + from x (1 - s),
    from being the first entry of conditioning_from cut or zero-padded to the same length; the
    pooled vectors (SDXL) mix the same way (an entry without one takes from's)."""
    source = _first_of(conditioning_from, "conditioning_from")
    s = float(conditioning_to_strength)
    out = []
    for e in entries(conditioning_to):
        target = e["embeds"]
        if source["embeds"].shape[-1] != target.shape[-1]:
            raise NodeError(f"the prompts are {target.shape[-1]} and {source['embeds'].shape[-1]} values wide: "
                            "encode both with the same CLIP", field="conditioning_from")
        other = source["embeds"][:, :target.shape[1]].to(target.dtype)
        if other.shape[1] < target.shape[1]:
            other = torch.cat([other, other.new_zeros(1, target.shape[1] - other.shape[1], target.shape[2])], 1)
        mixed = dict(e, embeds=target * s + other * (1.0 - s))
        pooled_from, pooled_to = source.get("pooled"), e.get("pooled", source.get("pooled"))
        if pooled_from is not None and pooled_to is not None:
            mixed["pooled"] = pooled_to * s + pooled_from * (1.0 - s)
        elif pooled_from is not None:
            mixed["pooled"] = pooled_from
        out.append(mixed)
    return {"conditioning": out}


def run_conditioning_concat(ctx: Any, conditioning_to: Any, conditioning_from: Any) -> dict[str, Any]:
    """ComfyUI's ConditioningConcat: the first entry of conditioning_from's tokens appended to each
    entry of conditioning_to (its pooled vector, area and other keys stay)."""
    source = _first_of(conditioning_from, "conditioning_from")
    out = []
    for e in entries(conditioning_to):
        if source["embeds"].shape[-1] != e["embeds"].shape[-1]:
            raise NodeError(f"the prompts are {e['embeds'].shape[-1]} and {source['embeds'].shape[-1]} values "
                            "wide: encode both with the same CLIP", field="conditioning_from")
        out.append(dict(e, embeds=torch.cat([e["embeds"], source["embeds"].to(e["embeds"].dtype)], 1)))
    return {"conditioning": out}


def run_conditioning_set_aesthetic_score(ctx: Any, conditioning: Any, aesthetic_score: float) -> dict[str, Any]:
    """Every entry conditions an SDXL refiner on this aesthetic score (other UNets ignore it)."""
    return {"conditioning": [dict(e, aesthetic_score=float(aesthetic_score)) for e in entries(conditioning)]}


def run_conditioning_combine(ctx: Any, conditioning_1: Any, conditioning_2: Any) -> dict[str, Any]:
    """Both prompts at once: the UNet's predictions for them are averaged (by area weights)."""
    return {"conditioning": entries(conditioning_1) + entries(conditioning_2)}


# -- evaluation ---------------------------------------------------------------------------------------------
@dataclass
class _Unit:
    side: int                           # 0: negative (unconditional), 1: positive
    entry: dict[str, Any]
    box: tuple[int, int, int, int]      # (h, w, y, x) in latent pixels, clipped to the frame
    weight: torch.Tensor | float        # [1, 1, h, w] ramped strength ([B, 1, h, w] for a mask), or the strength of a full frame


def _box(entry: dict[str, Any], factor: int, frame: tuple[int, int], field: str) -> tuple[int, int, int, int]:
    height, width = frame
    fraction = entry.get("area_fraction")
    if fraction is not None:   # ConditioningSetAreaPercentage: ComfyUI's rounding in latent pixels
        fh, fw, fy, fx = fraction
        h, w, y, x = max(1, round(fh * height)), max(1, round(fw * width)), round(fy * height), round(fx * width)
        if y >= height or x >= width:
            raise NodeError(f"an area at x={fx:g}, y={fy:g} (fractions of the image) starts outside it; use "
                            "fractions below 1", field=field)
        return (min(h, height - y), min(w, width - x), y, x)
    if entry.get("area") is None:
        return (height, width, 0, 0)
    h, w, y, x = (int(v) // factor for v in entry["area"])
    if y >= height or x >= width or h <= 0 or w <= 0:
        ph, pw, py, px = entry["area"]
        raise NodeError(f"an area ({pw}x{ph} at x={px}, y={py}) lies outside the {width * factor}x"
                        f"{height * factor} image; move it inside or enlarge the image", field=field)
    return (min(h, height - y), min(w, width - x), y, x)


def _weight(box: tuple[int, int, int, int], frame: tuple[int, int], strength: float) -> torch.Tensor | float:
    """The entry's weight over its area: ComfyUI's linear ramp of FEATHER pixels at inner edges."""
    h, w, y, x = box
    if (h, w) == frame:
        return strength
    weight = torch.full((1, 1, h, w), strength)
    ramp = lambda n: torch.arange(1, n + 1, dtype=torch.float32) / FEATHER  # noqa: E731
    for dim, (size, offset, whole) in enumerate(((h, y, frame[0]), (w, x, frame[1]))):
        n = min(FEATHER, size)
        shape = [1, 1, 1, 1]
        shape[2 + dim] = n
        if offset != 0:
            weight.narrow(2 + dim, 0, n).mul_(ramp(n).reshape(shape))
        if offset + size < whole:
            weight.narrow(2 + dim, size - n, n).mul_(ramp(n).flip(0).reshape(shape))
    return weight


def _mask_unit(entry: dict[str, Any], frame: tuple[int, int], batch: int
               ) -> tuple[tuple[int, int, int, int], torch.Tensor]:
    """A masked entry's box and weight, as ComfyUI: the mask resized (bilinear) to the latent, times
    mask_strength and strength, no feathering; with mask bounds the box is the bounding box of the
    mask's non-zero pixels over the batch, at least 8 latent pixels each way (all zero: an 8x8 corner)."""
    import torch.nn.functional as F

    from .latents import warn_if_stretched

    mask = entry["mask"].float()
    mask = mask.reshape(-1, 1, *mask.shape[-2:])
    warn_if_stretched(mask, frame[0] * 8, frame[1] * 8, "the image being made")
    if tuple(mask.shape[-2:]) != frame:
        mask = F.interpolate(mask, size=frame, mode="bilinear", align_corners=False)
    if mask.shape[0] > batch:
        mask = mask[:batch]
    elif 1 < mask.shape[0] < batch:
        mask = mask.repeat((batch + mask.shape[0] - 1) // mask.shape[0], 1, 1, 1)[:batch]
    box = (frame[0], frame[1], 0, 0)
    if entry.get("mask_bounds"):
        rows, cols = torch.nonzero(mask.abs().amax(0)[0], as_tuple=True)
        if len(rows) == 0:
            box = (min(8, frame[0]), min(8, frame[1]), 0, 0)
        else:
            y, x = int(rows.min()), int(cols.min())
            h, w = max(8, int(rows.max()) - y + 1), max(8, int(cols.max()) - x + 1)
            box = (min(h, frame[0] - y), min(w, frame[1] - x), y, x)
    h, w, y, x = box
    strength = float(entry.get("mask_strength", 1.0)) * float(entry.get("strength", 1.0))
    return box, mask[:, :, y:y + h, x:x + w] * strength


def _pooled(unit: "_Unit") -> torch.Tensor:
    """An SDXL entry's pooled vector: its unCLIP images' (unCLIPConditioning, nodes/unclip.py) where it has
    any, else its prompt's."""
    pooled = unit.entry["pooled"]
    if not unit.entry.get("unclip"):
        return pooled
    from .unclip import unclip_pooled

    return unclip_pooled(unit.entry, pooled.shape[-1], "positive" if unit.side else "negative").to(pooled.dtype)


def unet_conditions(added: dict[str, torch.Tensor] | None) -> dict[str, Any]:
    """A UNet call's keyword arguments for a group's extra inputs (Guidance._inputs): SDXL's added_cond_kwargs, or an
    SD 2.1 unCLIP UNet's class_labels."""
    if added is None or "class_labels" not in added:
        return {"added_cond_kwargs": added}
    return {"added_cond_kwargs": None, "class_labels": added["class_labels"]}


def _repeat_to(embeds: torch.Tensor, length: int) -> torch.Tensor:
    # Prompts of different window counts: repeat each to a common length (as ComfyUI).
    return embeds if embeds.shape[1] == length else embeds.repeat(1, length // embeds.shape[1], 1)


class Guidance:
    """The classifier-free-guided prediction of a UNet for a negative and a positive CONDITIONING."""

    def __init__(self, model: Any, positive: Any, negative: Any, batch: int, frame: tuple[int, int],
                 cfg: float, concat: torch.Tensor | None = None, middle: Any = None, middle_cfg: float = 1.0) -> None:
        self.model, self.batch, self.frame, self.cfg = model, batch, frame, cfg
        self.concat = concat   # an inpainting UNet's extra input channels (inpainting_inputs)
        # DualCFGGuider (nodes/ip2p.py): a middle prompt (side 2) between the negative and the positive
        self.middle, self.middle_cfg = middle, middle_cfg
        self.use_cfg = cfg != 1.0 or middle is not None
        sides = [(0, negative, "negative"), (1, positive, "positive")] if self.use_cfg else [(1, positive, "positive")]
        if middle is not None:
            sides.insert(1, (2, middle, "cond2"))
        units: list[_Unit] = []
        for side, value, field in sides:
            found = entries(value)
            if not found:
                raise NodeError("this conditioning has no prompt in it", field=field)
            for entry in found:
                if entry.get("mask") is not None:   # ConditioningSetMask
                    units.append(_Unit(side, entry, *_mask_unit(entry, frame, batch)))
                    continue
                box = _box(entry, model.vae_factor, frame, field)
                units.append(_Unit(side, entry, box, _weight(box, frame, float(entry.get("strength", 1.0)))))
        self.sdxl = model.unet.config.addition_embed_type == "text_time"
        size = (frame[0] * model.vae_factor, frame[1] * model.vae_factor)
        # One UNet call per area size and set of ControlNets, in the order they first appear
        # (negative first); ControlNetApply gives the negative and positive the same controls.
        self.groups: list[tuple[list[_Unit], torch.Tensor, dict[str, torch.Tensor] | None]] = []
        by_key: dict[tuple, list[_Unit]] = {}
        for unit in units:
            controls = tuple(id(c) for c in unit.entry.get("control", ()))
            key = (unit.box[:2], controls)
            if unit.entry.get("timestep_range") is not None:   # ConditioningSetTimestepRange: its own call
                key += (tuple(unit.entry["timestep_range"]),)
            by_key.setdefault(key, []).append(unit)
        for group in by_key.values():
            self.groups.append((group, *self._inputs(group, size)))
        self._ip_tokens: dict[tuple, list[torch.Tensor]] = {}   # IP-Adapter tokens per call's sides (ipadapter.py)
        self._hints: dict[int, torch.Tensor] = {}   # id(control) -> its image at the frame's size
        self._features: dict[tuple, list[torch.Tensor]] = {}   # (id(adapter control), boxes) -> its features
        self.cads_generator: torch.Generator | None = None   # CADS's noise, seeded once per run (nodes/cads.py)
        from .ip2p import image_inputs

        self.images = image_inputs(model, units, batch, frame) if concat is None else None   # InstructPix2Pix UNets

    def _inputs(self, group: list[_Unit], size: tuple[int, int]) -> tuple[torch.Tensor, dict | None]:
        model, batch = self.model, self.batch
        width = getattr(model.unet.config, "cross_attention_dim", None)
        for u in group:
            got = u.entry["embeds"].shape[-1]
            if isinstance(width, int) and got != width:
                raise NodeError(f"this prompt was encoded {got} values wide but the UNet takes {width}: encode it "
                                "with the CLIP of the checkpoint this UNet comes from (an SDXL refiner's prompts "
                                "with the refiner's CLIP, the base's with the base's)",
                                field="positive" if u.side else "negative")
        length = math.lcm(*(u.entry["embeds"].shape[1] for u in group))
        embeds = torch.cat([_repeat_to(u.entry["embeds"], length) for u in group])
        embeds = embeds.repeat_interleave(batch, dim=0).to(model.device, model.dtype)
        if not self.sdxl:
            from .unclip import class_labels   # an SD 2.1 unCLIP UNet's image embeddings; None for others

            labels = class_labels(model, group)
            return embeds, None if labels is None else {
                "class_labels": labels.repeat_interleave(batch, dim=0).to(model.device, model.dtype)}
        if any(u.entry.get("pooled") is None for u in group):
            raise NodeError("this is an SDXL model: connect prompts encoded with its own CLIP",
                            field="positive" if any(u.side for u in group if u.entry.get("pooled") is None)
                            else "negative")
        pooled = torch.cat([_pooled(u) for u in group])
        time_ids = torch.cat([time_ids_for(model, pooled.shape[-1], size, u) for u in group])
        return embeds, {"text_embeds": pooled.repeat_interleave(batch, dim=0).to(model.device, model.dtype),
                        "time_ids": time_ids.repeat_interleave(batch, dim=0).to(model.device, model.dtype)}

    def extra_channels(self, index: int) -> torch.Tensor | None:
        """What a UNet taking more than the latent gets after it for unit `index` of the one plain call (an
        inpainting UNet's mask and masked latent, an InstructPix2Pix or IC-Light UNet's image latents); None for others."""
        if self.concat is not None:
            return self.concat
        return None if self.images is None else self.images[id(self.groups[0][0][index])]

    def unet_calls_per_step(self) -> int:
        return len(self.groups)

    def predict(self, x: torch.Tensor, t: Any) -> torch.Tensor:
        """The guided prediction for scaled latents `x` [B, C, H, W] at timestep `t` (float32)."""
        model = self.model
        sums = [torch.zeros(x.shape, device=x.device) for _ in range(3)]
        # per batch item: a mask (ConditioningSetMask) may weigh each item differently
        weights = [torch.full((x.shape[0], 1, *x.shape[2:]), EMPTY_WEIGHT, device=x.device) for _ in range(3)]
        sag = getattr(model, "self_attention_guidance", None)    # SelfAttentionGuidance (nodes/sag.py)
        with contextlib.ExitStack() as stack:
            store = stack.enter_context(stored_attention(model.unet)) if sag is not None else None
            self._add_calls(x, t, sums, weights)
        cond = sums[1] / weights[1]
        uncond = sums[0] / weights[0] if self.use_cfg else None
        positive, cfg = cond, self.cfg
        if self.middle is not None:   # DualCFGGuider: CFG of the middle over the negative, then towards the positive
            cond, cfg = sums[2] / weights[2], self.middle_cfg
        guided = cond if uncond is None else uncond + cfg * (cond - uncond)
        if sag is not None:
            guided = guided + guidance_term(self, x, t, cond if uncond is None else uncond, store)
        multiplier = getattr(model, "cfg_rescale", 0.0)   # RescaleCFG (nodes/cfg_rescale.py)
        if multiplier and uncond is not None:
            from .cfg_rescale import rescaled

            guided = rescaled(guided, cond, multiplier)
        if getattr(model, "perturbed_attention", None) is not None:   # after CFG (nodes/pag.py)
            from .pag import guidance_term as perturbed_term

            guided = guided + perturbed_term(self, x, t, cond)
        if self.middle is not None:
            guided = guided + self.cfg * (positive - cond)
        return guided

    def _add_calls(self, x: torch.Tensor, t: Any, sums: list[torch.Tensor], weights: list[torch.Tensor]) -> None:
        """Each group's UNet call on its crops, its predictions added into `sums` by side, weighed."""
        model = self.model
        for group, embeds, added in self.groups:
            if not in_timestep_range(group[0].entry.get("timestep_range"), float(t)):
                continue
            boxes = [u.box for u in group]
            crops = torch.cat([x[:, :, y:y + h, xx:xx + w] for h, w, y, xx in boxes])
            residuals = self._control_residuals(group, crops, t, embeds, added)
            inputs = crops
            if self.concat is not None:   # after the scheduler's input scaling, as diffusers' inpaint pipeline
                extra = self.concat.to(x.device, x.dtype)
                inputs = torch.cat([crops, torch.cat([extra[:, :, y:y + h, xx:xx + w] for h, w, y, xx in boxes])], 1)
            elif self.images is not None:   # an InstructPix2Pix or IC-Light UNet: each entry's image latents (nodes/ip2p.py)
                inputs = torch.cat([crops, torch.cat([self.images[id(u)][:, :, y:y + h, xx:xx + w].to(x.device, x.dtype)
                                                      for u, (h, w, y, xx) in zip(group, boxes)])], 1)
            with self._cads(group, embeds, t) as call_embeds:     # CADS (nodes/cads.py): noised prompts
                pred = model.unet(inputs.to(model.dtype), t, encoder_hidden_states=call_embeds, **unet_conditions(added),
                                  **residuals, **self._ip_arguments(group, t)).sample.float()
            for unit, part in zip(group, pred.split(self.batch)):
                h, w, y, xx = unit.box
                weight = unit.weight if isinstance(unit.weight, float) else unit.weight.to(x.device)
                sums[unit.side][:, :, y:y + h, xx:xx + w] += part * weight
                weights[unit.side][:, :, y:y + h, xx:xx + w] += weight


    def _cads(self, group: list[_Unit], embeds: torch.Tensor, t: Any) -> Any:
        if getattr(self.model, "cads", None) is None:
            return contextlib.nullcontext(embeds)
        from .cads import conditioning_noise

        return conditioning_noise(self, [u.side for u in group], embeds, t)

    def _ip_arguments(self, group: list[_Unit], t: Any) -> dict[str, Any]:
        """The IP-Adapters' image tokens for this call's batch (nodes/ipadapter.py); none without any."""
        applied = getattr(self.model, "ip_adapters", ())
        if not applied:
            return {}
        from .ipadapter import call_arguments

        return call_arguments(applied, [u.side for u in group], self.batch, float(t), self._ip_tokens)

    def _control_residuals(self, group: list[_Unit], x: torch.Tensor, t: Any, embeds: torch.Tensor,
                           added: dict[str, torch.Tensor] | None) -> dict[str, Any]:
        """The summed residuals of the group's active ControlNets (one call each on the whole
        batch) and the summed features of its active T2I-Adapters, as UNet keyword arguments;
        none when no control acts at this step."""
        controls = group[0].entry.get("control", ())
        timestep = float(t)
        down: list[torch.Tensor] | None = None
        mid: torch.Tensor | None = None
        intrablock: list[torch.Tensor] | None = None
        for index, control in enumerate(controls):
            if not control.active(timestep):
                continue
            net = control.controlnet
            if net.flow:
                raise NodeError(f"ControlNet {net.name} is {net.article} {net.label} ControlNet; it steers {net.label} models "
                                "only (pick a ControlNet made for this model)", field="positive")
            if net.is_adapter:
                features = self._adapter_features(control, group)
                intrablock = features if intrablock is None else [a + b for a, b in zip(intrablock, features)]
                continue
            hints = torch.cat([self._hint(control, unit) for unit in group])
            cast = {k: v.to(net.device, net.dtype) for k, v in added.items()} if added else None
            d, m = net.model(x.to(net.device, net.dtype), t, encoder_hidden_states=embeds.to(net.device, net.dtype),
                             controlnet_cond=hints.to(net.device, net.dtype), conditioning_scale=control.strength,
                             added_cond_kwargs=cast, return_dict=False)
            if down is None:
                down, mid = list(d), m
            else:
                down, mid = [a + b for a, b in zip(down, d)], mid + m
        device, dtype = self.model.device, self.model.dtype
        residuals: dict[str, Any] = {}
        if down is not None:
            residuals.update(down_block_additional_residuals=[r.to(device, dtype) for r in down],
                             mid_block_additional_residual=mid.to(device, dtype))
        if intrablock is not None:   # a new list each call: the UNet pops from it
            residuals["down_intrablock_additional_residuals"] = [f.to(device, dtype) for f in intrablock]
        return residuals

    def _adapter_features(self, control: Any, group: list[_Unit]) -> list[torch.Tensor]:
        """A T2I-Adapter's features for a group's batch, times its strength: computed on the first
        step it acts in and kept for the rest of the denoise (they depend on the image only)."""
        key = (id(control), tuple(u.box for u in group))
        if key not in self._features:
            hints = torch.cat([self._hint(control, unit) for unit in group])
            self._features[key] = control.controlnet.features(hints, control.strength)
        return self._features[key]

    def _hint(self, control: Any, unit: _Unit) -> torch.Tensor:
        """The control image over a unit's area, at the ControlNet's resolution (prepared once)."""
        factor = control.controlnet.hint_factor
        if id(control) not in self._hints:
            self._hints[id(control)] = control.hint(self.batch, self.frame[0] * factor, self.frame[1] * factor)
        h, w, y, x = unit.box
        return self._hints[id(control)][:, :, y * factor:(y + h) * factor, x * factor:(x + w) * factor]


def inpainting_inputs(original: torch.Tensor | None, mask: torch.Tensor | None,
                      shape: tuple[int, int, int, int]) -> torch.Tensor:
    """What an inpainting UNet (9 input channels) takes after the latent: the mask (1 = repaint) and
    the masked image's latent. As ComfyUI: with a noise mask, the input latent itself is the masked
    image (VAEEncodeForInpaint greys the masked pixels before encoding); without one, the whole
    image is to be painted: a mask of ones and an empty (zero) latent."""
    batch, _, height, width = shape
    if mask is None or original is None:
        return torch.cat([torch.ones(batch, 1, height, width), torch.zeros(shape)], 1)
    return torch.cat([mask[:, :1].float().cpu(), original.float().cpu()], 1)


def time_ids_for(model: Any, pooled_dim: int, size: tuple[int, int], unit: _Unit) -> torch.Tensor:
    """SDXL's micro-conditioning: (size, crop, target size) for a base, (size, crop, aesthetic
    score) for a refiner, told apart by how many ids the UNet's add-embedding takes. An entry's
    "size" and "crop" ((height, width), (top, left) in pixels; TextEncoderSDXL, TextEncoderSDXLRefiner)
    override the image size and no crop; its "target_size" defaults to its size (ComfyUI's)."""
    config = model.unet.config
    entry = unit.entry
    height, width = entry.get("size") or size
    crop_top, crop_left = entry.get("crop") or (0, 0)
    n_ids = (config.projection_class_embeddings_input_dim - pooled_dim) // config.addition_time_embed_dim
    if n_ids == 5:
        default = AESTHETIC_SCORE if unit.side else NEGATIVE_AESTHETIC_SCORE
        return torch.tensor([[height, width, crop_top, crop_left, float(entry.get("aesthetic_score", default))]],
                            dtype=torch.float32)
    if n_ids != 6:
        raise NodeError(f"this UNet takes {n_ids} micro-conditioning ids (SDXL base takes 6, refiner 5); "
                        "its text encoder does not match it", field="unet")
    target_height, target_width = entry.get("target_size") or (height, width)
    return torch.tensor([[height, width, crop_top, crop_left, target_height, target_width]], dtype=torch.float32)
