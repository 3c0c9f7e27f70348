"""Tiny random Z-Image models, built as diffusers' own tests build them (tests/pipelines/z_image/
test_z_image.py, get_dummy_components) but offline: a byte-level BPE tokenizer trained here with
the `tokenizers` library (Qwen's kind, with its <|im_start|>/<|im_end|> tokens and Qwen3's chat
template for one user turn), a tiny Qwen3 text encoder, the Flux-style 16-channel VAE (scaling
0.3611, shift 0.1159) and Z-Image-Turbo's scheduler (shift 3, no dynamic shifting). Written as a
ZImagePipeline folder; the original single-file layout (the inverse of diffusers' conversion) is in
`original_transformer_state`.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch

import tiny_models as tm

ZIMAGE_SCHEDULER = dict(num_train_timesteps=1000, use_dynamic_shifting=False, shift=3.0)
# Qwen3's template as it renders one user turn with add_generation_prompt and enable_thinking (no think block).
CHAT_TEMPLATE = ("{%- for message in messages %}{{- '<|im_start|>' + message.role + '\\n' + message.content + "
                 "'<|im_end|>' + '\\n' }}{%- endfor %}{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}"
                 "{%- if enable_thinking is defined and enable_thinking is false %}{{- '<think>\\n\\n</think>\\n\\n' }}"
                 "{%- endif %}{%- endif %}")
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]


def make_qwen_tokenizer():
    """A byte-level BPE tokenizer (Qwen2Tokenizer, as Qwen3's) trained on the tiny models' words."""
    from tokenizers import AddedToken, Tokenizer, models, pre_tokenizers, trainers
    from transformers import Qwen2Tokenizer

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=SPECIALS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    bpe.train_from_iterator([" ".join(tm.WORDS) + " user assistant"] * 20, trainer)
    model = json.loads(bpe.to_str())["model"]
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in model["merges"]]
    tok = Qwen2Tokenizer(vocab=model["vocab"], merges=merges, model_max_length=512)
    tok.add_tokens([AddedToken(t, special=True) for t in SPECIALS[1:]])
    tok.chat_template = CHAT_TEMPLATE
    return tok


def make_zimage_components(seed: int = 0) -> dict:
    from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, ZImageTransformer2DModel
    from transformers import Qwen3Config, Qwen3Model

    torch.manual_seed(seed)
    transformer = ZImageTransformer2DModel(
        all_patch_size=(2,), all_f_patch_size=(1,), in_channels=16, dim=32, n_layers=2, n_refiner_layers=1,
        n_heads=2, n_kv_heads=2, norm_eps=1e-5, qk_norm=True, cap_feat_dim=16, rope_theta=256.0, t_scale=1000.0,
        axes_dims=[8, 4, 4], axes_lens=[256, 32, 32])
    with torch.no_grad():   # created with torch.empty: fix them, as diffusers' tests do
        transformer.x_pad_token.copy_(torch.randn_like(transformer.x_pad_token) * 0.5)
        transformer.cap_pad_token.copy_(torch.randn_like(transformer.cap_pad_token) * 0.5)
    tok = make_qwen_tokenizer()
    torch.manual_seed(seed)
    te = Qwen3Model(Qwen3Config(hidden_size=16, intermediate_size=16, num_hidden_layers=2, num_attention_heads=2,
                                num_key_value_heads=2, head_dim=8, vocab_size=len(tok), max_position_embeddings=512))
    torch.manual_seed(seed)
    vae = AutoencoderKL(sample_size=32, in_channels=3, out_channels=3, block_out_channels=(8, 8), layers_per_block=1,
                        latent_channels=16, norm_num_groups=1, use_quant_conv=False, use_post_quant_conv=False,
                        shift_factor=0.1159, scaling_factor=0.3611,
                        down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2)
    return dict(transformer=transformer, vae=vae, text_encoder=te, tokenizer=tok,
                scheduler=FlowMatchEulerDiscreteScheduler(**ZIMAGE_SCHEDULER))


def save_zimage_folder(parts: dict, folder: Path) -> Path:
    from diffusers import ZImagePipeline

    ZImagePipeline(**parts).save_pretrained(str(folder))
    return folder


def original_transformer_state(transformer) -> dict[str, torch.Tensor]:
    """The transformer in the original (ComfyUI's z_image_turbo) key layout: the inverse of diffusers'
    convert_z_image_transformer_checkpoint_to_diffusers (fused qkv, x_embedder, final_layer, q_norm/k_norm, out)."""
    renames = (("all_x_embedder.2-1.", "x_embedder."), ("all_final_layer.2-1.", "final_layer."),
               (".attention.to_out.0.", ".attention.out."), (".attention.norm_q.", ".attention.q_norm."),
               (".attention.norm_k.", ".attention.k_norm."))
    sd = {k: v.detach().clone() for k, v in transformer.state_dict().items()}
    out = {}
    for key, value in sd.items():
        if ".attention.to_k." in key or ".attention.to_v." in key:
            continue
        if ".attention.to_q." in key:
            out[key.replace(".to_q.", ".qkv.")] = torch.cat([sd[key.replace(".to_q.", f".to_{x}.")] for x in "qkv"])
            continue
        for theirs, ours in renames:
            key = key.replace(theirs, ours)
        out[key] = value
    return out


def save_separate_files(parts: dict, folder: Path, root: Path) -> dict[str, Path]:
    """ComfyUI's layout: diffusion_models/z-image-tiny.safetensors (original keys), text_encoders/qwen_3_4b
    (transformers' keys under `model.`, as ComfyUI's file), vae/ae.safetensors (LDM keys), each with its
    `<stem>.config/` (the folder's configs and tokenizer, no weights)."""
    import shutil

    from safetensors.torch import save_file

    files = {"transformer": root / "diffusion_models" / "z-image-tiny.safetensors",
             "qwen": root / "text_encoders" / "qwen_3_4b.safetensors", "vae": root / "vae" / "ae.safetensors"}
    states = {"transformer": original_transformer_state(parts["transformer"]),
              "qwen": {"model." + k: v.detach().clone() for k, v in parts["text_encoder"].state_dict().items()},
              "vae": {k[len("first_stage_model."):]: v for k, v in tm.vae_ldm_state(parts["vae"]).items()}}
    for name, path in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        save_file({k: v.contiguous() for k, v in states[name].items()}, str(path))
        shutil.copytree(folder, path.with_name(path.stem + ".config"),
                        ignore=shutil.ignore_patterns("*.safetensors", "*.bin"))
    return files


def zimage_loras(transformer, folder: Path, rank: int = 4, seed: int = 3) -> dict[str, Path]:
    """Two LoRAs of the same layers in layouts ZImagePipeline.load_lora_weights reads: diffusers'
    (`transformer.<module>.lora_A/B.weight`) and kohya's (`lora_unet_layers_0_attention_to_q.lora_down`,
    alpha = rank / 2, which diffusers folds into the weights)."""
    from safetensors.torch import save_file

    gen = torch.Generator().manual_seed(seed)
    modules = {name: module for name, module in transformer.named_modules()
               if name in ("layers.0.attention.to_q", "layers.0.attention.to_v", "layers.1.feed_forward.w1",
                           "noise_refiner.0.attention.to_out.0", "context_refiner.0.feed_forward.w2")}
    kohya, diffusers = {}, {}
    half = 0.5 ** 0.5
    for name, module in modules.items():
        down = torch.randn(rank, module.in_features, generator=gen) * 0.3
        up = torch.randn(module.out_features, rank, generator=gen) * 0.3
        flat = "lora_unet_" + name.replace(".", "_")
        kohya.update({f"{flat}.lora_down.weight": down, f"{flat}.lora_up.weight": up,
                      f"{flat}.alpha": torch.tensor(rank / 2)})
        diffusers.update({f"transformer.{name}.lora_A.weight": down * half, f"transformer.{name}.lora_B.weight": up * half})
    folder.mkdir(parents=True, exist_ok=True)
    paths = {"kohya": folder / "zimage-kohya.safetensors", "diffusers": folder / "zimage-diffusers.safetensors"}
    save_file({k: v.contiguous() for k, v in kohya.items()}, str(paths["kohya"]))
    save_file({k: v.contiguous() for k, v in diffusers.items()}, str(paths["diffusers"]))
    return paths
