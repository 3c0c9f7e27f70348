"""Names of UNet modules in the original Stable Diffusion (LDM) layout, from diffusers names.

Used to read kohya LoRAs written against LDM names (`lora_unet_input_blocks_4_1_proj_in`), and by
the tests to write single-file checkpoints. Works for any block count and layers_per_block.
"""
from __future__ import annotations

import re
from typing import Any

_RESNET = {"norm1": "in_layers.0", "conv1": "in_layers.2", "norm2": "out_layers.0", "conv2": "out_layers.3",
           "time_emb_proj": "emb_layers.1", "conv_shortcut": "skip_connection"}
_TOP = {"time_embedding.linear_1": "time_embed.0", "time_embedding.linear_2": "time_embed.2",
        "conv_in": "input_blocks.0.0", "conv_norm_out": "out.0", "conv_out": "out.2",
        "add_embedding.linear_1": "label_emb.0.0", "add_embedding.linear_2": "label_emb.0.2"}


def unet_ldm_name(name: str, config: Any) -> str:
    """The LDM name of a diffusers UNet module or parameter name (unchanged if it has none)."""
    per_block = config.layers_per_block if isinstance(config.layers_per_block, int) else config.layers_per_block[0]
    for new, old in _TOP.items():
        if name == new or name.startswith(new + "."):
            return old + name[len(new):]
    m = re.match(r"(down_blocks|up_blocks|mid_block)\.(?:(\d+)\.)?(resnets|attentions|downsamplers|upsamplers)\.(\d+)\.?(.*)", name)
    if not m:
        return name
    where, block, kind, index, rest = m.group(1), int(m.group(2) or 0), m.group(3), int(m.group(4)), m.group(5)
    if kind == "resnets":
        head, tail = rest.split(".", 1) if "." in rest else (rest, "")
        rest = _RESNET.get(head, head) + ("." + tail if tail else "")
    if where == "mid_block":
        prefix = f"middle_block.{1 if kind == 'attentions' else 2 * index}"
    elif where == "down_blocks":
        if kind == "downsamplers":   # downsamplers.0.conv -> input_blocks.N.0.op
            prefix = f"input_blocks.{(block + 1) * (per_block + 1)}.0"
            rest = rest.replace("conv", "op", 1)
        else:
            prefix = f"input_blocks.{1 + block * (per_block + 1) + index}.{0 if kind == 'resnets' else 1}"
    else:
        if kind == "upsamplers":
            has_attention = "CrossAttn" in config.up_block_types[block] or "Attn" in config.up_block_types[block]
            prefix = f"output_blocks.{block * (per_block + 1) + per_block}.{2 if has_attention else 1}"
        else:
            prefix = f"output_blocks.{block * (per_block + 1) + index}.{0 if kind == 'resnets' else 1}"
    return prefix + ("." + rest if rest else "")
