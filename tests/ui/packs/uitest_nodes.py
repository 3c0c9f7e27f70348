"""A fast node pack for the editor's tests: PIL and numpy only, no torch.

`GATE` lets a test hold a run inside the Slow node (to cancel it, or to edit meanwhile)
without sleeping: the node waits on the event and checks for cancellation while it waits.
"""
from __future__ import annotations

import threading

from PIL import Image

from nodeforge.core.errors import NodeError
from nodeforge.core.spec import Input, NodeSpec, Output, Param
from nodeforge.core.types import FileKind, ParamRole

GATE = threading.Event()
COLORS = {"red": (220, 40, 40), "green": (40, 200, 80), "blue": (40, 90, 230)}


def _solid(ctx, color, width, height, **_):
    return {"image": Image.new("RGB", (width, height), COLORS[color])}


def _invert(ctx, image, **_):
    return {"image": Image.eval(image, lambda v: 255 - v)}


def _slow(ctx, image, steps, hold, **_):
    for i in range(1, steps + 1):
        if hold and i == steps // 2:
            while not GATE.wait(0.01):
                ctx.check_cancelled()
        ctx.progress(i, steps, image.resize((16, 16)))
    return {"image": image}


def _fail(ctx, image, message, **_):
    raise NodeError(message, field="message")


def _preview(ctx, image, **_):
    return [image]


def _save(ctx, image, prefix, **_):
    ctx.output_dir.mkdir(parents=True, exist_ok=True)
    n = len(list(ctx.output_dir.glob(f"{prefix}_*.png")))
    path = ctx.output_dir / f"{prefix}_{n:05d}.png"
    image.save(path)
    return [str(path)]


def _mask(ctx, image, **_):
    return {"mask": image.convert("L")}


def _prompt(ctx, text, **_):
    return {"conditioning": text}


def _mix(ctx, image, strength, mask=None, **_):
    return {"image": image}


def _grain(ctx, image, noise_seed, caption, **_):
    return {"image": image}


def _load(ctx, path, **_):
    return {"image": Image.open(path).convert("RGB")}


NODES = [
    NodeSpec("SolidImage", "test/image", _solid,
             params=(Param.choice("color", ["red", "green", "blue"], "red"),
                     Param.int("width", 32, min=8, max=512, step=8),
                     Param.int("height", 32, min=8, max=512, step=8)),
             outputs=(Output("image", "IMAGE"),), description="A flat colour"),
    NodeSpec("Invert", "test/image", _invert, inputs=(Input("image", "IMAGE"),), outputs=(Output("image", "IMAGE"),)),
    NodeSpec("Slow", "test/run", _slow, inputs=(Input("image", "IMAGE"),),
             params=(Param.int("steps", 20, min=1, max=1000), Param.bool("hold", False)),
             outputs=(Output("image", "IMAGE"),), cacheable=True),
    NodeSpec("Fail", "test/run", _fail, inputs=(Input("image", "IMAGE"),),
             params=(Param.string("message", "boom"),), outputs=(Output("image", "IMAGE"),)),
    NodeSpec("PreviewOut", "test/output", _preview, inputs=(Input("image", "IMAGE"),), output_node=True),
    NodeSpec("SaveOut", "test/output", _save, inputs=(Input("image", "IMAGE"),),
             params=(Param.string("prefix", "test"),), output_node=True, cacheable=False),
    NodeSpec("ToMask", "test/mask", _mask, inputs=(Input("image", "IMAGE"),), outputs=(Output("mask", "MASK"),)),
    NodeSpec("Prompt", "test/text", _prompt, params=(Param.string("text", "", multiline=True),),
             outputs=(Output("conditioning", "CONDITIONING"),)),
    NodeSpec("Mix", "test/image", _mix, inputs=(Input("image", "IMAGE"), Input("mask", "MASK", optional=True)),
             params=(Param.float("strength", 0.5, min=0.0, max=1.0, step=0.01), Param.int("seed", 0, min=0, role=ParamRole.SEED)),
             outputs=(Output("image", "IMAGE"),)),
    # A seed and a prompt named unlike the built-in pack's: only their declared roles say what they are.
    NodeSpec("Grain", "test/image", _grain, inputs=(Input("image", "IMAGE"),),
             params=(Param.int("noise_seed", 3, min=0, max=2 ** 32 - 1, role=ParamRole.SEED),
                     Param.string("caption", "film grain", multiline=True, role=ParamRole.PROMPT)),
             outputs=(Output("image", "IMAGE"),)),
    NodeSpec("LoadPicture", "test/image", _load, params=(Param.string("path", "", file=FileKind.IMAGE),),
             outputs=(Output("image", "IMAGE"),)),
]
