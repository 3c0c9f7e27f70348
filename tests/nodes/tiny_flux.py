"""Tiny random Flux models, built as diffusers' own tests build them (tests/pipelines/flux/
test_pipeline_flux.py, get_dummy_components) but offline and shaped like the real ones: 16 latent
channels packed to 64, CLIP-L from tiny_models.make_tokenizer (its pooled output 32 wide), a tiny T5
with the Unigram tokenizer of tiny_sd3, the Flux VAE's scaling and shift, and the real scheduler
config (dynamic shifting from 0.5 to 1.15). Written as a FluxPipeline folder; the BFL single-file
layout (the inverse of diffusers' conversion) is in `bfl_transformer_state`.
"""
from __future__ import annotations

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
