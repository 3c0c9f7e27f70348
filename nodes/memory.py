"""Out-of-memory as a user error: the advice names what to shrink, and the app lives on.

Before that, a run that cannot fit is refused up front: an 8192x8192 image asks a UNet for a
1024x1024 latent, and on a CPU that swaps for hours before it fails. `check_denoise_fits`
estimates the activations of one forward pass at the network's full-resolution width (the model
is already loaded, so it is not counted again): batch, times 2 with CFG, times latent pixels,
times the first block's channels, times the feature maps alive at once; for a flow transformer
(SD3, Flux), times its image tokens and its width instead. It catches runs far too
large, not exact ones, so it leans low: a refused run would not have fitted.
"""
from __future__ import annotations

import contextlib
import os
from typing import Any, Iterator

from nodeforge.core.errors import NodeError


# CUDA/MPS say "out of memory"; torch's CPU allocator says "DefaultCPUAllocator: can't allocate memory"
# (or "not enough memory"): the same user error, so the same advice.
_OOM_PHRASES = ("out of memory", "can't allocate memory", "not enough memory", "cannot allocate memory")


def is_out_of_memory(message: str) -> bool:
    text = message.lower()
    return any(phrase in text for phrase in _OOM_PHRASES)


@contextlib.contextmanager
def memory_advice(what: str = "image size or batch size") -> Iterator[None]:
    try:
        yield
    except (MemoryError, RuntimeError) as exc:
        if not isinstance(exc, MemoryError) and not is_out_of_memory(str(exc)):
            raise
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        raise NodeError(f"ran out of memory; try a smaller {what}") from exc


# Feature maps of the first block's width alive at once in a UNet forward pass (skip connections
# kept for the up path, a resnet's input, norm and output, attention's q, k, v and output, the
# GEGLU feed-forward). Measured on the demo UNet (64, 128, 128), CFG batch 2, CPU fp32: a peak of
# 214 MB at a 128x128 latent and 651 MB at 256x256, i.e. 27 and 20 maps; 16 leans low.
LIVE_MAPS = 16


def activation_bytes(batch: int, height: int, width: int, channels: int, element_size: int, guided: bool) -> int:
    """The bytes of one forward pass's live activations for a [batch, *, height, width] latent."""
    return (2 if guided else 1) * batch * height * width * channels * element_size * LIVE_MAPS


def free_bytes(device: Any) -> int | None:
    """What `device` has free now, or None where that cannot be known (then nothing is refused)."""
    import torch

    device = torch.device(device)
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        return int(free + torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device))
    if device.type == "cpu":
        return _available_ram()
    return None


def _available_ram() -> int | None:
    try:
        with open("/proc/meminfo", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        import psutil

        return int(psutil.virtual_memory().available)
    except ImportError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def _gb(value: int) -> str:
    return f"{value / 2 ** 30:.1f} GB"


# A flow transformer's (SD3's MMDiT, Flux's) maps of its width alive at once per image token: the
# residual stream, norm and modulated input, q, k, v, attention output, the feed-forward's 4x hidden.
# Measured on a 2-layer SD3Transformer2DModel 128 wide, CFG batch 2, CPU fp32, 333 text tokens: 12.6
# maps at a 64x64 latent, 16.8 at 128x128 (torch's CPU attention keeps no tokens x tokens matrix).
FLOW_LIVE_MAPS = 12


def transformer_activation_bytes(config: Any, shape: tuple[int, int, int, int], element_size: int,
                                 guided: bool) -> int | None:
    """Live activation bytes of a patch transformer's forward pass (None: not a patch transformer). Its
    image tokens are the latent's pixels over the patch area, over the channels one token packs (Flux
    packs 2x2 latents into its 64 input channels); the text tokens are left out (the estimate leans low)."""
    heads, head_dim = getattr(config, "num_attention_heads", None), getattr(config, "attention_head_dim", None)
    patch, inputs = getattr(config, "patch_size", None), getattr(config, "in_channels", None)
    if heads is None and getattr(config, "n_heads", None) and getattr(config, "all_patch_size", None):
        # Z-Image's names: n_heads over a `dim` width, patch sizes as a list
        heads, head_dim, patch = config.n_heads, int(config.dim) // int(config.n_heads), config.all_patch_size[0]
    if not (heads and head_dim and patch and inputs):
        return None
    batch, channels, height, width = shape
    tokens = height * width * channels // (int(inputs) * int(patch) ** 2)
    return (2 if guided else 1) * batch * tokens * int(heads) * int(head_dim) * element_size * FLOW_LIVE_MAPS


def check_denoise_fits(model: Any, shape: tuple[int, int, int, int], cfg: float, prompts: int = 2) -> None:
    """NodeError with the estimate and the advice when the denoise cannot fit in the device's free memory.
    With CFG each step runs the model once a prompt (`prompts`: 3 for DualCFGGuider's), batched together."""
    network = getattr(model, getattr(model, "module_field", "unet"), None)
    config = getattr(network, "config", None)
    channels = getattr(config, "block_out_channels", None)
    batch, _c, height, width = shape
    passes = prompts if cfg != 1.0 else 1
    if channels:
        need = activation_bytes(batch, height, width, int(channels[0]), model.dtype.itemsize, False) * passes
    else:
        found = transformer_activation_bytes(config, shape, model.dtype.itemsize, False)
        if found is None:
            return      # neither a UNet nor a patch transformer: no estimate to give
        need = found * passes
    have = free_bytes(model.device)
    if have is None or need <= have:
        return
    factor = getattr(model, "vae_factor", 8)
    times = {1: "", 2: ", twice for CFG"}.get(passes, f", {passes} times for CFG")
    raise NodeError(f"a {width * factor}x{height * factor} image (a {width}x{height} latent, batch {batch}"
                    f"{times}) needs about {_gb(need)} on {model.device} "
                    f"besides the model, which has {_gb(have)} free; make a smaller image and upscale it in tiles, "
                    "make fewer images at once, or run on another device (--device)", field="latent")


def run_free_memory(ctx: Any, value: Any) -> dict[str, Any]:
    """FreeMemory: the value passed on after Python's garbage is collected and the GPU's cached blocks are freed."""
    import gc

    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
        torch.cuda.ipc_collect()
    return {"output": value}
