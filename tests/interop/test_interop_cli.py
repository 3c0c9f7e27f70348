"""`nodeforge import`, `export`, and `validate` on other tools' files."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from nodeforge.cli import main

DATA = Path(__file__).resolve().parent / "data"


def test_import_writes_a_nodeforge_workflow_and_one_line_per_warning(tmp_path, capsys):
    out = tmp_path / "mine.json"
    assert main(["import", str(DATA / "all-nodes-0.4.json"), "-o", str(out)]) == 0
    captured = capsys.readouterr()
    warnings = captured.err.splitlines()
    assert all(line.startswith("warning: ") for line in warnings)
    assert "warning: node 22 (KSampler): schedule 'kl_optimal' is not in NodeForge; using the nearest, 'normal'" \
        in warnings
    assert captured.out.startswith(f"{out}: 29 nodes from a ComfyUI workflow, ")
    saved = json.loads(out.read_text())
    assert saved["nodeforge"] >= 1 and saved["nodes"]["22"]["params"]["seed"] == 1234
    assert saved["ui"]["groups"][0]["title"] == "Inpaint"


def test_import_without_o_writes_beside_the_file_and_never_over_it(tmp_path, capsys):
    source = tmp_path / "shared.json"
    source.write_text((DATA / "txt2img-0.4.json").read_text())
    assert main(["import", str(source), "--model-map", "v1-5-pruned-emaonly.safetensors=nodeforge-shapes"]) == 0
    written = tmp_path / "shared.nodeforge.json"
    assert json.loads(written.read_text())["nodes"]["4"]["params"] == {"checkpoint": "nodeforge-shapes"}
    assert json.loads(source.read_text())["version"] == 0.4
    assert capsys.readouterr().err == ""
    assert main(["import", str(source), "-o", str(source)]) == 1
    assert "that is the file being imported" in capsys.readouterr().err


def test_validate_takes_a_comfyui_file_and_model_maps(capsys):
    assert main(["validate", str(DATA / "txt2img-0.4.json"),
                 "--model-map", "v1-5-pruned-emaonly.safetensors=nodeforge-shapes"]) == 0
    assert capsys.readouterr().out.startswith("ok: ")
    assert main(["validate", str(DATA / "txt2img-0.4.json")]) == 1
    err = capsys.readouterr().err.splitlines()
    # Said once, as the error it is for validate, with where to put it and the --model-map fix.
    assert len(err) == 1, err
    assert err[0].startswith("error: missing checkpoint 'v1-5-pruned-emaonly.safetensors' (node 4): put it in ")
    assert err[0].endswith("--model-map v1-5-pruned-emaonly.safetensors=NAME (every missing checkpoint: "
                           "--model-map 'checkpoint:*=NAME')")


def test_run_says_a_missing_model_once_and_not_at_all_when_set_fixes_it(tmp_path, capsys):
    source = str(DATA / "txt2img-0.4.json")
    assert main(["run", source, "--out", str(tmp_path)]) == 1
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith("error: missing checkpoint 'v1-5-pruned-emaonly.safetensors'"), err
    assert main(["validate", source, "--model-map", "v1-5-pruned-emaonly.safetensors=nodeforge-shapes"]) == 0
    assert "missing" not in capsys.readouterr().err


def test_validate_names_each_placeholder(capsys):
    assert main(["validate", str(DATA / "all-nodes-api.json")]) == 1
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error: ")]
    assert "error: node 25 (FooSharpen): a ComfyUI node with no NodeForge equivalent (NodeForge cannot run other " \
           "tools' node packs); replace or bypass it (its widgets and links are kept, so exporting back to ComfyUI " \
           "keeps it)" in errors


def test_export_writes_an_api_prompt(tmp_path, capsys):
    out = tmp_path / "api.json"
    assert main(["export", str(Path(__file__).parents[2] / "workflows" / "txt2img.json"), "--to", "comfyui-api",
                 "-o", str(out)]) == 0
    prompt = json.loads(out.read_text())
    assert prompt["5"]["class_type"] == "KSampler" and prompt["5"]["inputs"]["seed"] == 42
    assert prompt["7"] == {"class_type": "SaveImage", "_meta": {"title": "Save Image"},
                           "inputs": {"filename_prefix": "txt2img", "images": ["6", 0]}}


def test_export_to_stdout_is_json(capsys):
    assert main(["export", str(DATA / "txt2img-0.4.json"), "--to", "comfyui-api"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["3"]["inputs"]["sampler_name"] == "euler"


def test_export_refusal_names_every_node(tmp_path, capsys):
    path = tmp_path / "wf.json"
    path.write_text(json.dumps({"nodeforge": 1, "nodes": {
        "1": {"type": "EmptyLatent", "params": {"width": 64, "height": 64, "batch_size": 1}},
        "2": {"type": "Sharpen", "inputs": {"latent": ["1", "latent"]}},
        "3": {"type": "Glow", "inputs": {"latent": ["2", "latent"]}}}}))
    assert main(["export", str(path), "--to", "comfyui-api"]) == 1
    assert capsys.readouterr().err.splitlines() == [
        "error: node 2 (Sharpen): has no ComfyUI equivalent; remove it or replace it with a node ComfyUI has",
        "error: node 3 (Glow): has no ComfyUI equivalent; remove it or replace it with a node ComfyUI has"]


@pytest.mark.parametrize("argv,message", [
    (["import", "missing.json"], "missing.json: no such file"),
    (["run", "x.json", "--model-map", "nonsense"], "--model-map 'nonsense': expected OLD=NEW"),
    (["export", "x.json", "--to", "a1111"], "argument --to: invalid choice"),
])
def test_mistakes_are_one_line(tmp_path, monkeypatch, capsys, argv, message):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "x.json").write_text((DATA / "txt2img-0.4.json").read_text())
    try:
        code = main(argv)
    except SystemExit as exc:
        code = exc.code
    assert code in (1, 2)
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def _with_prompt(tmp_path, text):
    data = json.loads((DATA / "txt2img-0.4.json").read_text())
    next(n for n in data["nodes"] if n["id"] == 6)["widgets_values"] = [text]
    path = tmp_path / "shared.json"
    path.write_text(json.dumps(data))
    return str(path)


def test_validate_says_an_embedding_the_prompt_names_is_missing_and_the_map_fixes_it(tmp_path, capsys):
    """Issue 30 (a): validate said ok and the run failed after loading the checkpoint."""
    source = _with_prompt(tmp_path, "a red circle, (embedding:sunsetstyle:1.2)")
    checkpoint = "v1-5-pruned-emaonly.safetensors=nodeforge-shapes"
    assert main(["validate", source, "--model-map", checkpoint]) == 1
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith("error: missing embedding 'sunsetstyle' (node 6): put it in "), err
    assert err[0].endswith("--model-map sunsetstyle=NAME (every missing embedding: --model-map 'embedding:*=NAME')")
    assert main(["run", source, "--model-map", checkpoint, "--out", str(tmp_path)]) == 1   # before loading anything
    assert capsys.readouterr().err.splitlines() == err
    out = tmp_path / "mine.json"
    assert main(["import", source, "-o", str(out), "--model-map", checkpoint,
                 "--model-map", "sunsetstyle=shapes-sunset"]) == 0
    assert json.loads(out.read_text())["nodes"]["6"]["params"]["text"] == "a red circle, (embedding:shapes-sunset:1.2)"
    assert main(["validate", source, "--model-map", checkpoint, "--model-map", "sunsetstyle=shapes-sunset"]) == 0


def test_validate_refuses_a_missing_embedding_in_a_nodeforge_file(tmp_path, capsys):
    path = tmp_path / "wf.json"
    path.write_text(json.dumps({"nodeforge": 1, "nodes": {
        "1": {"type": "CheckpointLoader", "params": {"checkpoint": "nodeforge-shapes"}},
        "2": {"type": "TextEncoder", "params": {"text": "a, embedding:nowhere."}, "inputs": {"clip": ["1", "clip"]}}}}))
    assert main(["validate", str(path)]) == 1
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith("error: node 2 (TextEncoder), text: embedding:nowhere.: embedding "
                                               "'nowhere' not found"), err


def test_a_vae_mapped_to_a_checkpoint_uses_that_checkpoints_vae(tmp_path, capsys):
    """Issue 30 (b): `--model-map vae.safetensors=nodeforge-shapes` said "missing VAE"."""
    from nodeforge.core.models import ModelPaths

    prompt = {"4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "v1-5-pruned-emaonly.safetensors"}},
              "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}},
              "10": {"class_type": "VAELoader", "inputs": {"vae_name": "vae-ft-mse-840000.safetensors"}},
              "8": {"class_type": "VAEDecode", "inputs": {"samples": ["5", 0], "vae": ["10", 0]}},
              "9": {"class_type": "PreviewImage", "inputs": {"images": ["8", 0]}}}
    source = tmp_path / "api.json"
    source.write_text(json.dumps(prompt))
    maps = ["--model-map", "v1-5-pruned-emaonly.safetensors=nodeforge-shapes",
            "--model-map", "vae-ft-mse-840000.safetensors=nodeforge-shapes"]
    assert main(["validate", str(source), *maps]) == 0, capsys.readouterr().err
    assert main(["import", str(source), "-o", str(tmp_path / "mine.json"), *maps]) == 0
    assert json.loads((tmp_path / "mine.json").read_text())["nodes"]["10"]["params"] == {"vae": "nodeforge-shapes"}
    paths = ModelPaths.default()
    assert paths.resolve("vae", "nodeforge-shapes") == paths.resolve("checkpoint", "nodeforge-shapes")
    assert main(["validate", str(source), *maps[:2]]) == 1
    assert "missing VAE 'vae-ft-mse-840000.safetensors' (node 10)" in capsys.readouterr().err


@pytest.mark.parametrize("class_type, said", [
    ("ImageCropAt+", "from the custom node pack ComfyUI_essentials, which NodeForge cannot run; replace it "
                     "with NodeForge's ImageCrop, which does the same, or bypass it"),
    ("Power Prompt (rgthree)", "from the custom node pack rgthree-comfy, which NodeForge cannot run; replace or "
                              "bypass it"),
    ("IPAdapterFaceID", "from the custom node pack ComfyUI_IPAdapter_plus, which NodeForge cannot run; replace "
                        "or bypass it"),
    ("PerpNeg", "a ComfyUI core node NodeForge does not support yet; replace or bypass it"),
    ("workflow/LoRA", "a ComfyUI group node, which NodeForge does not expand yet; open the file in ComfyUI, convert it "
                      "to nodes (right-click > Convert to nodes) and save, or replace or bypass it here"),
])
def test_a_placeholder_names_its_pack_or_says_it_is_core_and_is_said_once_per_class(tmp_path, capsys, monkeypatch,
                                                                                   class_type, said):
    """Issue 30 (c): no "install a node pack" (NodeForge cannot); one import line for three nodes. (The pack
    class with an equivalent is made up: the real ones met so far are mapped.)"""
    from nodeforge.interop import comfy_packs

    monkeypatch.setitem(comfy_packs.EQUIVALENTS, "ImageCropAt+", "ImageCrop")
    prompt = {str(i): {"class_type": class_type, "inputs": {}} for i in (3, 5, 7)}
    source = tmp_path / "api.json"
    source.write_text(json.dumps(prompt))
    assert main(["import", str(source), "-o", str(tmp_path / "mine.json")]) == 0
    assert capsys.readouterr().err.splitlines() == [
        f"warning: 3 nodes (3, 5, 7) ({class_type}): {said}; kept as a placeholder (its widgets and links are kept "
        "for export, but the graph cannot run until it is replaced or bypassed)"]
    assert main(["validate", str(source)]) == 1
    assert [line for line in capsys.readouterr().err.splitlines() if line.startswith("error: ")][0] == (
        f"error: node 3 ({class_type}): {said} (its widgets and links are kept, so exporting back to ComfyUI keeps it)")


@pytest.mark.parametrize("class_type, expected", [
    # classes of the issue-30 corpus that were "a ComfyUI node with no NodeForge equivalent" whatever they were
    ("LTXVConditioning", {"core": True}), ("StableCascade_StageB_Conditioning", {"core": True}),
    ("StableCascade_CheckpointLoader //Inspire", {"pack": "ComfyUI-Inspire-Pack"}),   # the pack's suffix wins
    ("LoadAudio", {"core": True}), ("ImageStitch", {"core": True}),   # StringConcatenate and
    # TextEncodeQwenImageEdit(Plus): mapped now
    ("ImageResizeKJv2", {"pack": "ComfyUI-KJNodes"}), ("ImageResize+", {"pack": "ComfyUI_essentials"}),   # mapped now
    ("easy int", {"pack": "ComfyUI-Easy-Use"}), ("UnetLoaderGGUF", {"pack": "ComfyUI-GGUF"}),
    ("WanVideoSampler", {"pack": "ComfyUI-WanVideoWrapper"}), ("ShowText|pysssss", {"pack": "ComfyUI-Custom-Scripts"}),
    ("Lora Loader (LoraManager)", {"pack": "ComfyUI-Lora-Manager"}), ("SomeoneElsesNode", {}),
    ("workflow/Upscale Output", {"group": True}), ("workflow>Controls", {"group": True}),
    ("FlipSigmas", {"core": True}), ("GLIGENLoader", {"core": True}),   # ManualSigmas, ModelSamplingContinuousEDM,
    # DualCFGGuider, unCLIPCheckpointLoader: mapped now
    ("Text Random Line", {"pack": "WAS Node Suite"}), ("LatentUpscaleFactor _O", {"pack": "ComfyUI-QualityOfLifeSuit_Omar92"}),
    ("FluxTrainLoop", {"pack": "ComfyUI-FluxTrainer"}), ("Hy3DGenerateMesh", {"pack": "ComfyUI-Hunyuan3DWrapper"}),
])
def test_the_corpus_classes_are_told_core_or_pack(class_type, expected):
    from nodeforge.interop.comfy_packs import describe

    assert describe(class_type) == expected


@pytest.mark.parametrize("class_type, cnr_id, aux_id, expected", [
    ("SeedGenerator", "RES4LYF", None, {"pack": "RES4LYF"}),            # the name tables know no pack for it
    ("FluxKontextImageScale", "comfy-core", None, {"core": True}),
    ("SomeNewCoreNode", "comfy-core", None, {"core": True}),
    ("DownloadAndLoadGIMMVFIModel", None, "kijai/ComfyUI-GIMM-VFI", {"pack": "kijai/ComfyUI-GIMM-VFI"}),
    # a registry id the tables spell otherwise: the tables' spelling
    ("BrandNewKJNode", "comfyui-kjnodes", None, {"pack": "ComfyUI-KJNodes"}),
    ("ImageResizeKJv2", "comfyui-kjnodes", "kijai/ComfyUI-KJNodes", {"pack": "ComfyUI-KJNodes"}),
    ("SeedVR2VideoUpscaler", "seedvr2_videoupscaler", None, {"pack": "ComfyUI-SeedVR2_VideoUpscaler"}),
    # the name guessed wrong: WanVideo* is mostly WanVideoWrapper's, but this one is steerable-motion's
    ("WanVideoBlender", "steerable-motion", None, {"pack": "steerable-motion"}),
    ("UltralyticsDetectorProvider", "comfyui-impact-subpack", "ltdrdata/ComfyUI-Impact-Subpack",
     {"pack": "ltdrdata/ComfyUI-Impact-Subpack"}),
])
def test_the_pack_the_file_records_for_a_node_wins_over_the_name_tables(class_type, cnr_id, aux_id, expected):
    from nodeforge.interop.comfy_packs import describe

    assert describe(class_type, cnr_id, aux_id) == expected


def test_a_ui_files_record_of_the_pack_names_it_in_the_placeholder_message(tmp_path, capsys):
    """ComfyUI's editor writes each node's pack into its properties (cnr_id, aux_id): the message names it."""
    workflow = {"last_node_id": 2, "last_link_id": 0, "links": [], "version": 0.4, "nodes": [
        {"id": 1, "type": "WanVideoBlender", "pos": [0, 0], "size": [300, 100], "mode": 0, "inputs": [],
         "outputs": [], "properties": {"cnr_id": "steerable-motion", "ver": "1.4.10"}, "widgets_values": [0.5]},
        {"id": 2, "type": "TrimAudioDuration", "pos": [0, 200], "size": [300, 100], "mode": 0, "inputs": [],
         "outputs": [], "properties": {"cnr_id": "comfy-core", "ver": "0.3.60"}, "widgets_values": [0.0, 10.0]}]}
    source = tmp_path / "ui.json"
    source.write_text(json.dumps(workflow))
    assert main(["import", str(source), "-o", str(tmp_path / "mine.json")]) == 0
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith("warning: node 1 (WanVideoBlender): from the custom node pack "
                             "steerable-motion, which NodeForge cannot run; replace or bypass it; ")
    assert err[1].startswith("warning: node 2 (TrimAudioDuration): a ComfyUI core node NodeForge does not support "
                             "yet; replace or bypass it; ")


def test_every_equivalent_a_placeholder_names_is_a_nodeforge_node(registry):
    from nodeforge.interop.comfy_packs import EQUIVALENTS
    from nodeforge.interop.comfy_table import BY_COMFY

    named = {v for v in EQUIVALENTS.values() if v != "a reroute dot"}
    assert named <= set(registry.types())
    assert not set(EQUIVALENTS) & set(BY_COMFY)    # a mapped class is never a placeholder


def _shared_sd15_prompt(vae_from_loader: bool) -> dict:
    """A user's SD1.5 API prompt as shared: their checkpoint, VAE, LoRA and embedding, none of them here."""
    prompt = {
        "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "SD15\\dreamshaper_8.safetensors"}},
        "11": {"class_type": "LoraLoader", "inputs": {"lora_name": "add_detail.safetensors", "strength_model": 0.7,
                                                      "strength_clip": 0.7, "model": ["4", 0], "clip": ["4", 1]}},
        "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a red circle", "clip": ["11", 1]}},
        "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "embedding:EasyNegative, blurry", "clip": ["11", 1]}},
        "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}},
        "3": {"class_type": "KSampler", "inputs": {"seed": 7, "steps": 2, "cfg": 5.0, "sampler_name": "euler",
                                                   "scheduler": "normal", "denoise": 1.0, "model": ["11", 0],
                                                   "positive": ["6", 0], "negative": ["7", 0], "latent_image": ["5", 0]}},
        "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["10", 0] if vae_from_loader else ["4", 2]}},
        "9": {"class_type": "SaveImage", "inputs": {"filename_prefix": "shared", "images": ["8", 0]}}}
    if vae_from_loader:
        prompt["10"] = {"class_type": "VAELoader", "inputs": {"vae_name": "vae-ft-mse-840000-ema-pruned.safetensors"}}
    return prompt


BY_KIND = ["--model-map", "checkpoint:*=nodeforge-shapes", "--model-map", "vae:*=nodeforge-shapes",
           "--model-map", "lora:*=shapes-star", "--model-map", "embedding:*=shapes-sunset"]


def test_a_shared_graph_runs_on_the_demo_models_mapped_by_kind(tmp_path, capsys):
    """Issue 30, item 3: one map per kind, and the VAELoader mapped to the checkpoint decodes with its VAE:
    the same pixels as the graph that takes the checkpoint's own VAE output."""
    import numpy as np
    from PIL import Image

    images = []
    for with_loader in (True, False):
        source = tmp_path / f"shared-{with_loader}.json"
        source.write_text(json.dumps(_shared_sd15_prompt(with_loader)))
        out = tmp_path / f"out-{with_loader}"
        assert main(["run", str(source), "--out", str(out), "-q", "--device", "cpu", *BY_KIND]) == 0
        captured = capsys.readouterr()
        assert captured.err == "", captured.err
        written = [Path(line) for line in captured.out.splitlines()]
        assert len(written) == 1
        images.append(np.asarray(Image.open(written[0])))
    assert images[0].shape == (64, 64, 3)
    assert np.array_equal(images[0], images[1])


def test_validate_without_the_kind_maps_says_each_missing_model_and_the_map_for_its_kind(tmp_path, capsys):
    source = tmp_path / "shared.json"
    source.write_text(json.dumps(_shared_sd15_prompt(True)))
    assert main(["validate", str(source)]) == 1
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 4, err
    assert err[0].startswith("error: missing checkpoint 'SD15\\dreamshaper_8.safetensors' (node 4): put it in ")
    for kind in ("checkpoint", "LoRA", "VAE", "embedding"):
        assert sum(f"(every missing {kind}: --model-map '{kind.lower()}:*=NAME')" in line for line in err) == 1, err
    assert main(["validate", str(source), *BY_KIND]) == 0


def test_a_graph_with_only_previews_says_that_run_wrote_nothing_and_what_to_add(tmp_path, capsys):
    """Issue 30: many shared graphs end in PreviewImage; `run` wrote nothing and said nothing."""
    prompt = _shared_sd15_prompt(False)
    prompt["9"] = {"class_type": "PreviewImage", "inputs": {"images": ["8", 0]}}
    source = tmp_path / "previews.json"
    source.write_text(json.dumps(prompt))
    out = tmp_path / "out"
    assert main(["run", str(source), "--out", str(out), "-q", "--device", "cpu", *BY_KIND]) == 0
    captured = capsys.readouterr()
    assert captured.out == "" and list(out.iterdir()) == []
    assert captured.err == (f"warning: nothing was written: the graph's outputs (node 9 (Preview Image)) only show "
                            f"images; add --previews to write them to {out}, or end the graph in a Save Image node\n")
    assert main(["run", str(source), "--out", str(out), "-q", "--device", "cpu", "--previews", *BY_KIND]) == 0
    assert capsys.readouterr().err == ""
    assert [p.suffix for p in out.iterdir()] == [".png"]


def test_model_map_help_names_every_kind_a_kind_map_takes(capsys):
    # The kinds come from the one table of kinds, so a new kind is listed without editing the help.
    from nodeforge.core.types import FileKind
    from nodeforge.interop.model_names import map_key_kind

    with pytest.raises(SystemExit):
        main(["run", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    listed = text.split("every missing model of a kind (", 1)[1].split(")", 1)[0].split(", ")
    assert sorted(listed) == sorted(kind.value for kind in FileKind)
    assert listed[-1] == "image" and "diffusion_model" in listed and "text_encoder" in listed
    assert all(map_key_kind(f"{name}:*") is FileKind(name) for name in listed)


def _with_a_dangling_vae_encode(tmp_path: Path) -> Path:
    """txt2img with a VAE Encode left beside the graph, nothing linked to it and it to nothing."""
    data = json.loads((DATA / "txt2img-0.4.json").read_text())
    data["nodes"].append({"id": 10, "type": "VAEEncode", "pos": [0, 600], "size": [210, 46], "flags": {},
                          "order": 9, "mode": 0, "inputs": [{"name": "pixels", "type": "IMAGE", "link": None},
                                                            {"name": "vae", "type": "VAE", "link": None}],
                          "outputs": [{"name": "LATENT", "type": "LATENT", "links": []}], "properties": {}})
    path = tmp_path / "dangling.json"
    path.write_text(json.dumps(data))
    return path


def test_a_comfyui_file_with_a_half_wired_node_validates_with_a_warning_naming_node_and_input(tmp_path, capsys):
    source = str(_with_a_dangling_vae_encode(tmp_path))
    mapped = ["--model-map", "v1-5-pruned-emaonly.safetensors=nodeforge-shapes"]
    assert main(["validate", source, *mapped]) == 0
    captured = capsys.readouterr()
    assert captured.out.startswith("ok: ")
    assert captured.err.splitlines() == [
        f"warning: node 10 (VAEEncode), {name}: required input is not connected; link {kind} output to it (this "
        "node leads to no output, so it does not run; connect it or delete it)"
        for name, kind in (("vae", "a VAE"), ("image", "an IMAGE"))]
    # Saved as a NodeForge graph, the same node is an error to fix, as in the editor.
    mine = tmp_path / "mine.json"
    assert main(["import", source, *mapped, "-o", str(mine)]) == 0
    capsys.readouterr()
    assert main(["validate", str(mine)]) == 1
    assert "error: node 10 (VAEEncode), image: required input is not connected" in capsys.readouterr().err
