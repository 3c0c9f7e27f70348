"""Editor benchmark: load a 500-node graph, frame times of pan and zoom, UI stall during a run.

    QT_QPA_PLATFORM=offscreen python benchmarks/bench_ui.py [--nodes 500]

Frames are timed by forcing a synchronous repaint of the viewport (`viewport().repaint()`),
which renders every visible item, so the number is what a user would wait per frame. The stall
is the longest gap a 5 ms timer sees on the UI thread while a 20-step run goes on a worker.
Uses the numpy stand-in pack from tests/ui/packs (no torch), so it runs anywhere. FAKE_WORK
(default 40) sets the matrix products per denoising step; FAKE_WORK=0 leaves only the UI's own
work, which separates the editor's stalls from CPU contention with the run (and other programs).
`--real-nodes --checkpoint NAME` times the run with the built-in torch pack instead.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from PySide6.QtCore import QElapsedTimer, QPointF, QTimer  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

from nodeforge.core.engine import Engine  # noqa: E402
from nodeforge.core.registry import load_registry  # noqa: E402
from nodeforge.core.workflow import Workflow  # noqa: E402


def big_workflow(n: int) -> Workflow:
    """Chains of the txt2img pattern laid out on a grid, n nodes in all."""
    wf = Workflow()
    wf.ui = {"positions": {}}
    pattern = ["CheckpointLoader", "TextEncoder", "TextEncoder", "EmptyLatent", "UNetDenoise", "VAEDecode", "Preview"]
    col = 0
    while len(wf.nodes) < n:
        ids = {}
        for i, t in enumerate(pattern):
            if len(wf.nodes) >= n:
                break
            nid = wf.add(t)
            ids[i] = nid
            wf.ui["positions"][nid] = [col * 340 * 7 + i * 340, (len(wf.nodes) // 70) * 600]
        links = {1: {"clip": (0, "clip")}, 2: {"clip": (0, "clip")},
                 4: {"unet": (0, "unet"), "positive": (1, "conditioning"), "negative": (2, "conditioning"),
                     "latent": (3, "latent")}, 5: {"vae": (0, "vae"), "latent": (4, "latent")},
                 6: {"image": (5, "image")}}
        for i, inputs in links.items():
            if i in ids:
                for name, (src, out) in inputs.items():
                    if src in ids:
                        wf.connect(ids[src], out, ids[i], name)
        col = (col + 1) % 10
    return wf


def frame_times(app, view, action, frames: int = 60) -> tuple[list[float], list[float]]:
    """Wall-clock and CPU milliseconds per forced repaint. On a shared machine the CPU time is
    what the editor itself costs; the wall time adds waiting for other programs."""
    wall, cpu = [], []
    for i in range(frames):
        action(i)
        t0, c0 = time.perf_counter(), time.thread_time()
        view.viewport().repaint()
        wall.append((time.perf_counter() - t0) * 1000)
        cpu.append((time.thread_time() - c0) * 1000)
    return wall, cpu


def describe(times: tuple[list[float], list[float]]) -> str:
    wall, cpu = sorted(times[0]), sorted(times[1])
    p95 = lambda t: t[int(len(t) * 0.95) - 1]  # noqa: E731
    return (f"wall median {statistics.median(wall):5.1f} p95 {p95(wall):5.1f} max {wall[-1]:5.1f} ms | "
            f"cpu median {statistics.median(cpu):5.1f} p95 {p95(cpu):5.1f} max {cpu[-1]:5.1f} ms")


def stall_during_run(app, win, label: str) -> None:
    """The longest gap a 5 ms timer on the UI thread sees while a 20-step run goes on."""
    timer = QTimer()
    clock = QElapsedTimer()
    gaps: list[float] = []
    last = [0]

    def tick() -> None:
        now = clock.elapsed()
        gaps.append(now - last[0])
        last[0] = now

    done = []
    finished = lambda r: done.append(r)  # noqa: E731
    failed = lambda *a: done.append(a)  # noqa: E731
    win.runner.runFinished.connect(finished)
    win.runner.runFailed.connect(failed)
    timer.timeout.connect(tick)
    clock.start()
    timer.start(5)
    t0 = time.perf_counter()
    win.run()
    while not done:
        app.processEvents()
        time.sleep(0.001)
    run_s = time.perf_counter() - t0
    timer.stop()
    win.runner.runFinished.disconnect(finished)
    win.runner.runFailed.disconnect(failed)
    extra = max(gaps[1:] or [0]) - 5
    over = sum(1 for g in gaps[1:] if g > 21)
    print(f"20-step {label}: {run_s:.2f} s; UI thread longest stall {max(0, extra):.0f} ms beyond the 5 ms tick, "
          f"{over} gaps over 16 ms ({len(gaps)} ticks)")
    if isinstance(done[0], tuple):
        print(f"  run failed: {done[0]}")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--nodes", type=int, default=500)
    parser.add_argument("--real-nodes", action="store_true",
                        help="time the run with the built-in (torch) pack; needs --checkpoint")
    parser.add_argument("--checkpoint", default="nodeforge-shapes")
    args = parser.parse_args()
    app = QApplication.instance() or QApplication([])
    from nodeforge.ui import theme
    from nodeforge.ui.main_window import MainWindow

    theme.apply(app)
    registry = load_registry(builtin=False, node_path=[ROOT / "tests" / "ui" / "packs"], entry_points=False)
    # fake_work: matrix products per denoising step, about 50 ms a step on 2 cores.
    engine = Engine(device="cpu", output_dir="/tmp/nodeforge-bench", registry=registry, settings={"fake_work": int(os.environ.get("FAKE_WORK", "40"))})
    win = MainWindow(engine)
    win.confirm_close = False
    win.resize(1600, 1000)
    win.show()
    app.processEvents()
    wf = big_workflow(args.nodes)

    t0 = time.perf_counter()
    win.set_document(wf, None)
    app.processEvents()
    win.view.viewport().repaint()
    load_s = time.perf_counter() - t0
    print(f"nodes: {len(wf.nodes)}, wires: {sum(len(n.inputs) for n in wf.nodes.values())}")
    print(f"load {args.nodes}-node graph into the scene, first frame drawn: {load_s * 1000:.0f} ms (target < 1000 ms)")
    # Param editors of off-screen nodes are built in the background, 4 per event-loop turn.
    t1 = time.perf_counter()
    longest = 0.0
    while win.scene.panels_pending():
        t = time.perf_counter()
        app.processEvents()
        longest = max(longest, time.perf_counter() - t)
    print(f"  then every node's editors built in the background: {(time.perf_counter() - t1) * 1000:.0f} ms, "
          f"longest event-loop turn {longest * 1000:.1f} ms")

    view = win.view
    # Paste 100 more nodes (editors come on the following event-loop turns).
    text = big_workflow(100).dumps()
    t0 = time.perf_counter()
    win.controller.paste_text(text, (0.0, 5000.0))
    app.processEvents()
    view.viewport().repaint()
    print(f"paste 100 nodes, first frame drawn: {(time.perf_counter() - t0) * 1000:.0f} ms")
    t0 = time.perf_counter()
    win.stack.undo()
    app.processEvents()
    print(f"undo that paste: {(time.perf_counter() - t0) * 1000:.0f} ms")
    for zoom in (1.0, 0.6, 0.3):
        view.set_zoom(zoom)
        view.centerOn(1500, 600)
        app.processEvents()
        pan = frame_times(app, view, lambda i: view.translate_view(12, 4 if i % 2 else -4))
        print(f"pan  at zoom {zoom:.1f}: {describe(pan)}")
    view.set_zoom(1.0)
    view.centerOn(1500, 600)
    anchor = QPointF(view.viewport().width() / 2, view.viewport().height() / 2)
    zooms = frame_times(app, view, lambda i: view.set_zoom(view.zoom() * (1.04 if (i // 15) % 2 else 1 / 1.04), anchor))
    print(f"zoom (wheel steps around 0.5-1.0): {describe(zooms)}")
    view.fit()
    app.processEvents()
    whole = frame_times(app, view, lambda i: view.translate_view(6, 0), frames=30)
    print(f"pan with the whole graph in view (zoom {view.zoom():.2f}): {describe(whole)}")

    # UI-thread stall while a 20-step run goes on the worker thread.
    small = Workflow.loads((ROOT / "tests" / "ui" / "data" / "txt2img.json").read_text())
    small.nodes["7"].type = "Preview"
    small.nodes["7"].params = {}
    if args.real_nodes:
        small.nodes["1"].params["checkpoint"] = args.checkpoint
        win.engine = engine = Engine(device="cpu", output_dir="/tmp/nodeforge-bench",
                                     registry=load_registry(entry_points=False))
        win.runner.engine = engine
        win.registry = engine.registry
        win.model.registry = engine.registry
    win.set_document(small, None)
    app.processEvents()
    for attempt, label in enumerate(("first run (loads torch and the model)" if args.real_nodes else "run",
                                      "second run, new seed")):
        if attempt:
            win.controller.set_param("5", "seed", 1234)
        stall_during_run(app, win, label)
    win.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
