"""docs/screenshots/editor-states.png: bypass, a failing node, a placeholder, a reroute, a collapsed node.

    xvfb-run -s "-screen 0 1600x1000x24" python docs/screenshots/take_states_screenshot.py
"""
import sys, os
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)
os.environ["NODEFORGE_HOME"] = "/tmp/nfh3"
from pathlib import Path
from PySide6.QtCore import QTimer, QPointF
from PySide6.QtGui import QGuiApplication
from nodeforge.ui.app import make_app
from nodeforge.ui.main_window import MainWindow
from nodeforge.core.registry import load_registry
from nodeforge.core.engine import Engine
app = make_app(['x'])
reg = load_registry(builtin=False, node_path=[Path(ROOT) / 'tests' / 'ui' / 'packs'], entry_points=False)
win = MainWindow(Engine(device='cpu', registry=reg, output_dir='/tmp/nfo3')); win.confirm_close=False
win.setGeometry(0, 0, 1600, 1000); win.show()
c = win.controller
a = c.add_node("SolidImage", (0, 0)); b = c.add_node("Invert", (330, 0)); m = c.add_node("Mix", (660, 0))
p = c.add_node("PreviewOut", (1000, 0)); f = c.add_node("Fail", (330, 300)); p2 = c.add_node("PreviewOut", (660, 300))
t = c.add_node("Prompt", (0, 300)); col = c.add_node("Invert", (0, 550))
c.connect(a, "image", b, "image"); c.connect(b, "image", m, "image"); c.connect(m, "image", p, "image")
c.connect(a, "image", f, "image"); c.connect(f, "image", p2, "image")
c.toggle_flag([b], "bypassed"); c.toggle_flag([col], "collapsed")
c.add_reroute(f, "image", (250, 200))
c.set_title(b, "bypassed invert")
wf = win.model.snapshot()
unk = wf.add("FancyUpscaler", {"scale": 4}, {"image": (m, "image")}, title="unknown pack node")
wf.ui["positions"][unk] = [1000, 300]
win.set_document(wf, None)
win.scene.select_nodes([m])
def go():
    win.view.fit(); win.run()
def shoot():
    app.processEvents()
    QGuiApplication.primaryScreen().grabWindow(0).save(os.path.join(ROOT, "docs", "screenshots", "editor-states.png")); print("saved"); app.quit()
win.runner.runFailed.connect(lambda *a: QTimer.singleShot(500, shoot))
win.runner.runFinished.connect(lambda *a: QTimer.singleShot(500, shoot))
QTimer.singleShot(500, go)
app.exec()
