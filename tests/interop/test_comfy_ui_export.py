"""Export to a ComfyUI UI workflow (0.4): UI -> NodeForge -> UI keeps every mapped field, and a
NodeForge workflow exported for ComfyUI's editor imports back to the same graph."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from nodeforge.cli import main
from nodeforge.interop import ExportError, comfy_table, export_comfyui_ui, read_workflow
from nodeforge.paths import builtin_dir

DATA = Path(__file__).resolve().parent / "data"
UI_FIXTURES = sorted(p.name for p in DATA.glob("*-0.4.json"))

# Widget values NodeForge changes on import (each import warns, naming the node), so the file it
# writes back differs from the original there: (fixture, node id) -> the values exported.
CHANGED_ON_IMPORT = {
    # what Show Text and Preview Any showed at the last run in ComfyUI (display only): written empty
    ("comfy-values-0.4.json", "12"): [],
    ("comfy-values-0.4.json", "13"): [],
    # Custom Combo's index and option (a constant) are the values themselves
    ("comfy-values-0.4.json", "7"): [512, 512, 2],
    ("comfy-values-0.4.json", "8"): ["a red circle", "", ", "],
    # " [input]" is where ComfyUI found the upload; NodeForge takes the plain name
    ("all-nodes-0.4.json", "15"): ["photo.png", "image"],
    # the seed came from a PrimitiveNode (now the value itself); NodeForge has neither dpmpp_2s_ancestral nor
    # kl_optimal and uses the nearest
    ("all-nodes-0.4.json", "22"): [1234, "fixed", 10, 7, "euler_ancestral", "normal", 0.75],
    ("all-nodes-0.4.json", "24"): ["inpaint"],                 # ComfyUI's %date:...% token is not expanded
    # a file from before ComfyUI gave DualCLIPLoader its device widget: the default is written
    ("comfy-flux-schnell-0.4.json", "11"): ["clip_l.safetensors", "t5xxl_fp8_e4m3fn.safetensors", "flux", "default"],
    # NodeForge has no empty_padding param; ComfyUI's default is written
    ("comfy-sd3-0.4.json", "71"): ["blurry", "blurry, low quality", "a blurry picture", "empty_prompt"],
    ("comfy-slg-0.4.json", "71"): ["blurry", "blurry, low quality", "a blurry picture", "empty_prompt"],
    # the seed from rgthree's Seed node 9, and rgthree's -1 (a new seed each run) as 0 randomized after each run
    # MiDaS's a and bg_threshold only shape its normal map: not kept, ComfyUI's defaults written
    ("comfy-depth-0.4.json", "2"): [6.283185307179586, 0.1, 1024],
    # NodeForge's pose map draws the body only: hands and face go back off
    ("comfy-pose-0.4.json", "2"): ["disable", "enable", "disable", 768, "enable"],
    # an older sd-perturbed-attention's six widgets: the current nine go back (the new ones at their defaults)
    ("comfy-pag-0.4.json", "3"): [1.5, 0.1, "middle", 0, -1.0, -1.0, 0.0, "full", ""],
    ("comfy-resize-0.4.json", "10"): [1234, "fixed"],
    ("comfy-resize-0.4.json", "12"): [0, "randomize"],
    # widgets fed by pack constants (easy int, Int-🔬, FloatConstant, easy float, String-🔬): their values
    ("comfy-resize-0.4.json", "15"): [640, 384, 1],
    ("comfy-resize-0.4.json", "16"): ["bilinear", 1.5],
    ("comfy-resize-0.4.json", "17"): ["bicubic", 0.5],
    ("comfy-resize-0.4.json", "18"): ["shapes"],
    # widgets fed by SeargeSDXL's Prompt text and KJNodes' StringConstant: their text over the widget's stale value
    ("comfy-editor-packs-0.4.json", "5"): ["blurry, low quality"],
    ("comfy-editor-packs-0.4.json", "10"): ["shapes"],
    # widgets fed by KJNodes' String Constant Multiline, WAS's Text String and RES4LYF's Seed Generator (seed, seed + 1)
    ("comfy-text-packs-0.4.json", "5"): ["blurry\nlow quality"],
    ("comfy-text-packs-0.4.json", "10"): [1234, "fixed", 20, 7.0, "euler", "normal", 1.0],
    ("comfy-text-packs-0.4.json", "11"): [1235, "fixed", 20, 7.0, "euler", "normal", 0.5],
    ("comfy-text-packs-0.4.json", "13"): ["shapes"],
    # a filename prefix fed by two StringConcatenates of constants: their joined value
    ("comfy-string-join-0.4.json", "24"): ["portraits/night_v2"],
}
# Wires the importer moves: ComfyUI's one-prompt Apply ControlNet (node 8) also steers the negative pass,
# so NodeForge runs the sampler's negative through it (and writes it back as the two-prompt class).
REWIRED = {"controlnet-0.4.json": ({(7, 1, 10, 2, "CONDITIONING")}, {(8, 1, 10, 2, "CONDITIONING")})}
# Editor-only ComfyUI nodes the importer folds into wires and values (they are not graph nodes).
FOLDED = {comfy_table.PRIMITIVE, comfy_table.ANY_SWITCH, comfy_table.SET_NODE, comfy_table.GET_NODE,
          *comfy_table.REROUTES, *comfy_table.CONSTANTS}


def point(value):
    return [float(value["0"]), float(value["1"])] if isinstance(value, dict) else [float(v) for v in value[:2]]


def wires(ui_file):
    """Every link as (from node, from slot, to node, to slot, type), walked through Reroute nodes."""
    nodes = {n["id"]: n for n in ui_file["nodes"]}
    by_id = {link[0]: link for link in ui_file["links"] if link}
    out = set()
    for link in by_id.values():
        _lid, src, slot, dst, dst_slot, kind = link[:6]
        if nodes[dst]["type"] in comfy_table.REROUTES:
            continue
        while nodes[src]["type"] in comfy_table.REROUTES:
            src, slot = by_id[nodes[src]["inputs"][0]["link"]][1:3]
        out.add((src, slot, dst, dst_slot, kind))
    return out


def exported_as_itself(original):
    """The fixture's nodes whose class NodeForge writes back unchanged: others go back as the ComfyUI
    class their rows name for the same operation (export_only_if=_never, or not remembered on import
    where several classes share one NodeForge node, as a diff ControlNet loader)."""
    kept = {}
    for node in original["nodes"]:
        row = comfy_table.BY_COMFY.get(node["type"])
        if row is not None and row.export_only_if is not comfy_table._never \
                and (row.remember or comfy_table.rows_for(row.nodeforge)[0] is row):
            kept[node["id"]] = node
    return kept


@pytest.mark.parametrize("name", UI_FIXTURES)
def test_ui_to_nodeforge_to_ui_keeps_every_mapped_field(read, registry, name):
    original = json.loads((DATA / name).read_text())
    exported = export_comfyui_ui(read(name).workflow, registry=registry)
    assert exported["version"] == 0.4
    by_id = {n["id"]: n for n in exported["nodes"]}
    kept = exported_as_itself(original)
    # a join of constants folds into the value it feeds (comfy_text): it is no node to write back
    kept = {nid: n for nid, n in kept.items() if nid in by_id or n["type"] != comfy_table.STRING_JOIN}
    assert kept, name
    for nid, node in kept.items():
        mine = by_id[nid]
        assert mine["type"] == node["type"], nid
        row = comfy_table.BY_COMFY[node["type"]]
        assert mine["title"] == node.get("title", row.display), nid
        assert mine["properties"]["Node name for S&R"] == node["type"]
        assert mine["pos"] == point(node["pos"]) and mine["size"] == point(node["size"]), nid
        assert mine["mode"] == node.get("mode", 0) and mine["flags"] == node.get("flags", {}), nid
        expected = CHANGED_ON_IMPORT.get((name, str(nid)), node.get("widgets_values") or [])
        assert mine["widgets_values"] == expected, nid
        # every port in ComfyUI's slot order with ComfyUI's type; what was linked is linked
        linked = [(p["name"], p["type"]) for p in node.get("inputs", []) if p.get("link") is not None
                  and "widget" not in p]
        assert [(p["name"], p["type"]) for p in mine["inputs"] if p["link"] is not None and "widget" not in p] \
            == linked, nid
        assert [o["type"] for o in mine["outputs"]] == [o["type"] for o in node.get("outputs", [])], nid
    # links between the same slots (reroutes walked through); folded nodes' wires become direct ones
    folded = {n["id"] for n in original["nodes"] if n["type"] in FOLDED}
    theirs = {w for w in wires(original) if w[0] in kept and w[2] in kept and w[0] not in folded}
    moved, instead = REWIRED.get(name, (set(), set()))
    assert theirs - moved <= wires(exported) and instead <= wires(exported), name
    for group, mine in zip(original.get("groups", []), exported["groups"], strict=True):
        assert mine["title"] == group["title"] and mine["bounding"] == [float(v) for v in group["bounding"]]
        assert mine["color"] == group.get("color", "#3f789e") and mine["font_size"] == group.get("font_size", 24)


def id_map(workflow, exported):
    """NodeForge id -> the id the UI file gave the node (ids that are not numbers get new ones)."""
    return dict(zip(workflow.nodes, (str(n["id"]) for n in exported["nodes"])))


def renamed(workflow, ids):
    graph = {}
    for nid, node in workflow.nodes.items():
        inputs = {name: (ids[src], out) for name, (src, out) in node.inputs.items()}
        graph[ids[nid]] = (node.type, node.params, inputs, node.title)
    return graph


@pytest.mark.parametrize("name", UI_FIXTURES)
def test_the_exported_ui_file_imports_to_the_same_workflow(read, registry, no_models, name):
    first = read(name).workflow
    exported = json.loads(json.dumps(export_comfyui_ui(first, registry=registry)))
    again = read_workflow(exported, registry=registry, model_paths=no_models).workflow
    ids = id_map(first, exported)
    assert {nid: node[:3] for nid, node in renamed(again, {n: n for n in again.nodes}).items()} \
        == {nid: node[:3] for nid, node in renamed(first, ids).items()}
    assert {ids[n]: node.title for n, node in first.nodes.items()} == {n: node.title for n, node in again.nodes.items()}
    for key in ("positions", "sizes"):     # nodes NodeForge placed itself (no size, or none at all) get one
        expected = {ids[n]: v for n, v in first.ui.get(key, {}).items()}
        assert {n: again.ui[key][n] for n in expected} == expected, key
        assert set(again.ui[key]) == set(again.nodes), key
    for key in ("collapsed", "muted", "bypassed", "notes", "reroutes", "viewport", "seed_control"):
        assert again.ui.get(key) == first.ui.get(key), key


def test_seeds_keep_their_control_after_generate(read, registry, no_models):
    first = read("all-nodes-0.4.json").workflow
    assert first.ui["seed_control"] == {"10": "randomize"}
    exported = export_comfyui_ui(first, registry=registry)
    by_id = {n["id"]: n for n in exported["nodes"]}
    assert by_id[10]["widgets_values"][1:3] == [43, "randomize"]      # after noise_seed, as ComfyUI lists it
    assert by_id[8]["widgets_values"][:2] == [42, "fixed"]


def test_a_placeholder_goes_back_as_it_came(read, registry):
    exported = export_comfyui_ui(read("all-nodes-0.4.json").workflow, registry=registry)
    [foo] = [n for n in exported["nodes"] if n["type"] == "FooSharpen"]
    assert foo["widgets_values"] == [3, "fixed", "strong"]
    assert [(p["name"], p["type"], "widget" in p) for p in foo["inputs"]] == [
        ("image", "IMAGE", False), ("radius", "INT", True), ("mode", "COMBO", True)]
    assert [o["type"] for o in foo["outputs"]] == ["IMAGE"]


@pytest.mark.parametrize("name", sorted(p.name for p in builtin_dir("workflows").glob("*.json")))
def test_a_nodeforge_example_exports_to_a_ui_file_that_imports_to_the_same_graph(registry, no_models, name):
    source = builtin_dir("workflows") / name
    first = read_workflow(source, registry=registry, model_paths=no_models).workflow
    warnings: list[str] = []
    exported = json.loads(json.dumps(export_comfyui_ui(first, registry=registry, warnings=warnings)))
    again = read_workflow(exported, registry=registry, model_paths=no_models).workflow
    assert set(again.nodes) == set(first.nodes)
    for nid, node in first.nodes.items():
        params = dict(node.params)
        if params.get("schedule") == "default":   # ComfyUI has no 'default' schedule: the export says so
            params["schedule"] = "simple"
            assert any(line.startswith(f"node {nid} (UNetDenoise): ComfyUI has no schedule 'default'")
                       for line in warnings)
        theirs = again.nodes[nid]
        defaults = {p.name: p.default for p in registry.get(node.type).params}
        # a param ComfyUI's class has no widget for comes back as NodeForge's default: the example uses that
        assert (theirs.type, {**defaults, **theirs.params}, theirs.inputs, theirs.title) \
            == (node.type, {**defaults, **params}, node.inputs, node.title), nid
    assert again.ui["positions"] == {n: [float(v) for v in p] for n, p in first.ui["positions"].items()}
    assert not [line for line in warnings if "left out of the export" in line]
    assert again.ui.get("groups", []) == [dict(g, color=g.get("color", "#3f789e"), font_size=g.get("font_size", 24))
                                          for g in first.ui.get("groups", [])]
    # NodeForge's reroute dots are ComfyUI Reroute nodes there, and dots again here, on the same wires
    dots = first.ui.get("reroutes", {})
    assert sorted(repr((d["pos"], d["links"])) for d in again.ui.get("reroutes", {}).values()) \
        == sorted(repr(([float(v) for v in d["pos"]], d["links"])) for d in dots.values())


def test_nodes_without_ids_or_positions_get_comfyui_ones(registry, no_models):
    from nodeforge.core.workflow import NodeRef, Workflow

    wf = Workflow()
    wf.nodes["loader"] = NodeRef("CheckpointLoader", {"checkpoint": "nodeforge-shapes"})
    wf.nodes["7"] = NodeRef("TextEncoder", {"text": "a circle"}, {"clip": ("loader", "clip")})
    exported = export_comfyui_ui(wf, registry=registry)
    loader, prompt = exported["nodes"]
    assert (loader["id"], prompt["id"]) == (8, 7) and exported["last_node_id"] == 8
    assert exported["links"] == [[1, 8, 1, 7, 0, "CLIP"]]
    assert loader["outputs"][1]["links"] == [1] and prompt["inputs"][0]["link"] == 1
    assert loader["pos"] != prompt["pos"] and prompt["pos"][0] > loader["pos"][0]    # left to right, by depth
    assert loader["order"] < prompt["order"]


def test_a_node_comfyui_lacks_is_refused_by_name(registry):
    from nodeforge.core.workflow import NodeRef, Workflow

    wf = Workflow()
    wf.nodes["1"] = NodeRef("EmptyLatent", {"width": 64, "height": 64, "batch_size": 1})
    wf.nodes["2"] = NodeRef("Glow", {}, {"latent": ("1", "latent")})
    with pytest.raises(ExportError) as caught:
        export_comfyui_ui(wf, registry=registry)
    assert str(caught.value) == "node 2 (Glow): has no ComfyUI equivalent; remove it or replace it with a node " \
                                "ComfyUI has"


def test_cli_exports_a_ui_workflow(tmp_path, capsys):
    out = tmp_path / "ui.json"
    source = builtin_dir("workflows") / "txt2img.json"
    assert main(["export", str(source), "--to", "comfyui", "-o", str(out)]) == 0
    assert capsys.readouterr().out == f"{out}: ComfyUI workflow with 7 nodes\n"
    data = json.loads(out.read_text())
    sampler = next(n for n in data["nodes"] if n["id"] == 5)
    assert sampler["type"] == "KSampler" and sampler["widgets_values"][:2] == [42, "fixed"]
    assert {n["id"] for n in data["nodes"]} == {1, 2, 3, 4, 5, 6, 7} and data["version"] == 0.4


def test_a_placeholder_whose_widget_is_linked_keeps_its_values_by_name(registry, no_models):
    # an API prompt names every value; the UI file lists them by position, with each widget as an input in
    # that order (linked or not), so the values come back under the same names
    prompt = {"1": {"class_type": "BarSeed", "inputs": {}},
              "2": {"class_type": "FooNoise", "inputs": {"mode": "flow", "seed": ["1", 0], "strength": 0.25,
                                                         "image": ["3", 0]}},
              "3": {"class_type": "LoadImage", "inputs": {"image": "photo.png"}}}
    first = read_workflow(prompt, registry=registry, model_paths=no_models).workflow
    exported = json.loads(json.dumps(export_comfyui_ui(first, registry=registry)))
    [foo] = [n for n in exported["nodes"] if n["type"] == "FooNoise"]
    assert foo["widgets_values"] == ["flow", 0.25]
    assert [(p["name"], p["link"] is not None, "widget" in p) for p in foo["inputs"]] == [
        ("seed", True, False), ("image", True, False), ("mode", False, True), ("strength", False, True)]
    again = read_workflow(exported, registry=registry, model_paths=no_models).workflow
    assert again.nodes["2"].params == first.nodes["2"].params
    assert again.nodes["2"].inputs == first.nodes["2"].inputs
