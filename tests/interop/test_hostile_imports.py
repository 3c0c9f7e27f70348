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
