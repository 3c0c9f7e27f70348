"""Tiny random-weight Stable Diffusion models, written in the formats the pack loads.

Everything is built from configs: a diffusers folder, the same weights as a single file in the
original (LDM) layout with a `<name>.config/` folder beside it, SD2 and SDXL variants, and LoRAs
in kohya and PEFT form. Nothing is downloaded.
"""
from __future__ import annotations

import json
import shutil
import string
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[2]
WORDS = ("a red circle on a blue background green square yellow triangle star small big "
         "bright dark purple orange white black shape shapes of the and with in photo").split()


def make_tokenizer():
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import CLIPTokenizer

    bpe = Tokenizer(models.BPE(end_of_word_suffix="</w>"))
    bpe.pre_tokenizer = pre_tokenizers.Whitespace()
    alphabet = list(string.ascii_lowercase) + [c + "</w>" for c in string.ascii_lowercase]
    trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=["<|startoftext|>", "<|endoftext|>"],
                                  end_of_word_suffix="</w>", initial_alphabet=list(string.ascii_lowercase + "!(),.:"))
    bpe.train_from_iterator([" ".join(WORDS)] * 20, trainer)
    vocab = dict(bpe.get_vocab())
    for token in alphabet + [c + "</w>" for c in "!(),.:0123456789"] + list("!(),.:0123456789"):
        vocab.setdefault(token, len(vocab))
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m)
              for m in json.loads(bpe.to_str())["model"]["merges"]]
    return CLIPTokenizer(vocab=vocab, merges=merges, bos_token="<|startoftext|>", eos_token="<|endoftext|>",
                         unk_token="<|endoftext|>", pad_token="<|endoftext|>", model_max_length=77)


def make_components(seed: int = 0, *, sdxl: bool = False, cross_dim: int = 32):
    from diffusers import AutoencoderKL, EulerDiscreteScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    torch.manual_seed(seed)
    tok = make_tokenizer()
    te_cfg = dict(hidden_size=32, intermediate_size=37, num_attention_heads=4, num_hidden_layers=2,
                  vocab_size=len(tok), max_position_embeddings=77, projection_dim=32, hidden_act="quick_gelu",
                  bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    te = CLIPTextModel(CLIPTextConfig(**te_cfg))
    unet_kw = dict(block_out_channels=(32, 64), layers_per_block=1, sample_size=8, in_channels=4, out_channels=4,
                   down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
                   up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
                   cross_attention_dim=cross_dim, attention_head_dim=8, norm_num_groups=8)
    te2 = tok2 = None
    if sdxl:
        te2 = CLIPTextModelWithProjection(CLIPTextConfig(**dict(te_cfg, hidden_size=48, num_attention_heads=4,
                                                                 projection_dim=24, hidden_act="gelu")))
        tok2 = make_tokenizer()
        unet_kw.update(cross_attention_dim=32 + 48, addition_embed_type="text_time", addition_time_embed_dim=8,
                       projection_class_embeddings_input_dim=8 * 6 + 24, use_linear_projection=True,
                       down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
                       up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"))
    for encoder in (te, te2):   # trained CLIPs have non-zero layer-norm biases; a fresh one has none
        if encoder is not None:
            for module in encoder.modules():
                if isinstance(module, torch.nn.LayerNorm):
                    torch.nn.init.normal_(module.bias, 0.0, 0.2)
    unet = UNet2DConditionModel(**unet_kw)
    vae = AutoencoderKL(block_out_channels=(16, 32, 32), layers_per_block=1, latent_channels=4, norm_num_groups=8,
                        down_block_types=("DownEncoderBlock2D",) * 3, up_block_types=("UpDecoderBlock2D",) * 3,
                        sample_size=32, scaling_factor=0.5)
    sched = EulerDiscreteScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                                   steps_offset=1, timestep_spacing="leading")
    return dict(unet=unet, vae=vae, text_encoder=te, tokenizer=tok, scheduler=sched,
                text_encoder_2=te2, tokenizer_2=tok2)


def make_refiner_components(seed: int = 0):
    """A tiny SDXL refiner: OpenCLIP-bigG-shaped encoder alone (penultimate hidden states + pooled
    projection), a UNet of 4 levels (no attention at the first and last, 4 transformer layers at the
    others, as sd_xl_refiner_1.0) taking 5 micro-conditioning ids, and the base's VAE shape."""
    from diffusers import UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModelWithProjection

    base = make_components(seed, sdxl=True)
    torch.manual_seed(seed + 100)
    tok2 = base["tokenizer_2"]
    te2 = CLIPTextModelWithProjection(CLIPTextConfig(
        hidden_size=48, intermediate_size=37, num_attention_heads=4, num_hidden_layers=3, vocab_size=len(tok2),
        max_position_embeddings=77, projection_dim=24, hidden_act="gelu", bos_token_id=tok2.bos_token_id,
        eos_token_id=tok2.eos_token_id, pad_token_id=tok2.pad_token_id))
    for module in te2.modules():
        if isinstance(module, torch.nn.LayerNorm):
            torch.nn.init.normal_(module.bias, 0.0, 0.2)
    unet = UNet2DConditionModel(
        block_out_channels=(16, 32, 32, 32), layers_per_block=2, sample_size=8, in_channels=4, out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
        transformer_layers_per_block=4, cross_attention_dim=48, attention_head_dim=(2, 4, 4, 4), norm_num_groups=8,
        addition_embed_type="text_time", addition_time_embed_dim=8, projection_class_embeddings_input_dim=8 * 5 + 24,
        use_linear_projection=True)
    return dict(unet=unet, vae=base["vae"], text_encoder=None, tokenizer=None, scheduler=base["scheduler"],
                text_encoder_2=te2, tokenizer_2=tok2)


def save_diffusers(parts: dict, folder: Path) -> Path:
    from diffusers import StableDiffusionPipeline, StableDiffusionXLImg2ImgPipeline, StableDiffusionXLPipeline

    if parts["text_encoder"] is None:   # an SDXL refiner
        pipe = StableDiffusionXLImg2ImgPipeline(**parts, requires_aesthetics_score=True,
                                                force_zeros_for_empty_prompt=False)
    elif parts["text_encoder_2"] is not None:
        pipe = StableDiffusionXLPipeline(**parts)
    else:
        pipe = StableDiffusionPipeline(**{k: v for k, v in parts.items() if not k.endswith("_2")},
                                       safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    pipe.save_pretrained(str(folder))
    return folder


# -- writing the original (LDM) layout ----------------------------------------------------------------
def vae_ldm_state(vae) -> dict[str, torch.Tensor]:
    n = len(vae.config.block_out_channels)
    out = {}
    for key, value in vae.state_dict().items():
        k = key.replace("conv_shortcut", "nin_shortcut").replace("conv_norm_out", "norm_out")
        for i in range(n):
            k = k.replace(f"encoder.down_blocks.{i}.resnets.", f"encoder.down.{i}.block.")
            k = k.replace(f"encoder.down_blocks.{i}.downsamplers.0.", f"encoder.down.{i}.downsample.")
            k = k.replace(f"decoder.up_blocks.{i}.resnets.", f"decoder.up.{n - 1 - i}.block.")
            k = k.replace(f"decoder.up_blocks.{i}.upsamplers.0.", f"decoder.up.{n - 1 - i}.upsample.")
        for j in range(2):
            k = k.replace(f"mid_block.resnets.{j}.", f"mid.block_{j + 1}.")
        if "mid_block.attentions.0." in k:
            k = k.replace("mid_block.attentions.0.", "mid.attn_1.")
            for new, old in (("group_norm.", "norm."), ("to_q.", "q."), ("to_k.", "k."), ("to_v.", "v."),
                             ("to_out.0.", "proj_out.")):
                k = k.replace(new, old)
            if k.endswith("weight") and value.ndim == 2:
                value = value[:, :, None, None]
        out["first_stage_model." + k] = value
    return out


def hf_clip_state(te) -> dict[str, torch.Tensor]:
    """A CLIP text model's weights under the names files use ("text_model.*", "text_projection.weight")."""
    return {(k if k.startswith(("text_model.", "text_projection")) else "text_model." + k): v
            for k, v in te.state_dict().items()}


def hf_clip_name(name: str) -> str:
    return name if name.startswith("text_model.") else "text_model." + name


def open_clip_state(te, prefix: str) -> dict[str, torch.Tensor]:
    """A CLIPTextModel's weights in OpenCLIP names (SD2 and SDXL's second encoder)."""
    out = {}
    sd = hf_clip_state(te)
    layers = te.config.num_hidden_layers
    for i in range(layers):
        src, dst = f"text_model.encoder.layers.{i}.", f"{prefix}transformer.resblocks.{i}."
        out[dst + "attn.in_proj_weight"] = torch.cat([sd[src + f"self_attn.{x}_proj.weight"] for x in "qkv"])
        out[dst + "attn.in_proj_bias"] = torch.cat([sd[src + f"self_attn.{x}_proj.bias"] for x in "qkv"])
        for new, old in (("attn.out_proj", "self_attn.out_proj"), ("ln_1", "layer_norm1"), ("ln_2", "layer_norm2"),
                         ("mlp.c_fc", "mlp.fc1"), ("mlp.c_proj", "mlp.fc2")):
            for p in ("weight", "bias"):
                out[f"{dst}{new}.{p}"] = sd[f"{src}{old}.{p}"]
    out[prefix + "token_embedding.weight"] = sd["text_model.embeddings.token_embedding.weight"]
    out[prefix + "positional_embedding"] = sd["text_model.embeddings.position_embedding.weight"]
    out[prefix + "ln_final.weight"] = sd["text_model.final_layer_norm.weight"]
    out[prefix + "ln_final.bias"] = sd["text_model.final_layer_norm.bias"]
    if "text_projection.weight" in sd:
        out[prefix + "text_projection"] = sd["text_projection.weight"].T.contiguous()
    else:
        out[prefix + "text_projection"] = torch.eye(te.config.hidden_size)
    return out


def ldm_state(parts: dict, family: str) -> dict[str, torch.Tensor]:
    from nodeforge import lora_format as ldm_names

    unet = parts["unet"]
    state = {"model.diffusion_model." + ldm_names.unet_ldm_name(k, unet.config): v
             for k, v in unet.state_dict().items()}
    state.update(vae_ldm_state(parts["vae"]))
    te = parts["text_encoder"]
    if family == "sdxl-refiner":   # sd_xl_refiner_1.0: OpenCLIP bigG is embedder 0, there is no CLIP-L
        state.update(open_clip_state(parts["text_encoder_2"], "conditioner.embedders.0.model."))
    elif family == "sd1":
        state.update({"cond_stage_model.transformer." + k: v for k, v in hf_clip_state(te).items()})
    elif family == "sd2":
        state.update(open_clip_state(te, "cond_stage_model.model."))
    else:
        state.update({"conditioner.embedders.0.transformer." + k: v for k, v in hf_clip_state(te).items()})
        state.update(open_clip_state(parts["text_encoder_2"], "conditioner.embedders.1.model."))
    return {k: v.contiguous() for k, v in state.items()}


def save_single_file(parts: dict, diffusers_dir: Path, path: Path, family: str, extra: dict | None = None) -> Path:
    """Write `path` in the LDM layout plus `<stem>.config/` (configs and tokenizer, no weights)."""
    from safetensors.torch import save_file

    state = ldm_state(parts, family)
    state.update(extra or {})
    save_file(state, str(path))
    config = path.with_name(path.stem + ".config")
    shutil.copytree(diffusers_dir, config, ignore=shutil.ignore_patterns("*.safetensors", "*.bin"))
    return path


# -- LoRAs -------------------------------------------------------------------------------------------------
def lora_targets(unet, te) -> tuple[list[str], list[str]]:
    unet_names = [n for n, m in unet.named_modules()
                  if n.endswith(("attn1.to_q", "attn2.to_k", "attn1.to_out.0", "proj_in"))
                  or (n.endswith("resnets.0.conv1") and "down_blocks.0" in n)]
    te_names = [n for n, _ in te.named_modules() if n.endswith(("self_attn.q_proj", "self_attn.v_proj"))]
    return unet_names, te_names


def _pair(module, rank: int, gen: torch.Generator):
    w = module.weight
    if w.ndim == 4:   # LoCon: k x k down, 1 x 1 up
        down = torch.randn(rank, w.shape[1], w.shape[2], w.shape[3], generator=gen) * 0.3
        up = torch.randn(w.shape[0], rank, 1, 1, generator=gen) * 0.3
    else:
        down = torch.randn(rank, w.shape[1], generator=gen) * 0.3
        up = torch.randn(w.shape[0], rank, generator=gen) * 0.3
    return down, up


# The tiny UNet's (make_components) LoRA targets under their original Stable Diffusion (LDM) names,
# written out by hand from the LDM layout - input_blocks.0 is conv_in, each down block's layers then
# its downsampler, output_blocks (layers_per_block + 1) per up block, middle_block resnet/attention/
# resnet - and never computed by lora_format.unet_ldm_name, which the loader uses to read them.
TINY_UNET_LDM_NAMES = {
    "down_blocks.0.resnets.0.conv1": "input_blocks.1.0.in_layers.2",
    "down_blocks.0.attentions.0.proj_in": "input_blocks.1.1.proj_in",
    "down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q": "input_blocks.1.1.transformer_blocks.0.attn1.to_q",
    "down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_out.0":
        "input_blocks.1.1.transformer_blocks.0.attn1.to_out.0",
    "down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k": "input_blocks.1.1.transformer_blocks.0.attn2.to_k",
    "mid_block.attentions.0.proj_in": "middle_block.1.proj_in",
    "mid_block.attentions.0.transformer_blocks.0.attn1.to_q": "middle_block.1.transformer_blocks.0.attn1.to_q",
    "mid_block.attentions.0.transformer_blocks.0.attn1.to_out.0": "middle_block.1.transformer_blocks.0.attn1.to_out.0",
    "mid_block.attentions.0.transformer_blocks.0.attn2.to_k": "middle_block.1.transformer_blocks.0.attn2.to_k",
    "up_blocks.1.attentions.0.proj_in": "output_blocks.2.1.proj_in",
    "up_blocks.1.attentions.0.transformer_blocks.0.attn1.to_q": "output_blocks.2.1.transformer_blocks.0.attn1.to_q",
    "up_blocks.1.attentions.0.transformer_blocks.0.attn1.to_out.0":
        "output_blocks.2.1.transformer_blocks.0.attn1.to_out.0",
    "up_blocks.1.attentions.0.transformer_blocks.0.attn2.to_k": "output_blocks.2.1.transformer_blocks.0.attn2.to_k",
    "up_blocks.1.attentions.1.proj_in": "output_blocks.3.1.proj_in",
    "up_blocks.1.attentions.1.transformer_blocks.0.attn1.to_q": "output_blocks.3.1.transformer_blocks.0.attn1.to_q",
    "up_blocks.1.attentions.1.transformer_blocks.0.attn1.to_out.0":
        "output_blocks.3.1.transformer_blocks.0.attn1.to_out.0",
    "up_blocks.1.attentions.1.transformer_blocks.0.attn2.to_k": "output_blocks.3.1.transformer_blocks.0.attn2.to_k",
}


def kohya_lora(unet, te, path: Path, *, ldm_names: bool = False, seed: int = 1) -> Path:
    """A kohya LoRA (LoCon on one conv) of rank 4, alpha 2; `ldm_names`: UNet keys in the LDM
    layout, from TINY_UNET_LDM_NAMES."""
    from safetensors.torch import save_file

    gen = torch.Generator().manual_seed(seed)
    state = {}
    unet_names, te_names = lora_targets(unet, te)
    for prefix, root, names in (("lora_unet_", unet, unet_names), ("lora_te_", te, te_names)):
        for name in names:
            down, up = _pair(root.get_submodule(name), 4, gen)
            written = TINY_UNET_LDM_NAMES[name] if ldm_names and root is unet else name
            if root is te:
                written = hf_clip_name(name)
            key = prefix + written.replace(".", "_")
            state[key + ".lora_down.weight"] = down
            state[key + ".lora_up.weight"] = up
            state[key + ".alpha"] = torch.tensor(2.0)
    save_file(state, str(path))
    return path


def peft_lora(unet, te, path: Path, seed: int = 2) -> Path:
    from safetensors.torch import save_file

    gen = torch.Generator().manual_seed(seed)
    state = {}
    unet_names, te_names = lora_targets(unet, te)
    for prefix, root, names in (("unet.", unet, unet_names), ("text_encoder.", te, te_names)):
        for name in names:
            if root.get_submodule(name).weight.ndim == 4:
                continue
            down, up = _pair(root.get_submodule(name), 4, gen)
            if root is te:
                name = hf_clip_name(name)
            state[f"{prefix}{name}.lora_A.weight"] = down
            state[f"{prefix}{name}.lora_B.weight"] = up
    save_file(state, str(path), metadata={"lora_adapter_metadata": json.dumps({"lora_alpha": 8, "r": 4})})
    return path


def foreign_lora(path: Path) -> Path:
    """A LoRA for another model: names this UNet does not have."""
    from safetensors.torch import save_file

    save_file({"lora_unet_some_other_block_proj.lora_down.weight": torch.ones(4, 16),
               "lora_unet_some_other_block_proj.lora_up.weight": torch.ones(16, 4)}, str(path))
    return path


# -- workflows ------------------------------------------------------------------------------------------
def txt2img(checkpoint: str = "tiny-sd", text: str = "a red circle", *, seed: int = 42, steps: int = 3,
            cfg: float = 5.0, sampler: str = "euler", schedule: str = "default", width: int = 32, height: int = 32, lora=None,
            save: bool = False, batch_size: int = 1):
    """A txt2img workflow; `lora` is a list of (name, strength_unet, strength_clip)."""
    from nodeforge import Workflow

    wf = Workflow()
    wf.add("CheckpointLoader", {"checkpoint": checkpoint}, node_id="ckpt")
    unet, clip = ("ckpt", "unet"), ("ckpt", "clip")
    for i, (name, su, sc) in enumerate(lora or []):
        nid = wf.add("LoRALoader", {"lora": name, "strength_unet": su, "strength_clip": sc},
                     {"unet": unet, "clip": clip}, node_id=f"lora{i}")
        unet, clip = (nid, "unet"), (nid, "clip")
    wf.add("TextEncoder", {"text": text}, {"clip": clip}, node_id="pos", title="positive")
    wf.add("TextEncoder", {"text": ""}, {"clip": clip}, node_id="neg", title="negative")
    wf.add("EmptyLatent", {"width": width, "height": height, "batch_size": batch_size}, node_id="empty")
    wf.add("UNetDenoise", {"seed": seed, "steps": steps, "cfg": cfg, "sampler": sampler, "schedule": schedule,
                           "denoise": 1.0},
           {"unet": unet, "positive": ("pos", "conditioning"), "negative": ("neg", "conditioning"),
            "latent": ("empty", "latent")}, node_id="denoise")
    wf.add("VAEDecode", {}, {"vae": ("ckpt", "vae"), "latent": ("denoise", "latent")}, node_id="decode")
    if save:
        wf.add("SaveImage", {"prefix": "test"}, {"image": ("decode", "image")}, node_id="save")
    else:
        wf.add("Preview", {}, {"image": ("decode", "image")}, node_id="preview")
    return wf


def with_controls(wf, folder: Path, controls=()):
    """`wf` (a txt2img) with a LoadImage, ControlNetLoader and ControlNetApply for each (controlnet or
    adapter name, control image [1, H, W, 3], strength, start, end), chained on both prompts."""
    import numpy as np
    from PIL import Image

    pos, neg = ("pos", "conditioning"), ("neg", "conditioning")
    for i, (name, image, strength, start, end) in enumerate(controls):
        path = folder / f"control-{i}-{hash(image.numpy().tobytes())}.png"
        Image.fromarray((image[0].numpy() * 255).round().astype(np.uint8)).save(path)
        wf.add("LoadImage", {"path": str(path)}, node_id=f"img{i}")
        wf.add("ControlNetLoader", {"controlnet": name}, node_id=f"cn{i}")
        wf.add("ControlNetApply", {"strength": strength, "start_percent": start, "end_percent": end},
               {"positive": pos, "negative": neg, "controlnet": (f"cn{i}", "controlnet"), "image": (f"img{i}", "image")},
               node_id=f"apply{i}")
        pos, neg = (f"apply{i}", "positive"), (f"apply{i}", "negative")
    wf.nodes["denoise"].inputs.update(positive=pos, negative=neg)
    return wf


def denoised(engine, wf):
    """The latent UNetDenoise ("denoise") makes, running only what it needs."""
    return engine.run(wf, outputs=["denoise"]).outputs["denoise"]["latent"]["samples"]


# -- the shipped graph and diffusers' pipelines on the tiny folders (every family's tests) -----------------
def shipped_txt2img(checkpoint: str, width: int = 32, height: int = 32, **denoise):
    """workflows/txt2img.json with only the checkpoint and size switched (and UNetDenoise's params, node
    "5", where given)."""
    from nodeforge import load_workflow

    wf = load_workflow(REPO / "workflows" / "txt2img.json")
    wf.nodes["1"].params["checkpoint"] = checkpoint
    wf.nodes["4"].params.update(width=width, height=height)
    wf.nodes["5"].params.update(denoise)
    return wf


def with_lora(wf, lora: str, strength_unet: float, strength_clip: float):
    """The shipped graph with a LoRALoader between its checkpoint and the sampler and both prompts."""
    wf.add("LoRALoader", {"lora": lora, "strength_unet": strength_unet, "strength_clip": strength_clip},
           {"unet": ("1", "unet"), "clip": ("1", "clip")}, node_id="lora")
    wf.nodes["5"].inputs["unet"] = ("lora", "unet")
    for node in ("2", "3"):
        wf.nodes[node].inputs["clip"] = ("lora", "clip")
    return wf


def refusal_of_copy(folder: Path, copy: Path, *, without: str = "", pipeline: str = "") -> str:
    """The NodeError load_checkpoint gives for a copy of the model folder `folder` at `copy`, its part
    `without` removed or its model_index.json naming the pipeline class `pipeline`."""
    import pytest

    from nodeforge.core.errors import NodeError
    from nodes.loading import load_checkpoint

    shutil.copytree(folder, copy)
    if without:
        shutil.rmtree(copy / without)
    if pipeline:
        index = json.loads((copy / "model_index.json").read_text())
        (copy / "model_index.json").write_text(json.dumps(dict(index, _class_name=pipeline)))
    with pytest.raises(NodeError) as info:
        load_checkpoint(copy, "cpu")
    return str(info.value)


def latent_of(engine, wf, node: str = "5") -> torch.Tensor:
    """The latent a sampler node of `wf` makes (the shipped graph's UNetDenoise by default)."""
    return engine.run(wf, outputs=[node]).outputs[node]["latent"]["samples"]


def pipeline(folder: Path, cls: str, **scheduler):
    """diffusers' pipeline class `cls` on a tiny model folder, its scheduler config changed where given."""
    import diffusers

    pipe = getattr(diffusers, cls).from_pretrained(str(folder), local_files_only=True)
    if scheduler:
        pipe.scheduler = type(pipe.scheduler).from_config(dict(pipe.scheduler.config, **scheduler))
    pipe.set_progress_bar_config(disable=True)
    return pipe


# -- ControlNets on the shipped graph (the flow families' ControlNet tests) ---------------------------------
def trained_looking(net):
    """`net` with every weight moved a little: diffusers zero-initialises a ControlNet's output blocks,
    where a trained one is not zero (so it would steer nothing)."""
    with torch.no_grad():
        for p in net.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    return net


def save_controlnet_file(net, path: Path, config: bool = True) -> Path:
    """`net` as one .safetensors file, with its config in a `<name>.config/` folder beside it if `config`."""
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(path))
    if config:
        net.save_config(str(path.with_suffix(".config")))
    return path


def with_controlnets(wf, image: Path, controlnets: list[str], strength: float, vae: bool = True):
    """The shipped graph with `image` loaded ("img") and one ControlNetLoader ("cnN") + ControlNetApply
    ("applyN", with the checkpoint's VAE when `vae`) per ControlNet, chained on both prompts."""
    wf.add("LoadImage", {"path": str(image)}, node_id="img")
    positive, negative = ("2", "conditioning"), ("3", "conditioning")
    for i, name in enumerate(controlnets):
        wf.add("ControlNetLoader", {"controlnet": name}, node_id=f"cn{i}")
        inputs = {"positive": positive, "negative": negative, "controlnet": (f"cn{i}", "controlnet"),
                  "image": ("img", "image")}
        if vae:
            inputs["vae"] = ("1", "vae")
        wf.add("ControlNetApply", {"strength": strength}, inputs, node_id=f"apply{i}")
        positive, negative = (f"apply{i}", "positive"), (f"apply{i}", "negative")
    wf.nodes["5"].inputs.update(positive=positive, negative=negative)
    return wf
