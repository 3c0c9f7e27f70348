"""WAS Node Suite's text operations (issue 30): NodeForge has no text wires, so Text Concatenate, Text Find
and Replace Input and Text Random Line fed by constants fold into the prompt they feed, computed as WAS
does (each Text Concatenate widget layout of its versions; Text Random Line is Python's random.choice
after random.seed(seed)). comfy-was-text-*.json, one graph in both forms: "a __animal__ on a hill" with
__animal__ replaced by a random line of "cat / dog / fox" (seed 7), then ", at dusk" added."""
from __future__ import annotations

import random

import pytest

from nodeforge.interop import comfy_export
from nodeforge.interop.comfy_table import Notes
from nodeforge.interop.comfy_text import TEXT_OPS

FORMATS = ["comfy-was-text-0.4.json", "comfy-was-text-api.json"]


def _work(cls: str, **values):
    notes = Notes()
    return TEXT_OPS[cls].work(values, notes), notes.messages


@pytest.mark.parametrize("name", FORMATS)
def test_the_was_text_chain_folds_into_the_prompt_it_feeds(read, registry, validate, name):
    imported = read(name)
    nodes = imported.workflow.nodes
    assert sorted(nodes, key=int) == ["3", "4", "5", "6", "7", "8", "9"]
    assert (nodes["6"].type, nodes["6"].params) == ("TextEncoder", {"text": "a dog on a hill, at dusk"})
    assert [w for w in imported.warnings if not w.startswith("missing ")] == []
    assert validate(imported.workflow) == []
    prompt = comfy_export.export_comfyui_api(imported.workflow, registry=registry)
    assert prompt["6"]["inputs"]["text"] == "a dog on a hill, at dusk"


def test_text_concatenate_in_each_of_its_widget_layouts():
    texts = {"text_a": " a ", "text_b": "b", "text_c": "", "text_d": "d "}
    assert _work("Text Concatenate", linebreak_addition="false", **texts)[0] == " a bd "
    assert _work("Text Concatenate", linebreak_addition="true", **texts)[0] == " a \nb\nd "
    assert _work("Text Concatenate", linebreak_addition="false", delimiter="|", **texts)[0] == " a |b|d "
    assert _work("Text Concatenate", delimiter=", ", clean_whitespace="true", **texts)[0] == "a, b, d"
    assert _work("Text Concatenate", delimiter="\\n", clean_whitespace="false", **texts)[0] == " a \nb\nd "
    assert TEXT_OPS["Text Concatenate"].widget_names(["false"]) == ("linebreak_addition", "delimiter")
    assert TEXT_OPS["Text Concatenate"].widget_names([", ", "true"]) == ("delimiter", "clean_whitespace")
    assert _work("Text Concatenate", delimiter=", ", text_a="x", text_b=None)[0] is None   # fed by a node that runs


def test_find_and_replace_replaces_every_occurrence_as_was_and_refuses_what_never_ends_there():
    assert _work("Text Find and Replace Input", text="a_b_c", find="_", replace=" and ")[0] == "a and b and c"
    assert _work("Text Find and Replace Input", text="abc", find="x", replace="y")[0] == "abc"
    # WAS loops while the text holds `find`: an empty one, or one the replacement holds, never ends there
    assert _work("Text Find and Replace Input", text="abc", find="", replace="y")[0] is None
    assert _work("Text Find and Replace Input", text="a", find="a", replace="aa")[0] is None
    # WAS's two versions differ when a replacement makes a new occurrence: left as a placeholder
    assert _work("Text Find and Replace Input", text="aaa", find="aa", replace="a")[0] is None


def test_random_line_is_pythons_choice_for_the_seed_and_says_when_comfyui_changes_it():
    lines = "flat\nperky\nsmall"
    state = random.getstate()
    random.seed(628989646629584)                      # what WAS does, on Python's global generator
    expected = random.choice(lines.split("\n"))
    random.setstate(state)
    assert _work("Text Random Line", text=lines, seed=628989646629584, control_after_generate="fixed") == (expected, [])
    chosen, [note] = _work("Text Random Line", text=lines, seed=628989646629584, control_after_generate=True)
    assert chosen == expected
    assert note == (f"picks a line with its seed, which ComfyUI changes after each run (randomize); NodeForge keeps "
                    f"the line seed 628989646629584 picks, {expected!r}, in the prompt it feeds")
