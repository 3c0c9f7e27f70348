"""Where model files are found: the bundled folder, the user's folder, and NODEFORGE_MODELS.

The one vocabulary of model kinds: each `FileKind` has one row of KINDS here (its sub-folder, file
extensions, display name, bundled folder and folder markers), and the engine, the editor and the
importers (`nodeforge/interop/model_names.py`) all read its columns (SUBFOLDERS, EXTENSIONS, ...).

A checkpoint or LoRA param holds a name found in these folders (a diffusers folder name, or a
file name with or without its extension) or a path. No torch here: only files and names.
"""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

from nodeforge.core.types import FileKind
from nodeforge.paths import builtin_dir

_MODEL_FILES = (".safetensors", ".ckpt", ".pt", ".pth", ".bin")
_SPLIT_FILES = (".safetensors", ".gguf", ".sft")    # a transformer or text encoder alone


@dataclass(frozen=True)
class KindFacts:
    """What NodeForge knows of one FileKind. Adding a kind is one row of KINDS."""

    folder: str                     # sub-folder of each models root, as in ComfyUI's models/ layout
    extensions: tuple[str, ...]     # the files a param of the kind may name (none: folders only)
    name: str                       # what messages and dialogs call it ("missing upscale model ...")
    builtin: str                    # the folder inside the bundled resources/
    markers: tuple[str, ...] = ()   # a folder of this kind (diffusers layout) holds one of these


KINDS: dict[FileKind, KindFacts] = {
    FileKind.CHECKPOINT: KindFacts("checkpoints", _MODEL_FILES, "checkpoint", "models", ("model_index.json", "unet")),
    FileKind.LORA: KindFacts("loras", (".safetensors", ".ckpt", ".pt", ".bin"), "LoRA", "loras"),
    FileKind.IMAGE: KindFacts("images", (".png", ".jpg", ".jpeg", ".webp", ".bmp"), "image", "images"),
    FileKind.VAE: KindFacts("vae", _MODEL_FILES, "VAE", "vae", ("config.json", "vae")),
    FileKind.EMBEDDING: KindFacts("embeddings", (".safetensors", ".pt", ".bin"), "embedding", "embeddings",
                                  ("learned_embeds.safetensors", "learned_embeds.bin")),
    FileKind.CONTROLNET: KindFacts("controlnet", _MODEL_FILES, "ControlNet", "controlnet", ("config.json",)),
    FileKind.UPSCALE_MODEL: KindFacts("upscale_models", (".safetensors", ".pth", ".pt", ".ckpt", ".bin"),
                                      "upscale model", "upscale_models"),
    FileKind.DIFFUSION_MODEL: KindFacts("diffusion_models", _SPLIT_FILES, "diffusion model", "diffusion_models",
                                        ("config.json",)),
    FileKind.TEXT_ENCODER: KindFacts("text_encoders", _SPLIT_FILES, "text encoder", "text_encoders",
                                     ("config.json",)),
    FileKind.IPADAPTER: KindFacts("ipadapter", (".safetensors", ".bin"), "IP-Adapter", "ipadapter"),
    FileKind.CLIP_VISION: KindFacts("clip_vision", (".safetensors",), "CLIP vision encoder", "clip_vision",
                                    ("config.json",)),
    FileKind.MODEL_PATCH: KindFacts("model_patches", (".safetensors",), "model patch", "model_patches"),
    # transformers repositories' folders only
    FileKind.DEPTH: KindFacts("depth", (), "depth model", "depth", ("config.json",)),
    FileKind.POSE: KindFacts("pose", (), "pose model", "pose", ("config.json",)),
    FileKind.LATENT_UPSCALE_MODEL: KindFacts("latent_upscale_models", (".safetensors", ".pt", ".pth"),
                                             "latent upscale model", "latent_upscale_models"),
    FileKind.GROUNDING_DINO: KindFacts("grounding-dino", (), "Grounding DINO model", "grounding-dino", ("config.json",)),
    FileKind.SAM: KindFacts("sams", (), "Segment Anything model", "sams", ("config.json",)),
    # briaai/RMBG-1.4's model.safetensors (or model.pth), alone or in its repository's folder
    FileKind.BACKGROUND_REMOVAL: KindFacts("rmbg", (".safetensors", ".pth"), "background removal model", "rmbg",
                                           ("model.safetensors", "model.pth")),
    # lllyasviel/Annotators' sk_model.pth and sk_model2.pth (coarse), or their .safetensors conversions
    FileKind.LINEART: KindFacts("lineart", (".safetensors", ".pth"), "lineart model", "lineart"),
    # lllyasviel/Annotators' res101.pth (LeReS's ResNeXt-101 depth network)
    FileKind.LERES: KindFacts("leres", (".safetensors", ".pth"), "LeReS depth model", "leres"),
}
# The tables the rest of the program reads, each one column of KINDS.
SUBFOLDERS = {kind: facts.folder for kind, facts in KINDS.items()}
EXTENSIONS = {kind: facts.extensions for kind, facts in KINDS.items()}
KIND_NAMES = {kind: facts.name for kind, facts in KINDS.items()}
BUILTIN = {kind: facts.builtin for kind, facts in KINDS.items()}
# Kinds that may also be a folder (diffusers layout), and what such a folder holds (any one).
FOLDER_MARKERS = {kind: facts.markers for kind, facts in KINDS.items() if facts.markers}
# The kinds that are models (what the editor's Models menu lists); images are inputs, not models.
MODEL_KINDS = tuple(kind for kind in KINDS if kind is not FileKind.IMAGE)
# A kind whose param may name a model of another kind: a VAE param naming a checkpoint uses the VAE
# inside it (VAELoader reads a diffusers folder's vae/ and a single file's first_stage_model. part), so
# `--model-map vae.safetensors=nodeforge-shapes` works.
BORROWS = {FileKind.VAE: FileKind.CHECKPOINT}
# Kinds that are whole Hugging Face repositories (transformers folders): a name not in the model folders is
# also looked for in the Hugging Face cache, as the repository's name ("dpt-hybrid-midas") or id
# ("Intel/dpt-hybrid-midas"), so a user who downloaded it once (`hf download Intel/dpt-hybrid-midas`) has it.
HUB_KINDS = (FileKind.DEPTH, FileKind.POSE, FileKind.GROUNDING_DINO, FileKind.SAM)


def hub_cache_dir() -> Path:
    """The Hugging Face hub cache (HF_HUB_CACHE, else HF_HOME/hub, else ~/.cache/huggingface/hub)."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    home = os.environ.get("HF_HOME") or Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "huggingface"
    return Path(home).expanduser() / "hub"


def hub_snapshot(name: str, marker: str = "config.json") -> Path | None:
    """The cached snapshot folder of the repository `name` (an id or a bare repository name) that holds
    `marker`: the one refs/main names, else the newest; None when the cache has none."""
    cache = hub_cache_dir()
    if not name or ".." in name or not cache.is_dir():
        return None
    parts = name.replace("\\", "/").strip("/").split("/")
    pattern = f"models--{parts[0]}--{parts[1]}" if len(parts) == 2 else f"models--*--{parts[-1]}"
    for repo in sorted(cache.glob(pattern)):
        main = repo / "refs" / "main"
        pinned = repo / "snapshots" / main.read_text().strip() if main.is_file() else None
        snapshots = sorted((repo / "snapshots").glob("*"), key=lambda p: p.stat().st_mtime, reverse=True)
        for snapshot in ([pinned] if pinned is not None else []) + snapshots:
            if (snapshot / marker).is_file():
                return snapshot
    return None


def snapshot_name(path: Path) -> str:
    """A model folder's name as users know it: NAME for a Hugging Face cache snapshot
    (models--ORG--NAME/snapshots/<revision>), else the folder's own name."""
    return path.parent.parent.name.split("--")[-1] if path.parent.name == "snapshots" else path.name


def quoted(name: str) -> str:
    """A model name as messages show it: quoted and escaped as repr() does (a hostile name cannot
    break the line), but a Windows sub-folder's backslash shown once, as the user wrote it."""
    return repr(name).replace("\\\\", "\\")


def is_model_folder(kind: FileKind, path: Path) -> bool:
    """Whether `path` is a folder that a param of `kind` may name (a diffusers-layout model)."""
    return any((path / marker).exists() for marker in FOLDER_MARKERS.get(kind, ()))


def user_data_dir() -> Path:
    """The platform's per-user data folder for NodeForge (models, autosave, settings)."""
    env = os.environ.get("NODEFORGE_HOME")
    if env:
        return Path(env)
    try:
        from platformdirs import user_data_dir as _udd

        return Path(_udd("NodeForge", "NodeForge"))
    except ImportError:  # pragma: no cover - platformdirs is a dependency
        if sys.platform == "win32":
            return Path(os.environ.get("APPDATA", Path.home())) / "NodeForge"
        if sys.platform == "darwin":
            return Path.home() / "Library" / "Application Support" / "NodeForge"
        return Path(os.environ.get("XDG_DATA_HOME", Path.home() / ".local" / "share")) / "nodeforge"


def reaches_outside(name: str) -> bool:
    """Whether a model name from a shared file would leave the model folders: an absolute path, a
    drive, a home folder (~) or a '..' step. Judged on the text alone, so a link the user made
    inside a model folder still works."""
    text = name.replace("\\", "/")
    return (text.startswith(("/", "~")) or os.path.isabs(name) or (len(text) > 1 and text[1] == ":")
            or ".." in text.split("/"))


@dataclass(frozen=True)
class InstalledModel:
    """One model a param of its kind can name: where it is, how big, and whether it ships with NodeForge."""

    kind: FileKind
    name: str
    path: Path
    size: int          # bytes; a diffusers folder counts every file below it
    bundled: bool


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(sub.stat().st_size for sub in path.rglob("*") if sub.is_file())


class ModelNotFound(LookupError):
    """A model name or path that is not there; the message lists where we looked."""


@dataclass
class ModelPaths:
    """The ordered list of model roots. Earlier roots win when two hold the same name."""

    roots: list[Path] = field(default_factory=list)
    include_builtin: bool = True

    @classmethod
    def default(cls) -> "ModelPaths":
        roots = [user_data_dir() / "models"]
        for part in os.environ.get("NODEFORGE_MODELS", "").split(os.pathsep):
            if part.strip():
                roots.append(Path(part.strip()).expanduser())
        return cls(roots=roots)

    def folders(self, kind: FileKind | str) -> list[Path]:
        kind = FileKind(kind)
        found: list[Path] = []
        if self.include_builtin:
            found.append(builtin_dir("resources") / BUILTIN[kind])
        for root in self.roots:
            found.append(root / SUBFOLDERS[kind])
            found.append(root)  # a flat folder of models also works
        return found

    def names(self, kind: FileKind | str) -> list[str]:
        """Names the editor lists for a kind: diffusers folders and files with a known extension."""
        kind = FileKind(kind)
        names: dict[str, None] = {}
        for folder in self.folders(kind):
            if not folder.is_dir():
                continue
            for entry in sorted(folder.iterdir()):
                if entry.name.startswith(".") or (entry.is_dir() and entry.suffix == ".config"):
                    continue   # hidden, or the config folder that sits beside a single-file model
                if entry.is_dir() and kind is not FileKind.CHECKPOINT and is_model_folder(kind, entry):
                    names.setdefault(entry.name)
                elif entry.is_dir() and kind is FileKind.CHECKPOINT and (entry / "model_index.json").exists():
                    names.setdefault(entry.name)
                elif entry.is_file() and entry.suffix.lower() in EXTENSIONS[kind]:
                    names.setdefault(entry.name)
        return list(names)

    @property
    def user_folder(self) -> Path | None:
        """The user's own models folder (the first root): where the editor's Models menu opens."""
        return self.roots[0] if self.roots else None

    def make_user_folders(self) -> Path | None:
        """Create the user's models folder with one sub-folder per kind, so a user sees where
        each kind goes; returns it (None when there is no user root)."""
        root = self.user_folder
        if root is not None:
            for kind in SUBFOLDERS:
                (root / SUBFOLDERS[kind]).mkdir(parents=True, exist_ok=True)
        return root

    def installed(self, kind: FileKind | str) -> list[InstalledModel]:
        """The models of `kind` found now (the names `names` lists), each with its file and size."""
        kind = FileKind(kind)
        bundled = builtin_dir("resources") / BUILTIN[kind] if self.include_builtin else None
        found = []
        for name in self.names(kind):
            try:
                path = self._resolve(kind, name)
            except ModelNotFound:   # removed between listing and looking
                continue
            try:
                size = _size(path)
            except OSError:
                size = 0
            found.append(InstalledModel(kind, name, path, size, bundled is not None and path.parent == bundled))
        return found

    def resolve(self, kind: FileKind | str, name: str, base: Path | None = None) -> Path:
        """The path for a name or path; raises ModelNotFound naming the folders searched. A kind
        that may name a model of another kind (`BORROWS`: a VAE may name a checkpoint, whose VAE
        is then used) looks there after its own folders."""
        kind = FileKind(kind)
        try:
            return self._resolve(kind, name, base)
        except ModelNotFound as exc:
            cached = hub_snapshot(name) if kind in HUB_KINDS else None
            if cached is not None:
                return cached
            if kind in HUB_KINDS and name:
                raise ModelNotFound(f"{exc}, or download its Hugging Face repository into the Hugging Face cache "
                                    f"({hub_cache_dir()})") from None
            if kind not in BORROWS or not name:
                raise
            try:
                return self._resolve(BORROWS[kind], name, base)
            except ModelNotFound:
                pass
            raise

    def _resolve(self, kind: FileKind | str, name: str, base: Path | None = None) -> Path:
        """The path for a name or path in the folders of `kind`; raises ModelNotFound naming them.

        A relative path is tried against `base` (the folder of the workflow file, so shared
        workflows find the images shipped beside them) and then the working folder.
        """
        kind = FileKind(kind)
        if not name:
            raise ModelNotFound(f"no {kind.value} chosen")
        candidate = Path(name).expanduser()
        if not candidate.is_absolute() and base is not None and (Path(base) / candidate).exists():
            return Path(base) / candidate
        if candidate.is_absolute() or os.sep in name or "/" in name:
            if candidate.exists():
                return candidate
            if not candidate.is_absolute():  # "SDXL/base.safetensors": a sub-folder of a model folder
                for folder in self.folders(kind):
                    for option in [folder / candidate] + [folder / (name + ext) for ext in EXTENSIONS[kind]]:
                        if option.exists():
                            return option
            _refuse_broken_link(kind, candidate)
            beside = f" or beside the workflow in {base}" if base is not None else ""
            raise ModelNotFound(f"{kind.value} file {quoted(name)} does not exist (looked in the working folder{beside})")
        for folder in self.folders(kind):
            for option in [folder / name] + [folder / (name + ext) for ext in EXTENSIONS[kind]]:
                if option.exists():
                    return option
        if candidate.exists():  # a bare relative file name in the working folder
            return candidate
        for folder in self.folders(kind):
            for option in [folder / name] + [folder / (name + ext) for ext in EXTENSIONS[kind]]:
                _refuse_broken_link(kind, option)
        existing = [str(f) for f in self.folders(kind) if f.is_dir()]
        searched = f"searched {', '.join(existing)}" if existing else "no model folder exists yet"
        raise ModelNotFound(
            f"{kind.value} {quoted(name)} not found ({searched}); put it in "
            f"{self.roots[0] / SUBFOLDERS[kind] if self.roots else 'a models folder'}, "
            "add its folder to NODEFORGE_MODELS, or give a path"
        )


def _refuse_broken_link(kind: FileKind, path: Path) -> None:
    """A symbolic link that leads nowhere (its target gone, or a loop) is named as such, not 'not found'."""
    if not path.is_symlink():
        return
    try:
        target = os.readlink(path)
    except OSError:
        target = "?"
    raise ModelNotFound(f"{kind.value} {quoted(str(path))} is a symbolic link to {quoted(target)}, which does not "
                        "exist or links back to itself; point the link at the model file, or remove it")


def file_identity(path: Path) -> tuple:
    """What the cache key records of a file: path, size and modification time.

    For a folder (a diffusers model) every file below it counts, so retraining it re-runs.
    """
    path = Path(path).resolve()
    if path.is_dir():
        parts = []
        for sub in sorted(path.rglob("*")):
            if sub.is_file():
                st = sub.stat()
                parts.append((str(sub.relative_to(path)), st.st_size, st.st_mtime_ns))
        return (str(path), tuple(parts))
    st = path.stat()
    return (str(path), st.st_size, st.st_mtime_ns)
