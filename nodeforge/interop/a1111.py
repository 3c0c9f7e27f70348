"""A1111 / Forge generation parameters (a PNG's `parameters` text) as a NodeForge txt2img graph.

The text is the prompt, an optional "Negative prompt:" part and a last line of `Key: value`
pairs (Steps, Sampler, CFG scale, Seed, Size, Model, Clip skip, Hires ...). `<lora:name:0.8>`
tags in the prompt become LoRA nodes and leave the text; A1111's sampler names map onto
NodeForge's sampler and schedule.
"""
from __future__ import annotations

import json
import re
from typing import Any

from nodeforge.core.errors import WorkflowFileError
from nodeforge.core.workflow import Workflow
from nodeforge.interop import samplers

_PAIR = re.compile(r'\s*([A-Za-z][\w \-/+.()]*?):\s*("(?:\\.|[^\\"])*"|[^,]*)(?:,|$)')
_LORA = re.compile(r"<(lora|lyco):([^:>]+)((?::[^:>]*)*)>", re.IGNORECASE)
_OTHER_TAG = re.compile(r"<(hypernet):([^>]*)>", re.IGNORECASE)
_SIZE = re.compile(r"^\s*(\d{1,5})\s*x\s*(\d{1,5})\s*$")
# Keys that describe the file rather than the picture.
_METADATA = {"model hash", "version", "lora hashes", "ti hashes", "vae hash", "hashes", "schedule type",
             "hires upscale", "hires steps", "hires upscaler", "hires resize", "denoising strength", "size",
             "steps", "sampler", "cfg scale", "seed", "model", "clip skip", "vae", "batch size", "batch pos",
             "emphasis", "rng", "pad conds", "ensd", "eta", "sgm noise multiplier", "module 1", "module 2",
             "module 3", "hires module 1", "hires prompt", "hires negative prompt", "hires cfg scale",
             "hires schedule type", "hires sampler", "downcast alphas_cumprod", "noise schedule"}
MAX_PARAMETERS_CHARS = 200_000


def looks_like_parameters(text: str) -> bool:
    return bool(re.search(r"(^|\n)\s*Steps:\s*\d", text))


def parse_parameters(text: str, source: object | None = None) -> tuple[str, str, dict[str, str]]:
    """(prompt, negative prompt, {key: value}) from A1111's text."""
    if len(text) > MAX_PARAMETERS_CHARS:
        raise WorkflowFileError(f"the A1111 parameters text is {len(text)} characters; more than "
                                f"{MAX_PARAMETERS_CHARS} is not generation parameters", source=source)
    lines = text.strip().split("\n")
    settings_line = ""
    if lines and (re.match(r"\s*Steps:\s*\d", lines[-1]) or len(_PAIR.findall(lines[-1])) >= 3):
        settings_line = lines.pop()
    prompt_lines: list[str] = []
    negative_lines: list[str] = []
    target = prompt_lines
    for line in lines:
        if line.startswith("Negative prompt:"):
            target = negative_lines
            line = line[len("Negative prompt:"):].lstrip()
        target.append(line)
    settings: dict[str, str] = {}
    for key, value in _PAIR.findall(settings_line):
        value = value.strip()
        if value.startswith('"') and value.endswith('"') and len(value) >= 2:
            try:
                value = json.loads(value)
            except ValueError:
                value = value[1:-1]
        settings[key.strip()] = value
    return "\n".join(prompt_lines).strip(), "\n".join(negative_lines).strip(), settings


def _number(settings: dict[str, str], key: str, kind: type, warnings: list[str]) -> Any:
    raw = settings.get(key)
    if raw is None:
        return None
    try:
        value = kind(float(raw)) if kind is int and "." in raw else kind(raw)
    except ValueError:
        warnings.append(f"A1111 parameters: {key} {raw[:40]!r} is not a number; NodeForge's default is used")
        return None
    return value


def loras_in(prompt: str, warnings: list[str]) -> tuple[str, list[tuple[str, float, float]]]:
    """The prompt without its `<lora:...>` tags, and (name, unet strength, text-encoder strength) for each."""
    found: list[tuple[str, float, float]] = []

    def take(match: re.Match[str]) -> str:
        name = match.group(2).strip()
        numbers = [part for part in match.group(3).split(":")[1:] if part.strip()]
        weights: list[float] = []
        for part in numbers:
            part = part.split("=")[-1]      # Forge's "te=0.5" / "unet=1"
            try:
                weights.append(float(part))
            except ValueError:
                warnings.append(f"A1111 parameters: <{match.group(1)}:{name}> has a strength {part[:20]!r} that is "
                                "not a number; using 1")
        te = weights[0] if weights else 1.0
        unet = weights[1] if len(weights) > 1 else te     # A1111: <lora:name:te:unet>
        found.append((name, unet, te))
        return ""

    text = _LORA.sub(take, prompt)

    def drop(match: re.Match[str]) -> str:
        warnings.append(f"A1111 parameters: <{match.group(1)}:...> tags are not supported by NodeForge; removed "
                        "from the prompt")
        return ""

    text = _OTHER_TAG.sub(drop, text)
    text = re.sub(r"[ \t]{2,}", " ", text)
    text = re.sub(r"\s+,", ",", text)
    text = re.sub(r"(,\s*){2,}", ", ", text).strip().strip(",").strip()
    return text, found


def to_workflow(text: str, source: object | None = None) -> tuple[Workflow, list[str]]:
    warnings: list[str] = []
    prompt, negative, settings = parse_parameters(text, source)
    if not settings:
        raise WorkflowFileError("the A1111 parameters have no settings line (\"Steps: ..., Sampler: ...\")",
                                source=source)
    prompt, loras = loras_in(prompt, warnings)
    negative, negative_loras = loras_in(negative, warnings)
    if negative_loras:
        warnings.append("A1111 parameters: LoRA tags in the negative prompt are ignored")
    wf = Workflow()

    def place(nid: str, col: float, row: float) -> None:
        wf.ui.setdefault("positions", {})[nid] = [col * 340.0, row * 220.0]

    model = settings.get("Model")
    ckpt_params = {"checkpoint": model} if model else {}
    if not model:
        warnings.append("A1111 parameters: no Model named; the checkpoint loader keeps NodeForge's default")
    ckpt = wf.add("CheckpointLoader", ckpt_params)
    place(ckpt, 0, 0)
    unet, clip = (ckpt, "unet"), (ckpt, "clip")
    col = 1.0
    for name, strength_unet, strength_clip in loras:
        nid = wf.add("LoRALoader", {"lora": name, "strength_unet": strength_unet, "strength_clip": strength_clip},
                     {"unet": unet, "clip": clip})
        place(nid, col, 0)
        col += 1
        unet, clip = (nid, "unet"), (nid, "clip")
    clip_skip = _number(settings, "Clip skip", int, warnings)
    if clip_skip is not None and clip_skip > 1:
        nid = wf.add("CLIPSetLastLayer", {"stop_at_layer": -min(clip_skip, 24)}, {"clip": clip})
        place(nid, col, 1)
        col += 1
        clip = (nid, "clip")
    positive = wf.add("TextEncoder", {"text": prompt}, {"clip": clip}, title="positive")
    place(positive, col, 1)
    negative_id = wf.add("TextEncoder", {"text": negative}, {"clip": clip}, title="negative")
    place(negative_id, col, 2)
    col += 1
    latent_params: dict[str, Any] = {"batch_size": 1}
    size = settings.get("Size")
    match = _SIZE.match(size or "")
    if match:
        latent_params["width"], latent_params["height"] = int(match.group(1)), int(match.group(2))
    elif size:
        warnings.append(f"A1111 parameters: Size {size[:40]!r} is not WIDTHxHEIGHT; NodeForge's default is used")
    latent = wf.add("EmptyLatent", latent_params)
    place(latent, col - 1, 3)
    sampler, schedule = samplers.from_a1111(settings.get("Sampler", "Euler"), settings.get("Schedule type"))
    for mapped in (sampler, schedule):
        if mapped.note:
            warnings.append(f"A1111 parameters: {mapped.note}")
    denoise_params: dict[str, Any] = {"sampler": sampler.name, "schedule": schedule.name, "denoise": 1.0}
    for key, param, kind in (("Seed", "seed", int), ("Steps", "steps", int), ("CFG scale", "cfg", float)):
        value = _number(settings, key, kind, warnings)
        if value is not None:
            denoise_params[param] = value
    first = wf.add("UNetDenoise", denoise_params, {"unet": unet, "positive": (positive, "conditioning"),
                                                   "negative": (negative_id, "conditioning"),
                                                   "latent": (latent, "latent")})
    place(first, col, 1)
    col += 1
    last = first
    hires = _number(settings, "Hires upscale", float, warnings)
    resize = _SIZE.match(settings.get("Hires resize", ""))
    if hires is not None or resize:
        upscaler = settings.get("Hires upscaler", "Latent")
        if not upscaler.lower().startswith("latent"):
            warnings.append(f"A1111 parameters: Hires upscaler {upscaler[:40]!r} is an image upscaler; NodeForge "
                            "builds the hires fix with a latent upscale instead")
        method = "bilinear"
        if "nearest" in upscaler.lower():
            method = "nearest-exact"
        elif "bicubic" in upscaler.lower():
            method = "bicubic"
        if resize:
            up = wf.add("LatentUpscale", {"upscale_method": method, "width": int(resize.group(1)),
                                          "height": int(resize.group(2)), "crop": "disabled"},
                        {"latent": (first, "latent")})
        else:
            up = wf.add("LatentUpscaleBy", {"upscale_method": method, "scale_by": hires}, {"latent": (first, "latent")})
        place(up, col, 1)
        col += 1
        second_params = dict(denoise_params)
        hires_steps = _number(settings, "Hires steps", int, warnings)
        if hires_steps:
            second_params["steps"] = hires_steps
        strength = _number(settings, "Denoising strength", float, warnings)
        second_params["denoise"] = strength if strength is not None else 0.7
        last = wf.add("UNetDenoise", second_params, {"unet": unet, "positive": (positive, "conditioning"),
                                                     "negative": (negative_id, "conditioning"),
                                                     "latent": (up, "latent")}, title="hires pass")
        place(last, col, 1)
        col += 1
    elif "Denoising strength" in settings:
        warnings.append("A1111 parameters: these are img2img settings, but the source image is not in the file; "
                        "built as txt2img")
    if settings.get("VAE"):
        warnings.append(f"A1111 parameters: VAE {settings['VAE'][:60]!r} is not loaded; the checkpoint's own VAE "
                        "is used")
    decode = wf.add("VAEDecode", {}, {"vae": (ckpt, "vae"), "latent": (last, "latent")})
    place(decode, col, 1)
    save = wf.add("SaveImage", {"prefix": "a1111"}, {"image": (decode, "image")})
    place(save, col + 1, 1)
    ignored = [k for k in settings if k.lower() not in _METADATA]
    if ignored:
        warnings.append("A1111 parameters NodeForge does not use: " + ", ".join(k[:40] for k in ignored[:12]))
    return wf, warnings
