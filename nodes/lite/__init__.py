"""Lite models: the Stable Diffusion 1.x/2.x UNet, VAE, CLIP text encoder and tokenizer and the
Euler scheduler in plain torch (plus the `tokenizers` library), for a cold `nodeforge run`.

Why: importing diffusers' and transformers' model classes costs seconds before any work
(diffusers.utils imports torch._dynamo, diffusers.hooks imports peft, transformers loads its
model registry and scipy): about 6 s of a 7.5 s cold run of the demo model, which itself
computes for under a second. These modules do the same tensor operations in the same order as
diffusers 0.42 / transformers 5 in inference, so images are bit for bit the same
(tests/nodes/test_lite_models.py compares every module with the library's on random weights;
the shipped examples' pixels are checked whole).

When: only for a one-shot run (the engine setting `lite_models`, which `nodeforge run` sets)
on a device in DEVICES, of a graph whose every node with a MODEL, CLIP or VAE input connected
is one that calls the models only as these modules allow (`LITE_NODES`: no LoRA, clip skip,
SDXL or SD3 node, ...; loaders of other models, a VAELoader or a ControlNet's, keep theirs), and
only for a diffusers folder whose configs and weight files are within what they implement (`load_folder`
returns None otherwise and the usual loader reads the model). The editor, batches and every
other graph keep diffusers' and transformers' own classes.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

MODEL_PORTS = frozenset({"MODEL", "CLIP", "VAE"})
# The nodes that use a model they are given only through what the lite modules offer (forward
# calls with ControlNet residuals, configs, the token embedding, encode/decode).
LITE_NODES = frozenset({"TextEncoder", "UNetDenoise", "VAEDecode", "VAEEncode", "VAEEncodeForInpaint"})
SETTING = "lite_models"
# Devices the bit-for-bit comparison (tests/nodes/test_lite_models.py) has been run on. The code
# is device-agnostic; the tests run on CUDA where it is available: add "cuda" once they pass there.
DEVICES = ("cpu",)
PARTS = {"unet": "diffusion_pytorch_model.safetensors", "vae": "diffusion_pytorch_model.safetensors",
         "text_encoder": "model.safetensors"}


def graph_fits(workflow: Any, registry: Any) -> bool:
    """Whether every node of `workflow` that is given a model (a MODEL, CLIP or VAE input connected)
    is one of LITE_NODES."""
    for node in workflow.nodes.values():
        spec = registry.get(node.type)
        if spec is None:
            return False
        given = {port.type for port in spec.inputs if port.name in node.inputs}
        if given & MODEL_PORTS and node.type not in LITE_NODES:
            return False
    return True


def wanted(ctx: Any) -> bool:
    """Whether this node's run may use lite models (a one-shot run of a graph that fits)."""
    return (bool(ctx.settings.get(SETTING)) and ctx.device in DEVICES and ctx.registry is not None
            and graph_fits(ctx.workflow, ctx.registry))


def _configs(path: Path) -> dict[str, dict] | None:
    """The three parts' configs when each is one the lite modules implement, with one plain weights file."""
    from . import clip, unet, vae

    if (path / "text_encoder_2").exists() or not (path / "tokenizer" / "tokenizer.json").is_file():
        return None
    configs = {}
    for part, weights in PARTS.items():
        folder = path / part
        if not (folder / "config.json").is_file() or [f.name for f in folder.glob("*.safetensors")] != [weights] \
                or any(folder.glob("*.bin")):
            return None
        try:
            configs[part] = json.loads((folder / "config.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
    fits = unet.supports(configs["unet"]) and vae.supports(configs["vae"]) and clip.supports(configs["text_encoder"])
    return configs if fits else None


def _build(cls: Any, config: dict, file: Path) -> Any:
    """`cls(config)` holding the file's tensors, or None when the file's keys or shapes are not the module's."""
    import torch
    from safetensors.torch import load_file

    with torch.device("meta"):
        module = cls(config)
    try:
        state = load_file(str(file))
    except Exception:   # a damaged file: the usual loader says so in its words
        return None
    state = {k[len("text_model."):] if k.startswith("text_model.") else k: v for k, v in state.items()
             if not k.endswith("position_ids")}
    expected = module.state_dict()
    if set(state) != set(expected) or any(tuple(state[k].shape) != tuple(expected[k].shape) for k in state):
        return None
    module.load_state_dict(state, strict=True, assign=True)
    return module


def load_folder(path: Path, device: str) -> Any:
    """The lite modules of a diffusers SD 1.x/2.x folder as a LoadedCheckpoint, or None when the
    folder has anything they do not implement (then the usual loader reads it)."""
    from ..loading import check_finite, finish_folder, pick_dtype, tokenizer_works
    from .clip import LiteCLIPText, LiteTokenizer
    from .unet import LiteUNet
    from .vae import LiteVAE

    configs = _configs(path)
    if configs is None:
        return None
    modules = {}
    for part, cls in (("unet", LiteUNet), ("vae", LiteVAE), ("text_encoder", LiteCLIPText)):
        modules[part] = _build(cls, configs[part], path / part / PARTS[part])
        if modules[part] is None:
            return None
        check_finite(modules[part].state_dict().items(), f"{path.name}/{part}", "checkpoint")
    tokenizer = LiteTokenizer.read(path / "tokenizer")
    if tokenizer is None or not tokenizer_works(tokenizer):
        return None
    loaded = finish_folder(path, modules["unet"], modules["vae"], modules["text_encoder"], tokenizer, None, None,
                           device, pick_dtype(device))
    from .sampling import LITE_SAMPLING

    loaded.unet_fields["sampling_behaviour"] = LITE_SAMPLING
    return loaded
