"""Reading weight files without running their code, and saying in one line what is wrong with a file
that cannot be read: empty, cut short, a Git LFS pointer or a web page saved in its place, a zip or
random bytes that are no PyTorch checkpoint, a pickle that needs code, or a file with the wrong suffix.

Pickles go through `torch.load(weights_only=True)` only: NodeForge never runs code from a model file.
"""
from __future__ import annotations

import re
import zipfile
from pathlib import Path
from typing import Any

import torch

from nodeforge.core.errors import NodeError

REDOWNLOAD = "download it again (or use its .safetensors version)"
_PICKLE_PROTOCOL = 0x80       # the first byte of a pickle written with protocol 2 or later (torch's legacy format)
_ZIP_MAGIC = b"PK\x03\x04"    # torch.save's zip archive (PyTorch >= 1.6)


def _head(path: Path, size: int = 512) -> bytes:
    with open(path, "rb") as handle:
        return handle.read(size)


def looks_like_safetensors(head: bytes, size: int) -> bool:
    """A little-endian header length that fits the file, then a JSON object."""
    if len(head) < 9:
        return False
    length = int.from_bytes(head[:8], "little")
    return 2 <= length <= size - 8 and head[8:9] == b"{"


def not_weights(path: Path) -> str | None:
    """Why the file is no weight file at all, from its size and first bytes; None when it may be one."""
    try:
        size = path.stat().st_size
        head = _head(path)
    except OSError as exc:
        return f"it cannot be opened ({exc.strerror or exc}); check that it is a readable file"
    if size == 0:
        return "it is empty (0 bytes): the download or copy did not finish; download it again"
    if head.startswith(b"version https://git-lfs"):
        return (f"it is a Git LFS pointer ({size} bytes), not the weights: fetch the file itself "
                "('git lfs pull' in its repository) or download it from the model page")
    if head.lstrip()[:15].lower().startswith((b"<!doctype html", b"<html", b"<?xml")):
        return ("it is a web page, not model weights: the download saved a login or error page; "
                "download the file itself (logged in, if the model page asks for it)")
    return None


def wrong_suffix(path: Path, head: bytes, size: int) -> str | None:
    """A torch checkpoint named .safetensors, or a safetensors file named .ckpt/.pt/.pth/.bin."""
    is_safetensors = path.suffix.lower() == ".safetensors"
    torch_format = head.startswith(_ZIP_MAGIC) or head[:1] == bytes([_PICKLE_PROTOCOL])
    # A safetensors header length whose low byte is 0x80 (one file in 256) starts like a pickle: a
    # file that reads as a safetensors header is one.
    if is_safetensors and torch_format and not looks_like_safetensors(head, size):
        return "it is a PyTorch checkpoint (pickle), not a .safetensors file: rename it to .ckpt"
    if not is_safetensors and looks_like_safetensors(head, size):
        return f"it is a .safetensors file named {path.suffix}: rename it to .safetensors"
    return None


def _torch_problem(path: Path, exc: Exception, what: str) -> str:
    """What a failed `torch.load(weights_only=True)` means for the user, and what to do."""
    name = what + path.name
    code = re.search(r"GLOBAL ([\w.]+)", str(exc))
    if code:
        return (f"cannot read {name} safely: it holds Python code to run ({code.group(1)}) besides its "
                "weights, and NodeForge never runs code from a model file; convert it to .safetensors or "
                "download the .safetensors version")
    try:
        size, head = path.stat().st_size, _head(path)
    except OSError:
        size, head = 0, b""
    if zipfile.is_zipfile(path):
        try:
            with zipfile.ZipFile(path) as archive:
                names = archive.namelist()
        except (zipfile.BadZipFile, OSError, ValueError):   # its table of contents is damaged
            return (f"cannot read {name}: it is a damaged zip archive (its table of contents cannot be read); "
                    f"{REDOWNLOAD}")
        if not any(name.endswith("data.pkl") for name in names):
            return (f"cannot read {name}: it is a zip archive of {len(names)} file(s) but not a PyTorch "
                    "checkpoint (no data.pkl in it); unzip it and choose the model file inside, or download "
                    "the model file itself")
        return f"cannot read {name}: the PyTorch checkpoint is damaged; {REDOWNLOAD}"
    if head.startswith(_ZIP_MAGIC) or head[:1] == bytes([_PICKLE_PROTOCOL]):
        return (f"cannot read {name}: the PyTorch checkpoint is cut short or damaged ({size} bytes); "
                f"{REDOWNLOAD}")
    return (f"cannot read {name}: it is not a PyTorch checkpoint (neither a pickle nor a zip archive); "
            f"the file is damaged or another kind of file renamed; {REDOWNLOAD}")


def _refuse_non_weights(path: Path, field: str, what: str) -> None:
    problem = not_weights(path)
    if problem is None:
        head, size = _head(path, 16), path.stat().st_size
        problem = wrong_suffix(path, head, size)
    if problem is not None:
        raise NodeError(f"cannot read {what}{path.name}: {problem}", field=field)


def refuse_if_out_of_memory(exc: BaseException, name: str, field: str) -> None:
    """Reading `name` ran out of memory (MemoryError, or torch's allocator saying so): that is no damaged
    file, so say what it is, naming the file, instead of advising to download it again."""
    from .memory import is_out_of_memory

    if isinstance(exc, MemoryError) or is_out_of_memory(str(exc)):
        raise NodeError(f"ran out of memory reading {name}: it is larger than the memory free now; close other "
                        "programs, or use a smaller version of the model (fp16 or pruned)", field=field) from exc


def load_pickle(path: Path, field: str, what: str = "") -> Any:
    """`torch.load(weights_only=True)` of a .ckpt/.pt/.pth/.bin; a file that cannot be read so is one
    NodeError naming the file (after `what`: "embedding "), what is wrong with it and what to do."""
    _refuse_non_weights(path, field, what)
    try:
        return torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:
        refuse_if_out_of_memory(exc, what + path.name, field)
        raise NodeError(_torch_problem(path, exc, what), field=field) from None


def _safetensors_problem(path: Path, exc: Exception, what: str) -> str:
    reason = str(exc).split(":")[-1].strip() or type(exc).__name__
    return (f"cannot read {what}{path.name}: it is not a complete .safetensors file ({reason[:120]}); the download "
            "stopped early or the file is damaged; download it again")


def read_safetensors(path: Path, field: str, what: str = "") -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Tensors and metadata of a .safetensors file; a damaged file is one NodeError naming it."""
    from safetensors import safe_open

    _refuse_non_weights(path, field, what)
    tensors: dict[str, torch.Tensor] = {}
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = dict(handle.metadata() or {})
            for key in handle.keys():
                tensors[key] = handle.get_tensor(key)
    except Exception as exc:   # truncated download, a header claiming more than the file holds
        refuse_if_out_of_memory(exc, what + path.name, field)
        raise NodeError(_safetensors_problem(path, exc, what), field=field) from None
    return tensors, metadata


def check_safetensors_header(path: Path, field: str, what: str = "") -> None:
    """Refuse a .safetensors file that cannot be opened (empty, a Git LFS pointer, cut short: the
    header is checked against the file's size), naming it; cheap, as no tensor is read. For weights
    another library reads (diffusers and transformers folders), whose own errors name no fix."""
    from safetensors import safe_open

    _refuse_non_weights(path, field, what)
    try:
        with safe_open(str(path), framework="pt"):
            pass
    except Exception as exc:
        raise NodeError(_safetensors_problem(path, exc, what), field=field) from None


def load_exact(model: torch.nn.Module, state: dict[str, torch.Tensor], source: str, what: str,
               fix: str) -> torch.nn.Module:
    """`model` (in eval mode) holding `state`: every one of its parameters there with its shape and no key it
    does not know (batch-norm step counters aside); else one line naming the first key at fault, saying the
    file is not `what` ("an RMBG-1.4 model") and giving `fix`."""
    mine = model.state_dict()
    missing = [key for key in mine if key not in state and not key.endswith("num_batches_tracked")]
    unknown = [key for key in state if key not in mine]
    wrong = [key for key in mine if key in state and tuple(state[key].shape) != tuple(mine[key].shape)]
    if missing or unknown or wrong:
        key = (missing or unknown or wrong)[0]
        fault = "lacks" if missing else "has an unknown" if unknown else "has a misshapen"
        raise NodeError(f"{source} {fault} {key} ({len(missing)} missing, {len(unknown)} unknown, {len(wrong)} "
                        f"misshapen): it is not {what}; {fix}", field="model")
    model.load_state_dict({key: value.float() for key, value in state.items()}, strict=False)
    return model.eval()
