"""Where a loaded model's weights live: the one place that decides (issue 29: model offload).

The engine's `offload` setting (`nodeforge run --offload`, the editor's Run menu) picks:

- "none" (the default): every model is moved to the run's device when it loads and stays there.
- "model": models load into CPU memory (in the dtype of the run's device) and only the running
  one is on the accelerator: a model moves to the device when its forward (or a VAE's
  encode/decode) starts and every other model goes back to the CPU then, as diffusers'
  `enable_model_cpu_offload` does. Flux's 24 GB transformer and 9.5 GB T5 then take turns.
- "sequential": models stay in CPU memory and each submodule's own weights move to the device
  just before its forward and back right after (diffusers' `enable_sequential_cpu_offload`, without
  accelerate's meta tensors, so LoRA patches still reach the weights): the least GPU memory, the
  slowest.

Loaders call `place` (through `loading._finish`) with the run's device; a managed model's
`device_of` is that execution device wherever its weights are, so inputs are made there. The mode is
read from the running node's context (nodeforge.core.context.current_context). Each engine keeps its
own loaded models, so one engine's models follow one mode.
"""
from __future__ import annotations

import weakref
from typing import Any

import torch

from nodeforge.core.errors import NodeError

MODES = ("none", "model", "sequential")
OFFLOAD_DEVICE = "cpu"
# The models now on their execution device (model offload), each with the node run that moved it
# there: the models of one node (a transformer and its ControlNets) stay together during it.
_resident: "weakref.WeakKeyDictionary[torch.nn.Module, int]" = weakref.WeakKeyDictionary()


def offload_mode(settings: dict[str, Any] | None = None) -> str:
    """The offload mode of the running node's engine (or of `settings`), "none" outside a run."""
    if settings is None:
        from nodeforge.core.context import current_context

        ctx = current_context()
        settings = ctx.settings if ctx is not None else {}
    mode = str(settings.get("offload") or "none")
    if mode not in MODES:
        raise NodeError(f"offload setting {mode!r} is unknown: use none, model or sequential", field="offload")
    return mode


def device_of(module: Any) -> torch.device:
    """The device a module computes on: its execution device when offloaded, else its weights'."""
    execution = getattr(module, "_nodeforge_execution", None)
    if execution is not None:
        return torch.device(execution)
    return next(module.parameters()).device


def place(module: Any, device: str, dtype: torch.dtype | None = None) -> None:
    """Put a loaded model where the current offload mode keeps it (and in `dtype` if given)."""
    mode = offload_mode()
    home = OFFLOAD_DEVICE if mode != "none" else device
    if any(p.device.type != torch.device(home).type or (dtype is not None and p.dtype != dtype)
           for p in module.parameters()):
        _move(module, home, dtype)
    _unmanage(module)
    if mode == "model":
        _manage_model(module, device)
    elif mode == "sequential":
        _manage_sequential(module, device)


def _run_token() -> int:
    from nodeforge.core.context import current_context

    return id(current_context())


def _move(target: Any, device: Any, dtype: torch.dtype | None = None, recurse: bool = True) -> None:
    """Move a module's weights (only its own with recurse False), keeping the Parameter objects;
    outside inference mode, so LoRA patches can change them in place afterwards."""
    with torch.inference_mode(False), torch.no_grad():
        if recurse:
            target.to(device=device, dtype=dtype) if dtype is not None else target.to(device)
            return
        for tensors in (target._parameters, target._buffers):
            for name, value in tensors.items():
                if value is not None and value.device != torch.device(device):
                    value.data = value.data.to(device)


def _to(value: Any, device: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.to(device)
    if isinstance(value, (list, tuple)):
        return type(value)(_to(v, device) for v in value)
    if isinstance(value, dict):
        return {k: _to(v, device) for k, v in value.items()}
    return value


class _ModelHook:
    """Model-level offload: before the model runs, the models other nodes moved to the device go back
    to the CPU and this one goes to its device. Also diffusers' `_hf_hook` (AutoencoderKL.encode and
    decode call it)."""

    def __init__(self, device: str) -> None:
        self.device = device

    def pre_forward(self, module: Any, *args: Any, **kwargs: Any) -> tuple[Any, Any]:
        if module not in _resident:
            token = _run_token()
            for other, owner in list(_resident.items()):
                if owner != token:
                    _move(other, OFFLOAD_DEVICE)
                    del _resident[other]
            _move(module, self.device)
            _resident[module] = token
        return _to(args, self.device), _to(kwargs, self.device)


def _manage_model(module: Any, device: str) -> None:
    """The model moves when its forward starts, or any direct child's (a VAE's encode/decode run its
    encoder/decoder: diffusers calls `_hf_hook` there only when accelerate is installed)."""
    hook = _ModelHook(device)
    module._nodeforge_execution = device
    module._hf_hook = hook
    handles = [module.register_forward_pre_hook(lambda m, args, kwargs: hook.pre_forward(m, *args, **kwargs),
                                                with_kwargs=True)]
    for child in module.children():
        handles.append(child.register_forward_pre_hook(
            lambda m, args, kwargs: hook.pre_forward(module, *args, **kwargs), with_kwargs=True))
    module._nodeforge_handles = handles


def _manage_sequential(module: Any, device: str) -> None:
    """Each submodule with weights of its own moves them to `device` for its forward only."""
    handles = []
    for sub in module.modules():
        if not any(True for _ in sub.parameters(recurse=False)) and not any(True for _ in sub.buffers(recurse=False)):
            continue

        def before(m: Any, args: Any, kwargs: Any) -> tuple[Any, Any]:
            _move(m, device, recurse=False)
            return _to(args, device), _to(kwargs, device)

        def after(m: Any, args: Any, output: Any) -> None:
            _move(m, OFFLOAD_DEVICE, recurse=False)

        handles += [sub.register_forward_pre_hook(before, with_kwargs=True), sub.register_forward_hook(after)]
    module._nodeforge_execution = device
    module._nodeforge_handles = handles


def _unmanage(module: Any) -> None:
    for handle in getattr(module, "_nodeforge_handles", ()):
        handle.remove()
    for attribute in ("_nodeforge_handles", "_nodeforge_execution", "_hf_hook"):
        if isinstance(getattr(module, attribute, None), (list, str, _ModelHook)):
            delattr(module, attribute)
    _resident.pop(module, None)


def release_all() -> None:
    """Every resident model back to the CPU (model offload; after a run)."""
    for module in list(_resident):
        _move(module, OFFLOAD_DEVICE)
        _resident.pop(module, None)
