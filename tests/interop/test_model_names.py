"""A shared file's model names found in the receiver's folders, mapped with --model-map, or listed."""
from __future__ import annotations

import json

import pytest

from nodeforge.core.models import ModelPaths
from nodeforge.interop import parse_model_map, read_workflow


def checkpoint_file(name, lora=None):
    nodes = {"4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": name}}}
    if lora:
        nodes["5"] = {"class_type": "LoraLoader", "inputs": {"lora_name": lora, "strength_model": 1,
                                                             "strength_clip": 1, "model": ["4", 0], "clip": ["4", 1]}}
    return nodes


@pytest.fixture
def models(tmp_path):
    root = tmp_path / "models"
    (root / "checkpoints" / "SDXL").mkdir(parents=True)
    (root / "checkpoints" / "SDXL" / "juggernaut.safetensors").write_bytes(b"x")
    (root / "checkpoints" / "dreamshaper.ckpt").write_bytes(b"x")
    (root / "checkpoints" / "exact.safetensors").write_bytes(b"x")
    (root / "checkpoints" / "my-diffusers").mkdir()
    (root / "checkpoints" / "my-diffusers" / "model_index.json").write_text("{}")
    (root / "loras" / "styles").mkdir(parents=True)
    (root / "loras" / "styles" / "ink.safetensors").write_bytes(b"x")
    return ModelPaths(roots=[root], include_builtin=False)


@pytest.mark.parametrize("name,found", [
    ("exact.safetensors", "exact.safetensors"),                        # as written
    ("SDXL/juggernaut.safetensors", "SDXL/juggernaut.safetensors"),    # the same relative path
    ("SDXL\\juggernaut.safetensors", "SDXL/juggernaut.safetensors"),   # a Windows sender's path
    ("other/juggernaut.safetensors", "SDXL/juggernaut.safetensors"),   # the same file name, another sub-folder
    ("dreamshaper.safetensors", "dreamshaper.ckpt"),                   # the same stem, another extension
    ("my-diffusers.safetensors", "my-diffusers"),                      # a diffusers folder of that name
])
def test_a_model_is_found_by_path_then_file_name_then_stem(registry, models, name, found):
    imported = read_workflow(checkpoint_file(name), registry=registry, model_paths=models)
    assert imported.workflow.nodes["4"].params["checkpoint"] == found
    assert imported.warnings == []


def test_what_is_found_runs_where_it_was_found(registry, models):
    """The stored name must be one the engine resolves to that same file."""
    imported = read_workflow(checkpoint_file("other/juggernaut.safetensors"), registry=registry, model_paths=models)
    path = models.resolve("checkpoint", imported.workflow.nodes["4"].params["checkpoint"])
    assert path == models.roots[0] / "checkpoints" / "SDXL" / "juggernaut.safetensors"


def test_missing_models_are_listed_once_each_with_their_folder(registry, models):
    prompt = checkpoint_file("nowhere.safetensors", lora="gone.safetensors")
    prompt["6"] = dict(prompt["4"])
    imported = read_workflow(prompt, registry=registry, model_paths=models)
    root = models.roots[0]
    assert imported.warnings == [
        f"missing checkpoint 'nowhere.safetensors' (nodes 4, 6): put it in {root / 'checkpoints'}, or map it to one "
        "you have with --model-map nowhere.safetensors=NAME (every missing checkpoint: --model-map 'checkpoint:*=NAME')",
        f"missing LoRA 'gone.safetensors' (node 5): put it in {root / 'loras'}, or map it to one you have with "
        "--model-map gone.safetensors=NAME (every missing LoRA: --model-map 'lora:*=NAME')"]


def test_model_map_substitutes_by_name_path_or_stem(registry, models):
    for old in ("SD15/v1-5.safetensors", "v1-5.safetensors", "v1-5"):
        imported = read_workflow(checkpoint_file("SD15/v1-5.safetensors", lora="Styles\\ink-v2.safetensors"),
                                 registry=registry, model_paths=models,
                                 model_map={old: "dreamshaper", "ink-v2.safetensors": "ink"})
        assert imported.workflow.nodes["4"].params["checkpoint"] == "dreamshaper", old   # as NodeForge finds it
        assert imported.workflow.nodes["5"].params["lora"] == "styles/ink.safetensors"
        assert imported.warnings == []


def test_a_model_map_that_matches_nothing_is_reported(registry, models):
    imported = read_workflow(checkpoint_file("exact.safetensors"), registry=registry, model_paths=models,
                             model_map={"typo.safetensors": "exact"})
    assert imported.warnings == ["--model-map typo.safetensors: no model in the file is named 'typo.safetensors'"]


def test_model_map_applies_to_nodeforge_files_too(registry, models, tmp_path):
    path = tmp_path / "wf.json"
    path.write_text(json.dumps({"nodeforge": 1, "nodes": {"1": {"type": "CheckpointLoader",
                                                                 "params": {"checkpoint": "theirs"}}}}))
    imported = read_workflow(path, registry=registry, model_paths=models, model_map={"theirs": "exact.safetensors"})
    assert imported.workflow.nodes["1"].params["checkpoint"] == "exact.safetensors"


@pytest.mark.parametrize("item", ["nodeforge-shapes", "=x", "x=", " = "])
def test_a_malformed_model_map_says_how_to_write_it(item):
    with pytest.raises(ValueError, match="expected OLD=NEW"):
        parse_model_map([item])


# Where interop's own `embedding:` regex disagreed with TextEncoder's (issue 26); both now use
# nodeforge.core.prompt_syntax, so an import reports missing exactly what a run would miss.
@pytest.mark.parametrize("prompt, missing", [
    ("a cat, myembedding:ink", []),                           # not at the start of a word: no reference
    ("a cat, embedding:my+style", ["my+style"]),              # any character but a space or comma
    ("a cat, embedding:ink|soft", ["ink|soft"]),              # `|` is part of the name, as TextEncoder reads it
    ("a cat, embedding:ink:0.8", ["ink:0.8"]),                # no brackets: the weight is not syntax
    ("a cat, (embedding:ink:1.2)", ["ink"]),                  # the weighted form
    ("a cat with embedding:ink.", ["ink"]),                   # trailing punctuation: tried without it
    ("embedding:Ink, EMBEDDING:ink", ["Ink", "ink"]),
])
def test_an_imported_prompt_names_the_embeddings_textencoder_would_look_up(registry, tmp_path, prompt, missing):
    from nodeforge.core.prompt_syntax import embedding_references, name_candidates

    prompt_file = {"6": {"class_type": "CLIPTextEncode", "inputs": {"text": prompt, "clip": ["4", 1]}},
                   **checkpoint_file("x.safetensors")}
    empty = ModelPaths(roots=[tmp_path], include_builtin=False)
    imported = read_workflow(prompt_file, registry=registry, model_paths=empty)
    reported = [line.split("'")[1] for line in imported.missing if line.startswith("missing embedding")]
    assert reported == missing
    assert [name_candidates(n)[-1] for n in embedding_references(prompt)] == missing


def test_an_embedding_found_without_its_trailing_punctuation_is_not_reported(registry, tmp_path):
    (tmp_path / "embeddings").mkdir()
    (tmp_path / "embeddings" / "ink.pt").write_bytes(b"x")
    prompt_file = {"6": {"class_type": "CLIPTextEncode", "inputs": {"text": "drawn in embedding:ink.", "clip": ["4", 1]}},
                   **checkpoint_file("x.safetensors")}
    imported = read_workflow(prompt_file, registry=registry, model_paths=ModelPaths(roots=[tmp_path], include_builtin=False))
    assert not [line for line in imported.missing if line.startswith("missing embedding")]


def test_the_importer_speaks_the_engines_model_kinds():
    """One vocabulary (issue 26): every model a ComfyUI widget names is a FileKind, with core's folders."""
    from nodeforge.core.types import FileKind
    from nodeforge.interop.comfy_table import ROWS

    kinds = {w.model for row in ROWS for w in row.widgets if w.model}
    assert kinds <= {k.value for k in FileKind} and "upscale_model" in kinds


@pytest.mark.parametrize("file_name", ["4x-Ultra.pth", "4x-Ultra.ckpt", "4x-Ultra.bin"])
def test_an_upscale_model_the_editor_lists_is_the_one_an_import_finds(registry, tmp_path, file_name):
    from nodeforge.interop.model_names import local_models

    (tmp_path / "upscale_models").mkdir()
    (tmp_path / "upscale_models" / file_name).write_bytes(b"x")
    paths = ModelPaths(roots=[tmp_path], include_builtin=False)
    prompt = {"1": {"class_type": "UpscaleModelLoader", "inputs": {"model_name": "4x-Ultra.safetensors"}}}
    imported = read_workflow(prompt, registry=registry, model_paths=paths)
    assert imported.workflow.nodes["1"].params["upscale_model"] == file_name
    assert paths.names("upscale_model") == [file_name] == local_models("upscale_model", paths)


# Issue 30 (a): `--model-map OLD=NEW` rewrites `embedding:OLD` in the imported prompts, to the name
# NodeForge finds; brackets, weights and trailing punctuation stay as written.
@pytest.mark.parametrize("prompt, model_map, expected", [
    ("a cat, embedding:EasyNegative", {"EasyNegative": "ink"}, "a cat, embedding:styles/ink.pt"),
    ("(embedding:EasyNegative.pt:1.2), embedding:EasyNegativeV2", {"EasyNegative": "ink"},
     "(embedding:styles/ink.pt:1.2), embedding:EasyNegativeV2"),                 # by stem; another name kept
    ("drawn in embedding:old.", {"old": "ink"}, "drawn in embedding:styles/ink.pt."),
    ("[embedding:a], embedding:b", {"a": "ink", "b": "styles/ink.pt"},
     "[embedding:styles/ink.pt], embedding:styles/ink.pt"),
])
def test_a_model_map_rewrites_the_embeddings_a_prompt_names(registry, tmp_path, prompt, model_map, expected):
    (tmp_path / "embeddings" / "styles").mkdir(parents=True)
    (tmp_path / "embeddings" / "styles" / "ink.pt").write_bytes(b"x")
    prompt_file = {"6": {"class_type": "CLIPTextEncode", "inputs": {"text": prompt, "clip": ["4", 1]}},
                   **checkpoint_file("x.safetensors")}
    paths = ModelPaths(roots=[tmp_path], include_builtin=False)
    imported = read_workflow(prompt_file, registry=registry, model_paths=paths, model_map=model_map)
    assert imported.workflow.nodes["6"].params["text"] == expected
    assert list(imported.missing_embeddings) == (["EasyNegativeV2"] if "V2" in prompt else [])
    assert not [line for line in imported.warnings if line.startswith("--model-map")]


def test_an_embedding_mapped_to_one_that_is_not_there_is_missing_by_its_new_name(registry, tmp_path):
    prompt_file = {"6": {"class_type": "CLIPTextEncode", "inputs": {"text": "embedding:old", "clip": ["4", 1]}},
                   **checkpoint_file("x.safetensors")}
    imported = read_workflow(prompt_file, registry=registry, model_map={"old": "typo"},
                             model_paths=ModelPaths(roots=[tmp_path], include_builtin=False))
    assert imported.workflow.nodes["6"].params["text"] == "embedding:typo"
    line = next(line for line in imported.missing if "embedding" in line)
    assert line.startswith("missing embedding 'typo' (node 6): put it in ")
    assert imported.missing_embeddings == {"typo": line}


def test_a_model_map_rewrites_embeddings_in_a_nodeforge_file_too(registry, tmp_path):
    path = tmp_path / "wf.json"
    path.write_text(json.dumps({"nodeforge": 1, "nodes": {"1": {"type": "TextEncoder",
                                                                 "params": {"text": "a, embedding:theirs"}}}}))
    imported = read_workflow(path, registry=registry, model_map={"theirs": "shapes-sunset"})
    assert imported.workflow.nodes["1"].params["text"] == "a, embedding:shapes-sunset"


# -- a map by kind: `--model-map 'checkpoint:*=NAME'` (issue 30, item 3) ---------------------------------------
def test_a_map_by_kind_stands_in_for_every_missing_model_of_that_kind_only(registry, models):
    prompt = checkpoint_file("sd_xl_base_1.0.safetensors", lora="gone.safetensors")
    prompt["6"] = {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "exact.safetensors"}}
    imported = read_workflow(prompt, registry=registry, model_paths=models,
                             model_map=parse_model_map(["checkpoint:*=dreamshaper", "lora:*=ink"]))
    nodes = imported.workflow.nodes
    assert nodes["4"].params["checkpoint"] == "dreamshaper"
    assert nodes["6"].params["checkpoint"] == "exact.safetensors"     # found here: kept
    assert nodes["5"].params["lora"] == "styles/ink.safetensors"
    assert imported.warnings == [] and imported.missing_models == {}


def test_a_name_map_wins_over_the_kind_map(registry, models):
    prompt = checkpoint_file("a.safetensors")
    prompt["6"] = {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "b.safetensors"}}
    imported = read_workflow(prompt, registry=registry, model_paths=models,
                             model_map=parse_model_map(["checkpoint:*=dreamshaper", "a=exact"]))
    assert imported.workflow.nodes["4"].params["checkpoint"] == "exact"
    assert imported.workflow.nodes["6"].params["checkpoint"] == "dreamshaper"


@pytest.mark.parametrize("key, kind", [("checkpoint:*", "checkpoint"), ("LoRA:*", "lora"), ("lora:*", "lora"),
                                       ("VAE:*", "vae"), ("controlnet:*", "controlnet"), ("ControlNet:*", "controlnet"),
                                       ("upscale_model:*", "upscale_model"), ("upscale model:*", "upscale_model"),
                                       ("embedding:*", "embedding"), ("image:*", "image"), ("model.safetensors", None),
                                       ("embedding:ink", None)])
def test_kind_keys_are_the_kinds_names_in_any_case(key, kind):
    from nodeforge.interop.model_names import map_key_kind

    found = map_key_kind(key)
    assert (found.value if found is not None else None) == kind


def test_a_kind_map_naming_no_kind_lists_the_kinds():
    with pytest.raises(ValueError, match=r"'checkpionts' is not a kind of model; use one of checkpoint:\*, lora:\*"):
        parse_model_map(["checkpionts:*=nodeforge-shapes"])


def test_a_kind_map_replaces_a_path_outside_the_model_folders_without_looking_there(registry, models):
    """A sender's `C:\\...` or `/home/...` path is never looked up; the user's kind map stands in."""
    imported = read_workflow(checkpoint_file("C:\\Users\\me\\models\\mine.safetensors", lora="/etc/passwd"),
                             registry=registry, model_paths=models,
                             model_map=parse_model_map(["checkpoint:*=exact", "lora:*=ink"]))
    assert imported.workflow.nodes["4"].params["checkpoint"] == "exact"
    assert imported.workflow.nodes["5"].params["lora"] == "styles/ink.safetensors"


def test_a_missing_stand_in_is_reported_once_as_the_maps(registry, models):
    prompt = checkpoint_file("a.safetensors")
    prompt["6"] = {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "b.safetensors"}}
    imported = read_workflow(prompt, registry=registry, model_paths=models,
                             model_map=parse_model_map(["checkpoint:*=typo"]))
    assert imported.warnings == [
        f"missing checkpoint 'typo' (nodes 4, 6), given by --model-map checkpoint:*: put it in "
        f"{models.roots[0] / 'checkpoints'}, or map checkpoint:* to a checkpoint you have"]


def test_a_kind_map_with_nothing_missing_of_its_kind_says_nothing(registry, models):
    """The same kind maps are meant for any file; a name map that matches nothing is still said."""
    imported = read_workflow(checkpoint_file("exact.safetensors"), registry=registry, model_paths=models,
                             model_map=parse_model_map(["checkpoint:*=dreamshaper", "vae:*=dreamshaper", "typo=x"]))
    assert imported.workflow.nodes["4"].params["checkpoint"] == "exact.safetensors"
    assert imported.warnings == ["--model-map typo: no model in the file is named 'typo'"]


def test_an_embedding_kind_map_renames_only_missing_embeddings_and_keeps_punctuation(registry, tmp_path):
    (tmp_path / "embeddings").mkdir()
    (tmp_path / "embeddings" / "here.safetensors").write_bytes(b"x")
    (tmp_path / "embeddings" / "mine.safetensors").write_bytes(b"x")
    prompt = {"6": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["4", 1],
                                                              "text": "embedding:EasyNegative., (embedding:here:1.2)"}},
              **checkpoint_file("x.safetensors")}
    imported = read_workflow(prompt, registry=registry, model_paths=ModelPaths(roots=[tmp_path], include_builtin=False),
                             model_map=parse_model_map(["embedding:*=mine", "checkpoint:*=x"]))
    assert imported.workflow.nodes["6"].params["text"] == "embedding:mine., (embedding:here:1.2)"
    assert imported.missing_embeddings == {}


def test_a_nodeforge_file_takes_the_kind_map_where_its_model_is_not_here(registry, models, tmp_path):
    path = tmp_path / "wf.json"
    path.write_text(json.dumps({"nodeforge": 1, "nodes": {
        "1": {"type": "CheckpointLoader", "params": {"checkpoint": "theirs"}},
        "2": {"type": "CheckpointLoader", "params": {"checkpoint": "exact.safetensors"}}}}))
    imported = read_workflow(path, registry=registry, model_paths=models,
                             model_map=parse_model_map(["checkpoint:*=dreamshaper"]))
    assert imported.workflow.nodes["1"].params["checkpoint"] == "dreamshaper"
    assert imported.workflow.nodes["2"].params["checkpoint"] == "exact.safetensors"


def test_a_windows_sub_folder_prints_with_single_backslashes(registry, models):
    imported = read_workflow(checkpoint_file("illustrious\\wai_v160.safetensors"), registry=registry,
                             model_paths=models)
    assert imported.warnings[0].startswith("missing checkpoint 'illustrious\\wai_v160.safetensors' (node 4)")
    assert "\\\\" not in imported.warnings[0]
    with pytest.raises(LookupError) as caught:
        models.resolve("checkpoint", "SDXL\\base")
    assert str(caught.value).startswith("checkpoint 'SDXL\\base' not found")


def test_an_image_kind_map_to_a_path_of_the_users_validates(registry, tmp_path):
    """The user's own `image:*=/path/to/mine.png` is theirs to give; the sender's paths are still refused."""
    from nodeforge.core.engine import Engine

    mine = tmp_path / "mine.png"
    from PIL import Image
    Image.new("RGB", (8, 8)).save(mine)
    prompt = {"1": {"class_type": "LoadImage", "inputs": {"image": "ComfyUI_00001_.png", "upload": "image"}},
              "2": {"class_type": "PreviewImage", "inputs": {"images": ["1", 0]}}}
    empty = ModelPaths(roots=[tmp_path / "models"], include_builtin=False)
    engine = Engine(device="cpu", model_paths=empty)
    imported = read_workflow(prompt, registry=registry, model_paths=empty,
                             model_map=parse_model_map([f"image:*={mine}"]))
    assert imported.workflow.nodes["1"].params["path"] == str(mine)
    assert engine.validate(imported.workflow) == []
    imported = read_workflow({**prompt, "1": {"class_type": "LoadImage", "inputs": {"image": str(mine)}}},
                             registry=registry, model_paths=empty)
    assert "reaches outside the model folders" in str(engine.validate(imported.workflow)[0])


def test_a_windows_path_from_a_shared_file_is_refused_with_its_backslashes_as_written(registry, tmp_path):
    from nodeforge.core.engine import Engine

    prompt = {"1": {"class_type": "LoadImage", "inputs": {"image": "C:\\Users\\me\\Pictures\\cat.png"}},
              "2": {"class_type": "PreviewImage", "inputs": {"images": ["1", 0]}}}
    empty = ModelPaths(roots=[tmp_path / "models"], include_builtin=False)
    imported = read_workflow(prompt, registry=registry, model_paths=empty)
    [problem] = Engine(device="cpu", model_paths=empty).validate(imported.workflow)
    assert problem.message.startswith("image 'C:\\Users\\me\\Pictures\\cat.png' from the imported ComfyUI API prompt "
                                      "reaches outside the model folders")
