"""Corpus file 041's ComfyUI NAGuidance, KJNodes' VisualizeSigmasKJ and RES4LYF's Film Grain come in as
NodeForge's Normalized Attention Guidance, Visualize Sigmas and Film Grain with their values (041's), from a
UI 0.4 file and an API prompt alike, on a Z-Image custom-sampling graph that validates, and go back under
their class names with the same values (comfy-zimage-nag-grain-*.json; issue 30)."""
from __future__ import annotations

import pytest

from nodeforge.interop import comfy_table

FORMATS = ["comfy-zimage-nag-grain-0.4.json", "comfy-zimage-nag-grain-api.json"]


@pytest.mark.parametrize("name", FORMATS)
def test_the_three_come_in_with_their_values_and_validate(read, validate, name):
    imported = read(name)
    nodes = imported.workflow.nodes
    assert (nodes["9"].type, nodes["9"].params, nodes["9"].inputs) == (
        "NormalizedAttentionGuidance", {"nag_scale": 5, "nag_alpha": 0.5, "nag_tau": 1.5}, {"unet": ("4", "unet")})
    assert (nodes["14"].type, nodes["14"].params, nodes["14"].inputs) == (
        "VisualizeSigmas", {"start_step": 0, "end_step": -1}, {"sigmas": ("8", "sigmas")})
    assert nodes["11"].inputs["sigmas"] == ("14", "sigmas")
    assert (nodes["15"].type, nodes["15"].params, nodes["15"].inputs) == (
        "FilmGrain", {"density": 0.1, "intensity": 0.2, "highlights": 1, "supersample_factor": 4, "repeats": 1},
        {"image": ("12", "image")})
    assert nodes["13"].inputs["image"] == ("15", "image")
    assert sum(line.startswith("node 15 (Film Grain): the grain is drawn from a CPU generator seeded")
               for line in imported.warnings) == 1
    assert all(n.type != "comfyui.Placeholder" for n in nodes.values())
    assert validate(imported.workflow) == []


@pytest.mark.parametrize("name", FORMATS)
def test_the_three_export_back_with_the_same_values(exported_back, name):
    back = exported_back(name, "comfy-zimage-nag-grain-api.json")
    back.assert_kept(["9", "14", "15", "11", "13"])


def test_the_classes_are_mapped():
    assert {c: comfy_table.BY_COMFY[c].nodeforge for c in ("NAGuidance", "VisualizeSigmasKJ", "Film Grain")} == {
        "NAGuidance": "NormalizedAttentionGuidance", "VisualizeSigmasKJ": "VisualizeSigmas",
        "Film Grain": "FilmGrain"}
