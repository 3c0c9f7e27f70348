"""A run in the editor against `nodeforge run` for the same graph (issue 18.9: within 10%).

Each repeat starts a fresh `nodeforge run` process and a fresh editor process (offscreen Qt, a
real MainWindow and Run), alternately, and takes the engine's own time for the graph from each
(RunResult.seconds: model loading, encoding, denoising, decoding, saving). Torch is imported
before the run in both, as `nodeforge run` does before its run starts; the editor imports it
with its first run instead, which is printed apart. `--load N` keeps N busy processes running
meanwhile, as on the loaded 2-core machine where the editor took 61 s against 29 s.

    python benchmarks/bench_editor_run.py [--repeats 3] [--steps 20] [--size 128] [--load 2] [--nice N]

`--nice N` runs the editor with NODEFORGE_RUN_NICE=N (the worker thread's niceness: the cause
of the slowdown was a default of 5; the default is now 0).
"""
from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WORKFLOW = ROOT / "workflows" / "txt2img.json"


def prepare(folder: Path, steps: int, size: int) -> Path:
    sys.path.insert(0, str(ROOT))
    from nodeforge.core.workflow import load_workflow, save_workflow

    wf = load_workflow(WORKFLOW)
    for node in wf.nodes.values():
        if node.type == "UNetDenoise":
            node.params["steps"] = steps
        if node.type == "EmptyLatent":
            node.params["width"] = node.params["height"] = size
    return save_workflow(wf, folder / "bench.json")


def cli_run(path: Path, out: Path, env: dict[str, str]) -> dict[str, float]:
    t0 = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "nodeforge", "run", str(path), "--out", str(out), "-v"],
                          capture_output=True, text=True, env=env, cwd=ROOT, check=True)
    wall = time.perf_counter() - t0
    found = re.search(r"finished in ([0-9.]+) s", done.stderr)
    if not found:
        raise RuntimeError(done.stderr)
    return {"run_seconds": float(found.group(1)), "process_seconds": wall}


def editor_run(path: Path, out: Path, env: dict[str, str]) -> dict[str, float]:
    done = subprocess.run([sys.executable, __file__, "--editor-child", str(path), str(out)],
                          capture_output=True, text=True, env=env, cwd=ROOT, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def editor_child(path: str, out: str) -> None:
    """In the child: a real editor window runs the graph once, as Run does."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    sys.path.insert(0, str(ROOT))
    from PySide6.QtCore import QEventLoop

    from nodeforge.core.engine import Engine
    from nodeforge.ui.app import make_app
    from nodeforge.ui.main_window import MainWindow

    app = make_app(["nodeforge"])
    engine = Engine(output_dir=Path(out))
    win = MainWindow(engine)
    win.confirm_close = False
    win.resize(1500, 920)
    win.show()
    assert win.open_path(path)
    app.processEvents()
    t0 = time.perf_counter()
    engine.resolved_device()          # imports torch, as `nodeforge run` does before its run
    import_seconds = time.perf_counter() - t0
    results: list = []
    loop = QEventLoop()
    win.runner.runFinished.connect(lambda r: (results.append(r), loop.quit()))
    win.runner.runFailed.connect(lambda nid, msg, problems: (results.append(msg), loop.quit()))
    t0 = time.perf_counter()
    win.run()
    loop.exec()
    wall = time.perf_counter() - t0
    if not results or isinstance(results[0], str):
        raise SystemExit(f"the run failed: {results}")
    win.autosaver.discard()
    print(json.dumps({"run_seconds": results[0].seconds, "press_to_done_seconds": wall,
                      "torch_import_seconds": import_seconds}))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--load", type=int, default=0, help="busy processes running meanwhile")
    parser.add_argument("--nice", type=int, default=None, help="NODEFORGE_RUN_NICE for the editor")
    parser.add_argument("--editor-child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.editor_child:
        editor_child(*args.editor_child)
        return
    folder = Path(tempfile.mkdtemp(prefix="bench-editor-"))
    path = prepare(folder, args.steps, args.size)
    env = {**os.environ, "NODEFORGE_HOME": str(folder / "home"), "PYTHONPATH": str(ROOT)}
    editor_env = dict(env)
    if args.nice is not None:
        editor_env["NODEFORGE_RUN_NICE"] = str(args.nice)
    load = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(args.load)]
    cli, editor = [], []
    try:
        for i in range(args.repeats):
            cli.append(cli_run(path, folder / f"cli{i}", env))
            editor.append(editor_run(path, folder / f"ed{i}", editor_env))
            print(f"repeat {i + 1}: nodeforge run {cli[-1]['run_seconds']:.2f} s "
                  f"(process {cli[-1]['process_seconds']:.2f} s), editor {editor[-1]['run_seconds']:.2f} s "
                  f"(Run pressed to done {editor[-1]['press_to_done_seconds']:.2f} s)", flush=True)
    finally:
        for proc in load:
            proc.kill()
            proc.wait()
    c = statistics.median(r["run_seconds"] for r in cli)
    e = statistics.median(r["run_seconds"] for r in editor)
    imp = statistics.median(r["torch_import_seconds"] for r in editor)
    print(f"txt2img {args.size}x{args.size}, {args.steps} steps, {args.load} busy processes, "
          f"editor nice {editor_env.get('NODEFORGE_RUN_NICE', 'default')}")
    print(f"nodeforge run: {c:.2f} s   editor: {e:.2f} s   ratio editor/cli: {e / c:.3f} (target <= 1.10)")
    print(f"the editor's first run also imports torch: {imp:.2f} s")


if __name__ == "__main__":
    main()
