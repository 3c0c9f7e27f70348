"""ModelPaths.installed and make_user_folders (the editor's Models menu reads them; issue 31)."""
from __future__ import annotations

from nodeforge.core.models import MODEL_KINDS, SUBFOLDERS, ModelPaths
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
