"""Shared files written to hurt (issue 27): each is one line naming the field and the fix, or a warning.

Nothing here may hang, eat memory or print a traceback.
"""
from __future__ import annotations

import json
import time

import pytest

from nodeforge.core.errors import WorkflowFileError


def _node(nid, class_type, widgets=None, inputs=(), outputs=()):
    node = {"id": nid, "type": class_type, "pos": [0, 0], "size": [100, 50], "flags": {}, "order": 0, "mode": 0,
            "inputs": [{"name": n, "type": t, "link": link} for n, t, link in inputs],
            "outputs": [{"name": n, "type": t, "links": links} for n, t, links in outputs], "properties": {}}
    if widgets is not None:
        node["widgets_values"] = widgets
    return node


def _nested_bomb(width: int, depth: int) -> dict:
    """Subgraph Sk holds `width` instances of S(k+1); the deepest holds `width` plain nodes: width**depth."""
    definitions = []
    for level in range(depth):
        inner = f"S{level + 1}" if level + 1 < depth else "EmptyLatentImage"
        definitions.append({"id": f"S{level}", "name": f"level {level}", "links": [],
                            "nodes": [_node(i + 1, inner) for i in range(width)]})
    return {"nodes": [_node(1, "S0")], "links": [], "version": 0.4, "definitions": {"subgraphs": definitions}}


def test_nested_subgraph_instances_are_refused_before_they_multiply(registry, tmp_path):
    from nodeforge.interop import read_workflow
    from nodeforge.interop.comfy_graph import MAX_EXPANDED_NODES

    path = tmp_path / "bomb.json"
    path.write_text(json.dumps(_nested_bomb(width=20, depth=7)))      # 20^7 = 1.28e9 nodes
    assert path.stat().st_size < 30_000
    start = time.monotonic()
    with pytest.raises(WorkflowFileError) as caught:
        read_workflow(path, registry=registry)
    assert time.monotonic() - start < 5
    text = str(caught.value)
    assert text.startswith(f"{path}: ") and "\n" not in text
    assert f"more than {MAX_EXPANDED_NODES} nodes" in text and "subgraph" in text


def test_empty_subgraphs_nested_deep_cost_no_time(registry):
    """Instances of empty subgraphs expand to nothing, but 30^6 of them would still take hours to walk."""
    from nodeforge.interop import read_workflow

    data = _nested_bomb(width=30, depth=6)
    data["definitions"]["subgraphs"][-1]["nodes"] = []
    with pytest.raises(WorkflowFileError, match="more than"):
        read_workflow(data, registry=registry)


def test_a_subgraph_used_a_few_times_still_expands(registry):
    from nodeforge.interop import read_workflow

    wf = read_workflow(_nested_bomb(width=3, depth=3), registry=registry).workflow
    assert len(wf.nodes) == 27 and all(n.type == "EmptyLatent" for n in wf.nodes.values())


def test_a_ui_link_missing_from_links_is_a_warning(registry):
    from nodeforge.interop import read_workflow

    nodes = [_node(1, "EmptyLatentImage", [64, 64, 1], outputs=[("LATENT", "LATENT", [7])]),
             _node(2, "VAEDecode", inputs=[("samples", "LATENT", 7), ("vae", "VAE", None)])]
    imported = read_workflow({"nodes": nodes, "links": [], "version": 0.4}, registry=registry)
    assert imported.workflow.nodes["2"].inputs == {}
    assert "node 2 (VAEDecode), samples: its link 7 is not in the file's \"links\"; the input is left " \
           "unconnected" in imported.warnings


def test_a_ui_link_from_a_node_not_in_the_file_is_a_warning_as_for_api_prompts(registry):
    from nodeforge.interop import read_workflow

    nodes = [_node(2, "VAEDecode", inputs=[("samples", "LATENT", 7), ("vae", "VAE", None)])]
    links = [[7, 99, 0, 2, 0, "LATENT"]]
    ui = read_workflow({"nodes": nodes, "links": links, "version": 0.4}, registry=registry).warnings
    api = read_workflow({"2": {"class_type": "VAEDecode", "inputs": {"samples": ["99", 0]}}},
                        registry=registry).warnings
    line = "node 2 (VAEDecode), samples: linked to node 99, which is not in the file; the input is left unconnected"
    assert line in ui and line in api


def test_a_link_missing_inside_a_subgraph_is_said_once_however_often_it_is_used(registry):
    from nodeforge.interop import read_workflow

    inner = {"id": "S", "name": "decode", "links": [],
             "nodes": [_node(5, "VAEDecode", inputs=[("samples", "LATENT", 3)])]}
    data = {"nodes": [_node(1, "S"), _node(2, "S")], "links": [], "version": 0.4,
            "definitions": {"subgraphs": [inner]}}
    warnings = read_workflow(data, registry=registry).warnings
    assert warnings.count("subgraph 'decode': node 5 (VAEDecode), samples: its link 3 is not in the file's "
                          "\"links\"; the input is left unconnected") == 1


@pytest.mark.parametrize("size,word", [("99999999x64", "larger"), ("9" * 5000 + "x64", "larger"),
                                       ("8x8", "smaller"), ("64x0", "smaller")])
def test_an_a1111_size_out_of_range_says_so(registry, tmp_path, size, word):
    from nodeforge.interop import read_workflow

    text = f"a cat\nSteps: 20, Size: {size}, Seed: 1, Model: shapes"
    imported = read_workflow(_a1111(tmp_path, text), registry=registry)
    latent = next(n for n in imported.workflow.nodes.values() if n.type == "EmptyLatent")
    assert "width" not in latent.params
    line = next(w for w in imported.warnings if "Size" in w)
    assert f"is {word} than NodeForge makes (16 to 8192 pixels a side)" in line and len(line) < 300


def test_the_a1111_size_range_is_emptylatents(registry):
    from nodeforge.interop import a1111

    width = next(p for p in registry.get("EmptyLatent").params if p.name == "width")
    assert (a1111.MIN_SIDE, a1111.MAX_SIDE) == (width.min, width.max)


def test_a_huge_hires_resize_is_a_range_error_not_a_crash(registry, tmp_path):
    from nodeforge.interop import read_workflow

    text = "a cat\nSteps: 20, Size: 64x64, Seed: 1, Hires resize: " + "9" * 5000 + "x64, Denoising strength: 0.5"
    wf = read_workflow(_a1111(tmp_path, text), registry=registry).workflow
    up = next(n for n in wf.nodes.values() if n.type == "LatentUpscale")
    assert up.params["width"] >= 10 ** 9


def _a1111(folder, text):
    path = folder / "params.txt"
    path.write_text(text)
    return path


# -- model names from shared files stay inside the model folders ------------------------------------------
def _engine(registry, root):
    from nodeforge import Engine
    from nodeforge.core.models import ModelPaths

    return Engine(device="cpu", registry=registry, model_paths=ModelPaths(roots=[root], include_builtin=False))


def _problems(engine, workflow, field):
    return [p.message for p in engine.validate(workflow) if p.field == field]


def _api(ckpt="model.safetensors", text="a cat", lora=None):
    prompt = {"1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": ckpt}},
              "2": {"class_type": "CLIPTextEncode", "inputs": {"text": text, "clip": ["1", 1]}}}
    if lora is not None:
        prompt["3"] = {"class_type": "LoraLoader", "inputs": {"lora_name": lora, "strength_model": 1.0,
                                                              "strength_clip": 1.0, "model": ["1", 0], "clip": ["1", 1]}}
    return prompt


@pytest.fixture
def shared(tmp_path):
    """A shared file's folder with a 'secret' beside it, and an empty models root."""
    (tmp_path / "models").mkdir()
    (tmp_path / "secret.safetensors").write_bytes(b"not yours")
    (tmp_path / "inbox").mkdir()
    return tmp_path


@pytest.mark.parametrize("name", ["../secret.safetensors", "{root}/secret.safetensors", "..\\secret.safetensors",
                                  "~/secret.safetensors", "C:/models/x.safetensors", "sub/../../secret.safetensors"])
def test_a_checkpoint_name_from_a_shared_file_may_not_leave_the_model_folders(registry, shared, name):
    from nodeforge.interop import read_workflow

    path = shared / "inbox" / "shared.json"
    path.write_text(json.dumps(_api(ckpt=name.format(root=shared))))
    imported = read_workflow(path, registry=registry)
    messages = _problems(_engine(registry, shared / "models"), imported.workflow, "checkpoint")
    assert len(messages) == 1 and "from the imported ComfyUI API prompt reaches outside the model folders" in \
        messages[0] and "--set 1.checkpoint=" in messages[0], messages
    assert not any("secret" in line and "missing" in line for line in imported.warnings), "not even looked for"


def test_a_lora_tag_and_an_embedding_from_a_shared_file_may_not_leave_the_model_folders(registry, shared):
    from nodeforge.interop import read_workflow

    path = shared / "inbox" / "params.txt"
    path.write_text("a cat <lora:../../secret:0.5>, embedding:/etc/hostname\nSteps: 2, Size: 64x64, Seed: 1, "
                    "Model: model")
    wf = read_workflow(path, registry=registry).workflow
    engine = _engine(registry, shared / "models")
    assert any("LoRA '../../secret' from the imported A1111 parameters reaches outside" in m
               for m in _problems(engine, wf, "lora"))
    assert any("embedding '/etc/hostname' from the imported A1111 parameters reaches outside" in m
               for m in _problems(engine, wf, "text"))


def test_a_path_the_user_sets_stays_allowed(registry, shared):
    from nodeforge.cli import apply_overrides
    from nodeforge.interop import read_workflow

    wf = read_workflow(_api(ckpt="../secret.safetensors"), registry=registry).workflow
    apply_overrides(wf, [f"1.checkpoint={shared / 'secret.safetensors'}"], registry)
    messages = _problems(_engine(registry, shared / "models"), wf, "checkpoint")
    assert not any("reaches outside" in m for m in messages)


def test_the_editor_typing_a_path_makes_it_the_users(registry, shared):
    from nodeforge.interop import read_workflow
    from nodeforge.ui.graph.model import GraphModel

    model = GraphModel(registry)
    model.set_workflow(read_workflow(_api(ckpt="/abs/x.safetensors"), registry=registry).workflow)
    assert ("1", "checkpoint") in model.workflow.origins
    model.set_param("1", "checkpoint", "/abs/x.safetensors")
    assert ("1", "checkpoint") not in model.workflow.origins


def test_a_nodeforge_file_is_the_users_own(registry, shared):
    from nodeforge import Workflow

    wf = Workflow()
    wf.add("CheckpointLoader", {"checkpoint": str(shared / "secret.safetensors")})
    assert not any("reaches outside" in m for m in _problems(_engine(registry, shared / "models"), wf, "checkpoint"))


def test_a_lora_that_is_not_a_model_file_is_refused_at_validate(registry, shared):
    from nodeforge import Workflow

    (shared / "models" / "loras").mkdir()
    (shared / "models" / "loras" / "notes.txt").write_text("hello")
    wf = Workflow()
    wf.add("CheckpointLoader", {"checkpoint": str(shared / "secret.safetensors")})
    wf.add("LoRALoader", {"lora": "notes.txt"}, {"unet": ("1", "unet"), "clip": ("1", "clip")})
    assert _problems(_engine(registry, shared / "models"), wf, "lora") == [
        "notes.txt is not a LoRA file (NodeForge reads .safetensors, .ckpt, .pt, .bin); choose a LoRA file"]


def test_an_embedding_that_is_not_a_model_file_is_refused_at_validate(registry, shared):
    from nodeforge import Workflow

    (shared / "models" / "embeddings").mkdir()
    (shared / "models" / "embeddings" / "style.txt").write_text("hello")
    wf = Workflow()
    wf.add("CheckpointLoader", {"checkpoint": str(shared / "secret.safetensors")})
    wf.add("TextEncoder", {"text": "a cat, embedding:style.txt"}, {"clip": ("1", "clip")})
    assert _problems(_engine(registry, shared / "models"), wf, "text") == [
        "embedding:style.txt: style.txt is not an embedding file (NodeForge reads .safetensors, .pt, .bin, or a "
        "diffusers folder); choose an embedding file"]


# -- A1111 oddities: imported with a warning, never an error at validate ---------------------------------
def _a1111_import(registry, tmp_path, settings, prompt="a cat"):
    from nodeforge.interop import read_workflow

    imported = read_workflow(_a1111(tmp_path, f"{prompt}\n{settings}"), registry=registry)
    assert not [p for p in _validate(registry, imported.workflow) if p.field != "checkpoint"]
    nodes = {n.type: (nid, n) for nid, n in reversed(list(imported.workflow.nodes.items()))}
    return imported, nodes


def _validate(registry, workflow):
    from nodeforge.core.validate import check_workflow

    return check_workflow(workflow, registry, check_files=False).problems


def test_a1111_seed_minus_one_is_a_random_seed_the_editor_keeps_randomizing(registry, tmp_path):
    from nodeforge.interop import a1111

    seeds = set()
    for _ in range(3):
        imported, nodes = _a1111_import(registry, tmp_path, "Steps: 20, Sampler: Euler a, Seed: -1, Size: 64x64")
        nid, denoise = nodes["UNetDenoise"]
        seed = denoise.params["seed"]
        assert 0 <= seed <= a1111.RANDOM_SEED_MAX and imported.workflow.ui["seed_control"] == {nid: "randomize"}
        assert f"A1111 parameters: Seed -1 means a random seed in A1111; NodeForge drew {seed} and randomizes the " \
               "seed after each run in the editor (set the seed to keep an image)" in imported.warnings
        seeds.add(seed)
    assert len(seeds) > 1


@pytest.mark.parametrize("settings, param, warning", [
    ("Steps: 0, Seed: 1, Size: 64x64", "steps", "Steps 0 is outside what NodeForge takes (1 to 1000); NodeForge's "
                                                "default is used"),
    ("Steps: 20, CFG scale: 250, Seed: 1, Size: 64x64", "cfg", "CFG scale 250 is outside what NodeForge takes "
                                                               "(0 to 100)"),
    ("Steps: 20, Seed: 99999999999999999999999, Size: 64x64", "seed", "Seed 99999999999999999999999 is outside "
                                                                      "what NodeForge takes (0 to 18446744073709551615)"),
    # only -1 is A1111's random seed (its get_fixed_seed); another negative one is out of range
    ("Steps: 20, Seed: -5, Size: 64x64", "seed", "Seed -5 is outside what NodeForge takes (0 to 18446744073709551615)"),
])
def test_a1111_numbers_the_sampler_cannot_take_keep_its_default_with_a_warning(registry, tmp_path, settings, param,
                                                                                warning):
    imported, nodes = _a1111_import(registry, tmp_path, settings)
    assert param not in nodes["UNetDenoise"][1].params
    assert "A1111 parameters: " + warning in " | ".join(imported.warnings)


def test_a1111_ranges_are_the_packs(registry):
    from nodeforge.interop import a1111

    def bounds(node_type, name):
        param = next(p for p in registry.get(node_type).params if p.name == name)
        return (param.min, param.max)

    assert {name: bounds("UNetDenoise", name) for name in ("seed", "steps", "cfg", "denoise")} | \
        {"scale_by": bounds("LatentUpscaleBy", "scale_by")} == a1111.RANGES
    assert bounds("LoRALoader", "strength_unet") == bounds("LoRALoader", "strength_clip") == \
        (-a1111.LORA_STRENGTH_MAX, a1111.LORA_STRENGTH_MAX)


def test_a1111_odd_sizes_missing_sizes_and_hires_values(registry, tmp_path):
    imported, nodes = _a1111_import(registry, tmp_path, "Steps: 20, Seed: 1, Size: 515x509")
    assert nodes["EmptyLatent"][1].params == {"batch_size": 1, "width": 512, "height": 504}
    assert "A1111 parameters: Size 515x509 is not a multiple of 8, as a latent needs; using 512x504 (as A1111 and " \
           "diffusers round)" in imported.warnings
    imported, nodes = _a1111_import(registry, tmp_path, "Steps: 20, Seed: 1")
    assert "width" not in nodes["EmptyLatent"][1].params
    assert "A1111 parameters: no Size; NodeForge's default (512x512) is used" in imported.warnings
    imported, nodes = _a1111_import(registry, tmp_path, "Steps: 20, Seed: 1, Size: 64x64, Hires upscale: 20, "
                                                        "Hires steps: 0, Denoising strength: 1.5, Clip skip: 40")
    assert nodes["LatentUpscaleBy"][1].params == {"upscale_method": "bilinear"}       # the node's own 1.5
    first, second = (n for n in imported.workflow.nodes.values() if n.type == "UNetDenoise")
    assert second.params["denoise"] == 0.7 and second.params.get("steps") == first.params.get("steps")
    assert nodes["CLIPSetLastLayer"][1].params == {"stop_at_layer": -24}
    text = " | ".join(imported.warnings)
    assert "Hires upscale 20 is outside what NodeForge takes (0.01 to 8)" in text
    assert "Denoising strength 1.5 is outside what NodeForge takes (0 to 1)" in text
    assert "Clip skip 40 is more layers than a CLIP text encoder has; using 24" in text


@pytest.mark.parametrize("sampler, expected, note", [
    ("DPM++ 2M Karras", ("dpmpp_2m", "karras"), None), ("DPM++ SDE", ("dpmpp_sde", "normal"), None),
    ("UniPC", ("uni_pc", "normal"), None), ("LCM", ("lcm", "normal"), None),
    ("Euler a", ("euler_ancestral", "normal"), None),
    ("euler_ancestral", ("euler_ancestral", "normal"), None),          # ComfyUI's names, from ComfyUI savers
    ("dpmpp_2m_karras", ("dpmpp_2m", "karras"), None),
    ("Restart", ("euler", "normal"), "sampler 'Restart' is not in NodeForge; using the nearest, 'euler'"),
    ("DPM++ 2M SDE Heun", ("dpmpp_2m_sde", "normal"), "sampler 'DPM++ 2M SDE Heun' is not in NodeForge"),
])
def test_a1111_sampler_names_from_every_version(sampler, expected, note):
    from nodeforge.interop.samplers import from_a1111

    mapped, schedule = from_a1111(sampler)
    assert (mapped.name, schedule.name) == expected
    assert (mapped.note is None) if note is None else mapped.note.startswith(note)


def test_a1111_text_with_only_a_prompt_imports_the_prompt(registry, tmp_path):
    from nodeforge.interop.a1111 import to_workflow

    wf, warnings = to_workflow("a cat BREAK a hat, <lora:x:0.5>\nNegative prompt: blurry")
    texts = [n.params["text"] for n in wf.nodes.values() if n.type == "TextEncoder"]
    assert texts == ["a cat BREAK a hat", "blurry"]
    assert "A1111 parameters: only a prompt, no settings line (\"Steps: ..., Sampler: ...\"); NodeForge's " \
           "defaults are used for the rest" in warnings


def test_a1111_hashes_are_read_quietly_and_ti_names_stay_in_the_prompt(registry, tmp_path):
    imported, nodes = _a1111_import(
        registry, tmp_path, 'Steps: 20, Seed: 1, Size: 64x64, Lora hashes: "x: 1234", TI hashes: "EasyNegative: '
                            'abcd, bad-hands-5: 99", Model hash: 00, Version: v1.9.0', prompt="a cat, EasyNegative")
    assert not [w for w in imported.warnings if "does not use" in w]
    assert nodes["TextEncoder"][1].params["text"] == "a cat, EasyNegative"   # read as a bare embedding name


def test_a1111_text_in_windows_1252_or_utf_16_is_read(registry, tmp_path):
    from nodeforge.interop import read_workflow

    text = "a caf\u00e9 \u2013 table\nSteps: 20, Seed: 1, Size: 64x64"
    for encoding, note in [("cp1252", True), ("utf-16", False)]:
        path = tmp_path / f"{encoding}.txt"
        path.write_bytes(text.encode(encoding))
        imported = read_workflow(path, registry=registry)
        prompt = next(n for n in imported.workflow.nodes.values() if n.type == "TextEncoder")
        assert prompt.params["text"] == "a caf\u00e9 \u2013 table"
        assert ("A1111 parameters: the file is not UTF-8 text; read as Windows-1252 (check accented letters in "
                "the prompts)" in imported.warnings) == note


def _png_with_itxt(path, key, text):
    """A 1x1 PNG whose one iTXt chunk holds `text` (bytes, as they are) under `key`."""
    import struct
    import zlib

    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0))
                     + chunk(b"iTXt", key + b"\0\0\0\0\0" + text) + chunk(b"IEND", b""))
    return path


def test_a1111_png_text_with_bytes_that_are_not_utf8_keeps_the_rest(registry, tmp_path):
    from nodeforge.interop import read_workflow

    path = _png_with_itxt(tmp_path / "odd.png", b"parameters", b"a red \xff circle\nSteps: 12, Seed: 3, Size: 64x64")
    imported = read_workflow(path, registry=registry)
    prompt = next(n for n in imported.workflow.nodes.values() if n.type == "TextEncoder")
    assert prompt.params["text"] == "a red \ufffd circle"
    assert "A1111 parameters: some bytes were not UTF-8 text and show as '\ufffd'; check the prompts" in imported.warnings


def test_a_workflow_saved_as_utf16_opens_and_binary_data_says_so(registry, tmp_path):
    from nodeforge.core.errors import WorkflowFileError
    from nodeforge.interop import read_workflow

    path = tmp_path / "powershell.json"     # `Get-Content a.json > b.json` writes UTF-16 with a BOM
    path.write_bytes(json.dumps({"nodeforge": 2, "nodes": {"1": {"type": "EmptyLatent"}}}).encode("utf-16"))
    assert read_workflow(path, registry=registry).workflow.nodes["1"].type == "EmptyLatent"
    path = tmp_path / "zeros.json"
    path.write_bytes(b"\0" * 64 + b"{}")
    with pytest.raises(WorkflowFileError) as info:
        read_workflow(path, registry=registry)
    assert str(info.value) == (f"{path}: holds binary data, not text; a workflow is a JSON file or a PNG with "
                               "NodeForge, ComfyUI or A1111 metadata (the file may be damaged or another kind of file)")


@pytest.mark.parametrize("tag, strengths, warning", [
    ("<lora:x:nan>", (1.0, 1.0), "<lora:x> has a strength 'nan' that is not a number from -10 to 10; using 1"),
    ("<lora:x:1e999:0.5>", (0.5, 1.0), "<lora:x> has a strength '1e999' that is not a number from -10 to 10; using 1"),
    ("<lora:x:250>", (1.0, 1.0), "<lora:x> has a strength '250' that is not a number from -10 to 10; using 1"),
    ("<lora::0.5>", None, "a <lora:...> tag names no LoRA; removed from the prompt"),
])
def test_a1111_lora_tags_with_absurd_strengths_or_no_name(registry, tmp_path, tag, strengths, warning):
    imported, nodes = _a1111_import(registry, tmp_path, "Steps: 2, Seed: 1, Size: 64x64", prompt=f"a {tag} cat")
    assert "A1111 parameters: " + warning in imported.warnings
    if strengths is None:
        assert "LoRALoader" not in nodes
    else:
        params = nodes["LoRALoader"][1].params
        assert (params["strength_unet"], params["strength_clip"]) == strengths
    assert nodes["TextEncoder"][1].params["text"] == "a cat"


def test_a1111_odd_seed_text_is_said_once_and_hires_resize_0x0_scales(registry, tmp_path):
    imported, _ = _a1111_import(registry, tmp_path, "Steps: 2, Seed: 0x10, Size: 64x64")
    assert [w for w in imported.warnings if "Seed" in w] == [
        "A1111 parameters: Seed '0x10' is not a number; NodeForge's default is used"]
    imported, nodes = _a1111_import(registry, tmp_path, "Steps: 2, Seed: 1, Size: 64x64, Hires resize: 0x0, "
                                                        "Hires upscale: 2, Denoising strength: 0.5")
    assert nodes["LatentUpscaleBy"][1].params["scale_by"] == 2.0 and "LatentUpscale" not in nodes


def test_png_text_chunks_in_latin1_or_in_utf8_both_read_right(registry, tmp_path):
    import struct
    import zlib

    from nodeforge.interop import read_workflow

    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    for encoding in ("latin-1", "utf-8"):    # the standard's, and what some tools write into tEXt anyway
        text = "a caf\u00e9 table\nSteps: 12, Seed: 3, Size: 64x64".encode(encoding)
        path = tmp_path / f"{encoding}.png"
        path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0))
                         + chunk(b"tEXt", b"parameters\0" + text) + chunk(b"IEND", b""))
        prompt = next(n for n in read_workflow(path, registry=registry).workflow.nodes.values()
                      if n.type == "TextEncoder")
        assert prompt.params["text"] == "a caf\u00e9 table"


def test_a_comfyui_png_whose_text_has_bytes_that_are_not_utf8_imports_and_says_so(registry, tmp_path):
    """A stray byte in a ComfyUI PNG's iTXt costs one character (read_png_text), and the import says so."""
    from nodeforge.interop import read_workflow

    prompt = json.dumps({"1": {"class_type": "CLIPTextEncode", "inputs": {"text": "a red XX circle",
                                                                          "clip": ["2", 1]}},
                         "2": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "m.safetensors"}}})
    path = _png_with_itxt(tmp_path / "odd.png", b"prompt", prompt.encode().replace(b"XX", b"\xff"))
    imported = read_workflow(path, registry=registry)
    assert imported.workflow.nodes["1"].params["text"] == "a red \ufffd circle"
    assert imported.warnings[0] == ("the PNG's 'prompt' text has bytes that are not UTF-8, shown as '\ufffd'; "
                                    "check the prompts and file names")
