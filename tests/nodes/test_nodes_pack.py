"""The pack's declarations: cheap to import, names as the file format fixes them (docs/architecture.md)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from nodeforge.core.registry import builtin_module

ROOT = Path(__file__).resolve().parents[2]


def test_importing_the_pack_leaves_torch_out():
    code = ("import sys, time; t = time.perf_counter()\n"
            "from nodeforge.core.registry import load_registry\n"
            "r = load_registry(entry_points=False)\n"
            "assert not r.failures, r.failures\n"
            "heavy = [m for m in ('torch', 'diffusers', 'transformers', 'peft', 'PIL') if m in sys.modules]\n"
            "print(len(r), heavy, time.perf_counter() - t)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    count, heavy, _ = out.stdout.split(" ", 2)
    assert heavy.startswith("[]"), out.stdout
    assert int(count) >= 11


def test_node_table_matches_the_design(registry):
    table = {
        "CheckpointLoader": ([], ["checkpoint"], ["unet", "clip", "vae"]),
        "LoRALoader": (["unet", "clip"], ["lora", "strength_unet", "strength_clip"], ["unet", "clip"]),
        "TextEncoder": (["clip"], ["text"], ["conditioning"]),
        "EmptyLatent": ([], ["width", "height", "batch_size"], ["latent"]),
        "LoadImage": ([], ["path"], ["image", "mask"]),
        "VAEEncode": (["vae", "image"], [], ["latent"]),
        "SetLatentMask": (["latent", "mask"], [], ["latent"]),
        "UNetDenoise": (["unet", "positive", "negative", "latent"], ["seed", "steps", "cfg", "sampler", "schedule", "denoise",
                         "start_at_step", "end_at_step", "add_noise", "return_with_leftover_noise"],
                        ["latent"]),
        "VAEDecode": (["vae", "latent"], [], ["image"]),
        "Preview": (["image"], [], []),
        "SaveImage": (["image"], ["prefix"], []),
        "ConditioningSetArea": (["conditioning"], ["width", "height", "x", "y", "strength"], ["conditioning"]),
        "VAELoader": ([], ["vae"], ["vae"]),
        "ControlNetLoader": ([], ["controlnet"], ["controlnet"]),
        "ControlNetApply": (["positive", "negative", "controlnet", "image"], ["strength", "start_percent", "end_percent"],
                            ["positive", "negative"]),
        "ImageToEdges": (["image"], ["low_threshold", "high_threshold"], ["image"]),
        "UpscaleModelLoader": ([], ["upscale_model"], ["upscale_model"]),
        "ImageUpscaleWithModel": (["upscale_model", "image"], ["tile", "overlap"], ["image"]),
        "ConditioningCombine": (["conditioning_1", "conditioning_2"], [], ["conditioning"]),
        "ConditioningSetAestheticScore": (["conditioning"], ["aesthetic_score"], ["conditioning"]),
        "TextEncoderSDXL": (["clip"], ["text_g", "text_l", "width", "height", "crop_w", "crop_h", "target_width",
                                       "target_height"], ["conditioning"]),
        "TextEncoderSDXLRefiner": (["clip"], ["text", "aesthetic_score", "width", "height"], ["conditioning"]),
        "ConditioningSetAreaPercentage": (["conditioning"], ["width", "height", "x", "y", "strength"],
                                          ["conditioning"]),
        "ConditioningZeroOut": (["conditioning"], [], ["conditioning"]),
        "ConditioningSetTimestepRange": (["conditioning"], ["start", "end"], ["conditioning"]),
        "ConditioningAverage": (["conditioning_to", "conditioning_from"], ["conditioning_to_strength"],
                                ["conditioning"]),
        "ConditioningConcat": (["conditioning_to", "conditioning_from"], [], ["conditioning"]),
        "RepeatLatentBatch": (["latent"], ["amount"], ["latent"]),
        "LatentFromBatch": (["latent"], ["batch_index", "length"], ["latent"]),
        "LoadImageMask": ([], ["path", "channel"], ["mask"]),
        "InvertMask": (["mask"], [], ["mask"]),
        "ImageInvert": (["image"], [], ["image"]),
        "ImageToMask": (["image"], ["channel"], ["mask"]),
        "MaskToImage": (["mask"], [], ["image"]),
        "SolidMask": ([], ["value", "width", "height"], ["mask"]),
        "GrowMask": (["mask"], ["expand", "tapered_corners"], ["mask"]),
        "ImageScaleToTotalPixels": (["image"], ["upscale_method", "megapixels", "resolution_steps"], ["image"]),
        "ConditioningSetAreaStrength": (["conditioning"], ["strength"], ["conditioning"]),
        "ImageCrop": (["image"], ["width", "height", "x", "y"], ["image"]),
        "ImageBatch": (["image1", "image2"], [], ["image"]),
        "LatentBlend": (["latent_1", "latent_2"], ["blend_factor"], ["latent"]),
        "EmptyImage": ([], ["width", "height", "batch_size", "color"], ["image"]),
        "ImageCompositeMasked": (["destination", "source", "mask"], ["x", "y", "resize_source"], ["image"]),
        "LatentCompositeMasked": (["destination", "source", "mask"], ["x", "y", "resize_source"], ["latent"]),
    }
    for name, (inputs, params, outputs) in table.items():
        spec = registry.get(name)
        assert spec is not None, name
        assert [i.name for i in spec.inputs] == inputs, name
        assert [p.name for p in spec.params] == params, name
        assert [o.name for o in spec.outputs] == outputs, name
    assert registry.get("Preview").output_node and registry.get("SaveImage").output_node
    assert not registry.get("SaveImage").cacheable
    empty = registry.get("EmptyLatent")
    assert empty.param("width").multiple_of == 4 and empty.param("width").min == 16
    denoise = registry.get("UNetDenoise")
    # The declaration is the table (nodes/schedulers.py), dpmpp_sde included (torchsde is a dependency).
    assert list(denoise.param("sampler").choice_list()) == list(builtin_module("schedulers").SAMPLERS)
    for s in ("euler", "euler_ancestral", "heun", "dpm_2", "lms", "dpmpp_2m", "dpmpp_sde", "dpmpp_2m_sde",
              "uni_pc", "uni_pc_bh2", "ddim", "ddpm", "pndm", "lcm"):
        assert s in denoise.param("sampler").choice_list()
    assert list(denoise.param("schedule").choice_list()) == ["default", "normal", "karras", "exponential",
                                                             "sgm_uniform", "simple", "ddim_uniform", "beta"]
    assert denoise.param("sampler").default == "euler" and denoise.param("schedule").default == "default"
    assert registry.get("UNetDenoise").param("seed").max >= 2 ** 63 - 1


def test_prompt_weights_parse_like_a1111():
    from nodeforge.core.prompt_syntax import parse_weights as parse
    assert parse("a (red:1.5) circle") == [("a ", 1.0), ("red", 1.5), (" circle", 1.0)]
    assert parse("(a)") == [("a", 1.1)]
    assert parse("[a]")[0][1] == 1 / 1.1
    assert parse(r"\(literal\)") == [("(literal)", 1.0)]
    assert parse("((a))")[0][1] == 1.1 * 1.1
    assert parse("") == [("", 1.0)]


def test_every_lazy_run_function_of_the_pack_imports(registry):
    # The pack binds run functions by module and name so that listing stays torch-free; a renamed
    # function would only fail when a graph first runs that node. Import each one now.
    import importlib

    pack = builtin_module().__name__
    targets = {spec.type: spec.run.lazy_target for spec in registry if hasattr(spec.run, "lazy_target")}
    assert len(targets) >= 20, targets
    for name, (module, function) in targets.items():
        assert callable(getattr(importlib.import_module(f"{pack}.{module}"), function, None)), (name, module, function)
