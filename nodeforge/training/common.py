"""What every trainer's command does alike: its argument parser and argument checks, the checks of
its inputs (the base model, image folders and captions, a saved model to measure, --out), threads,
seed and device first, the measured numbers last.

Every check here runs before a trainer loads its base model, so a mistake costs a second, not the
minutes of a load or the hours of a training run; every refusal is one `error:` line naming the
trainer, the file or argument and the fix (`guarded` turns the trainer's own exceptions into it).
"""
from __future__ import annotations

import argparse
import functools
import json
import math
import os
import shutil
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, NoReturn

if TYPE_CHECKING:
    import torch

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp"}
MAX_PIXELS = 89_478_485          # PIL's own decompression-bomb warning limit (a 9459 px square)
MAX_CAPTION_BYTES = 64 * 1024    # a caption is a line of text; a bigger file is a mistake
MIN_SIDE = 8                     # images are upscaled at most 8x (and never from under 8 px)
MAX_MODEL_BYTES = 2 * 1024 ** 3  # a saved model to measure: the demo assets are kilobytes to megabytes
PIPELINE_PARTS = ("unet", "vae", "text_encoder", "tokenizer", "scheduler")


class TrainingInputError(Exception):
    """A mistake in a trainer's arguments or inputs; `guarded` shows it as one `error:` line."""


# -- arguments ----------------------------------------------------------------------------------------------
class DefaultsShown(argparse.HelpFormatter):
    """Every option's default in its help, except for flags and required options (no default)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if (action.default is not None and action.default is not argparse.SUPPRESS and action.nargs != 0
                and "%(default)" not in text):
            text += " (default: %(default)s)"
        return text


class TrainerParser(argparse.ArgumentParser):
    """argparse with the CLI's one-line errors: `error: nodeforge train-lora: argument --rank: ...`
    (exit status 2), and every option's default in --help."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", DefaultsShown)
        super().__init__(**kwargs)

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"error: {self.prog}: {message} (see {self.prog} --help)\n")


def whole(low: int, high: int | None = None, why: str = "", multiple: int = 1) -> Callable[[str], int]:
    """An argparse type: a whole number from `low` to `high` (inclusive; no limit when None), a
    multiple of `multiple`."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < low or (high is not None and value > high):
            span = f"of at least {low}" if high is None else f"from {low} to {high}"
            raise argparse.ArgumentTypeError(f"{value} is out of range: use a whole number {span}{why}")
        if value % multiple:
            raise argparse.ArgumentTypeError(f"{value} is not a multiple of {multiple}{why}")
        return value

    parse.__name__ = "whole number"
    return parse


def real(low: float, high: float | None = None, *, above: bool = False, why: str = "") -> Callable[[str], float]:
    """An argparse type: a finite number from `low` (or above it, with `above`) to `high`."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not math.isfinite(value) or value < low or (above and value == low) or (high is not None and value > high):
            span = f"{'above' if above else 'at least'} {low:g}" + ("" if high is None else f" and at most {high:g}")
            raise argparse.ArgumentTypeError(f"{text} is out of range: use a number {span}{why}")
        return value

    parse.__name__ = "number"
    return parse


COUNT = whole(1)                       # steps, images, batch, threads, ...
SEED = whole(0, 2 ** 63 - 1)           # numpy's and torch's generators both take it
RATE = real(0.0, above=True)           # learning rates
SHARE = real(0.0, 1.0)                 # fractions of the data
STD = real(0.0)                        # noise offsets


# -- one-line errors ----------------------------------------------------------------------------------------
def guarded(name: str) -> Callable[[Callable[..., int]], Callable[..., int]]:
    """Decorate a trainer's main(argv): its input mistakes, the pack's model-file errors and the
    operating system's (a full disk, a folder it may not write) end as one `error: NAME: ...` line
    and exit status 1, never a traceback."""
    from nodeforge.core.errors import NodeError

    def wrap(main: Callable[..., int]) -> Callable[..., int]:
        @functools.wraps(main)
        def run(argv: list[str] | None = None) -> int:
            try:
                return main(argv)
            except (TrainingInputError, NodeError) as exc:
                raise SystemExit(f"error: {name}: {exc}") from None
            except OSError as exc:
                where = f": {exc.filename}" if exc.filename else ""
                raise SystemExit(f"error: {name}: {exc.strerror or exc}{where}") from None
        return run

    return wrap


def warn(name: str, message: str) -> None:
    print(f"{name}: warning: {message}", file=sys.stderr)


# -- inputs -------------------------------------------------------------------------------------------------
def image_files(folder: Path) -> list[Path]:
    """The images (by extension) in `folder`, sorted; a missing folder, a file, or a folder without
    images is refused."""
    if not folder.exists():
        raise TrainingInputError(f"no folder {folder}; give a folder of images with same-named .txt captions")
    if not folder.is_dir():
        raise TrainingInputError(f"{folder} is a file, not a folder; give the folder that holds the images")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise TrainingInputError(f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) in {folder}")
    return files


def read_image(path: Path, min_side: int = MIN_SIDE) -> Any:
    """The image at `path` as an RGB PIL image, fully decoded: a file that is not an image, a
    damaged or truncated one, a decompression bomb or an image under `min_side` pixels a side
    is refused naming the file."""
    from PIL import Image, UnidentifiedImageError

    if not path.is_file():
        raise TrainingInputError(f"{path} is not a regular file; remove it from the folder")
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            with Image.open(path) as img:
                width, height = img.size
                if width * height > MAX_PIXELS:
                    raise TrainingInputError(f"{path} is {width}x{height} px, more than {MAX_PIXELS} pixels "
                                             "(a decompression bomb or a huge image); resize it")
                if min(width, height) < min_side:
                    raise TrainingInputError(f"{path} is {width}x{height} px; training images need at least "
                                             f"{min_side} px a side: remove it or use a bigger one")
                return img.convert("RGB")
        except UnidentifiedImageError:
            raise TrainingInputError(f"{path} is not an image PIL can read; remove it or fix its "
                                     "extension") from None
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise TrainingInputError(f"{path} declares more than {MAX_PIXELS} pixels (a decompression bomb "
                                     "or a huge image); resize it") from None
        except (OSError, SyntaxError, ValueError, EOFError) as exc:
            raise TrainingInputError(f"{path} is damaged or truncated ({exc}); re-export it or remove "
                                     "it") from None


def read_caption(image: Path) -> str | None:
    """The stripped text of `image`'s same-named .txt caption, None when it has none; a caption
    that is not UTF-8, not a file or too big to be a caption is refused naming the file."""
    txt = image.with_suffix(".txt")
    if not txt.exists():
        return None
    if not txt.is_file():
        raise TrainingInputError(f"caption {txt} is not a regular file; make it a text file or remove it")
    size = txt.stat().st_size
    if size > MAX_CAPTION_BYTES:
        raise TrainingInputError(f"caption {txt} is {size} bytes; a caption is a line of text "
                                 f"(at most {MAX_CAPTION_BYTES} bytes)")
    try:
        return txt.read_text(encoding="utf-8").strip()
    except UnicodeDecodeError as exc:
        raise TrainingInputError(f"caption {txt} is not UTF-8 text (byte {exc.object[exc.start]:#04x} at "
                                 f"offset {exc.start}); save it as UTF-8") from None


def without_captions(name: str, images: list[Path], captions: list[str | None]) -> None:
    """Say which images train with an empty caption because they have no .txt beside them."""
    missing = [p.name for p, c in zip(images, captions) if c is None]
    if missing:
        shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        warn(name, f"{len(missing)} of {len(images)} images have no .txt caption and train with an empty "
                   f"one: {shown}")


def model_file(path: Path, what: str) -> Path:
    """`path` when it is a regular .safetensors file of a plausible size (for --measure-only)."""
    if not path.exists():
        raise TrainingInputError(f"no file {path}; give the {what} to measure with --out")
    if not path.is_file():
        raise TrainingInputError(f"{path} is not a regular file; give the {what} (.safetensors) to measure")
    size = path.stat().st_size
    if size > MAX_MODEL_BYTES:
        raise TrainingInputError(f"{path} is {size} bytes, too big for a {what}; check the path")
    return path


def read_tensors(path: Path, what: str) -> dict[str, torch.Tensor]:
    """The tensors of the .safetensors `path` (a checked `model_file`); a file that is not one, or
    holds NaN or infinite values, is refused naming it."""
    import torch
    from safetensors.torch import load_file

    model_file(path, what)
    try:
        tensors = load_file(str(path))
    except Exception as exc:  # safetensors raises its own error type for a truncated or foreign file
        raise TrainingInputError(f"{path} is not a readable .safetensors {what} ({exc})") from None
    for key, tensor in tensors.items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise TrainingInputError(f"{path}: tensor {key} holds NaN or infinite values; the {what} is broken")
    return tensors


def writable_output(path: Path | None, what: str, flag: str = "--out") -> Path | None:
    """`path` when a trainer can write its output file there: its folder exists and it is not a
    folder (checked before training, not after it); None stays None."""
    if path is None:
        return None
    if path.is_dir():
        raise TrainingInputError(f"{flag} {path} is a folder; give the {what} file to write")
    if not path.parent.is_dir():
        raise TrainingInputError(f"{flag} {path}: no folder {path.parent}; create it first")
    return path


def warm_cosine_lr(step: int, steps: int, base: float, warmup: int = 50, floor: float = 0.05) -> float:
    """The small trainers' learning rate: a linear warm-up over `warmup` steps times a cosine decay over
    the whole run from `base` down to `floor * base`."""
    return base * min(1.0, (step + 1) / warmup) * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * step / steps)))


def write_pretrained_folder(out: Path, parts: tuple[Any, ...], facts: dict, numbers: dict) -> None:
    """`parts` (a model, its processor: anything with save_pretrained) saved with training.json (`facts`)
    and evaluation.json (`numbers`) beside `out`, then swapped in (see replace_folder)."""
    new = out.with_name(out.name + ".new")
    shutil.rmtree(new, ignore_errors=True)
    for part in parts:
        part.save_pretrained(str(new))
    (new / "training.json").write_text(json.dumps(facts, indent=1) + "\n", encoding="utf-8")
    (new / "evaluation.json").write_text(json.dumps(numbers, indent=1) + "\n", encoding="utf-8")
    replace_folder(new, out)


def replace_folder(new: Path, out: Path) -> None:
    """Put the folder `new` at its sibling `out` in one step where the system can, so a kill leaves
    the old folder there or the new one, never neither: Linux swaps the two names (renameat2's
    RENAME_EXCHANGE); elsewhere the old folder is first renamed aside, so a kill in that instant
    leaves it beside `out` under a hidden `.OUT.*.old` name, not lost. The old one is removed last."""
    if not out.exists():
        os.rename(new, out)
        return
    if _exchange(new, out):
        shutil.rmtree(new, ignore_errors=True)   # the old folder, now under the new one's name
        return
    aside = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".old", dir=out.parent))
    os.rmdir(aside)
    os.rename(out, aside)
    try:
        os.rename(new, out)
    except BaseException:
        os.rename(aside, out)
        raise
    shutil.rmtree(aside, ignore_errors=True)


def _exchange(a: Path, b: Path) -> bool:
    """Swap the names of `a` and `b` atomically (Linux 3.15+ on most filesystems); False where not."""
    if not sys.platform.startswith("linux"):
        return False
    import ctypes

    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):   # a C library without it (musl before 1.2.? , old glibc)
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    at_fdcwd, rename_exchange = -100, 2
    return renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0


# -- the base model -----------------------------------------------------------------------------------------
def resolve_base(base: str, name: str, parts: tuple[str, ...] = PIPELINE_PARTS, single_file: bool = False) -> Path:
    """The base model `base` names: a diffusers folder holding `parts`, a bundled model name, or
    (with `single_file`) a single .safetensors checkpoint of SD 1.x or 2.x; checked from its
    configs and file header only, before anything is loaded."""
    from nodeforge.paths import builtin_dir

    path = Path(base)
    if not path.exists():
        # builtin_dir finds resources/ in a checkout, an installed wheel and the desktop bundle alike.
        bundled = builtin_dir("resources") / "models" / base
        if not bundled.is_dir():
            names = sorted(p.name for p in bundled.parent.iterdir() if p.is_dir()) if bundled.parent.is_dir() else []
            kinds = "a diffusers folder, a .safetensors checkpoint" if single_file else "a diffusers folder"
            raise TrainingInputError(f"--base {base!r} is neither {kinds} nor a bundled model name "
                                     f"(bundled: {', '.join(names) or 'none'})")
        path = bundled
    if path.is_dir():
        return _check_folder(path, parts)
    if not single_file:
        raise TrainingInputError(f"--base {base} is a file; {name} trains on a diffusers folder or a bundled "
                                 "model name (single-file checkpoints: train-lora)")
    return _check_single_file(path)


def _check_folder(path: Path, parts: tuple[str, ...]) -> Path:
    for part in parts:
        if not (path / part).exists():
            raise TrainingInputError(f"--base {path} is not a diffusers model folder: it has no '{part}'")
    scheduler = path / "scheduler" / "scheduler_config.json"
    if "scheduler" in parts and scheduler.is_file():
        try:
            prediction = json.loads(scheduler.read_text(encoding="utf-8")).get("prediction_type", "epsilon")
        except (ValueError, UnicodeDecodeError, AttributeError) as exc:
            raise TrainingInputError(f"--base {path}: scheduler/scheduler_config.json is not a JSON object "
                                     f"({exc})") from None
        _epsilon_only(path, prediction)
    index = path / "model_index.json"
    if index.is_file():
        try:
            components = json.loads(index.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError) as exc:
            raise TrainingInputError(f"--base {path}: model_index.json is not JSON ({exc})") from None
        if isinstance(components, dict) and components.get("text_encoder_2"):
            raise TrainingInputError(f"--base {path} is an SDXL model (two text encoders); the trainers train "
                                     "SD 1.x and 2.x models (one text encoder)")
    return path


def _check_single_file(path: Path) -> Path:
    from nodeforge.core.registry import builtin_module

    loading = builtin_module("loading")
    if path.suffix.lower() != ".safetensors":
        raise TrainingInputError(f"--base {path}: a single-file checkpoint must be .safetensors "
                                 "(or give a diffusers folder)")
    try:
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as f:
            keys = list(f.keys())
    except Exception as exc:  # truncated download, not a safetensors file
        raise TrainingInputError(f"--base {path} is not a readable .safetensors checkpoint ({exc})") from None
    if not any(k.startswith(loading.UNET_PREFIX) for k in keys):
        raise TrainingInputError(f"--base {path} holds no Stable Diffusion UNet ('{loading.UNET_PREFIX}' keys); "
                                 "it may be a LoRA, a VAE or another kind of model")
    if any(k.startswith((loading.XL_CLIP2_PREFIX, loading.REFINER_CLIP_PREFIX)) for k in keys):
        raise TrainingInputError(f"--base {path} is an SDXL checkpoint (two text encoders); the trainers train "
                                 "SD 1.x and 2.x models (one text encoder)")
    return path


def _epsilon_only(path: Path, prediction: str) -> None:
    # Every trainer's loss compares the UNet's output with the noise: epsilon prediction.
    if prediction != "epsilon":
        raise TrainingInputError(f"--base {path} predicts {prediction!r}; the trainers train epsilon-prediction "
                                 "models (SD 1.x, SD 2.x base)")


def load_base(base: Path, device: torch.device) -> dict[str, Any]:
    """The base model's parts, frozen: vae, unet, text_encoder, tokenizer and the DDPM scheduler; a
    single .safetensors file is read by the node pack's CheckpointLoader code, in float32."""
    from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTokenizer

    if base.is_file():
        parts = _single_file_parts(base, device)
    else:
        parts = {"vae": AutoencoderKL.from_pretrained(base, subfolder="vae").to(device).eval(),
                 "unet": UNet2DConditionModel.from_pretrained(base, subfolder="unet").to(device),
                 "text_encoder": CLIPTextModel.from_pretrained(base, subfolder="text_encoder").to(device),
                 "tokenizer": CLIPTokenizer.from_pretrained(base, subfolder="tokenizer"),
                 "scheduler": DDPMScheduler.from_pretrained(base, subfolder="scheduler")}
    for name in ("vae", "unet", "text_encoder"):
        parts[name].requires_grad_(False)
    return parts


def _single_file_parts(path: Path, device: torch.device) -> dict[str, Any]:
    from diffusers import DDPMScheduler

    from nodeforge.core.registry import builtin_module

    loaded = builtin_module("loading").load_single_file(path, "cpu")   # float32, as a folder loads
    unet, clip, vae = loaded.unet_fields, loaded.clip_fields, loaded.vae_fields
    _epsilon_only(path, unet["prediction_type"])
    return {"vae": vae["vae"].to(device).eval(), "unet": unet["unet"].to(device),
            "text_encoder": clip["text_encoder"].to(device), "tokenizer": clip["tokenizer"],
            "scheduler": DDPMScheduler.from_config(unet["scheduler_config"])}


def encode_images(vae: Any, images: Any, device: torch.device) -> torch.Tensor:
    """Scaled VAE latents (the distribution's mode) of uint8 HxWx3 images (numpy), 64 at a time."""
    import torch

    x = torch.from_numpy(images).permute(0, 3, 1, 2).float().div(127.5).sub(1.0)
    return torch.cat([vae.encode(x[i:i + 64].to(device)).latent_dist.mode()
                      for i in range(0, len(x), 64)]) * vae.config.scaling_factor


# -- running ------------------------------------------------------------------------------------------------
def start(threads: int, seed: int, device: str | None = None, name: str = "train") -> torch.device | None:
    """Set torch's CPU threads and global seed; the torch device for `device` (cpu, cuda, mps, auto),
    or a one-line error naming the command when it is not available here."""
    import torch

    from nodeforge.devices import torch_device

    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    if device is None:
        return None
    try:
        return torch_device(device)
    except ValueError as exc:
        raise SystemExit(f"error: {name}: {exc}") from None


def report(numbers: dict, json_path: Path | None) -> None:
    """The measured numbers on stdout, and in `json_path` too when given."""
    text = json.dumps(numbers, indent=1)
    print(text)
    if json_path:
        json_path.write_text(text + "\n", encoding="utf-8")


def optimizer_step(opt: torch.optim.Optimizer, loss: torch.Tensor, clip: Any = None, max_norm: float = 1.0) -> None:
    """One step on `loss`: gradients cleared, back-propagated, clipped to `max_norm` over the
    parameters `clip` when given, applied."""
    import torch

    opt.zero_grad(set_to_none=True)
    loss.backward()
    if clip is not None:
        torch.nn.utils.clip_grad_norm_(clip, max_norm)
    opt.step()


class Progress:
    """A one-line progress bar on stderr (no tqdm dependency)."""

    def __init__(self, total: int, stream: Any = None, name: str = "train", start: int = 0):
        self.total, self.stream, self.t0, self.name = total, stream or sys.stderr, time.time(), name
        self.start = start   # steps done before this run (a resumed run's rate counts only its own)

    def update(self, done: int, loss: float) -> None:
        width = 30
        filled = int(width * done / self.total)
        rate = (done - self.start) / max(time.time() - self.t0, 1e-9)
        eta = (self.total - done) / max(rate, 1e-9)
        self.stream.write(f"\r{self.name} [{'#' * filled}{'.' * (width - filled)}] {done}/{self.total} "
                          f"loss {loss:.4f} {rate:.2f} it/s eta {eta:.0f}s ")
        if done == self.total:
            self.stream.write("\n")
        self.stream.flush()


def checkpoint(work: Path | None, name: str, state: dict[str, Any] | None = None) -> dict[str, Any] | None:
    """Write `state` (tensors and plain values) to work/name atomically and return it, or, without
    `state`, read it back (None when there is none yet or no --work)."""
    import torch

    if work is None:
        return None
    path = work / name
    if state is None:
        return torch.load(path, weights_only=True) if path.exists() else None
    work.mkdir(parents=True, exist_ok=True)
    torch.save(state, work / f"{name}.tmp")
    (work / f"{name}.tmp").replace(path)
    return state


def due(done: int, every: int, last: int) -> bool:
    """Whether step `done` (counted from 1) logs or checkpoints: every `every` steps and at the last."""
    return done % every == 0 or done == last
