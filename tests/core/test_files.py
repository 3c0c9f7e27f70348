"""Files NodeForge writes are whole or absent: an error or an interrupt mid-write leaves nothing."""
from __future__ import annotations

import threading
from pathlib import Path
from types import SimpleNamespace

import pytest

from nodeforge.core.files import atomic_write, atomic_write_bytes, write_new_file


def _half_then(error: BaseException):
    def write(handle):
        handle.write(b"\x89PNG half of a file")
        raise error
    return write


@pytest.mark.parametrize("error", [OSError(28, "No space left on device"), KeyboardInterrupt()])
def test_a_failed_write_leaves_neither_the_final_name_nor_a_temporary_file(tmp_path, error):
    with pytest.raises(type(error)):
        write_new_file([tmp_path / "img_00001.png"], _half_then(error))
    assert list(tmp_path.iterdir()) == []


def test_a_failed_replace_keeps_the_old_file_whole(tmp_path):
    target = tmp_path / "star.safetensors"
    atomic_write_bytes(target, b"old complete file")
    with pytest.raises(OSError):
        atomic_write(target, _half_then(OSError(5, "I/O error")))
    assert target.read_bytes() == b"old complete file"
    assert [p.name for p in tmp_path.iterdir()] == ["star.safetensors"]


def test_a_new_file_takes_the_first_free_name_and_never_replaces_one(tmp_path):
    (tmp_path / "a_00001.png").write_bytes(b"someone else's")
    names = [tmp_path / f"a_{n:05d}.png" for n in range(1, 4)]
    path = write_new_file(names, lambda h: h.write(b"mine"))
    assert path.name == "a_00002.png" and path.read_bytes() == b"mine"
    assert (tmp_path / "a_00001.png").read_bytes() == b"someone else's"


def test_new_files_get_the_usual_permissions_not_private_temp_ones(tmp_path):
    import os

    old = os.umask(0o022)
    try:
        path = write_new_file([tmp_path / "p.png"], lambda h: h.write(b"x"))
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o644


def test_every_replacing_write_keeps_permissions_and_writes_through_symlinks(tmp_path):
    """One writer, one behaviour: trained weights, batch manifests and workflows alike."""
    import os

    target = tmp_path / "real" / "lora.safetensors"
    atomic_write_bytes(target, b"v1")
    os.chmod(target, 0o640)
    link = tmp_path / "current.safetensors"
    link.symlink_to(target)
    written = atomic_write(link, lambda h: h.write(b"v2"))
    assert written == target and target.read_bytes() == b"v2"
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert target.stat().st_mode & 0o777 == 0o640


def test_a_dangling_symlink_is_written_through_to_its_target(tmp_path):
    import os

    link = tmp_path / "out.json"
    link.symlink_to(tmp_path / "store" / "out.json")
    atomic_write_bytes(link, b"{}")
    assert link.is_symlink() and (tmp_path / "store" / "out.json").read_bytes() == b"{}"
    assert sorted(os.listdir(tmp_path)) == ["out.json", "store"]


def test_concurrent_writers_of_new_files_never_collide(tmp_path):
    paths, lock = [], threading.Lock()

    def save(i: int) -> None:
        path = write_new_file((tmp_path / f"r_{n:05d}.png" for n in range(1, 100)),
                              lambda h: h.write(str(i).encode()))
        with lock:
            paths.append(path)

    threads = [threading.Thread(target=save, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({p.name for p in paths}) == 8
    assert sorted(p.read_text() for p in paths) == [str(i) for i in range(8)]
    assert len(list(tmp_path.iterdir())) == 8


def test_save_image_interrupted_mid_write_leaves_no_truncated_png(tmp_path, monkeypatch):
    import torch
    from PIL import Image

    from nodeforge.core.registry import builtin_module

    images = builtin_module("images")
    ctx = SimpleNamespace(output_dir=tmp_path, workflow=None, node_id="9", settings={})
    real_save = Image.Image.save

    def dying_save(self, fp, *args, **kwargs):
        fp.write(b"\x89PNG\r\n\x1a\n partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Image.Image, "save", dying_save)
    with pytest.raises(OSError):
        images.save_pngs(ctx, torch.rand(1, 8, 8, 3), "shot")
    assert list(tmp_path.iterdir()) == []
    monkeypatch.setattr(Image.Image, "save", real_save)
    [written] = images.save_pngs(ctx, torch.rand(1, 8, 8, 3), "shot")
    assert Path(written).name == "shot_00001.png"
    with Image.open(written) as img:
        img.load()
        assert img.size == (8, 8)
