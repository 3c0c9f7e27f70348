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


def test_a_pack_calling_sys_exit_or_raising_baseexception_is_a_reported_failure(tmp_path):
    (tmp_path / "exits.py").write_text("import sys\nsys.exit(0)\n")
    (tmp_path / "raises.py").write_text("class Boom(BaseException):\n    pass\nraise Boom('at import')\n")
    (tmp_path / "good.py").write_text(GOOD)
    registry = load_registry(builtin=False, node_path=[tmp_path], entry_points=False)
    failed = {f.pack: f.message for f in registry.failures}
    assert set(failed) == {"exits", "raises"}
    assert "sys.exit(0)" in failed["exits"]
    assert failed["raises"] == "Boom: at import"
    assert registry.types() == ["Hello"]


def test_a_pack_that_fails_registers_none_of_its_nodes(tmp_path):
    (tmp_path / "first.py").write_text(GOOD)
    # Its first node is fine, its second collides with first's: nothing of it is usable.
    (tmp_path / "second.py").write_text(GOOD.replace('NODES = [', 'NODES = [NodeSpec("Mine", "demo", '
                                                     'lambda ctx: {}, outputs=(Output("t", "TEXT"),)), '))
    (tmp_path / "third.py").write_text(GOOD.replace("Hello", "Third") + "NODES.append(42)\n")
    registry = load_registry(builtin=False, node_path=[tmp_path], entry_points=False)
    assert registry.types() == ["Hello"]
    assert registry.packs == ["first"]
    failed = {f.pack: f.message for f in registry.failures}
    assert "defined by packs 'first' and 'second'" in failed["second"]
    assert "not NodeSpec" in failed["third"]


def test_validate_with_a_pack_calling_sys_exit_does_not_succeed_silently(tmp_path):
    (tmp_path / "exits.py").write_text("import sys\nsys.exit(0)\n")
    workflow = tmp_path / "w.json"
    workflow.write_text('{"format": "nodeforge.workflow", "version": 1, "nodes": '
                        '{"1": {"type": "FromExits", "inputs": {}}}}')
    env = {**__import__("os").environ, "NODEFORGE_NODE_PATH": str(tmp_path), "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-m", "nodeforge", "validate", str(workflow)],
                          capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 1, proc.stderr
    assert "node pack 'exits'" in proc.stderr and "sys.exit(0)" in proc.stderr
    assert "unknown node type 'FromExits'" in proc.stderr
