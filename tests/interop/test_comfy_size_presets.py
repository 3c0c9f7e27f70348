"""SDXLResolutionPresets (two packs share the name: "Portrait (1152x896)" with an aspect whose Vertical swaps
the sides, and "832x1216 | 13:19") gives its preset's width and height to what it feeds, worked out on
import as the packs do, from a UI 0.4 file and an API prompt alike (comfy-size-presets-*.json; the first
node's values are a shared CosXL workflow's; issue 30)."""
from __future__ import annotations

import pytest

from nodeforge.interop.comfy_table import COMPUTED, Notes

FORMATS = ["comfy-size-presets-0.4.json", "comfy-size-presets-api.json"]


@pytest.mark.parametrize("name", FORMATS)
def test_the_presets_become_the_sizes_they_feed(read, validate, name):
    imported = read(name)
    nodes = imported.workflow.nodes
    assert sorted(nodes) == ["2", "4", "5", "6"]                    # the presets fold away
    assert (nodes["2"].type, nodes["2"].params) == ("EmptyLatent", {"width": 896, "height": 1152, "batch_size": 1})
    assert (nodes["4"].type, nodes["4"].params) == ("EmptyLatent", {"width": 832, "height": 1216, "batch_size": 2})
    assert imported.warnings == []
    assert validate(imported.workflow) == []


def test_every_preset_of_both_packs_and_a_name_without_a_size():
    work = COMPUTED["SDXLResolutionPresets"][1]
    assert [work({"resolution": "Cinematic (1536x640)", "aspect": a}, s, Notes()) for a in ("Horizontal", "Vertical")
            for s in (0, 1)] == [1536, 640, 640, 1536]
    assert (work({"resolution": "640x1536 | 5:12"}, 0, Notes()), work({"resolution": "640x1536 | 5:12"}, 1, Notes())) \
        == (640, 1536)
    notes = Notes()
    assert work({"resolution": "Huge"}, 0, notes) == 1024 and notes.messages == [
        "resolution 'Huge' names no size (WxH); 1024 x 1024 is used"]
