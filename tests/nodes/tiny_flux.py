"""Tiny random Flux models, built as diffusers' own tests build them (tests/pipelines/flux/
test_pipeline_flux.py, get_dummy_components) but offline and shaped like the real ones: 16 latent
channels packed to 64, CLIP-L from tiny_models.make_tokenizer (its pooled output 32 wide), a tiny T5
with the Unigram tokenizer of tiny_sd3, the Flux VAE's scaling and shift, and the real scheduler
config (dynamic shifting from 0.5 to 1.15). Written as a FluxPipeline folder; the BFL single-file
layout (the inverse of diffusers' conversion) is in `bfl_transformer_state`.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import torch

import tiny_models as tm
import tiny_sd3 as ts

FLUX_SCHEDULER = dict(use_dynamic_shifting=True, base_shift=0.5, max_shift=1.15, base_image_seq_len=256,
                      max_image_seq_len=4096, shift=3.0)


def make_flux_components(seed: int = 0, *, guidance: bool = True) -> dict:
    from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, FluxTransformer2DModel
    from transformers import CLIPTextConfig, CLIPTextModel, T5Config, T5EncoderModel

    torch.manual_seed(seed)
    transformer = FluxTransformer2DModel(patch_size=1, in_channels=64, num_layers=1, num_single_layers=1,
                                         attention_head_dim=16, num_attention_heads=2, joint_attention_dim=32,
                                         pooled_projection_dim=32, axes_dims_rope=[4, 4, 8], guidance_embeds=guidance)
    tok = tm.make_tokenizer()
    torch.manual_seed(seed)
    te = CLIPTextModel(CLIPTextConfig(bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                                      pad_token_id=tok.pad_token_id, hidden_size=32, intermediate_size=37,
                                      num_attention_heads=4, num_hidden_layers=5, vocab_size=len(tok),
                                      hidden_act="gelu", projection_dim=32, max_position_embeddings=77))
    for module in te.modules():   # trained CLIPs have non-zero layer-norm biases; a fresh one has none
        if isinstance(module, torch.nn.LayerNorm):
            torch.nn.init.normal_(module.bias, 0.0, 0.2)
    tok2 = ts.make_t5_tokenizer()
    torch.manual_seed(seed)
    te2 = T5EncoderModel(T5Config(vocab_size=len(tok2), d_model=32, d_kv=8, d_ff=37, num_layers=2, num_heads=4,
                                  relative_attention_num_buckets=8))
    torch.manual_seed(seed)
    vae = AutoencoderKL(sample_size=32, in_channels=3, out_channels=3, block_out_channels=(8, 8), layers_per_block=1,
                        latent_channels=16, norm_num_groups=1, use_quant_conv=False, use_post_quant_conv=False,
                        shift_factor=0.1159, scaling_factor=0.3611,
                        down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2)
    sched = FlowMatchEulerDiscreteScheduler(**FLUX_SCHEDULER) if guidance else FlowMatchEulerDiscreteScheduler()
    return dict(transformer=transformer, vae=vae, text_encoder=te, tokenizer=tok, text_encoder_2=te2,
                tokenizer_2=tok2, scheduler=sched)


def save_flux_folder(parts: dict, folder: Path) -> Path:
    from diffusers import FluxPipeline

    FluxPipeline(**parts).save_pretrained(str(folder))
    return folder


def _swap_halves(weight: torch.Tensor) -> torch.Tensor:
    first, second = weight.chunk(2, dim=0)
    return torch.cat([second, first], dim=0)


def bfl_transformer_state(transformer) -> dict[str, torch.Tensor]:
    """The transformer in Black Forest Labs' key layout (inverse of convert_flux_transformer_checkpoint_to_diffusers)."""
    sd = {k: v.detach().clone() for k, v in transformer.state_dict().items()}
    pairs = {"time_in.in_layer": "time_text_embed.timestep_embedder.linear_1",
             "time_in.out_layer": "time_text_embed.timestep_embedder.linear_2",
             "vector_in.in_layer": "time_text_embed.text_embedder.linear_1",
             "vector_in.out_layer": "time_text_embed.text_embedder.linear_2",
             "guidance_in.in_layer": "time_text_embed.guidance_embedder.linear_1",
             "guidance_in.out_layer": "time_text_embed.guidance_embedder.linear_2",
             "txt_in": "context_embedder", "img_in": "x_embedder", "final_layer.linear": "proj_out"}
    for i in range(transformer.config.num_layers):
        o, b = f"double_blocks.{i}.", f"transformer_blocks.{i}."
        pairs.update({o + "img_mod.lin": b + "norm1.linear", o + "txt_mod.lin": b + "norm1_context.linear",
                      o + "img_mlp.0": b + "ff.net.0.proj", o + "img_mlp.2": b + "ff.net.2",
                      o + "txt_mlp.0": b + "ff_context.net.0.proj", o + "txt_mlp.2": b + "ff_context.net.2",
                      o + "img_attn.proj": b + "attn.to_out.0", o + "txt_attn.proj": b + "attn.to_add_out"})
    for i in range(transformer.config.num_single_layers):
        pairs.update({f"single_blocks.{i}.modulation.lin": f"single_transformer_blocks.{i}.norm.linear",
                      f"single_blocks.{i}.linear2": f"single_transformer_blocks.{i}.proj_out"})
    out = {}
    for ours, theirs in pairs.items():
        for p in ("weight", "bias"):
            if f"{theirs}.{p}" in sd:
                out[f"{ours}.{p}"] = sd[f"{theirs}.{p}"]
    for p in ("weight", "bias"):
        out[f"final_layer.adaLN_modulation.1.{p}"] = _swap_halves(sd[f"norm_out.linear.{p}"])
        for i in range(transformer.config.num_layers):
            o, b = f"double_blocks.{i}.", f"transformer_blocks.{i}.attn."
            out[f"{o}img_attn.qkv.{p}"] = torch.cat([sd[f"{b}to_{x}.{p}"] for x in "qkv"])
            out[f"{o}txt_attn.qkv.{p}"] = torch.cat([sd[f"{b}add_{x}_proj.{p}"] for x in "qkv"])
        for i in range(transformer.config.num_single_layers):
            b = f"single_transformer_blocks.{i}."
            out[f"single_blocks.{i}.linear1.{p}"] = torch.cat(
                [sd[f"{b}attn.to_{x}.{p}"] for x in "qkv"] + [sd[f"{b}proj_mlp.{p}"]])
    for i in range(transformer.config.num_layers):
        o, b = f"double_blocks.{i}.", f"transformer_blocks.{i}.attn."
        for side, ours in (("img_attn", ("norm_q", "norm_k")), ("txt_attn", ("norm_added_q", "norm_added_k"))):
            out[f"{o}{side}.norm.query_norm.scale"] = sd[f"{b}{ours[0]}.weight"]
            out[f"{o}{side}.norm.key_norm.scale"] = sd[f"{b}{ours[1]}.weight"]
    for i in range(transformer.config.num_single_layers):
        b = f"single_transformer_blocks.{i}.attn."
        out[f"single_blocks.{i}.norm.query_norm.scale"] = sd[f"{b}norm_q.weight"]
        out[f"single_blocks.{i}.norm.key_norm.scale"] = sd[f"{b}norm_k.weight"]
    return out


def _config_beside(folder: Path, path: Path) -> None:
    shutil.copytree(folder, path.with_name(path.stem + ".config"),
                    ignore=shutil.ignore_patterns("*.safetensors", "*.bin"))


def save_flux_single_file(parts: dict, folder: Path, path: Path, dtype=None) -> Path:
    """`path` in ComfyUI's all-in-one layout (model.diffusion_model. in BFL keys, text_encoders.clip_l/t5xxl,
    vae.) plus `<stem>.config/` (configs and tokenizers of the diffusers `folder`, no weights); `dtype`
    stores the weights in it (torch.float8_e4m3fn: an fp8 checkpoint)."""
    from safetensors.torch import save_file

    state = {"model.diffusion_model." + k: v for k, v in bfl_transformer_state(parts["transformer"]).items()}
    state.update({"vae." + k[len("first_stage_model."):]: v for k, v in tm.vae_ldm_state(parts["vae"]).items()})
    state.update({f"text_encoders.clip_l.transformer.{k}": v for k, v in tm.hf_clip_state(parts["text_encoder"]).items()})
    state.update({f"text_encoders.t5xxl.transformer.{k}": v.detach().clone()
                  for k, v in parts["text_encoder_2"].state_dict().items()})
    if dtype is not None:
        state = {k: v.to(dtype) if v.is_floating_point() else v for k, v in state.items()}
    save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    _config_beside(folder, path)
    return path


def save_separate_files(parts: dict, folder: Path, root: Path) -> dict[str, Path]:
    """ComfyUI's layout: diffusion_models/flux-tiny.safetensors (BFL keys), text_encoders/clip_l and
    t5xxl, vae/ae.safetensors, each with its `<stem>.config/`."""
    from safetensors.torch import save_file

    files = {"transformer": root / "diffusion_models" / "flux-tiny.safetensors",
             "clip_l": root / "text_encoders" / "clip_l.safetensors",
             "t5xxl": root / "text_encoders" / "t5xxl_fp16.safetensors", "vae": root / "vae" / "ae.safetensors"}
    states = {"transformer": bfl_transformer_state(parts["transformer"]),
              "clip_l": tm.hf_clip_state(parts["text_encoder"]),
              "t5xxl": {k: v.detach().clone() for k, v in parts["text_encoder_2"].state_dict().items()
                        if k != "encoder.embed_tokens.weight"},   # files keep the tied embedding once
              "vae": {k[len("first_stage_model."):]: v for k, v in tm.vae_ldm_state(parts["vae"]).items()}}
    for name, path in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        save_file({k: v.contiguous() for k, v in states[name].items()}, str(path))
        _config_beside(folder, path)
    return files


def flux_loras(transformer, folder: Path, rank: int = 4, seed: int = 3) -> dict[str, Path]:
    """Two LoRAs of the same layers in the layouts FluxPipeline.load_lora_weights reads: diffusers'
    (`transformer.<module>.lora_A/B.weight`) and kohya's on Black Forest Labs' module names (a fused
    qkv: one down, the three ups stacked; alpha = rank / 2)."""
    from safetensors.torch import save_file

    gen = torch.Generator().manual_seed(seed)
    inner = transformer.config.num_attention_heads * transformer.config.attention_head_dim

    def pair(out_dim: int, in_dim: int):
        return torch.randn(rank, in_dim, generator=gen) * 0.3, torch.randn(out_dim, rank, generator=gen) * 0.3

    kohya, diffusers = {}, {}
    qkv_down, qkv_up = pair(3 * inner, inner)
    mlp_down, mlp_up = pair(4 * inner, inner)
    out_down, out_up = pair(inner, inner + 4 * inner)
    for name, down, up in (("double_blocks_0_img_attn_qkv", qkv_down, qkv_up), ("double_blocks_0_img_mlp_0", mlp_down, mlp_up),
                           ("single_blocks_0_linear2", out_down, out_up)):
        kohya.update({f"lora_unet_{name}.lora_down.weight": down, f"lora_unet_{name}.lora_up.weight": up,
                      f"lora_unet_{name}.alpha": torch.tensor(rank / 2)})
    half = 0.5 ** 0.5   # alpha / rank = 0.5, split over down and up as diffusers' kohya converter does
    for i, letter in enumerate("qkv"):
        diffusers[f"transformer.transformer_blocks.0.attn.to_{letter}.lora_A.weight"] = qkv_down * half
        diffusers[f"transformer.transformer_blocks.0.attn.to_{letter}.lora_B.weight"] = qkv_up.chunk(3)[i] * half
    for module, down, up in (("transformer_blocks.0.ff.net.0.proj", mlp_down, mlp_up),
                             ("single_transformer_blocks.0.proj_out", out_down, out_up)):
        diffusers[f"transformer.{module}.lora_A.weight"] = down * half
        diffusers[f"transformer.{module}.lora_B.weight"] = up * half
    folder.mkdir(parents=True, exist_ok=True)
    paths = {"kohya": folder / "flux-kohya.safetensors", "diffusers": folder / "flux-diffusers.safetensors"}
    save_file({k: v.contiguous() for k, v in kohya.items()}, str(paths["kohya"]))
    save_file({k: v.contiguous() for k, v in diffusers.items()}, str(paths["diffusers"]))
    return paths
