"""Import speed of a large ComfyUI workflow: a generated UI file of 500 nodes (50 txt2img chains,
each with a LoRA, a reroute and a note-free hires pass) read into a NodeForge workflow.

    python benchmarks/bench_import.py [--nodes 500] [--repeat 5] [--custom]

--custom renames every class so that each becomes a placeholder (a graph of custom nodes).

Prints the seconds of the best of the runs (target: under 0.5 s for 500 nodes), with and
without the one-time node-pack registry load, and the seconds of exporting it back to API form.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# One chain: (class, widgets_values, [(input name, type, (source index in chain, slot))], [output types])
CHAIN = [
    ("CheckpointLoaderSimple", ["sd15/model.safetensors"], [], ["MODEL", "CLIP", "VAE"]),
    ("LoraLoader", ["style.safetensors", 0.8, 0.8], [("model", "MODEL", (0, 0)), ("clip", "CLIP", (0, 1))],
     ["MODEL", "CLIP"]),
    ("CLIPTextEncode", ["a red circle on a blue background"], [("clip", "CLIP", (1, 1))], ["CONDITIONING"]),
    ("CLIPTextEncode", ["blurry"], [("clip", "CLIP", (1, 1))], ["CONDITIONING"]),
    ("EmptyLatentImage", [512, 512, 1], [], ["LATENT"]),
    ("KSampler", [1, "randomize", 20, 7, "dpmpp_2m", "karras", 1],
     [("model", "MODEL", (1, 0)), ("positive", "CONDITIONING", (2, 0)), ("negative", "CONDITIONING", (3, 0)),
      ("latent_image", "LATENT", (4, 0))], ["LATENT"]),
    ("Reroute", None, [("", "*", (5, 0))], ["LATENT"]),
    ("LatentUpscaleBy", ["bilinear", 1.5], [("samples", "LATENT", (6, 0))], ["LATENT"]),
    ("VAEDecode", None, [("samples", "LATENT", (7, 0)), ("vae", "VAE", (0, 2))], ["IMAGE"]),
    ("SaveImage", ["ComfyUI"], [("images", "IMAGE", (8, 0))], []),
]


def generate(count: int) -> dict:
    nodes, links = [], []
    chains = max(1, count // len(CHAIN))
    for c in range(chains):
        base = c * len(CHAIN) + 1
        for i, (cls, widgets, inputs, outputs) in enumerate(CHAIN):
            node = {"id": base + i, "type": cls, "pos": [i * 360.0, c * 400.0], "size": [315.0, 120.0], "flags": {},
                    "order": base + i, "mode": 0, "properties": {},
                    "inputs": [], "outputs": [{"name": t, "type": t, "links": []} for t in outputs]}
            if widgets is not None:
                node["widgets_values"] = list(widgets)
            for slot, (name, kind, (src, src_slot)) in enumerate(inputs):
                lid = len(links) + 1
                links.append([lid, base + src, src_slot, base + i, slot, kind])
                node["inputs"].append({"name": name, "type": kind, "link": lid})
                nodes[base + src - 1]["outputs"][src_slot]["links"].append(lid)
            nodes.append(node)
    return {"last_node_id": len(nodes), "last_link_id": len(links), "nodes": nodes, "links": links,
            "groups": [], "config": {}, "extra": {"ds": {"scale": 1, "offset": [0, 0]}}, "version": 0.4}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=500)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--custom", action="store_true", help="every node a class NodeForge lacks")
    args = parser.parse_args()
    from nodeforge.core.models import ModelPaths

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "big.json"
        data = generate(args.nodes)
        if args.custom:
            for node in data["nodes"]:
                node["type"] = node["type"] if node["type"] == "Reroute" else "Custom" + node["type"]
        path.write_text(json.dumps(data))
        started = time.perf_counter()
        from nodeforge.core.registry import default_registry
        from nodeforge.interop import export_comfyui_api, read_workflow

        registry = default_registry()
        load = time.perf_counter() - started
        paths = ModelPaths(roots=[Path(tmp) / "models"])
        best = float("inf")
        for _ in range(args.repeat):
            started = time.perf_counter()
            imported = read_workflow(path, registry=registry, model_paths=paths)
            best = min(best, time.perf_counter() - started)
        from nodeforge.interop import ExportError

        started = time.perf_counter()
        try:
            export_comfyui_api(imported.workflow, registry=registry)
            export = f"{time.perf_counter() - started:.3f} s"
        except ExportError as exc:   # --custom: a UI file does not name its custom nodes' widgets
            export = f"refused ({len(exc.problems)} nodes with unnamed widgets), {time.perf_counter() - started:.3f} s"
    print(f"import of a {args.nodes}-node ComfyUI workflow ({len(imported.workflow.nodes)} NodeForge nodes, "
          f"{len(imported.warnings)} warnings): {best:.3f} s (best of {args.repeat}; target < 0.5 s)")
    print(f"node-pack registry, loaded once per process: {load:.3f} s")
    print(f"export back to a ComfyUI API prompt: {export}")


if __name__ == "__main__":
    main()
