"""The LoRA variants LoRALoader reads besides plain LoRA/LoCon: LoHa, LoKr, DoRA and full diffs.

Each is a `VariantDelta` for one layer, applied by `wrappers.apply_patches` like a plain LoRA's
(down, up, scale): on the shared weights inside `patched()`, restored exactly afterwards, skipped at
strength 0. The weight changes (tensors as LyCORIS/kohya and PEFT save them, the same in both):
- LoHa: dW = (w1_a @ w1_b) * (w2_a @ w2_b) * scale; with `hada_t1`/`hada_t2` each factor is the CP
  product t x a x b. scale = alpha / rank.
- LoKr: dW = kron(w1, w2) * scale, w1 = lokr_w1 or lokr_w1_a @ lokr_w1_b, w2 likewise (or CP with
  lokr_t2). scale = alpha / rank; a kohya file whose factors are both full has scale 1 (LyCORIS).
- Full diff: dW = diff (and the bias += diff_b).
- DoRA (`dora_scale` kohya, `lora_magnitude_vector` PEFT): W' = m * (W + dW) / ||W + dW||, the norm
  per output channel (or per input column for a kohya scale of that shape); strength s gives
  W + s * (W' - W) (ComfyUI's).
`misfit` checks every factor against the layer from the declared shapes before anything is multiplied
(a hostile LoKr of 100000x1 and 1x100000 factors would make a 40 GB product); LoRALoader refuses a misfit
in one line naming the file and the layer.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch

from nodeforge.core.errors import NodeError
from nodeforge.lora_format import scale


def _cp(t: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """The CP (Tucker) product of a conv factor: [out, in, k, k] from t [r, r, k, k], a [r, out], b [r, in]."""
    return torch.einsum("i j k l, i p, j r -> p r k l", t, a, b)


def _factor(s: dict[str, tuple[int, ...]], a: str, b: str, t: str | None) -> tuple[int, ...]:
    """The shape `a @ b` (or the CP product with `t`) makes, from the factors' shapes; ValueError if none."""
    sa, sb = s[a], s[b]
    if t is not None and t in s:
        st = s[t]
        if len(st) != 4 or len(sa) != 2 or len(sb) != 2 or st[0] != sa[0] or st[1] != sb[0]:
            raise ValueError(f"{t} {st}, {a} {sa} and {b} {sb} do not chain")
        return (sa[1], sb[1], st[2], st[3])
    flat_b = (sb[0], math.prod(sb[1:])) if sb else ()
    flat_a = (sa[0], math.prod(sa[1:])) if sa else ()
    if len(flat_a) != 2 or len(flat_b) != 2 or flat_a[1] != flat_b[0]:
        raise ValueError(f"{a} {sa} and {b} {sb} do not multiply")
    return (flat_a[0], flat_b[1])


@dataclass(frozen=True, eq=False)
class VariantDelta:
    kind: str                                  # "loha", "lokr", "full" or "dora"
    tensors: dict[str, torch.Tensor]
    scale: float = 1.0
    name: str = field(default="", compare=False)

    @property
    def touches_bias(self) -> bool:
        return "diff_b" in self.tensors

    def misfit(self, shape: tuple[int, ...]) -> str | None:
        """Why these factors cannot patch a layer whose weight is `shape`, from the declared shapes
        alone (nothing is multiplied: a hostile LoKr's kron product could be gigabytes), or None."""
        s = {k: tuple(v.shape) for k, v in self.tensors.items()}
        try:
            if self.kind == "loha":
                made = [_factor(s, "hada_w1_a", "hada_w1_b", "hada_t1"), _factor(s, "hada_w2_a", "hada_w2_b", "hada_t2")]
                if any(math.prod(f) != math.prod(shape) for f in made):
                    return f"its factors make {made[0]} and {made[1]}, not the layer's {math.prod(shape)} values"
            elif self.kind == "lokr":
                w1 = s["lokr_w1"] if "lokr_w1" in s else _factor(s, "lokr_w1_a", "lokr_w1_b", None)
                w2 = s["lokr_w2"] if "lokr_w2" in s else _factor(s, "lokr_w2_a", "lokr_w2_b", "lokr_t2")
                if w1[0] * w2[0] != shape[0] or math.prod(w1) * math.prod(w2) != math.prod(shape):
                    return f"the Kronecker product of {w1} and {w2} does not make {tuple(shape)}"
            elif self.kind == "dora":
                made = _factor(s, "up", "down", None)
                if made[0] != shape[0] or math.prod(made) != math.prod(shape):
                    return f"up {s['up']} x down {s['down']} does not make {tuple(shape)}"
                if math.prod(s["magnitude"]) not in (shape[0], shape[1]):
                    return f"its magnitude {s['magnitude']} is neither {shape[0]} outputs nor {shape[1]} inputs"
            elif s["diff"] != (0,) and math.prod(s["diff"]) != math.prod(shape):
                return f"its diff {s['diff']} is not {tuple(shape)}"
        except KeyError as missing:
            return f"it has no {missing.args[0]} tensor"
        except ValueError as reason:
            return str(reason)
        return None

    def diff(self, shape: tuple[int, ...]) -> torch.Tensor:
        """dW before strength, in the layer's weight shape (float32)."""
        t = {k: v.float() for k, v in self.tensors.items()}
        if self.kind == "loha":
            w1 = _cp(t["hada_t1"], t["hada_w1_a"], t["hada_w1_b"]) if "hada_t1" in t else t["hada_w1_a"] @ t["hada_w1_b"]
            w2 = _cp(t["hada_t2"], t["hada_w2_a"], t["hada_w2_b"]) if "hada_t2" in t else t["hada_w2_a"] @ t["hada_w2_b"]
            delta = w1.reshape(-1) * w2.reshape(-1)
        elif self.kind == "lokr":
            w1 = t["lokr_w1"] if "lokr_w1" in t else t["lokr_w1_a"] @ t["lokr_w1_b"]
            if "lokr_w2" in t:
                w2 = t["lokr_w2"]
            elif "lokr_t2" in t:
                w2 = _cp(t["lokr_t2"], t["lokr_w2_a"], t["lokr_w2_b"])
            else:
                w2 = t["lokr_w2_a"] @ t["lokr_w2_b"]
            if len(shape) == 4 and w2.ndim == 2:
                w2 = w2.reshape(w2.shape[0], -1, *shape[2:])
            if w2.ndim == 4:
                w1 = w1[:, :, None, None]
            delta = torch.kron(w1, w2)
        elif self.kind == "full":
            delta = t["diff"] if t["diff"].numel() else torch.zeros(shape)
        else:   # dora's own dW is the plain LoRA's
            delta = t["up"].flatten(1) @ t["down"].flatten(1)
        if delta.numel() != torch.Size(shape).numel():
            raise NodeError(f"{self.kind} module {self.name}: its weights make {delta.numel()} values, but the "
                            f"layer's weight {tuple(shape)} has {torch.Size(shape).numel()}; the file was made for "
                            "another base model or is damaged", field="lora")
        return delta.reshape(shape) * self.scale

    def apply(self, module: torch.nn.Module, strength: float) -> None:
        """Change `module`'s weight (and bias) in place by this delta at `strength`."""
        weight = module.weight
        delta = self.diff(tuple(weight.shape))
        if self.kind == "dora":
            current = weight.float()
            combined = current + delta
            magnitude = self.tensors["magnitude"].float()
            if magnitude.numel() == weight.shape[0]:      # per output channel (PEFT, LyCORIS's default)
                norm = combined.flatten(1).norm(dim=1).reshape(-1, *[1] * (weight.ndim - 1))
                magnitude = magnitude.reshape(norm.shape)
            else:                                          # per input column (LyCORIS wd_on_out off)
                norm = combined.transpose(0, 1).flatten(1).norm(dim=1).reshape(1, -1, *[1] * (weight.ndim - 2))
                magnitude = magnitude.reshape(norm.shape)
            target = combined * (magnitude / (norm + torch.finfo(torch.float32).eps))
            delta = target - current
        weight.add_((strength * delta).to(device=weight.device, dtype=weight.dtype))
        if self.touches_bias and getattr(module, "bias", None) is not None:
            bias = module.bias
            bias.add_((strength * self.tensors["diff_b"].float().reshape(bias.shape)).to(bias.device, bias.dtype))


def make_variant(module_name: str, entry: dict[str, Any], peft_rank: float | None) -> VariantDelta | None:
    """The variant delta of a parsed LoRA entry, or None for a plain LoRA (down/up only)."""
    tensors = {k: v for k, v in entry.items() if isinstance(v, torch.Tensor) and k != "alpha"}
    alpha = float(entry["alpha"]) if "alpha" in entry else None
    if any(k.startswith("hada_") for k in tensors):
        rank = tensors["hada_w1_b"].shape[0] if "hada_w1_b" in tensors else 1   # missing: misfit says so
        return VariantDelta("loha", tensors, scale(alpha, rank), module_name)
    if any(k.startswith("lokr_") for k in tensors):
        factored = [tensors[k] for k in ("lokr_w1_b", "lokr_w2_b") if k in tensors]
        if entry.get("alpha_from_config") and peft_rank:    # PEFT: alpha / r always
            factor = scale(alpha, peft_rank)
        elif alpha is not None and factored:                # LyCORIS: alpha / dim of the factored matrix
            factor = scale(alpha, factored[0].shape[0])
        else:
            factor = 1.0
        return VariantDelta("lokr", tensors, factor, module_name)
    if "diff" in tensors or "diff_b" in tensors:
        if "diff" not in tensors:
            tensors["diff"] = torch.zeros(0)
        return VariantDelta("full", tensors, 1.0, module_name)
    if "magnitude" in tensors and "down" in tensors and "up" in tensors:
        rank = tensors["down"].shape[0]
        return VariantDelta("dora", tensors, scale(alpha, rank), module_name)
    return None
