"""LoRA files: key names, the alpha/rank scale and the delta, in one place for reading and writing.

The pack reads and applies LoRAs (nodes/lora.py, nodes/wrappers.py); the trainer writes them
(nodeforge/training/lora.py). Both go through this module, so a file the trainer writes is read
by the same rules that read files from elsewhere.

- kohya (what artists share): `lora_unet_<module path with _>.lora_down.weight` (rank x in),
  `.lora_up.weight` (out x rank) and `.alpha`; `lora_te_` for the text encoder (`lora_te1_`,
  `lora_te2_` for SDXL's two). LoCon conv layers have a 3x3 down and a 1x1 up. UNet module
  names come in diffusers form or in the original SD (LDM) form, `lora_unet_input_blocks_4_1_proj_in`.
- diffusers/PEFT: `unet.<path>.lora_A.weight` / `.lora_B.weight`, `text_encoder.`,
  `text_encoder_2.`, plain PEFT `base_model.model.<path>`, the older `.lora.down.weight`.
- SD3 (a transformer, not a UNet): `transformer.<path>` (diffusers), `lora_transformer_` (OneTrainer),
  `lora_unet_joint_blocks_...` in the original MMDiT names (kohya, ComfyUI; renamed by the pack's
  nodes/families/sd3_lora.py), `lora_te3_` / `text_encoder_3.` for T5.
- Applying: W' = W + strength * (alpha / rank) * up @ down; without an alpha, alpha = rank.
- LoRA variants' keys (LoHa `hada_*`, LoKr `lokr_*`, DoRA magnitudes, full `diff`) are named here
  too; their arithmetic is the pack's (nodes/lora_variants.py).

No torch at import: names are strings, and the arithmetic uses the tensors' own methods.
"""
from __future__ import annotations

import re
from typing import Any, NamedTuple

UNET_PREFIX = "lora_unet_"
TEXT_PREFIX = "lora_te_"
DOWN, UP, ALPHA = ".lora_down.weight", ".lora_up.weight", ".alpha"

# Model parts a LoRA file patches, as the pack names them, and their PEFT names.
PARTS = {"unet": "unet", "te": "text_encoder", "te2": "text_encoder_2", "te3": "text_encoder_3"}

_SUFFIXES = (  # (suffix, which tensor)
    (DOWN, "down"), (UP, "up"), (".lora_A.weight", "down"), (".lora_B.weight", "up"),
    (".lora.down.weight", "down"), (".lora.up.weight", "up"), (".down.weight", "down"),
    (".up.weight", "up"), (ALPHA, "alpha"),
    # LoRA variants (nodes/lora_variants.py), named alike by LyCORIS/kohya and PEFT
    *((f".{n}", n) for n in ("hada_w1_a", "hada_w1_b", "hada_w2_a", "hada_w2_b", "hada_t1", "hada_t2",
                             "lokr_w1", "lokr_w1_a", "lokr_w1_b", "lokr_w2", "lokr_w2_a", "lokr_w2_b", "lokr_t2",
                             "diff", "diff_b")),
    (".dora_scale", "magnitude"), (".lora_magnitude_vector.weight", "magnitude"),
    (".lora_magnitude_vector", "magnitude"),
)
_PREFIXES = (  # (key prefix, part; "auto": decided by the module name)
    (UNET_PREFIX, "unet"), ("lora_te1_", "te"), ("lora_te2_", "te2"), ("lora_te3_", "te3"), (TEXT_PREFIX, "te"),
    ("unet.", "unet"), ("text_encoder_3.", "te3"), ("text_encoder_2.", "te2"), ("text_encoder.", "te"),
    ("base_model.model.", "auto"),
    # SD3/Flux transformers: diffusers (`transformer.`) and OneTrainer (`lora_transformer_`) names
    ("transformer.", "unet"), ("lora_transformer_", "unet"),
)


class LoraKey(NamedTuple):
    """One key of a LoRA file, read: the model part, the module's name, and which tensor it is."""

    part: str      # "unet", "te" or "te2"
    module: str    # as written in the file (underscored for kohya, dotted for diffusers)
    tensor: str    # "down", "up", "alpha", "magnitude" (DoRA) or a LoHa/LoKr/diff tensor's own name


def read_key(key: str) -> LoraKey | None:
    """What a key of a LoRA file names, or None for keys of no known format."""
    suffix = next(((s, t) for s, t in _SUFFIXES if key.endswith(s)), None)
    prefix = next(((p, part) for p, part in _PREFIXES if key.startswith(p)), None)
    if suffix is None or prefix is None:
        return None
    name = key[len(prefix[0]):-len(suffix[0])]
    # Old diffusers attention processors: `processor.to_q_lora` is to_q, `to_out_lora` is to_out.0.
    name = re.sub(r"\.processor\.(to_(?:q|k|v))_lora$", r".\1", name)
    name = re.sub(r"\.processor\.to_out_lora$", ".to_out_lora", name).replace("to_out_lora", "to_out.0")
    part = prefix[1]
    if part == "auto":
        part = "te" if name.startswith("text_model.") else "unet"
    return LoraKey(part, name, suffix[1])


def kohya_key(prefix: str, module_path: str) -> str:
    """kohya's key stem for a module of the UNet (`UNET_PREFIX`) or text encoder (`TEXT_PREFIX`).

    Text-encoder paths are those of the original CLIPTextModel, which wraps everything in
    `text_model` (transformers 5 dropped that wrapper; the keys keep it)."""
    if prefix == TEXT_PREFIX and not module_path.startswith("text_model."):
        module_path = "text_model." + module_path
    return prefix + underscored(module_path)


def kohya_tensors(prefix: str, module_path: str, down: Any, up: Any, alpha: Any) -> dict[str, Any]:
    """The three kohya entries of one module: down (rank x in), up (out x rank) and alpha."""
    stem = kohya_key(prefix, module_path)
    return {stem + DOWN: down, stem + UP: up, stem + ALPHA: alpha}


def underscored(module_path: str) -> str:
    """A module path as kohya writes it and as lookups compare names ("a.b_c.0" -> "a_b_c_0")."""
    return module_path.replace(".", "_")


def scale(alpha: float | None, rank: int) -> float:
    """The factor on up @ down: alpha / rank (1 when the file gives no alpha)."""
    return 1.0 if alpha is None else float(alpha) / rank


def delta(down: Any, up: Any, shape: tuple[int, ...]) -> Any:
    """up @ down as a weight of `shape`, in float32 (a LoCon conv's 3x3 down and 1x1 up included)."""
    return (up.flatten(1).float() @ down.flatten(1).float()).reshape(shape)


# -- UNet module names in the original Stable Diffusion (LDM) layout --------------------------------
_RESNET = {"norm1": "in_layers.0", "conv1": "in_layers.2", "norm2": "out_layers.0", "conv2": "out_layers.3",
           "time_emb_proj": "emb_layers.1", "conv_shortcut": "skip_connection"}
_TOP = {"time_embedding.linear_1": "time_embed.0", "time_embedding.linear_2": "time_embed.2",
        "conv_in": "input_blocks.0.0", "conv_norm_out": "out.0", "conv_out": "out.2",
        "add_embedding.linear_1": "label_emb.0.0", "add_embedding.linear_2": "label_emb.0.2",
        # SD 2.1 unCLIP's class embedding (diffusers' class_embed_type "projection") has the same LDM name
        "class_embedding.linear_1": "label_emb.0.0", "class_embedding.linear_2": "label_emb.0.2"}
_BLOCK = re.compile(r"(down_blocks|up_blocks|mid_block)\.(?:(\d+)\.)?(resnets|attentions|downsamplers|upsamplers)"
                    r"\.(\d+)\.?(.*)")


def unet_ldm_name(name: str, config: Any) -> str:
    """The LDM name of a diffusers UNet module or parameter name (unchanged if it has none).

    Reads kohya LoRAs written against LDM names, and lets the tests write single-file
    checkpoints. Works for any block count and layers_per_block (`config` is the UNet's).
    """
    for new, old in _TOP.items():
        if name == new or name.startswith(new + "."):
            return old + name[len(new):]
    m = _BLOCK.match(name)
    if not m:
        return name
    where, block, kind, index, rest = m.group(1), int(m.group(2) or 0), m.group(3), int(m.group(4)), m.group(5)
    if kind == "resnets":
        head, tail = rest.split(".", 1) if "." in rest else (rest, "")
        rest = _RESNET.get(head, head) + ("." + tail if tail else "")
    prefix, rest = _ldm_block(where, block, kind, index, rest, config)
    return prefix + ("." + rest if rest else "")


def _ldm_block(where: str, block: int, kind: str, index: int, rest: str, config: Any) -> tuple[str, str]:
    """The LDM block prefix of a diffusers block member (and its rest, renamed where LDM differs)."""
    per_block = config.layers_per_block if isinstance(config.layers_per_block, int) else config.layers_per_block[0]
    if where == "mid_block":
        return f"middle_block.{1 if kind == 'attentions' else 2 * index}", rest
    if where == "down_blocks":
        if kind == "downsamplers":   # downsamplers.0.conv -> input_blocks.N.0.op
            return f"input_blocks.{(block + 1) * (per_block + 1)}.0", rest.replace("conv", "op", 1)
        return f"input_blocks.{1 + block * (per_block + 1) + index}.{0 if kind == 'resnets' else 1}", rest
    if kind == "upsamplers":
        has_attention = "CrossAttn" in config.up_block_types[block] or "Attn" in config.up_block_types[block]
        return f"output_blocks.{block * (per_block + 1) + per_block}.{2 if has_attention else 1}", rest
    return f"output_blocks.{block * (per_block + 1) + index}.{0 if kind == 'resnets' else 1}", rest
