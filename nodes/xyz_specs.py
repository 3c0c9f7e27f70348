"""An XYZ plot as NodeForge declarations (torch-free; run functions in nodes/xyz.py): a sampler's settings
bundled on one wire, a sampler that draws every combination of comma-separated value lists into one latent
batch, a decode in chunks and a grid of the batch saved as one picture (hnmr293's ComfyUI-nodes-hnmr:
KSamplerSetting, KSamplerXYZ, VAEDecodeBatched, GridImage). The value lists' grammar lives here, so
validate reads them without running anything."""
from __future__ import annotations

import re
from typing import Any, Callable

from nodeforge.core.spec import Input, NodeSpec, Output, Param
from nodeforge.core.types import InputRole, ParamRole, PortType

from .declare import lazy
from .schedulers import SAMPLERS, SCHEDULES, check_pair

MODEL, COND, LATENT = PortType.MODEL.value, PortType.CONDITIONING.value, PortType.LATENT.value
VAE, IMAGE, SETTING = PortType.VAE.value, PortType.IMAGE.value, PortType.SAMPLER_SETTING.value
SEED_MAX = 0xFFFFFFFFFFFFFFFF
MAX_SAMPLINGS = 4096        # combinations one Sampler XYZ draws: a typo such as 0-100000 is refused, not run
STEPS_MAX, CFG_MAX = 1000, 100.0

_INT = re.compile(r"[+-]?\d+")
_FLOAT = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)")
_RANGE = r"(?P<a>{n})\s*-\s*(?P<b>{n})\s*(\(\s*\+?\s*(?P<step>{n})\s*\))?"     # a-b or a-b(+k)


class ListError(ValueError):
    """A value list the node cannot read: the message says which item and how to write it."""


_RANGES = {"int": re.compile(_RANGE.format(n=r"\d+")), "float": re.compile(_RANGE.format(n=r"\d+(?:\.\d*)?|\.\d+"))}


def _numbers(text: str, kind: str, example: str) -> list[float] | list[int]:
    """'20,30,40' or a range: ints 'a-b' (b included) or 'a-b(+k)'; floats 'a-b(+k)' from a below b, b left out,
    as the pack's ranges go."""
    cast: Callable[[str], Any] = int if kind == "int" else float
    single = _INT if kind == "int" else _FLOAT
    what = "a whole number" if kind == "int" else "a number"
    out: list[Any] = []
    for item in (part.strip() for part in text.split(",")):
        if single.fullmatch(item):
            out.append(cast(item))
            continue
        found = _RANGES[kind].fullmatch(item)
        if found is None:
            raise ListError(f"{item[:40]!r} in {text[:60]!r} is not {what}; write {what.split(' ', 1)[1]}s separated "
                            f"by commas ({example})")
        a, b = cast(found["a"]), cast(found["b"])
        step = cast(found["step"]) if found["step"] else cast(1)
        if step <= 0:
            raise ListError(f"the range {item!r} has a step of {step}; write a step above 0, e.g. {example}")
        if kind == "int":
            span = range(a, b + 1, step)
            if len(span) > MAX_SAMPLINGS:
                raise ListError(f"the range {item!r} holds {len(span)} values, more than the {MAX_SAMPLINGS} samplings "
                                "one Sampler XYZ draws; shorten it")
            values = list(span)
        else:
            count = 0
            values = []
            while a + count * step < b:
                if count == MAX_SAMPLINGS:
                    raise ListError(f"the range {item!r} holds more than the {MAX_SAMPLINGS} samplings one Sampler "
                                    "XYZ draws; raise its step or shorten it")
                values.append(round(a + count * step, 10))
                count += 1
        if not values:
            raise ListError(f"the range {item!r} holds no value (its start is past its end); write the smaller "
                            f"number first, e.g. {example}")
        out.extend(values)
        if len(out) > MAX_SAMPLINGS:
            break
    return out


def _names(text: str, known: Any, what: str, example: str) -> list[str]:
    names = [part.strip() for part in text.split(",")]
    for name in names:
        if name not in known:
            raise ListError(f"{name[:40]!r} is not a {what} NodeForge has; write {what}s separated by commas "
                            f"({example}), from: {', '.join(known)}")
    return names


def read_list(param: str, text: str) -> list[Any]:
    """The values of one of Sampler XYZ's lists (an empty list: none, the settings' value is used).
    Raises ListError with the item at fault and how to write the list."""
    if not str(text).strip():
        return []
    text = str(text)
    if param == "seeds":
        values = _numbers(text, "int", "1,2,3 or 100-104")
        bad = [v for v in values if not 0 <= v <= SEED_MAX]
        if bad:
            raise ListError(f"seed {bad[0]} is out of range; seeds are 0 to {SEED_MAX}")
        return values
    if param == "steps":
        values = _numbers(text, "int", "20,30,40 or 20-40(+10)")
        bad = [v for v in values if not 1 <= v <= STEPS_MAX]
        if bad:
            raise ListError(f"{bad[0]} steps is out of range; write 1 to {STEPS_MAX} steps")
        return values
    if param == "cfgs":
        values = _numbers(text, "float", "4,5.5,7 or 4-7(+1.5)")
        bad = [v for v in values if not 0.0 <= v <= CFG_MAX]
        if bad:
            raise ListError(f"cfg {bad[0]} is out of range; write 0 to {CFG_MAX:g}")
        return values
    if param == "samplers":
        return _names(text, SAMPLERS, "sampler", "euler, dpmpp_2m")
    if param == "schedules":
        return _names(text, SCHEDULES, "schedule", "normal, karras")
    raise KeyError(param)


LISTS = ("seeds", "steps", "cfgs", "samplers", "schedules")     # the batch's order: samplers outermost, seeds inner


def combinations(lists: dict[str, list[Any]]) -> int:
    count = 1
    for values in lists.values():
        count *= max(1, len(values))
    return count


def too_many(lists: dict[str, list[Any]]) -> str:
    longest = max(lists, key=lambda name: len(lists[name]))
    return (f"{longest}: the lists make {combinations(lists)} samplings, more than the {MAX_SAMPLINGS} one Sampler XYZ "
            f"draws; shorten {longest} or another list")


def _check_lists(**params: Any) -> list[str]:
    problems, lists = [], {}
    for name in LISTS:
        try:
            lists[name] = read_list(name, params.get(name, ""))
        except ListError as exc:
            problems.append(f"{name}: {exc}")
    if not problems and combinations(lists) > MAX_SAMPLINGS:
        problems.append(too_many(lists))
    return problems


def _check_sampler(sampler: str = "euler", schedule: str = "default", **_: Any) -> list[str]:
    return check_pair(sampler, schedule)


def _check_prefix(**params: Any) -> list[str]:
    from . import _check_prefix as check     # the pack's own rule for file name prefixes (nodes/__init__.py)

    return check(**params)


def _list(name: str, description: str) -> Param:
    return Param.string(name, "", multiline=True, description=description)


XYZ_NODES: list[NodeSpec] = [
    NodeSpec(
        "SamplerSettings", "sampling", lazy("xyz", "run_sampler_settings"),
        inputs=(Input("unet", MODEL, description="the denoising model"),
                Input("positive", COND, role=InputRole.POSITIVE, description="what the image should show"),
                Input("negative", COND, role=InputRole.NEGATIVE, description="what to steer away from"),
                Input("latent", LATENT, description="the starting latent (an Empty Latent, or an encoded image)")),
        params=(Param.int("seed", 0, min=0, max=SEED_MAX, role=ParamRole.SEED, description="the noise's seed"),
                Param.int("steps", 20, min=1, max=STEPS_MAX, role=ParamRole.STEPS, description="denoising steps"),
                Param.float("cfg", 8.0, min=0.0, max=CFG_MAX, step=0.5, role=ParamRole.CFG,
                            description="classifier-free guidance"),
                Param.choice("sampler", tuple(SAMPLERS), default="euler", role=ParamRole.SAMPLER,
                             description="the stepping method (ComfyUI's sampler_name)"),
                Param.choice("schedule", tuple(SCHEDULES), default="default", role=ParamRole.SCHEDULE,
                             description="where the steps fall on the noise levels (ComfyUI's scheduler)"),
                Param.float("denoise", 1.0, min=0.0, max=1.0, step=0.01, role=ParamRole.DENOISE,
                            description="how much of the latent to repaint (1: from pure noise)")),
        outputs=(Output("setting", SETTING, description="all of the above on one wire, for Sampler XYZ"),),
        validate=_check_sampler,
        description="A sampler's model, prompts, latent and settings on one wire, for Sampler XYZ to vary "
                    "(hnmr's KSamplerSetting).", display_name="Sampler Settings"),
    NodeSpec(
        "SamplerXYZ", "sampling", lazy("xyz", "run_sampler_xyz"),
        inputs=(Input("setting", SETTING, description="the settings every sampling starts from (Sampler Settings)"),
                Input("unet", MODEL, optional=True, description="a model that replaces the settings' one")),
        params=(_list("seeds", "seeds separated by commas (1,2,3; a range 1-3 includes 3); empty: the settings' "
                               "seed"),
                _list("steps", "step counts separated by commas (20,30,40; 20-40(+10)); empty: the settings' steps"),
                _list("cfgs", "cfg values separated by commas (4,5.5,7; a range 4-7(+1.5) leaves 7 out); empty: "
                              "the settings' cfg"),
                _list("samplers", "sampler names separated by commas (euler, dpmpp_2m); empty: the settings' "
                                  "sampler"),
                _list("schedules", "schedule names separated by commas (normal, karras); empty: the settings' "
                                   "schedule")),
        outputs=(Output("latent", LATENT, description="every combination's latent in one batch: samplers "
                                                      "outermost, then schedules, steps, cfgs, seeds"),),
        validate=_check_lists,
        description="Draw every combination of the listed seeds, steps, cfgs, samplers and schedules (each "
                    "exactly as UNet Denoise draws it) into one latent batch, for a grid (hnmr's KSamplerXYZ).",
        display_name="Sampler XYZ Plot"),
    NodeSpec(
        "VAEDecodeBatched", "latent", lazy("xyz", "run_vae_decode_batched"),
        inputs=(Input("vae", VAE, description="the VAE that decodes"),
                Input("latent", LATENT, description="the latents to turn into pixels")),
        params=(Param.int("per_batch", 16, min=1, max=4096,
                          description="how many latents are decoded at once (fewer: less memory, same pictures)"),),
        outputs=(Output("image", IMAGE, description="the decoded images, in the latents' order"),),
        description="Decode a latent batch per_batch latents at a time: the same images as VAE Decode, with the "
                    "memory of per_batch (VideoHelperSuite's and hnmr's VAEDecodeBatched).",
        display_name="VAE Decode (Batched)"),
    NodeSpec(
        "SaveImageGrid", "image", lazy("xyz", "run_save_image_grid"),
        inputs=(Input("image", IMAGE, description="the images, laid out left to right, then top to bottom"),),
        params=(Param.string("prefix", "nodeforge-grid",
                             description="start of the file name (a sub/folder/ prefix writes into that folder)"),
                Param.int("columns", 1, min=1, max=64, description="images a row (the rows follow from the count)"),
                Param.int("gap", 0, min=0, max=32, description="black pixels between neighbouring images")),
        output_node=True, cacheable=False, validate=_check_prefix,
        description="Save the batch as one PNG grid of columns images a row, black gaps between them, carrying the "
                    "workflow (hnmr's GridImage).", display_name="Save Image Grid"),
]
