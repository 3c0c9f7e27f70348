"""Tiny random SD3 models, built as diffusers' own tests build them (tests/pipelines/
stable_diffusion_3/test_pipeline_stable_diffusion_3.py, get_dummy_components) but offline: the CLIP
tokenizers from tiny_models.make_tokenizer, a tiny T5 Unigram tokenizer built here, 16 latent
channels as the real SD3 VAE, and CLIPs 16 wide so that CLIP-L + CLIP-G fill the transformer's
32-wide prompt as 768 + 1280 fill 4096 less (diffusers' dummy cuts CLIP-G off). Written as a StableDiffusion3Pipeline folder (with or without T5)
and as an original-layout single file (the inverse of diffusers' SD3 single-file conversion).
"""
from __future__ import annotations

import shutil
import string
from pathlib import Path

import torch

import tiny_models as tm


def make_t5_tokenizer():
    from transformers import T5Tokenizer

    pieces = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("\u2581", -2.0)]
    pieces += [("\u2581" + w, -3.0 - i * 0.01) for i, w in enumerate(tm.WORDS)]
    pieces += [(c, -6.0) for c in string.ascii_lowercase + string.digits + "!(),.:"]
    return T5Tokenizer(vocab=pieces, extra_ids=0)


def make_sd3_components(seed: int = 0, *, t5: bool = True, shift: float = 3.0) -> dict:
    from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, SD3Transformer2DModel
    from transformers import CLIPTextConfig, CLIPTextModelWithProjection, T5Config, T5EncoderModel

    torch.manual_seed(seed)
    transformer = SD3Transformer2DModel(sample_size=32, patch_size=1, in_channels=16, num_layers=2,
                                        attention_head_dim=8, num_attention_heads=4, caption_projection_dim=32,
                                        joint_attention_dim=32, pooled_projection_dim=64, out_channels=16)
    tok, tok2 = tm.make_tokenizer(), tm.make_tokenizer()
    tok2.pad_token = "!"   # SD3's CLIP-G tokenizer pads with "!" (id 0 in OpenAI's vocabulary), CLIP-L with EOS
    clip = dict(bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
                hidden_size=16, intermediate_size=37, num_attention_heads=2, num_hidden_layers=5, vocab_size=len(tok),
                hidden_act="gelu", projection_dim=32, max_position_embeddings=77)
    torch.manual_seed(seed)
    te = CLIPTextModelWithProjection(CLIPTextConfig(**clip))
    torch.manual_seed(seed + 1)
    te2 = CLIPTextModelWithProjection(CLIPTextConfig(**clip))
    for encoder in (te, te2):   # trained CLIPs have non-zero layer-norm biases; a fresh one has none
        for module in encoder.modules():
            if isinstance(module, torch.nn.LayerNorm):
                torch.nn.init.normal_(module.bias, 0.0, 0.2)
    tok3 = make_t5_tokenizer() if t5 else None
    te3 = T5EncoderModel(T5Config(vocab_size=len(tok3), d_model=32, d_kv=8, d_ff=37, num_layers=2, num_heads=4,
                                  relative_attention_num_buckets=8)) if t5 else None
    torch.manual_seed(seed)
    vae = AutoencoderKL(sample_size=32, in_channels=3, out_channels=3, block_out_channels=(8, 8), layers_per_block=1,
                        latent_channels=16, norm_num_groups=1, use_quant_conv=False, use_post_quant_conv=False,
                        shift_factor=0.0609, scaling_factor=1.5035,
                        down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2)
    return dict(transformer=transformer, vae=vae, text_encoder=te, tokenizer=tok, text_encoder_2=te2,
                tokenizer_2=tok2, text_encoder_3=te3, tokenizer_3=tok3,
                scheduler=FlowMatchEulerDiscreteScheduler(shift=shift))


def save_sd3_folder(parts: dict, folder: Path) -> Path:
    from diffusers import StableDiffusion3Pipeline

    StableDiffusion3Pipeline(**parts).save_pretrained(str(folder))
    return folder


def _swap_halves(weight: torch.Tensor) -> torch.Tensor:
    first, second = weight.chunk(2, dim=0)
    return torch.cat([second, first], dim=0)


def original_transformer_state(transformer) -> dict[str, torch.Tensor]:
    """The transformer in SD3's original key layout (inverse of convert_sd3_transformer_checkpoint_to_diffusers)."""
    sd = {k: v.detach().clone() for k, v in transformer.state_dict().items()}
    out = {"pos_embed": sd["pos_embed.pos_embed"], "x_embedder.proj.weight": sd["pos_embed.proj.weight"],
           "x_embedder.proj.bias": sd["pos_embed.proj.bias"],
           "final_layer.linear.weight": sd["proj_out.weight"], "final_layer.linear.bias": sd["proj_out.bias"],
           "final_layer.adaLN_modulation.1.weight": _swap_halves(sd["norm_out.linear.weight"]),
           "final_layer.adaLN_modulation.1.bias": _swap_halves(sd["norm_out.linear.bias"])}
    for ours, theirs in (("t_embedder.mlp.0", "time_text_embed.timestep_embedder.linear_1"),
                         ("t_embedder.mlp.2", "time_text_embed.timestep_embedder.linear_2"),
                         ("y_embedder.mlp.0", "time_text_embed.text_embedder.linear_1"),
                         ("y_embedder.mlp.2", "time_text_embed.text_embedder.linear_2"),
                         ("context_embedder", "context_embedder")):
        for p in ("weight", "bias"):
            out[f"{ours}.{p}"] = sd[f"{theirs}.{p}"]
    layers = transformer.config.num_layers
    for i in range(layers):
        b, o = f"transformer_blocks.{i}.", f"joint_blocks.{i}."
        last = i == layers - 1
        for p in ("weight", "bias"):
            out[f"{o}x_block.attn.qkv.{p}"] = torch.cat([sd[f"{b}attn.to_{x}.{p}"] for x in "qkv"])
            out[f"{o}context_block.attn.qkv.{p}"] = torch.cat([sd[f"{b}attn.add_{x}_proj.{p}"] for x in "qkv"])
            out[f"{o}x_block.attn.proj.{p}"] = sd[f"{b}attn.to_out.0.{p}"]
            out[f"{o}x_block.adaLN_modulation.1.{p}"] = sd[f"{b}norm1.linear.{p}"]
            context = sd[f"{b}norm1_context.linear.{p}"]
            out[f"{o}context_block.adaLN_modulation.1.{p}"] = _swap_halves(context) if last else context
            out[f"{o}x_block.mlp.fc1.{p}"] = sd[f"{b}ff.net.0.proj.{p}"]
            out[f"{o}x_block.mlp.fc2.{p}"] = sd[f"{b}ff.net.2.{p}"]
            if not last:
                out[f"{o}context_block.attn.proj.{p}"] = sd[f"{b}attn.to_add_out.{p}"]
                out[f"{o}context_block.mlp.fc1.{p}"] = sd[f"{b}ff_context.net.0.proj.{p}"]
                out[f"{o}context_block.mlp.fc2.{p}"] = sd[f"{b}ff_context.net.2.{p}"]
    return out


def save_sd3_single_file(parts: dict, folder: Path, path: Path, *, clips: bool = True, vae: bool = True) -> Path:
    """`path` in SD3's original layout (model.diffusion_model., first_stage_model., text_encoders.*) plus
    `<stem>.config/` (configs and tokenizers from the diffusers `folder`, no weights)."""
    from safetensors.torch import save_file

    state = {"model.diffusion_model." + k: v for k, v in original_transformer_state(parts["transformer"]).items()}
    if vae:
        state.update(tm.vae_ldm_state(parts["vae"]))
    if clips:
        for name, part in (("clip_l", "text_encoder"), ("clip_g", "text_encoder_2")):
            state.update({f"text_encoders.{name}.transformer.{k}": v for k, v in tm.hf_clip_state(parts[part]).items()})
    if parts.get("text_encoder_3") is not None:
        state.update({f"text_encoders.t5xxl.transformer.{k}": v.detach().clone()
                      for k, v in parts["text_encoder_3"].state_dict().items()})
    save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    shutil.copytree(folder, path.with_name(path.stem + ".config"),
                    ignore=shutil.ignore_patterns("*.safetensors", "*.bin"))
    return path


# -- LoRAs ---------------------------------------------------------------------------------------------------
LORA_TARGETS = ("attn.to_q", "attn.to_k", "attn.to_v", "attn.to_out.0", "attn.add_q_proj", "attn.add_k_proj",
                "attn.add_v_proj", "attn.to_add_out", "ff.net.0.proj", "ff.net.2", "ff_context.net.0.proj",
                "ff_context.net.2", "norm1.linear", "norm1_context.linear", "norm_out.linear", "proj_out",
                "context_embedder", "time_text_embed.text_embedder.linear_1")
CLIP_TARGETS = ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.out_proj")


def _lora_pair(module, rank: int, gen) -> tuple[torch.Tensor, torch.Tensor]:
    out_f, in_f = module.weight.shape
    return torch.randn(rank, in_f, generator=gen) * 0.3, torch.randn(out_f, rank, generator=gen) * 0.3


def diffusers_sd3_lora(parts: dict, rank: int = 2, seed: int = 0, clips: bool = True) -> dict[str, torch.Tensor]:
    """A random LoRA in diffusers' SD3 layout (transformer., text_encoder., text_encoder_2.; lora_A/lora_B)."""
    gen = torch.Generator().manual_seed(seed)
    state = {}
    roots = [("transformer", parts["transformer"], LORA_TARGETS)]
    if clips:
        roots += [("text_encoder", parts["text_encoder"], CLIP_TARGETS),
                  ("text_encoder_2", parts["text_encoder_2"], CLIP_TARGETS)]
    for prefix, root, targets in roots:
        for name, module in root.named_modules():
            if isinstance(module, torch.nn.Linear) and name.endswith(targets):
                down, up = _lora_pair(module, rank, gen)
                state[f"{prefix}.{name}.lora_A.weight"], state[f"{prefix}.{name}.lora_B.weight"] = down, up
    return state


# diffusers module (in transformer_blocks.i / at the top) -> the MMDiT original (kohya, ComfyUI) name
_BLOCK_NAMES = {"attn.to_out.0": "x_block.attn.proj", "attn.to_add_out": "context_block.attn.proj",
                "ff.net.0.proj": "x_block.mlp.fc1", "ff.net.2": "x_block.mlp.fc2",
                "ff_context.net.0.proj": "context_block.mlp.fc1", "ff_context.net.2": "context_block.mlp.fc2",
                "norm1.linear": "x_block.adaLN_modulation.1", "norm1_context.linear": "context_block.adaLN_modulation.1"}
_TOP_NAMES = {"norm_out.linear": "final_layer.adaLN_modulation.1", "proj_out": "final_layer.linear",
              "context_embedder": "context_embedder", "time_text_embed.text_embedder.linear_1": "y_embedder.mlp.0"}
_FUSED = {"attn.to_": "x_block.attn.qkv", "attn.add_": "context_block.attn.qkv"}


def kohya_sd3_lora(diffusers_state: dict[str, torch.Tensor], layers: int) -> dict[str, torch.Tensor]:
    """The same LoRA in kohya's MMDiT names (`lora_unet_joint_blocks_0_x_block_attn_qkv`, `lora_te1_`):
    q/k/v fused into one qkv LoRA of rank 3r (down stacked, up block-diagonal, alpha 3r), the
    adaLN layers diffusers stores half-swapped swapped back; the same deltas exactly."""
    def pair(name):
        return diffusers_state[f"{name}.lora_A.weight"], diffusers_state[f"{name}.lora_B.weight"]

    out = {}

    def put(original, down, up, alpha):
        stem = "lora_unet_" + original.replace(".", "_")
        out.update({stem + ".lora_down.weight": down, stem + ".lora_up.weight": up, stem + ".alpha": torch.tensor(alpha)})

    for i in range(layers):
        b = f"transformer.transformer_blocks.{i}."
        for start, original in _FUSED.items():
            names = [b + start + s for s in (("q", "k", "v") if start == "attn.to_" else ("q_proj", "k_proj", "v_proj"))]
            if f"{names[0]}.lora_A.weight" in diffusers_state:
                downs, ups = zip(*(pair(n) for n in names))
                put(f"joint_blocks.{i}.{original}", torch.cat(downs), torch.block_diag(*ups), float(3 * downs[0].shape[0]))
        for ours, original in _BLOCK_NAMES.items():
            if f"{b}{ours}.lora_A.weight" in diffusers_state:
                down, up = pair(b + ours)
                swap = ours == "norm1_context.linear" and i == layers - 1
                put(f"joint_blocks.{i}.{original}", down, _swap_halves(up) if swap else up, float(down.shape[0]))
    for ours, original in _TOP_NAMES.items():
        down, up = pair("transformer." + ours)
        put(original, down, _swap_halves(up) if ours == "norm_out.linear" else up, float(down.shape[0]))
    for key, value in diffusers_state.items():
        for prefix, kohya in (("text_encoder.", "lora_te1_"), ("text_encoder_2.", "lora_te2_")):
            if key.startswith(prefix) and key.endswith(".lora_A.weight"):
                stem = kohya + key[len(prefix):-len(".lora_A.weight")].replace(".", "_")
                up = diffusers_state[key.replace("lora_A", "lora_B")]
                out.update({stem + ".lora_down.weight": value, stem + ".lora_up.weight": up,
                            stem + ".alpha": torch.tensor(float(value.shape[0]))})
    return out
