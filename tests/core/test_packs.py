"""Node packs: folders on NODEFORGE_NODE_PATH, entry points, and packs that fail to import."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from nodeforge.core.registry import Registry, load_registry
from nodeforge.core.spec import NodeSpec, Output, Param

ROOT = Path(__file__).resolve().parents[2]

GOOD = '''
from nodeforge.core.spec import NodeSpec, Output, Param
NODES = [NodeSpec("Hello", "demo", lambda ctx, name: {"text": "hi " + name},
                  params=(Param.string("name", "you"),), outputs=(Output("text", "TEXT"),))]
'''


def test_a_broken_pack_is_reported_by_name_and_the_others_load(tmp_path):
    (tmp_path / "good").mkdir()
    (tmp_path / "good" / "__init__.py").write_text(GOOD)
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "__init__.py").write_text("import does_not_exist_anywhere\n")
    (tmp_path / "single.py").write_text(GOOD.replace("Hello", "Single"))
    (tmp_path / "nonodes.py").write_text("x = 1\n")
    registry = load_registry(builtin=False, node_path=[tmp_path], entry_points=False)
    assert {"Hello", "Single"} <= set(registry.types())
    failed = {f.pack: f.message for f in registry.failures}
    assert set(failed) == {"broken", "nonodes"}
    assert "does_not_exist_anywhere" in failed["broken"]
    assert "NODES" in failed["nonodes"]
    assert "node pack 'broken'" in str(registry.failures[0]) or "node pack 'broken'" in str(registry.failures[1])


def test_a_missing_node_path_folder_is_a_failure_not_a_crash(tmp_path):
    registry = load_registry(builtin=False, node_path=[tmp_path / "gone"], entry_points=False)
    assert registry.failures[0].message == "folder does not exist"


def test_two_packs_defining_one_type_is_reported(tmp_path):
    for name in ("one", "two"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "__init__.py").write_text(GOOD)
    registry = load_registry(builtin=False, node_path=[tmp_path], entry_points=False)
    assert registry.types() == ["Hello"]
    assert "defined by packs" in registry.failures[0].message


def test_entry_point_packs_are_loaded(tmp_path):
    # A real installed distribution with an entry point in group nodeforge.nodes.
    site = tmp_path / "site"
    (site / "mypack").mkdir(parents=True)
    (site / "mypack" / "__init__.py").write_text(GOOD.replace("Hello", "FromEntryPoint"))
    dist = site / "mypack-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: mypack\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[nodeforge.nodes]\nmypack = mypack\n")
    code = ("import sys; sys.path.insert(0, %r); from nodeforge.core.registry import load_registry; "
            "r = load_registry(builtin=False, node_path=[]); print('FromEntryPoint' in r.types(), r.packs)") % str(site)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert proc.stdout.startswith("True"), proc.stderr


def test_spec_declarations_are_checked_when_declared():
    import pytest

    with pytest.raises(ValueError, match="bad default"):
        NodeSpec("X", "c", lambda ctx: {}, params=(Param.int("n", 5, max=3),))
    with pytest.raises(ValueError, match="unique"):
        NodeSpec("X", "c", lambda ctx: {}, outputs=(Output("a", "T"), Output("a", "T")))
    assert len(Registry()) == 0


def test_core_imports_neither_qt_nor_torch():
    code = ("import sys, nodeforge, nodeforge.core.engine, nodeforge.core.registry, nodeforge.cli; "
            "print([m for m in ('torch', 'PySide6', 'numpy', 'PIL', 'diffusers') if m in sys.modules])")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert proc.stdout.strip() == "[]", proc.stdout + proc.stderr
