"""The editor opens ComfyUI and A1111 files, says so in the title, and never saves over them."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from PIL import Image
from PIL.PngImagePlugin import PngInfo
from PySide6.QtCore import QPointF

from nodeforge.interop import read_workflow

DATA = Path(__file__).resolve().parent / "data"


@pytest.fixture
def window(qtbot, registry, tmp_path, monkeypatch):
    from PySide6.QtCore import QSettings

    from nodeforge.core.engine import Engine
    from nodeforge.core.models import ModelPaths
    from tests.ui.helpers import close_window, new_window

    QSettings.setDefaultFormat(QSettings.Format.IniFormat)
    QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, str(tmp_path / "settings"))
    engine = Engine(device="cpu", output_dir=tmp_path / "out", registry=registry,
                    model_paths=ModelPaths(roots=[tmp_path / "models"]))
    win = new_window(qtbot, engine, None)
    yield win
    close_window(win)


@pytest.fixture
def shared(tmp_path):
    folder = tmp_path / "from-a-friend"
    folder.mkdir()
    for name in ("all-nodes-0.4.json", "txt2img-0.4.json", "all-nodes-api.json"):
        shutil.copy(DATA / name, folder / name)
    return folder


def test_file_open_takes_a_comfyui_workflow_and_the_title_says_so(window, shared):
    assert window.open_path(shared / "all-nodes-0.4.json")
    assert window.windowTitle() == "all-nodes-0.4.json (imported from ComfyUI)[*] — NodeForge"
    assert not window.isWindowModified()
    model = window.model
    assert model.nodes["22"].params["seed"] == 1234
    # The sender's layout, given room where NodeForge's larger nodes would overlap: every position
    # scaled by one factor from the top-left node, so the canvas looks like the original.
    original = read_workflow(shared / "all-nodes-0.4.json", registry=window.registry).workflow.ui["positions"]
    factor = model.position("8")[0] / 1160.0
    assert factor in (1.0, 1.25, 1.5, 1.75, 2.0)
    for nid, (x, y) in original.items():
        assert model.position(nid) == pytest.approx((x * factor, y * factor), abs=0.1), nid
    assert not window.edits.nodes_overlap()
    assert model.groups[0]["title"] == "Inpaint"
    assert model.groups[0]["bounding"] == pytest.approx([-20 * factor, 740 * factor, 3000 * factor, 420 * factor])
    assert model.flag("14", "muted") and model.flag("17", "bypassed")
    assert model.title("25") == "FooSharpen"
    item = window.scene.nodes["25"]
    assert list(item.inputs) == ["image"] and list(item.outputs) == ["output_0"]
    assert item.inputs["image"].port_type == "IMAGE" and item.outputs["output_0"].port_type == "IMAGE"
    # The import's notes (approximations, missing models) are told, not hidden.
    assert any("dpmpp_2s_ancestral" in line for line in window.document.import_warnings)
    assert "ComfyUI nodes with no NodeForge equivalent kept as placeholders: FooSharpen" \
        in window.statusBar().currentMessage() or window.document.import_notice is not None


def test_save_on_an_imported_file_asks_for_a_new_name_and_never_overwrites_it(window, shared, monkeypatch, tmp_path):
    from PySide6.QtWidgets import QFileDialog

    original = (shared / "txt2img-0.4.json").read_bytes()
    assert window.open_path(shared / "txt2img-0.4.json")
    asked = []

    def dialog(parent, caption, start, filters):
        asked.append(start)
        return str(tmp_path / "mine.json"), filters
    monkeypatch.setattr(QFileDialog, "getSaveFileName", dialog)
    assert window.save()
    assert asked == [str(shared / "txt2img-0.4.nodeforge.json")]
    assert (shared / "txt2img-0.4.json").read_bytes() == original
    from nodeforge import load_workflow

    assert load_workflow(tmp_path / "mine.json").nodes["3"].params["seed"] == 42
    assert window.windowTitle() == "mine.json[*] — NodeForge"


def test_choosing_the_original_in_save_as_is_refused(window, shared, monkeypatch):
    from PySide6.QtWidgets import QFileDialog

    original = (shared / "txt2img-0.4.json").read_bytes()
    errors = []
    monkeypatch.setattr(window, "show_error", lambda title, text: errors.append(text))
    assert window.open_path(shared / "txt2img-0.4.json")
    monkeypatch.setattr(QFileDialog, "getSaveFileName",
                        lambda *a: (str(shared / "txt2img-0.4.json"), "Workflows (*.json)"))
    assert not window.save()
    assert (shared / "txt2img-0.4.json").read_bytes() == original
    assert "imported from; NodeForge does not write over it" in errors[0]


def test_dropping_a_comfyui_png_opens_its_graph(window, tmp_path):
    info = PngInfo()
    info.add_text("prompt", (DATA / "all-nodes-api.json").read_text())
    info.add_text("workflow", (DATA / "all-nodes-0.4.json").read_text())
    path = tmp_path / "ComfyUI_00007_.png"
    Image.new("RGB", (8, 8)).save(path, pnginfo=info)
    assert window.drop_file(path, QPointF(0, 0))
    assert window.model.nodes["22"].params["seed"] == 1234 and window.model.groups[0]["title"] == "Inpaint"
    assert window.windowTitle().startswith("ComfyUI_00007_.png (imported from ComfyUI)")


def test_dropping_an_api_prompt_on_a_graph_adds_its_nodes(window, shared):
    assert window.open_path(Path(__file__).parents[2] / "workflows" / "txt2img.json")
    before = len(window.model.nodes)
    assert window.drop_file(shared / "all-nodes-api.json", QPointF(500, 500))
    assert len(window.model.nodes) == before + 29
    assert window.windowTitle().startswith("txt2img.json")


def test_an_a1111_png_opens_as_an_imported_graph(window, tmp_path):
    info = PngInfo()
    info.add_text("parameters", "a red circle <lora:shapes-star:0.7>\nNegative prompt: blur\n"
                                "Steps: 12, Sampler: Euler a, CFG scale: 5, Seed: 9, Size: 64x64, Model: nodeforge-shapes")
    path = tmp_path / "00001-9.png"
    Image.new("RGB", (8, 8)).save(path, pnginfo=info)
    assert window.open_path(path)
    assert window.windowTitle() == "00001-9.png (imported from A1111)[*] — NodeForge"
    types = sorted(n.type for n in window.model.nodes.values())
    assert types.count("LoRALoader") == 1 and types.count("UNetDenoise") == 1


def test_a_broken_comfyui_file_is_one_message_and_the_graph_stays(window, tmp_path, monkeypatch):
    errors = []
    monkeypatch.setattr(window, "show_error", lambda title, text: errors.append((title, text)))
    path = tmp_path / "bad.json"
    path.write_text('{"nodes": [{"id": 1}], "links": []}')
    assert not window.open_path(path)
    assert errors == [("Cannot open workflow", f"{path}: node 1, type: \"type\" must be the ComfyUI node class")]
    assert window.windowTitle().startswith("Untitled")


def test_the_command_line_file_argument_opens_comfyui_files(qtbot, shared, monkeypatch, registry, tmp_path):
    from nodeforge.core.engine import Engine
    from nodeforge.ui import app

    engine = Engine(device="cpu", output_dir=tmp_path / "out", registry=registry)
    win = app.build_window(str(shared / "txt2img-0.4.json"), engine=engine)
    qtbot.addWidget(win)
    win.confirm_close = False
    assert win.windowTitle() == "txt2img-0.4.json (imported from ComfyUI)[*] — NodeForge"
    win.autosaver.discard()


def test_missing_models_dialog_picks_a_local_model_and_the_next_import_remembers_it(window, shared):
    from nodeforge.ui.dialogs.missing_models import LEAVE

    assert window.open_path(shared / "txt2img-0.4.json")
    dialog = window.document.missing_dialog
    assert dialog is not None and dialog.isVisible() and not dialog.isModal()   # the graph stays usable
    options = [dialog.combos[("checkpoint", "v1-5-pruned-emaonly.safetensors")].itemText(i)
               for i in range(dialog.combos[("checkpoint", "v1-5-pruned-emaonly.safetensors")].count())]
    assert options[0] == LEAVE and "nodeforge-shapes" in options   # the user's (here: bundled) checkpoints
    dialog.choose("checkpoint", "v1-5-pruned-emaonly.safetensors", "nodeforge-shapes")
    dialog.accept()
    assert window.model.nodes["4"].params["checkpoint"] == "nodeforge-shapes"
    assert not any("missing checkpoint" in w for w in window.document.import_warnings)
    assert [p for p in window.engine.validate(window.model.snapshot()) if p.field == "checkpoint"] == []
    window.stack.undo()   # one undoable step
    assert window.model.nodes["4"].params["checkpoint"] == "v1-5-pruned-emaonly.safetensors"

    again = shared / "copy.json"
    again.write_text((shared / "txt2img-0.4.json").read_text())
    assert window.open_path(again)
    # Remembered: mapped at once, nothing missing, no dialog and no note about it.
    assert window.model.nodes["4"].params["checkpoint"] == "nodeforge-shapes"
    assert window.document.missing_dialog is None
    assert not any("model-map" in w or "missing" in w for w in window.document.import_warnings)


def _shared_graph(tmp_path, *, checkpoints, vae=None):
    """An API prompt naming models this machine lacks: one checkpoint loader per name, each decoded by
    the file's VAELoader when it names one."""
    import json

    prompt = {"5": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}}}
    if vae:
        prompt["10"] = {"class_type": "VAELoader", "inputs": {"vae_name": vae}}
    for i, name in enumerate(checkpoints):
        nid = str(20 + 10 * i)
        prompt[nid] = {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": name}}
        prompt[str(21 + 10 * i)] = {"class_type": "VAEDecode",
                                    "inputs": {"samples": ["5", 0], "vae": ["10", 0] if vae else [nid, 2]}}
        prompt[str(22 + 10 * i)] = {"class_type": "PreviewImage", "inputs": {"images": [str(21 + 10 * i), 0]}}
    path = tmp_path / "shared-api.json"
    path.write_text(json.dumps(prompt))
    return path


def test_missing_models_dialog_offers_a_checkpoints_vae_for_a_missing_vae(window, tmp_path):
    """Issue 30: the dialog offered no VAE choice (the user has no VAE files, only checkpoints)."""
    assert window.open_path(_shared_graph(tmp_path, checkpoints=["sdxl.safetensors"], vae="sdxl_vae.safetensors"))
    dialog = window.document.missing_dialog
    combo = dialog.combos[("vae", "sdxl_vae.safetensors")]
    assert combo.isEnabled()
    labels = [combo.itemText(i) for i in range(combo.count())]
    assert "nodeforge-shapes (the VAE inside the checkpoint)" in labels
    dialog.choose("vae", "sdxl_vae.safetensors", "nodeforge-shapes")
    dialog.choose("checkpoint", "sdxl.safetensors", "nodeforge-shapes")
    assert dialog.kind_combos == {}                            # one of each kind: no "Every missing" row
    dialog.accept()
    assert window.model.nodes["10"].params["vae"] == "nodeforge-shapes"
    assert window.engine.validate(window.model.snapshot()) == []
    assert not any("missing VAE" in w for w in window.document.import_warnings)


def test_missing_models_dialog_chooses_one_model_for_every_missing_one_of_a_kind(window, tmp_path):
    """Issue 30, item 3: the by-kind choice (`--model-map 'checkpoint:*=NAME'` in the editor)."""
    from nodeforge.ui.dialogs.missing_models import LEAVE

    names = ["a.safetensors", "SDXL\\b.safetensors", "c.ckpt"]
    assert window.open_path(_shared_graph(tmp_path, checkpoints=names))
    dialog = window.document.missing_dialog
    assert set(dialog.kind_combos) == {"checkpoint"}          # one kind, three models missing
    dialog.choose_for_kind("checkpoint", "nodeforge-shapes")
    assert {key: combo.currentData() for key, combo in dialog.combos.items()} == {
        ("checkpoint", name): "nodeforge-shapes" for name in names}
    dialog.choose("checkpoint", "c.ckpt", LEAVE)               # each row can still be changed
    dialog.accept()
    assert [window.model.nodes[n].params["checkpoint"] for n in ("20", "30", "40")] == [
        "nodeforge-shapes", "nodeforge-shapes", "c.ckpt"]
    window.stack.undo()                                         # one undoable step
    assert [window.model.nodes[n].params["checkpoint"] for n in ("20", "30")] == names[:2]


def test_leaving_a_model_missing_keeps_its_name_and_says_where_it_goes(window, shared):
    assert window.open_path(shared / "txt2img-0.4.json")
    window.document.missing_dialog.accept()   # everything left at "(leave it missing)"
    assert window.model.nodes["4"].params["checkpoint"] == "v1-5-pruned-emaonly.safetensors"
    assert any(w.startswith("missing checkpoint 'v1-5-pruned-emaonly.safetensors'")
               for w in window.document.import_warnings)


def test_opening_an_image_made_with_another_torch_says_so_in_the_editor(window, tmp_path, qtbot):
    """The note is shown (a NodeForge PNG otherwise opens silently), and the graph opens all the same."""
    from nodeforge.core.png_text import version_chunks
    from nodeforge.core.workflow import Workflow

    wf = Workflow()
    wf.add("EmptyLatent", {"width": 64, "height": 64, "batch_size": 1})
    info = PngInfo()
    info.add_text("workflow", wf.dumps())
    for key, value in {**version_chunks(), "torch-version": "1.13.1"}.items():
        info.add_text(key, value)
    Image.new("RGB", (8, 8)).save(tmp_path / "old.png", pnginfo=info)
    assert window.open_path(tmp_path / "old.png")
    assert window.model.nodes["1"].params["width"] == 64
    notice = window.document.import_notice
    assert notice is not None and "old.png: this image was made with torch 1.13.1; this is torch " in notice.text()
    notice.close()
    qtbot.waitUntil(lambda: window.document.import_notice is None)
    info = PngInfo()
    info.add_text("workflow", wf.dumps())
    for key, value in version_chunks().items():
        info.add_text(key, value)
    Image.new("RGB", (8, 8)).save(tmp_path / "same.png", pnginfo=info)
    assert window.open_path(tmp_path / "same.png")
    assert window.document.import_notice is None


def test_the_batch_dialogs_preview_pngs_record_the_versions_too(qapp):
    from PySide6.QtGui import QImage

    from nodeforge.core.png_text import read_png_text, version_chunks
    from nodeforge.ui.dialogs.batch_dialog import _png_bytes

    image = QImage(4, 4, QImage.Format.Format_RGB32)
    image.fill(0)
    chunks = read_png_text(_png_bytes(image, '{"nodeforge": 2, "nodes": {}}'))
    assert {key: chunks.get(key) for key in version_chunks()} == version_chunks()
