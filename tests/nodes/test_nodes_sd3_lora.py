"""SD3 LoRAs through the LoRALoader node, in diffusers', kohya/ComfyUI (MMDiT names, fused qkv) and
PEFT layouts, checked against diffusers' StableDiffusion3Pipeline.load_lora_weights on a tiny
random SD3 model (tests/nodes/tiny_sd3.py)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import tiny_models as tm
import tiny_sd3 as ts
from tiny_models import latent_of

PROMPT = "a red circle on a blue background"


@pytest.fixture(scope="module")
def sd3_lora_dir(tmp_path_factory) -> Path:
    from safetensors.torch import save_file

    torch.set_num_threads(2)
    root = tmp_path_factory.mktemp("sd3lora")
    (root / "checkpoints").mkdir()
    (root / "loras").mkdir()
    parts = ts.make_sd3_components(0)
    ts.save_sd3_folder(parts, root / "checkpoints" / "tiny-sd3")
    full = ts.diffusers_sd3_lora(parts, seed=1)
    save_file(full, str(root / "loras" / "sd3-diffusers.safetensors"))
    save_file(ts.kohya_sd3_lora(full, parts["transformer"].config.num_layers),
              str(root / "loras" / "sd3-kohya.safetensors"))
    peft = root / "loras" / "peft"
    peft.mkdir()
    only = {k.replace("transformer.", "base_model.model.", 1): v for k, v in full.items() if k.startswith("transformer.")}
    save_file(only, str(peft / "adapter_model.safetensors"))
    (peft / "adapter_config.json").write_text(json.dumps({"r": 2, "lora_alpha": 1, "peft_type": "LORA"}))
    t5 = {n: m for n, m in parts["text_encoder_3"].named_modules() if n.endswith("SelfAttention.q")}
    save_file({f"lora_te3_{n.replace('.', '_')}.lora_{w}.weight": torch.randn(*shape, generator=torch.Generator()
               .manual_seed(3)) for n, m in t5.items()
               for w, shape in (("down", (2, m.weight.shape[1])), ("up", (m.weight.shape[0], 2)))},
              str(root / "loras" / "sd3-t5.safetensors"))
    return root


@pytest.fixture(scope="module")
def lora_engine(make_engine, sd3_lora_dir, tmp_path_factory):
    return make_engine(tmp_path_factory.mktemp("sd3loraout"), sd3_lora_dir)


def with_lora(lora: str, strength: float, clip_strength: float | None = None, steps: int = 3):
    return tm.with_lora(tm.shipped_txt2img("tiny-sd3", seed=9, steps=steps), lora, strength,
                        strength if clip_strength is None else clip_strength)


def diffusers_latents(root: Path, lora: Path | dict, scale: float, steps: int = 3) -> torch.Tensor:
    from diffusers import StableDiffusion3Pipeline

    pipe = StableDiffusion3Pipeline.from_pretrained(str(root / "checkpoints" / "tiny-sd3"), local_files_only=True)
    pipe.set_progress_bar_config(disable=True)
    pipe.load_lora_weights(lora if isinstance(lora, dict) else str(lora))
    return pipe(PROMPT, negative_prompt="", num_inference_steps=steps, guidance_scale=5.0, height=32, width=32,
                generator=torch.Generator().manual_seed(9), output_type="latent",
                joint_attention_kwargs={"scale": scale}).images


@pytest.mark.parametrize("lora", ["sd3-diffusers.safetensors", "sd3-kohya.safetensors"])
def test_an_sd3_lora_gives_diffusers_load_lora_weights_latents(lora_engine, sd3_lora_dir, lora):
    ours = latent_of(lora_engine, with_lora(lora, 0.7))
    theirs = diffusers_latents(sd3_lora_dir, sd3_lora_dir / "loras" / "sd3-diffusers.safetensors", 0.7)
    torch.testing.assert_close(ours, theirs, atol=1e-4, rtol=1e-4)
    plain = latent_of(lora_engine, with_lora(lora, 0.0))
    assert (ours - plain).abs().mean() > 1e-2      # the LoRA does change the image


def test_the_kohya_file_patches_the_same_weights_as_the_diffusers_file(sd3_lora_dir):
    """Fused qkv split in thirds, the half-swapped adaLN layers swapped: every patched weight equal."""
    from nodes.loading import load_checkpoint
    from nodes.lora import run_lora_loader

    class Ctx:
        @staticmethod
        def resolve_file(kind, name):
            return sd3_lora_dir / "loras" / name

    unet, clip, _ = load_checkpoint(sd3_lora_dir / "checkpoints" / "tiny-sd3", "cpu").wrappers()
    weights = []
    for name in ("sd3-diffusers.safetensors", "sd3-kohya.safetensors"):
        patched = run_lora_loader(Ctx(), unet, clip, name, 1.0, 1.0)
        with patched["unet"].patched(), patched["clip"].patched():
            weights.append({k: v.clone() for k, v in [*unet.unet.state_dict().items(),
                                                      *clip.text_encoder_2.state_dict().items()]})
    base = unet.unet.state_dict()
    changed = [k for k in base if not torch.equal(base[k], weights[0][k])]
    assert "transformer_blocks.1.norm1_context.linear.weight" in changed and "norm_out.linear.weight" in changed
    assert len(changed) == 14 + 11 + 4   # block 0, the last block (no context output layers), the top layers
    for key in weights[0]:
        torch.testing.assert_close(weights[0][key], weights[1][key], atol=1e-6, rtol=1e-6)


def test_a_peft_adapter_folder_file_uses_its_alpha_as_diffusers(lora_engine, sd3_lora_dir):
    from safetensors.torch import load_file

    ours = latent_of(lora_engine, with_lora(str(sd3_lora_dir / "loras" / "peft" / "adapter_model.safetensors"), 1.0))
    full = load_file(str(sd3_lora_dir / "loras" / "sd3-diffusers.safetensors"))
    # lora_alpha 1 over r 2: the same as diffusers' file with every B halved
    halved = {k: v * 0.5 if "lora_B" in k else v for k, v in full.items() if k.startswith("transformer.")}
    theirs = diffusers_latents(sd3_lora_dir, halved, 1.0)
    torch.testing.assert_close(ours, theirs, atol=1e-4, rtol=1e-4)


def test_a_t5_lora_changes_only_the_t5_part_of_the_prompt(lora_engine):
    def embeds(strength):
        wf = with_lora("sd3-t5.safetensors", 1.0, clip_strength=strength)
        return lora_engine.run(wf, outputs=["2"]).outputs["2"]["conditioning"][0]["embeds"]

    plain, patched = embeds(0.0), embeds(1.0)
    assert torch.equal(plain[:, :77], patched[:, :77])
    assert (plain[:, 77:] - patched[:, 77:]).abs().max() > 1e-3
