"""ComfyUI's custom-sampling graphs (KSamplerSelect, BasicScheduler, SplitSigmas, RandomNoise,
DisableNoise, CFGGuider, BasicGuider, SamplerCustom(Advanced), AlignYourSteps, SDTurbo) and the SD3
and Flux classes around them (TripleCLIPLoader, ModelSamplingAuraFlow, FluxGuidance,
CLIPTextEncodeFlux, ModelSamplingFlux): imported one node per class, run on the demo model with
`--model-map`, exported back to the same classes and widget values."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

DATA = Path(__file__).resolve().parent / "data"
CUSTOM = {
    "20": ("SamplerSelect", {"sampler": "dpmpp_2m"}, {}),
    "21": ("BasicScheduler", {"schedule": "karras", "steps": 20, "denoise": 1.0}, {"unet": ("4", "unet")}),
    "22": ("SplitSigmas", {"step": 12}, {"sigmas": ("21", "sigmas")}),
    "23": ("RandomNoise", {"seed": 123456}, {}),
    "24": ("DisableNoise", {}, {}),
    "25": ("CFGGuider", {"cfg": 6.5}, {"unet": ("4", "unet"), "positive": ("6", "conditioning"),
                                      "negative": ("7", "conditioning")}),
    "26": ("SamplerCustomAdvanced", {}, {"noise": ("23", "noise"), "guider": ("25", "guider"),
                                         "sampler": ("20", "sampler"), "sigmas": ("22", "high_sigmas"),
                                         "latent": ("5", "latent")}),
    "27": ("SamplerCustomAdvanced", {}, {"noise": ("24", "noise"), "guider": ("25", "guider"),
                                         "sampler": ("20", "sampler"), "sigmas": ("22", "low_sigmas"),
                                         "latent": ("26", "output")}),
    "30": ("AlignYourStepsScheduler", {"model_type": "SD1", "steps": 10, "denoise": 1.0}, {}),
    "31": ("SamplerCustom", {"add_noise": True, "seed": 42, "cfg": 7.0},
           {"unet": ("4", "unet"), "positive": ("6", "conditioning"), "negative": ("7", "conditioning"),
            "sampler": ("20", "sampler"), "sigmas": ("30", "sigmas"), "latent": ("5", "latent")}),
    "32": ("VAEDecode", {}, {"vae": ("4", "vae"), "latent": ("31", "denoised_output")}),
    "40": ("SDTurboScheduler", {"steps": 1, "denoise": 1.0}, {"unet": ("4", "unet")}),
    "41": ("BasicGuider", {}, {"unet": ("4", "unet"), "conditioning": ("6", "conditioning")}),
    "50": ("KarrasScheduler", {"steps": 12, "sigma_max": 14.614642, "sigma_min": 0.0291675, "rho": 7.0}, {}),
    "60": ("ManualSigmas", {"sigmas": "1.0, 0.725, 0.4219, 0.0"}, {}),
    "61": ("SamplerCustomAdvanced", {}, {"noise": ("23", "noise"), "guider": ("41", "guider"),
                                         "sampler": ("20", "sampler"), "sigmas": ("60", "sigmas"),
                                         "latent": ("5", "latent")}),
}
SD3 = {
    "2": ("TextEncoderLoaderSD3", {"clip_l": "clip_l.safetensors", "clip_g": "clip_g.safetensors",
                                   "t5xxl": "t5xxl_fp16.safetensors"}, {}),
    "3": ("ModelSamplingSD3", {"shift": 2.5}, {"unet": ("1", "unet")}),
    "9": ("BasicScheduler", {"schedule": "sgm_uniform", "steps": 28, "denoise": 1.0}, {"unet": ("3", "unet")}),
}
FLUX = {
    "2": ("ModelSamplingFlux", {"max_shift": 1.15, "base_shift": 0.5, "width": 1024, "height": 1024},
          {"unet": ("1", "unet")}),
    "3": ("TextEncoderFlux", {"clip_l": "a red circle", "t5xxl": "a red circle on a blue background",
                              "guidance": 3.5}, {"clip": ("1", "clip")}),
    "5": ("FluxGuidance", {"guidance": 3.5}, {"conditioning": ("4", "conditioning")}),
    "7": ("BasicGuider", {}, {"unet": ("2", "unet"), "conditioning": ("5", "conditioning")}),
    "17": ("BasicScheduler", {"schedule": "simple", "steps": 4, "denoise": 1.0}, {"unet": ("2", "unet")}),
}

FLUX_DEV = {
    "12": ("DiffusionModelLoader", {"model": "flux1-dev.safetensors"}, {}),
    "11": ("DualTextEncoderLoader", {"text_encoder_1": "t5xxl_fp16.safetensors", "text_encoder_2": "clip_l.safetensors",
                                     "family": "flux"}, {}),
    "10": ("VAELoader", {"vae": "ae.safetensors"}, {}),
    "26": ("FluxGuidance", {"guidance": 3.5}, {"conditioning": ("6", "conditioning")}),
    "13": ("SamplerCustomAdvanced", {}, {"noise": ("25", "noise"), "guider": ("22", "guider"),
                                         "sampler": ("16", "sampler"), "sigmas": ("17", "sigmas"),
                                         "latent": ("27", "latent")}),
}
FLUX_SCHNELL = {
    "11": ("DualTextEncoderLoader", {"text_encoder_1": "clip_l.safetensors",
                                     "text_encoder_2": "t5xxl_fp8_e4m3fn.safetensors", "family": "flux"}, {}),
    "3": ("UNetDenoise", {"seed": 42, "steps": 4, "cfg": 1.0, "sampler": "euler", "schedule": "simple"},
          {"unet": ("12", "unet"), "positive": ("6", "conditioning"), "negative": ("33", "conditioning"),
           "latent": ("5", "latent")}),
}


def _check(imported, expected):
    nodes = imported.workflow.nodes
    for nid, (node_type, params, inputs) in expected.items():
        node = nodes[nid]
        assert (node.type, {k: node.params[k] for k in params}, node.inputs) == (node_type, params, inputs), nid
    assert all(n.type != "comfyui.Placeholder" for n in nodes.values())


@pytest.mark.parametrize("name,expected", [("comfy-custom-0.4.json", CUSTOM), ("comfy-custom-api.json", CUSTOM),
                                           ("comfy-sd3-custom-0.4.json", SD3), ("comfy-sd3-custom-api.json", SD3),
                                           ("comfy-flux-0.4.json", FLUX), ("comfy-flux-api.json", FLUX),
                                           ("comfy-flux-dev-0.4.json", FLUX_DEV), ("comfy-flux-dev-api.json", FLUX_DEV),
                                           ("comfy-flux-schnell-0.4.json", FLUX_SCHNELL),
                                           ("comfy-flux-schnell-api.json", FLUX_SCHNELL)])
def test_custom_sampling_classes_import_field_by_field_and_validate(read, validate, name, expected):
    imported = read(name)
    _check(imported, expected)
    assert validate(imported.workflow) == []
    assert not [w for w in imported.warnings if "no NodeForge equivalent" in w or "no value" in w], imported.warnings


@pytest.mark.parametrize("stem", ["comfy-custom", "comfy-sd3-custom", "comfy-flux", "comfy-flux-dev",
                                  "comfy-flux-schnell"])
@pytest.mark.parametrize("form", ["0.4", "api"])
def test_export_gives_back_the_classes_widgets_and_links_of_the_api_prompt(exported_back, stem, form):
    back = exported_back(f"{stem}-{form}.json", f"{stem}-api.json")
    assert set(back.prompt) == set(back.original)
    back.assert_kept(back.original)


def _run(tmp_path, capsys, prompt: dict, name: str) -> list[Path]:
    from nodeforge.cli import main

    path = tmp_path / name
    path.write_text(json.dumps(prompt))
    code = main(["run", str(path), "--out", str(tmp_path / name.replace(".json", "")), "-q", "--model-map",
                 "v1-5-pruned-emaonly.safetensors=nodeforge-shapes"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    return [Path(p) for p in captured.out.split()]


def _small(prompt: dict) -> dict:
    """The shared graph as a user tries it: 64 px, 8 steps split at 5, only the two-stage branch saved."""
    prompt = json.loads(json.dumps(prompt))
    prompt["5"]["inputs"].update(width=64, height=64)
    prompt["21"]["inputs"]["steps"] = 8
    prompt["22"]["inputs"]["step"] = 5
    for nid in ("30", "31", "32", "33", "40", "41", "42", "43", "44", "50", "51", "52", "53"):
        del prompt[nid]
    return prompt


def test_the_split_custom_sampler_gives_the_two_stage_ksampler_advanced_pixels(tmp_path, capsys):
    import numpy as np
    from PIL import Image

    custom = _small(json.loads((DATA / "comfy-custom-api.json").read_text()))
    advanced = {k: v for k, v in custom.items() if k in ("4", "5", "6", "7", "8", "9")}
    common = {"noise_seed": 123456, "steps": 8, "cfg": 6.5, "sampler_name": "dpmpp_2m", "scheduler": "karras",
              "model": ["4", 0], "positive": ["6", 0], "negative": ["7", 0]}
    advanced["26"] = {"class_type": "KSamplerAdvanced", "inputs": dict(
        common, add_noise="enable", start_at_step=0, end_at_step=5, return_with_leftover_noise="enable",
        latent_image=["5", 0])}
    advanced["27"] = {"class_type": "KSamplerAdvanced", "inputs": dict(
        common, add_noise="disable", start_at_step=5, end_at_step=10000, return_with_leftover_noise="disable",
        latent_image=["26", 0])}
    advanced["8"]["inputs"]["samples"] = ["27", 0]
    [got] = _run(tmp_path, capsys, custom, "custom.json")
    [want] = _run(tmp_path, capsys, advanced, "advanced.json")
    a, b = (np.asarray(Image.open(p).convert("RGB")) for p in (got, want))
    assert a.shape == (64, 64, 3) and a.std() > 5 and np.array_equal(a, b)


def test_align_your_steps_karras_and_turbo_branches_run_on_the_demo_model(tmp_path, capsys):
    import numpy as np
    from PIL import Image

    prompt = json.loads((DATA / "comfy-custom-api.json").read_text())
    prompt["5"]["inputs"].update(width=64, height=64)
    prompt["21"]["inputs"]["steps"] = 4
    prompt["22"]["inputs"]["step"] = 2
    prompt["33"] = {"class_type": "SaveImage", "inputs": {"filename_prefix": "ays", "images": ["32", 0]}}
    prompt["44"] = {"class_type": "SaveImage", "inputs": {"filename_prefix": "turbo", "images": ["43", 0]}}
    prompt["50"]["inputs"]["steps"] = 6
    prompt["53"] = {"class_type": "SaveImage", "inputs": {"filename_prefix": "karras", "images": ["52", 0]}}
    paths = _run(tmp_path, capsys, prompt, "all.json")
    assert len(paths) == 4
    images = [np.asarray(Image.open(p).convert("RGB"), dtype=np.float32) for p in paths]
    assert all(im.shape == (64, 64, 3) and im.std() > 5 for im in images)
