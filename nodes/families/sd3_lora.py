"""SD3 LoRAs in the original MMDiT module names (kohya sd-scripts and ComfyUI files:
`lora_unet_joint_blocks_0_x_block_attn_qkv`, `lora_unet_final_layer_adaLN_modulation_1`) put on
the modules of diffusers' SD3Transformer2DModel, as diffusers' single-file conversion
(convert_sd3_transformer_checkpoint_to_diffusers) maps the weights: a fused qkv splits into
to_q/to_k/to_v (the up matrix's rows by thirds, the same down and alpha, so each delta is that
third of the fused delta), and the adaLN layers whose halves diffusers stores swapped (the last
block's context modulation, the final layer's) get their up rows swapped alike.

LoRAs already in diffusers' names (`transformer.`, PEFT's `base_model.model.`, OneTrainer's
`lora_transformer_`) are left as they are: nodes/lora.py finds their modules directly.
"""
from __future__ import annotations

from typing import Any

import torch

from nodeforge.core.errors import NodeError
from nodeforge.lora_format import underscored

Target = tuple[str, int, int, bool]   # (diffusers module path, chunk index, chunk count, swap halves)


def mmdit_targets(config: Any) -> dict[str, list[Target]]:
    """Underscored MMDiT module name -> the diffusers modules it becomes, for this transformer."""
    table: dict[str, list[Target]] = {}

    def put(original: str, paths: list[str], swap: bool = False) -> None:
        table[underscored(original)] = [(p, i, len(paths), swap) for i, p in enumerate(paths)]

    for original, path in (("x_embedder.proj", "pos_embed.proj"), ("context_embedder", "context_embedder"),
                           ("t_embedder.mlp.0", "time_text_embed.timestep_embedder.linear_1"),
                           ("t_embedder.mlp.2", "time_text_embed.timestep_embedder.linear_2"),
                           ("y_embedder.mlp.0", "time_text_embed.text_embedder.linear_1"),
                           ("y_embedder.mlp.2", "time_text_embed.text_embedder.linear_2"),
                           ("final_layer.linear", "proj_out")):
        put(original, [path])
    put("final_layer.adaLN_modulation.1", ["norm_out.linear"], swap=True)
    dual = set(getattr(config, "dual_attention_layers", ()) or ())
    for i in range(int(config.num_layers)):
        o, b = f"joint_blocks.{i}.", f"transformer_blocks.{i}."
        last = i == int(config.num_layers) - 1
        put(o + "x_block.attn.qkv", [b + "attn.to_q", b + "attn.to_k", b + "attn.to_v"])
        put(o + "context_block.attn.qkv", [b + "attn.add_q_proj", b + "attn.add_k_proj", b + "attn.add_v_proj"])
        put(o + "x_block.attn.proj", [b + "attn.to_out.0"])
        put(o + "x_block.mlp.fc1", [b + "ff.net.0.proj"])
        put(o + "x_block.mlp.fc2", [b + "ff.net.2"])
        put(o + "x_block.adaLN_modulation.1", [b + "norm1.linear"])
        put(o + "context_block.adaLN_modulation.1", [b + "norm1_context.linear"], swap=last)
        if not last:
            put(o + "context_block.attn.proj", [b + "attn.to_add_out"])
            put(o + "context_block.mlp.fc1", [b + "ff_context.net.0.proj"])
            put(o + "context_block.mlp.fc2", [b + "ff_context.net.2"])
        if i in dual:
            put(o + "x_block.attn2.qkv", [b + "attn2.to_q", b + "attn2.to_k", b + "attn2.to_v"])
            put(o + "x_block.attn2.proj", [b + "attn2.to_out.0"])
    return table


def lora_entries(entries: dict[str, dict[str, Any]], transformer: Any, source: str) -> dict[str, dict[str, Any]]:
    """The LoRA's transformer entries with MMDiT-named modules renamed (and split) to diffusers'."""
    table = mmdit_targets(transformer.config)
    out: dict[str, dict[str, Any]] = {}
    for name, entry in entries.items():
        targets = table.get(underscored(name))
        if targets is None:
            out[name] = entry
            continue
        for path, index, count, swap in targets:
            out[path] = entry if count == 1 and not swap else _rows(entry, index, count, swap, name, source)
    return out


def _rows(entry: dict[str, Any], index: int, count: int, swap: bool, name: str, source: str) -> dict[str, Any]:
    """The part of a fused (or half-swapped) layer's entry that one diffusers module gets."""
    rows = {"up": entry.get("up"), "diff": entry.get("diff"), "diff_b": entry.get("diff_b")}
    others = [k for k, v in entry.items() if isinstance(v, torch.Tensor) and k not in ("down", "alpha", *rows)]
    if others or all(v is None for v in rows.values()):
        raise NodeError(f"LoRA {source}: layer {name} is fused in SD3's original layout ({count} diffusers layers) and "
                        f"its {', '.join(others) or 'tensors'} cannot be split; use a plain LoRA (lora_down/lora_up) "
                        "or one saved in diffusers' names", field="lora")
    part = dict(entry)
    for key, value in rows.items():
        if value is None:
            continue
        chunk = value.chunk(count, dim=0)[index]
        if swap:
            first, second = chunk.chunk(2, dim=0)
            chunk = torch.cat([second, first], dim=0)
        part[key] = chunk
    return part
