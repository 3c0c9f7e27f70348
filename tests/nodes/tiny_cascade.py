"""Tiny random Stable Cascade models, built as diffusers' own tests build them (tests/pipelines/
stable_cascade/test_stable_cascade_prior.py and _decoder.py, get_dummy_components) but offline: the
CLIP tokenizer from tiny_models.make_tokenizer, stage C with a 32-wide CLIP image slot (a tiny CLIP
vision encoder fills it), stage B with the effnet and pixel mappers the real stage B has. Written as
StableCascadePriorPipeline and StableCascadeDecoderPipeline folders, and as single files in the
original (ComfyUI's) layout: the inverse of diffusers' stable cascade single-file conversion.
"""
from __future__ import annotations

from pathlib import Path

import torch

import tiny_models as tm

TEXT_WIDTH = 32
IMAGE_WIDTH = 32


def _text_encoder(tok, seed: int):
    from transformers import CLIPTextConfig, CLIPTextModelWithProjection

    torch.manual_seed(seed)
    te = CLIPTextModelWithProjection(CLIPTextConfig(
        bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
        hidden_size=TEXT_WIDTH, projection_dim=TEXT_WIDTH, intermediate_size=37, num_attention_heads=4,
        num_hidden_layers=5, vocab_size=len(tok), max_position_embeddings=77, hidden_act="gelu"))
    for module in te.modules():   # trained CLIPs have non-zero layer-norm biases; a fresh one has none
        if isinstance(module, torch.nn.LayerNorm):
            torch.nn.init.normal_(module.bias, 0.0, 0.2)
    return te.eval()


def _trained_looking(net, seed: int):
    """Random weights everywhere (a fresh StableCascadeUNet zeroes its output layers and gammas, so it
    would predict nothing)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in net.named_parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * (0.04 if p.ndim > 1 else 0.02))
    return net.eval()


def make_prior_components(seed: int = 0) -> dict:
    from diffusers import DDPMWuerstchenScheduler, StableCascadeUNet
    from transformers import CLIPImageProcessorPil, CLIPVisionConfig, CLIPVisionModelWithProjection

    prior = StableCascadeUNet(conditioning_dim=128, block_out_channels=(128, 128), num_attention_heads=(2, 2),
                              down_num_layers_per_block=(1, 1), up_num_layers_per_block=(1, 1), switch_level=(False,),
                              clip_image_in_channels=IMAGE_WIDTH, clip_text_in_channels=TEXT_WIDTH,
                              clip_text_pooled_in_channels=TEXT_WIDTH, dropout=(0.0, 0.0))
    tok = tm.make_tokenizer()
    torch.manual_seed(seed)
    vision = CLIPVisionModelWithProjection(CLIPVisionConfig(
        hidden_size=16, projection_dim=IMAGE_WIDTH, num_hidden_layers=2, num_attention_heads=2, intermediate_size=24,
        image_size=32, patch_size=8)).eval()
    processor = CLIPImageProcessorPil(crop_size={"height": 32, "width": 32}, size={"shortest_edge": 32})
    return dict(prior=_trained_looking(prior, seed), text_encoder=_text_encoder(tok, seed), tokenizer=tok,
                scheduler=DDPMWuerstchenScheduler(), image_encoder=vision, feature_extractor=processor)


def make_decoder_components(seed: int = 0) -> dict:
    from diffusers import DDPMWuerstchenScheduler, StableCascadeUNet
    from diffusers.pipelines.deprecated.wuerstchen import PaellaVQModel

    blocks = ["SDCascadeResBlock", "SDCascadeTimestepBlock"]
    decoder = StableCascadeUNet(
        in_channels=4, out_channels=4, conditioning_dim=64, block_out_channels=[16, 32, 64], patch_size=2,
        num_attention_heads=[-1, 1, 2], down_num_layers_per_block=[1, 1, 1], up_num_layers_per_block=[1, 1, 1],
        down_blocks_repeat_mappers=[1, 1, 1], up_blocks_repeat_mappers=[2, 2, 1],
        block_types_per_layer=[blocks, blocks + ["SDCascadeAttnBlock"], blocks + ["SDCascadeAttnBlock"]],
        switch_level=None, clip_text_pooled_in_channels=TEXT_WIDTH, effnet_in_channels=16,
        pixel_mapper_in_channels=3, timestep_conditioning_type=["sca"], dropout=[0.0, 0.0, 0.0])
    torch.manual_seed(seed)
    vqgan = PaellaVQModel(bottleneck_blocks=1, num_vq_embeddings=2, levels=2, embed_dim=8, latent_channels=4,
                          in_channels=3, out_channels=3, up_down_scale_factor=2)
    tok = tm.make_tokenizer()
    return dict(decoder=_trained_looking(decoder, seed + 1), vqgan=vqgan.eval(), text_encoder=_text_encoder(tok, seed),
                tokenizer=tok, scheduler=DDPMWuerstchenScheduler())


def save_prior_folder(parts: dict, folder: Path) -> Path:
    from diffusers import StableCascadePriorPipeline

    StableCascadePriorPipeline(**parts).save_pretrained(str(folder))
    return folder


def save_decoder_folder(parts: dict, folder: Path) -> Path:
    from diffusers import StableCascadeDecoderPipeline

    StableCascadeDecoderPipeline(**parts, latent_dim_scale=10.67).save_pretrained(str(folder))
    return folder


# -- ComfyUI's single files ----------------------------------------------------------------------------------------
def original_unet_state(unet) -> dict[str, torch.Tensor]:
    """A StableCascadeUNet's weights in the original layout (the inverse of diffusers' single-file conversion):
    q, k and v in one `attn.in_proj_*`, `attn.out_proj`, stage B's pooled-text mapper as `clip_mapper`."""
    state = unet.state_dict()
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        for kind in ("weight", "bias"):
            if key.endswith(f"to_q.{kind}"):
                base = key[:-len(f"to_q.{kind}")]
                out[f"{base}attn.in_proj_{kind}"] = torch.cat([state[f"{base}to_{p}.{kind}"] for p in "qkv"])
            elif key.endswith(f"to_out.0.{kind}"):
                out[key.replace(f"to_out.0.{kind}", f"attn.out_proj.{kind}")] = value
        if not any(key.endswith(f"to_{p}.{k}") for p in ("q", "k", "v", "out.0") for k in ("weight", "bias")):
            out[key.replace("clip_txt_pooled_mapper.", "clip_mapper.") if unet.config.clip_text_in_channels is None
                else key] = value
    return {k: v.contiguous() for k, v in out.items()}


def save_comfy_file(parts: dict, path: Path, *, bundled: bool = True, coder=None) -> Path:
    """ComfyUI's stable_cascade_stage_c / _stage_b.safetensors (bundled: the UNet under model.diffusion_model.,
    CLIP-G under text_encoder., the CLIP-L image encoder under clip_l_vision., stage A under vae.) or the stage's
    UNet alone; `<stem>.config/` beside it with the tiny models' configs and tokenizer (no weights). `coder`: a
    StageCCoder written under vae. (real size: EfficientNetV2-S has no tiny form in the files)."""
    from safetensors.torch import save_file

    unet = parts.get("prior") or parts.get("decoder")
    state = original_unet_state(unet)
    config = path.with_name(path.stem + ".config")
    config.mkdir(parents=True, exist_ok=True)
    unet.save_config(str(config / ("prior" if "prior" in parts else "decoder")))
    if bundled:
        state = {"model.diffusion_model." + k: v for k, v in state.items()}
        if "prior" in parts:
            state.update({"text_encoder." + k: v for k, v in parts["text_encoder"].state_dict().items()})
            state.update({"clip_l_vision." + k: v for k, v in parts["image_encoder"].state_dict().items()})
            if coder is not None:   # stage C's EfficientNet encoder and previewer, stored in half precision
                state.update({"vae." + k: (v.half() if v.is_floating_point() else v)
                              for k, v in coder.state_dict().items()})
            parts["text_encoder"].config.save_pretrained(str(config / "text_encoder"))
            parts["image_encoder"].config.save_pretrained(str(config / "image_encoder"))
            parts["tokenizer"].save_pretrained(str(config / "tokenizer"))
        else:
            state.update({"vae." + k.replace("vquantizer.embedding.", "vquantizer.codebook."): v
                          for k, v in parts["vqgan"].state_dict().items()})
            parts["vqgan"].save_config(str(config / "vqgan"))
    save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    return path
