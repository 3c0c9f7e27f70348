"""A1111 / Forge generation parameters (a PNG's `parameters` text) as a NodeForge txt2img graph.

The text is the prompt, an optional "Negative prompt:" part and a last line of `Key: value`
pairs (Steps, Sampler, CFG scale, Seed, Size, Model, Clip skip, Hires ...). `<lora:name:0.8>`
tags in the prompt become LoRA nodes and leave the text; A1111's sampler names map onto
NodeForge's sampler and schedule.
"""
from __future__ import annotations

import json
import math
import random
import re
from typing import Any

from nodeforge.core.errors import WorkflowFileError
from nodeforge.core.workflow import Workflow
from nodeforge.interop import samplers

_PAIR = re.compile(r'\s*([A-Za-z][\w \-/+.()]*?):\s*("(?:\\.|[^\\"])*"|[^,]*)(?:,|$)')
_LORA = re.compile(r"<(lora|lyco):([^:>]*)((?::[^:>]*)*)>", re.IGNORECASE)
_OTHER_TAG = re.compile(r"<(hypernet):([^>]*)>", re.IGNORECASE)
_SIZE = re.compile(r"^\s*(\d+)\s*x\s*(\d+)\s*$")
# EmptyLatent's width/height range (tests/interop/test_png_and_a1111.py keeps it equal to the pack's).
MIN_SIDE, MAX_SIDE = 16, 8192
# Keys that describe the file rather than the picture.
_METADATA = {"model hash", "version", "lora hashes", "ti hashes", "vae hash", "hashes", "schedule type",
             "hires upscale", "hires steps", "hires upscaler", "hires resize", "denoising strength", "size",
             "steps", "sampler", "cfg scale", "seed", "model", "clip skip", "vae", "batch size", "batch pos",
             "emphasis", "rng", "pad conds", "ensd", "eta", "sgm noise multiplier", "module 1", "module 2",
             "module 3", "hires module 1", "hires prompt", "hires negative prompt", "hires cfg scale",
             "hires schedule type", "hires sampler", "downcast alphas_cumprod", "noise schedule"}
MAX_PARAMETERS_CHARS = 200_000
# The ranges of the UNetDenoise and LatentUpscaleBy params the importer writes (tests/interop/
# test_hostile_imports.py keeps them equal to the pack's): a value outside is brought inside, with a warning.
RANGES: dict[str, tuple[float, float]] = {"seed": (0, 2 ** 64 - 1), "steps": (1, 1000), "cfg": (0.0, 100.0),
                                          "denoise": (0.0, 1.0), "scale_by": (0.01, 8.0)}
LORA_STRENGTH_MAX = 10.0         # LoRALoader's strength_unet and strength_clip: -10 to 10
RANDOM_SEED_MAX = 2 ** 32 - 1    # what A1111 draws for Seed -1, and what the editor's randomize draws


def looks_like_parameters(text: str) -> bool:
    """A line starting "Steps:" (whatever its value: "Steps: abc" is A1111's text with a bad
    setting, which to_workflow says, not a JSON file)."""
    return bool(re.search(r"(^|\n)[ \t]*Steps:", text))


def parse_parameters(text: str, source: object | None = None) -> tuple[str, str, dict[str, str]]:
    """(prompt, negative prompt, {key: value}) from A1111's text."""
    if len(text) > MAX_PARAMETERS_CHARS:
        raise WorkflowFileError(f"the A1111 parameters text is {len(text)} characters; more than "
                                f"{MAX_PARAMETERS_CHARS} is not generation parameters", source=source)
    lines = text.strip().split("\n")
    settings_line = ""
    if lines and (re.match(r"\s*Steps:", lines[-1]) or len(_PAIR.findall(lines[-1])) >= 3):
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
        if kind is float and not math.isfinite(value):
            raise ValueError(raw)
    except (ValueError, OverflowError):     # "1.5e309": int(inf) overflows; "nan", "inf": no setting
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
        if not name:
            warnings.append(f"A1111 parameters: a <{match.group(1)}:...> tag names no LoRA; removed from the prompt")
            return ""
        for part in numbers:
            part = part.split("=")[-1]      # Forge's "te=0.5" / "unet=1"
            try:
                weight = float(part)
            except ValueError:
                weight = math.nan
            if not -LORA_STRENGTH_MAX <= weight <= LORA_STRENGTH_MAX:   # NaN too
                warnings.append(f"A1111 parameters: <{match.group(1)}:{name}> has a strength {part[:20]!r} that is "
                                f"not a number from -{LORA_STRENGTH_MAX:g} to {LORA_STRENGTH_MAX:g}; using 1")
                weight = 1.0
            weights.append(weight)
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
    if not prompt and not negative and not settings:
        raise WorkflowFileError("the A1111 parameters are empty (no prompt and no \"Steps: ..., Sampler: ...\" "
                                "line)", source=source)
    if not settings:
        warnings.append("A1111 parameters: only a prompt, no settings line (\"Steps: ..., Sampler: ...\"); "
                        "NodeForge's defaults are used for the rest")
    if "\ufffd" in text:
        warnings.append("A1111 parameters: some bytes were not UTF-8 text and show as '\ufffd'; check the prompts")
    prompt, loras = loras_in(prompt, warnings)
    negative, negative_loras = loras_in(negative, warnings)
    if negative_loras:
        warnings.append("A1111 parameters: LoRA tags in the negative prompt are ignored")
    build = _Builder(settings, warnings)
    build.models(loras)
    build.prompts(prompt, negative)
    build.latent()
    first = build.sampler()
    last = build.hires_pass(first)
    build.output(last)
    ignored = [k for k in settings if k.lower() not in _METADATA]
    if ignored:
        warnings.append("A1111 parameters NodeForge does not use: " + ", ".join(k[:40] for k in ignored[:12]))
    return build.wf, warnings


def _shown(value: float) -> str:
    return str(value) if isinstance(value, int) else f"{value:g}"


def _sides(text: str | None) -> tuple[int, int] | None:
    """(width, height) of "WxH"; a side of more than 9 digits reads as 10^9 or more (not a slow int())."""
    match = _SIZE.match(text or "")
    if match is None:
        return None
    width, height = (int(g[:9]) * 10 ** min(len(g) - 9, 9) if len(g) > 9 else int(g) for g in match.groups())
    return width, height


class _Builder:
    """Adds the txt2img nodes left to right, one column each, in the order A1111 applies the settings."""

    def __init__(self, settings: dict[str, str], warnings: list[str]):
        self.wf = Workflow()
        self.settings = settings
        self.warnings = warnings
        self.col = 0.0
        self.denoise_params: dict[str, Any] = {}
        self.random_seed = False

    def number(self, key: str, kind: type, param: str | None = None) -> Any:
        """A setting as a number; with `param`, None (the node's default, said in a warning) outside its range."""
        value = _number(self.settings, key, kind, self.warnings)
        if value is None or param is None or RANGES[param][0] <= value <= RANGES[param][1]:
            return value
        low, high = RANGES[param]
        self.warnings.append(f"A1111 parameters: {key} {self.settings[key][:40]} is outside what NodeForge takes "
                             f"({_shown(low)} to {_shown(high)}); NodeForge's default is used")
        return None

    def seed(self) -> int | None:
        """The seed; A1111's -1 (a new random seed each time; only -1, as its get_fixed_seed) draws one
        as A1111 would, and the editor is set to randomize it after each run."""
        raw = _number(self.settings, "Seed", int, [])     # said once, by the call below
        if raw != -1:   # another negative seed is out of range, said so
            return self.number("Seed", int, "seed")
        seed = random.randint(0, RANDOM_SEED_MAX)
        self.random_seed = True
        self.warnings.append(f"A1111 parameters: Seed {raw} means a random seed in A1111; NodeForge drew {seed} and "
                             "randomizes the seed after each run in the editor (set the seed to keep an image)")
        return seed

    def add(self, node_type: str, params: dict[str, Any], inputs: dict[str, tuple[str, str]] | None = None,
            row: float = 1, title: str | None = None, col: float | None = None) -> str:
        """A node at (this column, row); the column moves on unless col is given."""
        nid = self.wf.add(node_type, params, inputs or {}, title=title)
        self.wf.ui.setdefault("positions", {})[nid] = [(self.col if col is None else col) * 340.0, row * 220.0]
        if col is None:
            self.col += 1
        return nid

    def models(self, loras: list[tuple[str, float, float]]) -> None:
        """Checkpoint, then one LoRALoader a tag, then CLIPSetLastLayer for Clip skip."""
        model = self.settings.get("Model")
        if not model:
            self.warnings.append("A1111 parameters: no Model named; the checkpoint loader keeps NodeForge's default")
        self.ckpt = self.add("CheckpointLoader", {"checkpoint": model} if model else {}, row=0)
        self.unet, self.clip = (self.ckpt, "unet"), (self.ckpt, "clip")
        for name, strength_unet, strength_clip in loras:
            nid = self.add("LoRALoader", {"lora": name, "strength_unet": strength_unet,
                                          "strength_clip": strength_clip},
                           {"unet": self.unet, "clip": self.clip}, row=0)
            self.unet, self.clip = (nid, "unet"), (nid, "clip")
        clip_skip = self.number("Clip skip", int)
        if clip_skip is not None and clip_skip > 24:
            self.warnings.append(f"A1111 parameters: Clip skip {clip_skip} is more layers than a CLIP text encoder "
                                 "has; using 24, the most CLIPSetLastLayer skips")
        if clip_skip is not None and clip_skip > 1:
            nid = self.add("CLIPSetLastLayer", {"stop_at_layer": -min(clip_skip, 24)}, {"clip": self.clip})
            self.clip = (nid, "clip")

    def prompts(self, prompt: str, negative: str) -> None:
        self.positive = self.add("TextEncoder", {"text": prompt}, {"clip": self.clip}, title="positive",
                                 col=self.col)
        self.negative = self.add("TextEncoder", {"text": negative}, {"clip": self.clip}, row=2, title="negative")

    def latent(self) -> None:
        params: dict[str, Any] = {"batch_size": 1}
        size = self.settings.get("Size")
        sides = _sides(size)
        if sides and not all(MIN_SIDE <= side <= MAX_SIDE for side in sides):
            self.warnings.append(f"A1111 parameters: Size {size[:40]!r} is {'larger' if max(sides) > MAX_SIDE else 'smaller'}"
                                 f" than NodeForge makes ({MIN_SIDE} to {MAX_SIDE} pixels a side); NodeForge's "
                                 "default is used - set EmptyLatent's width and height")
        elif sides:
            params["width"], params["height"] = (side // 8 * 8 for side in sides)
            if sides != (params["width"], params["height"]):
                self.warnings.append(f"A1111 parameters: Size {size} is not a multiple of 8, as a latent needs; "
                                     f"using {params['width']}x{params['height']} (as A1111 and diffusers round)")
        elif size:
            self.warnings.append(f"A1111 parameters: Size {size[:40]!r} is not WIDTHxHEIGHT; NodeForge's default "
                                 "is used")
        elif self.settings:
            self.warnings.append("A1111 parameters: no Size; NodeForge's default (512x512) is used")
        self.empty_latent = self.add("EmptyLatent", params, row=3, col=self.col - 1)

    def denoise(self, params: dict[str, Any], latent: str, title: str | None = None) -> str:
        return self.add("UNetDenoise", params, {"unet": self.unet, "positive": (self.positive, "conditioning"),
                                                "negative": (self.negative, "conditioning"),
                                                "latent": (latent, "latent")}, title=title)

    def sampler(self) -> str:
        sampler, schedule = samplers.from_a1111(self.settings.get("Sampler", "Euler"),
                                                self.settings.get("Schedule type"))
        for mapped in (sampler, schedule):
            if mapped.note:
                self.warnings.append(f"A1111 parameters: {mapped.note}")
        params: dict[str, Any] = {"sampler": sampler.name, "schedule": schedule.name, "denoise": 1.0}
        for param, value in (("seed", self.seed()), ("steps", self.number("Steps", int, "steps")),
                             ("cfg", self.number("CFG scale", float, "cfg"))):
            if value is not None:
                params[param] = value
        self.denoise_params = params
        nid = self.denoise(params, self.empty_latent)
        if self.random_seed:
            self.wf.ui.setdefault("seed_control", {})[nid] = "randomize"
        return nid

    def hires_pass(self, first: str) -> str:
        """A latent upscale and a second UNetDenoise for A1111's hires fix; `first` when there is none."""
        hires = self.number("Hires upscale", float, "scale_by")
        resize = _sides(self.settings.get("Hires resize"))
        resize = resize if resize and any(resize) else None    # A1111's 0x0: scale by Hires upscale instead
        if "Hires upscale" not in self.settings and not resize:
            if "Denoising strength" in self.settings:
                self.warnings.append("A1111 parameters: these are img2img settings, but the source image is not "
                                     "in the file; built as txt2img")
            return first
        upscaler = self.settings.get("Hires upscaler", "Latent")
        if not upscaler.lower().startswith("latent"):
            self.warnings.append(f"A1111 parameters: Hires upscaler {upscaler[:40]!r} is an image upscaler; "
                                 "NodeForge builds the hires fix with a latent upscale instead")
        method = "bilinear"
        if "nearest" in upscaler.lower():
            method = "nearest-exact"
        elif "bicubic" in upscaler.lower():
            method = "bicubic"
        if resize:
            up = self.add("LatentUpscale", {"upscale_method": method, "width": resize[0],
                                            "height": resize[1], "crop": "disabled"},
                          {"latent": (first, "latent")})
        else:
            by = {"scale_by": hires} if hires is not None else {}
            up = self.add("LatentUpscaleBy", {"upscale_method": method, **by}, {"latent": (first, "latent")})
        second = dict(self.denoise_params)
        hires_steps = self.number("Hires steps", int, "steps") if self.settings.get("Hires steps") != "0" else None
        if hires_steps:   # A1111's 0: as many as the first pass
            second["steps"] = hires_steps
        strength = self.number("Denoising strength", float, "denoise")
        second["denoise"] = strength if strength is not None else 0.7
        return self.denoise(second, up, title="hires pass")

    def output(self, last: str) -> None:
        if self.settings.get("VAE"):
            self.warnings.append(f"A1111 parameters: VAE {self.settings['VAE'][:60]!r} is not loaded; the "
                                 "checkpoint's own VAE is used")
        decode = self.add("VAEDecode", {}, {"vae": (self.ckpt, "vae"), "latent": (last, "latent")})
        self.add("SaveImage", {"prefix": "a1111"}, {"image": (decode, "image")})
