"""Tiny random Qwen-Image models, built as diffusers' own tests build them (tests/pipelines/qwenimage/
test_qwenimage.py, get_dummy_components) but offline: a byte-level BPE tokenizer trained here with
Qwen's special tokens (<|im_start|>, <|im_end|>, the vision tokens), a tiny Qwen2.5-VL text encoder
whose vision token ids are that tokenizer's, Qwen2-VL's image processor with its default settings,
a Qwen-Image VAE of the real model's structure (4 levels, 2 residual blocks, so diffusers' Wan VAE
converter reads its original layout) at a small width, and Qwen-Image's scheduler (dynamic shift,
shift_terminal 0.02). Written as a QwenImagePipeline or QwenImageEditPlusPipeline folder; the original
(ComfyUI) layouts of the VAE and the text encoder are in `original_vae_state` / `original_qwen_state`.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch

import tiny_models as tm

QWEN_SCHEDULER = dict(base_image_seq_len=256, base_shift=0.5, max_image_seq_len=8192, max_shift=0.9,
                      num_train_timesteps=1000, shift=1.0, shift_terminal=0.02, time_shift_type="exponential",
                      use_dynamic_shifting=True)
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>", "<|image_pad|>",
            "<|video_pad|>"]
SYSTEM_WORDS = ("Describe the image by detailing the color shape size texture quantity text spatial relationships "
                "of objects and background key features input explain how user's instruction should alter or modify "
                "Generate new that meets requirements while maintaining consistency with original where appropriate "
                "Picture system user assistant")


def make_qwen_tokenizer():
    """A byte-level BPE tokenizer (Qwen2Tokenizer, as Qwen2.5-VL's) trained on the tiny models' words and
    the templates' words, with Qwen's special tokens."""
    from tokenizers import AddedToken, Tokenizer, models, pre_tokenizers, trainers
    from transformers import Qwen2Tokenizer

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(vocab_size=600, special_tokens=SPECIALS[:1],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    bpe.train_from_iterator([" ".join(tm.WORDS) + " " + SYSTEM_WORDS] * 20, trainer)
    model = json.loads(bpe.to_str())["model"]
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in model["merges"]]
    tok = Qwen2Tokenizer(vocab=model["vocab"], merges=merges, model_max_length=2048,
                         pad_token="<|endoftext|>", eos_token="<|im_end|>")
    tok.add_tokens([AddedToken(t, special=True) for t in SPECIALS[1:]])
    return tok


def make_processor(tok):
    """Qwen2-VL's processor (the tokenizer, and the image processor at Qwen2.5-VL's pixel limits). Built
    without a video processor, which needs torchvision: the pipelines here never pass videos."""
    from transformers import Qwen2VLImageProcessorPil, Qwen2VLProcessor

    class ImagesOnlyProcessor(Qwen2VLProcessor):
        def check_argument_for_proper_class(self, argument_name, argument):
            return None if argument is None else super().check_argument_for_proper_class(argument_name, argument)

    images = Qwen2VLImageProcessorPil(size={"shortest_edge": 56 * 56, "longest_edge": 28 * 28 * 16384})
    return ImagesOnlyProcessor(image_processor=images, tokenizer=tok)


def make_text_encoder(tok, seed: int = 0):
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

    ids = {name: tok.convert_tokens_to_ids(token) for name, token in
           (("vision_start_token_id", "<|vision_start|>"), ("vision_end_token_id", "<|vision_end|>"),
            ("image_token_id", "<|image_pad|>"), ("video_token_id", "<|video_pad|>"))}
    config = Qwen2_5_VLConfig(
        text_config={"hidden_size": 16, "intermediate_size": 16, "num_hidden_layers": 2, "num_attention_heads": 2,
                     "num_key_value_heads": 2, "vocab_size": len(tok), "rope_theta": 1000000.0,
                     "rope_scaling": {"mrope_section": [1, 1, 2], "rope_type": "default", "type": "default"},
                     "bos_token_id": None, "eos_token_id": tok.eos_token_id},
        vision_config={"depth": 2, "hidden_size": 16, "intermediate_size": 16, "num_heads": 2, "out_hidden_size": 16},
        hidden_size=16, vocab_size=len(tok), vision_token_id=ids["image_token_id"], **ids)
    torch.manual_seed(seed)
    return Qwen2_5_VLForConditionalGeneration(config).eval()


def make_vae(seed: int = 0):
    from diffusers import AutoencoderKLQwenImage

    torch.manual_seed(seed)
    return AutoencoderKLQwenImage(base_dim=8, z_dim=16, dim_mult=[1, 2, 4, 4], num_res_blocks=2,
                                  temperal_downsample=[False, True, True],
                                  latents_mean=[0.1 * i - 0.8 for i in range(16)],
                                  latents_std=[1.0 + 0.1 * i for i in range(16)])


def make_transformer(seed: int = 0, *, zero_cond_t: bool = False):
    from diffusers import QwenImageTransformer2DModel

    torch.manual_seed(seed)
    return QwenImageTransformer2DModel(patch_size=2, in_channels=64, out_channels=16, num_layers=2,
                                       attention_head_dim=16, num_attention_heads=3, joint_attention_dim=16,
                                       guidance_embeds=False, axes_dims_rope=(8, 4, 4), zero_cond_t=zero_cond_t)


def make_qwenimage_components(seed: int = 0) -> dict:
    from diffusers import FlowMatchEulerDiscreteScheduler

    tok = make_qwen_tokenizer()
    return dict(transformer=make_transformer(seed), vae=make_vae(seed), text_encoder=make_text_encoder(tok, seed),
                tokenizer=tok, scheduler=FlowMatchEulerDiscreteScheduler(**QWEN_SCHEDULER))


def save_qwenimage_folder(parts: dict, folder: Path) -> Path:
    from diffusers import QwenImagePipeline

    QwenImagePipeline(**parts).save_pretrained(str(folder))
    return folder


def edit_plus_pipeline(parts: dict):
    """QwenImageEditPlusPipeline (Qwen-Image-Edit-2509's) on the tiny parts, built in memory (its processor
    cannot be saved and read back without torchvision)."""
    from diffusers import QwenImageEditPlusPipeline

    pipe = QwenImageEditPlusPipeline(processor=make_processor(parts["tokenizer"]), **parts)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def prefix_length(tok, template: str) -> int:
    """The template's tokens before the prompt (the pipeline's prompt_template_encode_start_idx: 34 and 64
    in Qwen's own tokenizer)."""
    return len(tok(template.split("{}")[0]).input_ids)


# -- the original (ComfyUI) layouts ------------------------------------------------------------------------------
def original_qwen_state(text_encoder) -> dict[str, torch.Tensor]:
    """Qwen2.5-VL in the layout of Qwen's own checkpoint and ComfyUI's qwen_2.5_vl_7b file: `model.layers`,
    `model.embed_tokens`, `visual.` (transformers 5 nests them under model.language_model / model.visual)."""
    out = {}
    for key, value in text_encoder.state_dict().items():
        key = key.replace("model.language_model.", "model.").replace("model.visual.", "visual.")
        out[key] = value.detach().clone()
    return out


def original_vae_state(vae) -> dict[str, torch.Tensor]:
    """The VAE in Wan's original layout (ComfyUI's qwen_image_vae.safetensors): the inverse of diffusers'
    convert_wan_vae_to_diffusers for the real structure (4 levels, 2 residual blocks each)."""
    import re

    resnet = {"norm1.gamma": "residual.0.gamma", "conv1.": "residual.2.", "norm2.gamma": "residual.3.gamma",
              "conv2.": "residual.6.", "conv_shortcut.": "shortcut."}
    out = {}
    for key, value in vae.state_dict().items():
        new = key
        for ours, theirs in (("quant_conv.", "conv1."), ("post_quant_conv.", "conv2.")):
            if key.startswith(ours):
                new = theirs + key[len(ours):]
        new = new.replace("encoder.conv_in.", "encoder.conv1.").replace("decoder.conv_in.", "decoder.conv1.")
        new = new.replace(".norm_out.gamma", ".head.0.gamma").replace(".conv_out.", ".head.2.")
        m = re.match(r"(encoder|decoder)\.mid_block\.(resnets|attentions)\.(\d)\.(.*)", new)
        if m:
            index = {"resnets": 2 * int(m[3]), "attentions": 1}[m[2]]
            rest = m[4]
            for ours, theirs in resnet.items():
                rest = rest.replace(ours, theirs) if m[2] == "resnets" else rest
            new = f"{m[1]}.middle.{index}.{rest}"
        m = re.match(r"encoder\.down_blocks\.(\d+)\.(.*)", new)
        if m:
            rest = m[2]
            for ours, theirs in resnet.items():
                rest = rest.replace(ours, theirs)
            new = f"encoder.downsamples.{m[1]}.{rest}"
        m = re.match(r"decoder\.up_blocks\.(\d)\.(resnets\.(\d)\.|upsamplers\.0\.)(.*)", new)
        if m:
            block, rest = int(m[1]), m[4]
            if m[2].startswith("resnets"):
                index = 4 * block + int(m[3])
                for ours, theirs in resnet.items():
                    rest = rest.replace(ours, theirs)
            else:
                index = 4 * block + 3
            new = f"decoder.upsamples.{index}.{rest}"
        out[new] = value.detach().clone()
    return out


def save_separate_files(parts: dict, folder: Path, root: Path, *, prefix: str = "") -> dict[str, Path]:
    """ComfyUI's layout: diffusion_models/qwen-image-tiny.safetensors (diffusers' keys, as ComfyUI's file, under
    `prefix`), text_encoders/qwen_2.5_vl_7b.safetensors (Qwen's original keys), vae/qwen_image_vae.safetensors
    (Wan's original keys); the text encoder with its tokenizer (and processor) folder beside it."""
    from safetensors.torch import save_file

    files = {"transformer": root / "diffusion_models" / "qwen-image-tiny.safetensors",
             "qwen": root / "text_encoders" / "qwen_2.5_vl_7b.safetensors",
             "vae": root / "vae" / "qwen_image_vae.safetensors"}
    states = {"transformer": {prefix + k: v.detach().clone() for k, v in parts["transformer"].state_dict().items()},
              "qwen": original_qwen_state(parts["text_encoder"]), "vae": original_vae_state(parts["vae"])}
    for name, path in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        save_file({k: v.contiguous() for k, v in states[name].items()}, str(path))
        shutil.copytree(folder, path.with_name(path.stem + ".config"),
                        ignore=shutil.ignore_patterns("*.safetensors", "*.bin"))
    return files


def qwen_loras(transformer, folder: Path, rank: int = 4, seed: int = 3) -> dict[str, Path]:
    """Two LoRAs of the same layers in layouts QwenImagePipeline.load_lora_weights reads: diffusers'
    (`transformer.<module>.lora_A/B.weight`) and ComfyUI's / musubi's (`diffusion_model.<module>.lora_down/up` with
    alpha = rank / 2, which diffusers folds into the weights), as lightx2v's Lightning LoRAs come."""
    from safetensors.torch import save_file

    gen = torch.Generator().manual_seed(seed)
    names = ("transformer_blocks.0.attn.to_q", "transformer_blocks.0.attn.add_v_proj", "transformer_blocks.1.img_mlp.net.2",
             "transformer_blocks.1.txt_mod.1")
    modules = {name: module for name, module in transformer.named_modules() if name in names}
    comfy, diffusers = {}, {}
    half = 0.5 ** 0.5
    for name, module in modules.items():
        down = torch.randn(rank, module.in_features, generator=gen) * 0.3
        up = torch.randn(module.out_features, rank, generator=gen) * 0.3
        comfy.update({f"diffusion_model.{name}.lora_down.weight": down, f"diffusion_model.{name}.lora_up.weight": up,
                      f"diffusion_model.{name}.alpha": torch.tensor(rank / 2)})
        diffusers.update({f"transformer.{name}.lora_A.weight": down * half, f"transformer.{name}.lora_B.weight": up * half})
    folder.mkdir(parents=True, exist_ok=True)
    paths = {"comfy": folder / "qwen-comfy.safetensors", "diffusers": folder / "qwen-diffusers.safetensors"}
    save_file({k: v.contiguous() for k, v in comfy.items()}, str(paths["comfy"]))
    save_file({k: v.contiguous() for k, v in diffusers.items()}, str(paths["diffusers"]))
    return paths
