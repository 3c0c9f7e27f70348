"""Packs' text and seed constants (comfy-text-packs-*.json): WAS Node Suite's Text Multiline and Text String,
KJNodes' String Constant Multiline and RES4LYF's Seed Generator become the values their outputs give (worked out
as those nodes do), WAS's Text to Conditioning is CLIP Text Encode, its Text to Console a wire. They go back to
ComfyUI as the values and CLIPTextEncode."""
from __future__ import annotations

import pytest

from nodeforge.interop import comfy_table, export_comfyui_api

FORMATS = ["comfy-text-packs-0.4.json", "comfy-text-packs-api.json"]


@pytest.mark.parametrize("name", FORMATS)
def test_text_and_seed_constants_are_the_values_their_outputs_give(read, name):
    imported = read(name)
    nodes = imported.workflow.nodes
    # Text Multiline: the comment line left out, the lines joined by newlines (the last newline goes)
    assert (nodes["3"].type, nodes["3"].params, nodes["3"].inputs) == (
        "TextEncoder", {"text": "a red circle\non a white page, [time]"}, {"clip": ("1", "clip")})
    assert nodes["5"].params == {"text": "blurry\nlow quality"}           # String Constant Multiline, strip_newlines
    assert nodes["13"].params == {"prefix": "shapes"}                    # Text String's second output
    assert (nodes["10"].params["seed"], nodes["11"].params["seed"]) == (1234, 1235)   # Seed Generator: seed, seed+1
    assert set(nodes) == {"1", "3", "5", "9", "10", "11", "12", "13"}
    assert not [w for w in imported.warnings if "placeholder" in w]
    assert "node 2 (Text Multiline): WAS replaces [name] tokens ([time], [hostname], [cuda_device], [cuda_name] and " \
           "those set in its config) when the graph runs; NodeForge keeps '[time]' as written" in imported.warnings
    assert "node 7 (Text to Console): prints its text in ComfyUI's console: left out (its text goes on to what it " \
           "feeds)" in imported.warnings
    # a UI file saves the generator's control_after_generate (an API prompt, queued, has no such thing)
    randomized = "node 8 (SeedGenerator): its seed is set to randomize after each run in ComfyUI; NodeForge keeps " \
                 "1234 (and 1234 + 1) in the nodes it feeds: change them there"
    assert (randomized in imported.warnings) == name.endswith("0.4.json")


@pytest.mark.parametrize("values, expected", [
    # KJNodes: each line's newline dropped, the lines joined by newlines again: only a last newline goes
    ({"string": "x\ny\n", "strip_newlines": True}, "x\ny"),
    # without strip_newlines each line keeps its own newline and one more is added between lines
    ({"string": "x\ny\n", "strip_newlines": False}, "x\n\ny\n"),
    ({"string": "one line", "strip_newlines": True}, "one line"),
])
def test_string_constant_multiline_gives_what_kjnodes_gives(values, expected):
    names, work_out = comfy_table.COMPUTED["StringConstantMultiline"]
    assert work_out(values, 0, comfy_table.Notes()) == expected


def test_was_text_nodes_give_what_was_gives():
    notes = comfy_table.Notes()
    _names, multiline = comfy_table.COMPUTED["Text Multiline"]
    assert multiline({"text": "a cat\n  # not this\n\nin a hat\n"}, 0, notes) == "a cat\n\nin a hat"
    _names, strings = comfy_table.COMPUTED["Text String"]
    assert [strings({"text": "a", "text_b": "b", "text_c": "c", "text_d": "d"}, slot, notes) for slot in range(4)] \
        == ["a", "b", "c", "d"]
    assert notes.messages == []


@pytest.mark.parametrize("name", FORMATS)
def test_they_go_back_to_comfyui_as_values_and_clip_text_encode(read, registry, name):
    prompt = export_comfyui_api(read(name).workflow, registry=registry)
    assert prompt["3"] == {"class_type": "CLIPTextEncode", "_meta": {"title": "CLIP Text Encode (Prompt)"},
                           "inputs": {"text": "a red circle\non a white page, [time]", "clip": ["1", 1]}}
    assert prompt["11"]["inputs"]["seed"] == 1235 and prompt["13"]["inputs"]["filename_prefix"] == "shapes"
    assert not {"2", "4", "6", "7", "8"} & set(prompt)
