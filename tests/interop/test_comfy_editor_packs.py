"""Packs' editor-only nodes and text constants (comfy-editor-packs-*.json): pysssss' Preset Text leaves the text
its widget saved, SeargeSDXL's Prompt text and KJNodes' StringConstant become the values they feed, rgthree's
Label and LG's note become notes, rgthree's Fast Groups Muter is left out. An API prompt has none of the editor-only
nodes (ComfyUI's editor resolves them before queueing), so both forms give the same graph."""
from __future__ import annotations

import pytest

from nodeforge.interop import export_comfyui_api, export_comfyui_ui

FORMATS = ["comfy-editor-packs-0.4.json", "comfy-editor-packs-api.json"]


@pytest.mark.parametrize("name", FORMATS)
def test_text_constants_and_preset_texts_are_the_text_the_prompt_gets(read, name):
    imported = read(name)
    nodes = imported.workflow.nodes
    # the preset's text as the positive prompt's widget saved it when the graph was last queued
    assert (nodes["3"].type, nodes["3"].params, nodes["3"].title) == (
        "TextEncoder", {"text": "a red circle on a white background"}, "positive")
    # SeargeSDXL's Prompt text over the widget's stale value; StringConstant as the file name prefix
    assert nodes["5"].params == {"text": "blurry, low quality"}
    assert nodes["10"].params == {"prefix": "shapes"}
    assert set(nodes) == {"1", "3", "5", "7", "8", "9", "10"}
    assert not [w for w in imported.warnings if "placeholder" in w]


def test_a_preset_text_says_where_its_text_comes_from(read):
    warnings = read("comfy-editor-packs-0.4.json").warnings
    assert "node 3 (CLIPTextEncode), text: its text comes from PresetText|pysssss 2 (preset 'red circle'), whose " \
           "presets live in the browser that made the file; using the text this node saved, 'a red circle on a white " \
           "background' (the preset's text when the graph was last queued)" in warnings
    assert "node 12 (Fast Groups Muter (rgthree)): an editor panel that mutes or bypasses groups in ComfyUI's editor " \
           "(it never runs): left out; the nodes keep the modes the file saved" in warnings


def test_labels_become_notes_with_their_text(read):
    ui = read("comfy-editor-packs-0.4.json").workflow.ui
    notes = {note["id"]: note for note in ui["notes"]}
    assert {nid: (note["text"], "title" in note, note["markdown"]) for nid, note in notes.items()} == {
        "11": ("Prompts", False, False), "13": ("Shared by a user\nrun it on the demo model", False, False)}
    assert notes["11"]["pos"] == [800, 700]


@pytest.mark.parametrize("name", FORMATS)
def test_they_go_back_to_comfyui_as_the_values_and_notes(read, registry, name):
    workflow = read(name).workflow
    prompt = export_comfyui_api(workflow, registry=registry)
    assert prompt["3"]["inputs"]["text"] == "a red circle on a white background"
    assert prompt["5"]["inputs"]["text"] == "blurry, low quality"
    assert prompt["10"]["inputs"]["filename_prefix"] == "shapes"
    assert {entry["class_type"] for entry in prompt.values()} == {
        "CheckpointLoaderSimple", "CLIPTextEncode", "EmptyLatentImage", "KSampler", "VAEDecode", "SaveImage"}
    notes = [n for n in export_comfyui_ui(workflow, registry=registry)["nodes"] if n["type"] == "Note"]
    assert sorted(n["widgets_values"][0] for n in notes) == (
        ["Prompts", "Shared by a user\nrun it on the demo model"] if name.endswith("0.4.json") else [])
