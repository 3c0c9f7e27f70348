"""Model files that are not what their name says, read as the nodes read them: one NodeError naming
the file and what to do, never a silent no-op."""
from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file

from nodeforge.core.errors import NodeError
from nodeforge.core.registry import builtin_module

embeddings = builtin_module("embeddings")


@pytest.mark.parametrize("tensors", [
    {"emb_params": torch.zeros(0, 64)},                 # no vectors: the token vanished from the prompt
    {"emb_params": torch.zeros(4, 0)},
    {"string_to_param": torch.zeros(1, 0, 64)},
])
def test_an_embedding_with_no_vectors_is_refused(tmp_path, tensors):
    path = tmp_path / "hollow.safetensors"
    save_file(tensors, str(path))
    with pytest.raises(NodeError) as info:
        embeddings.read_embedding(path, "hollow")
    assert "embedding 'hollow' holds no vectors" in str(info.value) and info.value.field == "text"


def test_an_embedding_with_vectors_still_reads(tmp_path):
    path = tmp_path / "fine.safetensors"
    save_file({"emb_params": torch.ones(2, 64)}, str(path))
    assert embeddings.read_embedding(path, "fine").for_width(64, "text encoder").shape == (2, 64)


def test_a_prompt_from_a_wire_is_held_to_the_same_length_before_tokenizing():
    prompt = builtin_module("prompt")
    with pytest.raises(NodeError) as info:
        prompt.prompt_chunks(None, "x" * 100_001)      # refused before the tokenizer is asked
    assert "the prompt is 100,001 characters; more than 100,000" in str(info.value)
    assert info.value.field == "text"


loading = builtin_module("loading")


class _RunsCode:
    def __reduce__(self):
        return (print, ("this would run",))


def _torch_zip_cut_short(path):
    torch.save({"state_dict": {"w": torch.zeros(4096)}}, path)
    path.write_bytes(path.read_bytes()[:3000])


def _zip_of_text(path):
    import zipfile

    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("readme.txt", "not weights")


def _safetensors_cut_short(path):
    save_file({"w": torch.zeros(4096)}, str(path))
    path.write_bytes(path.read_bytes()[:2000])


def _safetensors_claiming_a_huge_tensor(path):
    import json
    import struct

    header = json.dumps({"w": {"dtype": "F32", "shape": [1 << 40, 1 << 30], "data_offsets": [0, 1 << 62]}}).encode()
    path.write_bytes(struct.pack("<Q", len(header)) + header)


def _zip_with_a_damaged_table(path):
    import zipfile

    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("archive/data.pkl", b"x" * 100)
    data = bytearray(path.read_bytes())
    entry = data.find(b"PK\x01\x02")        # the central directory's first entry: its signature broken
    data[entry + 3] = 9
    path.write_bytes(bytes(data))


HOSTILE_FILES = [
    ("table.ckpt", _zip_with_a_damaged_table, "cannot read table.ckpt: it is a damaged zip archive (its table of "
                                              "contents cannot be read); download it again"),
    ("random.ckpt", lambda p: p.write_bytes(bytes(range(256)) * 16),
     "cannot read random.ckpt: it is not a PyTorch checkpoint (neither a pickle nor a zip archive); the file is "
     "damaged or another kind of file renamed; download it again (or use its .safetensors version)"),
    ("random.pt", lambda p: p.write_bytes(b"\x13\x37" * 999), "cannot read random.pt: it is not a PyTorch checkpoint"),
    ("notes.ckpt", _zip_of_text, "cannot read notes.ckpt: it is a zip archive of 1 file(s) but not a PyTorch "
                                 "checkpoint (no data.pkl in it); unzip it and choose the model file inside"),
    ("cut.ckpt", _torch_zip_cut_short, "cannot read cut.ckpt: the PyTorch checkpoint is cut short or damaged "
                                       "(3000 bytes); download it again"),
    ("code.ckpt", lambda p: torch.save({"state_dict": {"w": torch.zeros(2)}, "callback": _RunsCode()}, p),
     "cannot read code.ckpt safely: it holds Python code to run (print) besides its weights, and "
     "NodeForge never runs code from a model file; convert it to .safetensors or download the .safetensors version"),
    ("empty.ckpt", lambda p: p.write_bytes(b""), "cannot read empty.ckpt: it is empty (0 bytes): the download or "
                                                 "copy did not finish; download it again"),
    ("lfs.safetensors", lambda p: p.write_text("version https://git-lfs.github.com/spec/v1\noid sha256:00\nsize 9\n"),
     "cannot read lfs.safetensors: it is a Git LFS pointer (64 bytes), not the weights: fetch the file itself"),
    ("page.ckpt", lambda p: p.write_text("<!DOCTYPE html><html><body>Sign in</body></html>"),
     "cannot read page.ckpt: it is a web page, not model weights: the download saved a login or error page"),
    ("cut.safetensors", _safetensors_cut_short, "cannot read cut.safetensors: it is not a complete .safetensors "
                                                "file (incomplete metadata, file not fully covered); the download "
                                                "stopped early or the file is damaged; download it again"),
    ("huge.safetensors", _safetensors_claiming_a_huge_tensor, "cannot read huge.safetensors: it is not a complete "
                                                              ".safetensors file (overflow computing buffer size"),
    ("pickle.safetensors", lambda p: torch.save({"w": torch.zeros(2)}, p),
     "cannot read pickle.safetensors: it is a PyTorch checkpoint (pickle), not a .safetensors file: rename it to .ckpt"),
    ("renamed.ckpt", lambda p: save_file({"w": torch.zeros(2)}, str(p)),
     "cannot read renamed.ckpt: it is a .safetensors file named .ckpt: rename it to .safetensors"),
]


@pytest.mark.parametrize("name, make, expected", HOSTILE_FILES, ids=[case[0] for case in HOSTILE_FILES])
@pytest.mark.parametrize("field", ["checkpoint", "lora", "vae"])
def test_a_weight_file_that_is_not_one_says_what_it_is_and_what_to_do(tmp_path, capsys, name, make, expected, field):
    path = tmp_path / name
    make(path)
    with pytest.raises(NodeError) as info:
        loading.read_state_dict(path, field=field)
    message = str(info.value)
    assert message.startswith(expected) and "\n" not in message and info.value.field == field
    assert "this would run" not in capsys.readouterr().out      # the pickled code never ran


def test_upscalers_embeddings_and_ip_adapters_read_pickles_the_same_way(tmp_path):
    path = tmp_path / "random.pth"
    path.write_bytes(b"\x13\x37" * 999)
    upscale, ipadapter = builtin_module("upscale"), builtin_module("ipadapter")
    for read, field, prefix in [(upscale.read_upscale_state, "upscale_model", "cannot read random.pth"),
                                (ipadapter._adapter_tensors, "ipadapter", "cannot read random.pth"),
                                (lambda p: embeddings.read_embedding(p, "random"), "text",
                                 "cannot read embedding random.pth")]:
        with pytest.raises(NodeError) as info:
            read(path)
        assert str(info.value).startswith(prefix + ": it is not a PyTorch checkpoint") and info.value.field == field


def test_a_random_ckpt_given_to_nodeforge_run_is_one_line_naming_node_file_and_fix(tmp_path, capsys):
    from nodeforge.cli import main
    from nodeforge.paths import builtin_dir

    path = tmp_path / "model.ckpt"
    path.write_bytes(bytes(range(256)) * 64)
    code = main(["run", str(builtin_dir("workflows") / "txt2img.json"), "--set", f"1.checkpoint={path}",
                 "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip()
    assert code == 1 and "Traceback" not in err and len(err.splitlines()) == 1
    assert err.startswith("error: node 1 (CheckpointLoader), checkpoint: cannot read model.ckpt: it is not a "
                          "PyTorch checkpoint")


@pytest.mark.parametrize("target", ["gone.safetensors", "loop.safetensors"])
def test_a_model_link_that_leads_nowhere_is_named_as_a_link(tmp_path, target):
    from nodeforge.core.models import ModelNotFound, ModelPaths

    (tmp_path / "checkpoints").mkdir()
    link = tmp_path / "checkpoints" / "loop.safetensors"
    link.symlink_to(target)
    for name in ["loop", str(link)]:
        with pytest.raises(ModelNotFound) as info:
            ModelPaths(roots=[tmp_path], include_builtin=False).resolve("checkpoint", name)
        assert f"is a symbolic link to '{target}', which does not exist or links back to itself; point the link " \
               "at the model file, or remove it" in str(info.value)


@pytest.mark.parametrize("error", [MemoryError(), RuntimeError("[enforce fail at alloc_cpu.cpp:118] data. "
                                                               "DefaultCPUAllocator: not enough memory: you tried "
                                                               "to allocate 6871947674 bytes.")])
@pytest.mark.parametrize("name", ["big.ckpt", "big.safetensors"])
def test_a_weight_file_larger_than_free_memory_is_not_called_damaged(tmp_path, monkeypatch, error, name):
    """Running out of memory while reading is said as that, naming the file; never 'download it again'."""
    import safetensors

    path = tmp_path / name
    (torch.save({"w": torch.zeros(2)}, path) if name.endswith(".ckpt") else save_file({"w": torch.zeros(2)}, str(path)))

    def out_of_memory(*args, **kwargs):
        raise error

    monkeypatch.setattr(torch, "load", out_of_memory)
    monkeypatch.setattr(safetensors, "safe_open", out_of_memory)
    with pytest.raises(NodeError) as info:
        loading.read_state_dict(path, field="checkpoint")
    assert str(info.value) == (f"ran out of memory reading {name}: it is larger than the memory free now; close "
                               "other programs, or use a smaller version of the model (fp16 or pruned)")
    assert info.value.field == "checkpoint"


@pytest.mark.parametrize("second", [0x00, 0x02, 0x03])   # 0x02-0x05 after 0x80 is also how a pickle begins
def test_a_safetensors_file_whose_header_length_starts_like_a_pickle_reads(tmp_path, second):
    """One safetensors file in 256 has a header length whose low byte is 0x80, a pickle's first byte:
    it is still read as the safetensors file it is (it was refused as 'a PyTorch checkpoint')."""
    path = tmp_path / "lucky.safetensors"
    weight = torch.arange(6.0).reshape(2, 3)
    for pad in range(1000):
        save_file({"w": weight}, str(path), metadata={"note": "x" * pad})
        head = path.read_bytes()[:2]
        if head[0] == 0x80 and head[1] == second:
            break
    else:
        pytest.fail("no padding gave the header length wanted")
    state, _ = loading.read_state_dict(path, field="lora")
    assert torch.equal(state["w"], weight)
