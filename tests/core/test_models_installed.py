"""ModelPaths.installed and make_user_folders (the editor's Models menu reads them; issue 31)."""
from __future__ import annotations

from nodeforge.core.models import KIND_NAMES, KINDS, MODEL_KINDS, SUBFOLDERS, ModelPaths
from nodeforge.core.types import FileKind


def test_installed_gives_each_models_file_size_and_whether_it_is_bundled(tmp_path):
    root = tmp_path / "models"
    (root / "loras").mkdir(parents=True)
    (root / "loras" / "style.safetensors").write_bytes(b"x" * 1000)
    (root / "loras" / "notes.txt").write_text("not a model")
    folder = root / "checkpoints" / "my-sd"
    (folder / "unet").mkdir(parents=True)
    (folder / "model_index.json").write_text("{}")
    (folder / "unet" / "w.safetensors").write_bytes(b"x" * 500)
    paths = ModelPaths(roots=[root], include_builtin=False)
    (lora,) = paths.installed(FileKind.LORA)
    assert (lora.name, lora.path, lora.size, lora.bundled) == ("style.safetensors", root / "loras" / "style.safetensors",
                                                               1000, False)
    (ckpt,) = paths.installed("checkpoint")
    assert ckpt.name == "my-sd" and ckpt.size == 502 and ckpt.path == folder
    bundled = ModelPaths(roots=[root]).installed(FileKind.CHECKPOINT)
    assert any(m.name == "nodeforge-shapes" and m.bundled for m in bundled)


def test_make_user_folders_creates_one_folder_per_kind(tmp_path):
    paths = ModelPaths(roots=[tmp_path / "models"], include_builtin=False)
    assert paths.make_user_folders() == tmp_path / "models" == paths.user_folder
    assert all((tmp_path / "models" / SUBFOLDERS[kind]).is_dir() for kind in SUBFOLDERS)
    assert FileKind.IMAGE not in MODEL_KINDS and FileKind.VAE in MODEL_KINDS
    assert ModelPaths(roots=[]).make_user_folders() is None


def test_each_kind_is_one_row_whose_folder_files_and_name_are_what_the_user_sees(tmp_path):
    """Adding a kind is one row of KINDS: its folder, the files and folders listed there, its name."""
    assert list(KINDS) == list(FileKind)
    root = tmp_path / "models"
    for facts in KINDS.values():
        folder = root / facts.folder
        folder.mkdir(parents=True)
        (folder / "notes.txt").write_text("not a model")
        for i, extension in enumerate(facts.extensions):
            (folder / f"file{i}{extension.upper() if i else extension}").write_bytes(b"x")
        if facts.markers:
            (folder / "a-folder").mkdir()
            (folder / "a-folder" / facts.markers[0]).write_text("{}")
    paths = ModelPaths(roots=[root], include_builtin=False)
    for kind, facts in KINDS.items():
        files = [f"file{i}{e.upper() if i else e}" for i, e in enumerate(facts.extensions)]
        assert paths.names(kind) == sorted(files + (["a-folder"] if facts.markers else [])), kind
    assert (SUBFOLDERS[FileKind.CHECKPOINT], KINDS[FileKind.CHECKPOINT].builtin) == ("checkpoints", "models")
    assert paths.names(FileKind.DEPTH) == ["a-folder"] and paths.names(FileKind.IMAGE)[0] == "file0.png"
    assert [KIND_NAMES[k] for k in (FileKind.UPSCALE_MODEL, FileKind.IPADAPTER, FileKind.CLIP_VISION)] == [
        "upscale model", "IP-Adapter", "CLIP vision encoder"]
