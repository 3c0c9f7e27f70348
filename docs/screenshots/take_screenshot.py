"""Take docs/screenshots/editor.png: the editor on the txt2img example after a run.

    xvfb-run -s "-screen 0 1600x1000x24" python docs/screenshots/take_screenshot.py [--real-nodes] [--scale 2]

Uses the numpy stand-in pack (tests/ui/packs/fake_sd.py), which has the real node types' ports
and params, unless --real-nodes is given and the built-in pack is installed.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--real-nodes", action="store_true")
    parser.add_argument("--scale", default="1")
    parser.add_argument("--out", default=str(ROOT / "docs" / "screenshots" / "editor.png"))
    parser.add_argument("--workflow", default=str(ROOT / "tests" / "ui" / "data" / "txt2img.json"))
    parser.add_argument("--no-run", action="store_true")
    parser.add_argument("--zoom", type=float, default=None, help="zoom after fitting (centred on UNet Denoise)")
    args = parser.parse_args()
    os.environ["QT_SCALE_FACTOR"] = args.scale
    os.environ.setdefault("NODEFORGE_HOME", "/tmp/nodeforge-shot-home")

    from PySide6.QtCore import QTimer
    from PySide6.QtGui import QGuiApplication

    from nodeforge.core.engine import Engine
    from nodeforge.core.registry import load_registry
    from nodeforge.ui.app import make_app
    from nodeforge.ui.main_window import MainWindow

    app = make_app([sys.argv[0]])
    if args.real_nodes:
        registry = load_registry(entry_points=False)
    else:
        registry = load_registry(builtin=False, node_path=[ROOT / "tests" / "ui" / "packs" / "fake_sd.py"],
                                 entry_points=False)
    engine = Engine(device="cpu", output_dir="/tmp/nodeforge-shot-out", registry=registry)
    win = MainWindow(engine)
    win.confirm_close = False
    win.setGeometry(0, 0, int(1600 / float(args.scale)), int(1000 / float(args.scale)))
    if os.environ.get("NF_NO_PANEL"):
        win.images.add_images = lambda records: None
    win.show()
    win.open_path(args.workflow)

    def fit_then_run() -> None:
        win.view.fit()
        if args.zoom and "5" in win.scene.nodes:
            win.view.set_zoom(args.zoom)
            win.view.centerOn(win.scene.nodes["5"])
        if not args.no_run:
            win.run()
        else:
            QTimer.singleShot(800, shoot)

    def shoot() -> None:
        app.processEvents()
        shot = QGuiApplication.primaryScreen().grabWindow(0)
        shot.save(args.out)
        print("saved", args.out, shot.width(), "x", shot.height())
        win.close()
        app.quit()

    win.runner.runFinished.connect(lambda _r: QTimer.singleShot(500, shoot))
    win.runner.runFailed.connect(lambda *a: (print("run failed:", a[1]), QTimer.singleShot(500, shoot)))
    QTimer.singleShot(600, fit_then_run)
    return app.exec()


if __name__ == "__main__":
    sys.exit(main())
