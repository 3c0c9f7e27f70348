"""The source stays readable as it grows: no function in nodeforge/ or the built-in node pack
nodes/ over 60 lines, every file path docs/architecture.md names is there, and no editor module
reaching into more than a handful of another's internals."""
from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MAX_FUNCTION_LINES = 60
_PATH = re.compile(r"^(nodeforge|nodes|tests|docs|workflows|resources|benchmarks|packaging)(/[\w.*-]+)*/?$"
                   r"|^[\w-]+\.(py|md|toml)$")


def _functions(path: Path):
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield node.name, node.lineno, node.end_lineno - node.lineno + 1


@pytest.mark.parametrize("package_name, min_files", [("nodeforge", 50), ("nodes", 15)])
def test_no_function_is_longer_than_60_lines(package_name, min_files):
    package = ROOT / package_name
    if not (package / "__init__.py").is_file():
        pytest.skip("no source tree here")
    files = sorted(package.rglob("*.py"))
    assert len(files) > min_files
    too_long = [f"{path.relative_to(ROOT)}:{line} {name} ({count} lines)"
                for path in files for name, line, count in _functions(path) if count > MAX_FUNCTION_LINES]
    assert not too_long, "split these by responsibility: " + "; ".join(too_long)


def test_every_path_docs_architecture_names_exists():
    doc = ROOT / "docs" / "architecture.md"
    if not doc.is_file():
        pytest.skip("no docs here")
    quoted = re.findall(r"`([^`\n]+)`", doc.read_text(encoding="utf-8"))
    paths = sorted({q for q in quoted if _PATH.match(q)})
    assert len(paths) >= 40, paths
    missing = [p for p in paths if not (ROOT / p).exists()]
    assert not missing, f"docs/architecture.md names paths that are not there: {missing}"


# -- the editor is no hub: how far each ui module reaches into another's internals -----------------
# Metric ("reach"): for a module M of nodeforge/ui and a class C defined in another ui module, the
# number of distinct internals of C that M reads or writes. C's internals are the attributes its
# methods assign (`self.x = ...`) and its class body does not declare: its parts and its state. Its
# methods, properties, signals, class-level declarations (dataclass fields, Protocol members) and the
# Qt API it inherits are its interface, and using them is no reach. M's objects of type C are found
# by their annotations (`win: "MainWindow"`), `self.x = param` / `self.x = C(...)` in M's classes and
# `x = self.x` aliases; `win.scene.nodes` reaches `scene`, one internal of MainWindow.
MAX_REACH = 4


def _annotation_name(ann: ast.AST | None) -> str | None:
    if isinstance(ann, ast.Constant) and isinstance(ann.value, str):
        try:
            ann = ast.parse(ann.value, mode="eval").body
        except SyntaxError:
            return None
    if isinstance(ann, ast.BinOp):                      # "X | None"
        return _annotation_name(ann.left) or _annotation_name(ann.right)
    if isinstance(ann, ast.Name):
        return ann.id
    return ann.attr if isinstance(ann, ast.Attribute) else None


def _self_attr(node: ast.AST) -> str | None:
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "self":
        return node.attr
    return None


def _assigned(node: ast.AST) -> list[ast.AST]:
    if isinstance(node, ast.Assign):
        return node.targets
    return [node.target] if isinstance(node, (ast.AnnAssign, ast.AugAssign)) else []


def _internals(cls: ast.ClassDef) -> set[str]:
    if any("dataclass" in ast.unparse(d) for d in cls.decorator_list):
        return set()
    declared = {t.id for b in cls.body for t in _assigned(b) if isinstance(t, ast.Name)}
    declared |= {b.name for b in cls.body if isinstance(b, (ast.FunctionDef, ast.AsyncFunctionDef))}
    assigned = {_self_attr(t) for n in ast.walk(cls) for t in _assigned(n)}
    return assigned - declared - {None}


def _ui_modules() -> dict[str, ast.Module]:
    return {p.relative_to(ROOT).with_suffix("").as_posix().replace("/", "."):
            ast.parse(p.read_text(encoding="utf-8")) for p in sorted((ROOT / "nodeforge" / "ui").rglob("*.py"))}


def _parameters(func: ast.FunctionDef | ast.AsyncFunctionDef) -> dict[str, str | None]:
    return {a.arg: _annotation_name(a.annotation) for a in func.args.args + func.args.kwonlyargs}


def _defs(scope: ast.AST):
    return (n for n in ast.walk(scope) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)))


def _members(scope: ast.AST, foreign: dict[str, str]) -> dict[str, str]:
    """A class's `self.x` that hold objects of foreign classes: annotated, a parameter kept, or made."""
    members: dict[str, str] = {}
    for func in _defs(scope):
        params = _parameters(func)
        for node in ast.walk(func):
            value = getattr(node, "value", None)
            kind = _annotation_name(getattr(node, "annotation", None))
            if isinstance(value, ast.Name):
                kind = kind or params.get(value.id)
            elif isinstance(value, ast.Call):
                kind = kind or _annotation_name(value.func)
            for target in _assigned(node):
                if _self_attr(target) and kind in foreign:
                    members[_self_attr(target)] = kind
    return members


def _reach(tree: ast.Module, owner: dict[str, str], module: str) -> dict[str, set[str]]:
    foreign = {name: mod for name, mod in owner.items() if mod != module}
    found: dict[str, set[str]] = {}
    for scope in [tree, *(n for n in tree.body if isinstance(n, ast.ClassDef))]:
        members = _members(scope, foreign)
        for func in _defs(scope):
            local = {name: kind for name, kind in _parameters(func).items() if kind in foreign}
            for node in ast.walk(func):     # aliases: win = self.win; win, doc = self.win, self.doc
                for target in node.targets if isinstance(node, ast.Assign) else []:
                    pairs = (zip(target.elts, node.value.elts) if isinstance(target, ast.Tuple)
                             and isinstance(node.value, ast.Tuple) else [(target, node.value)])
                    local.update({name.id: members[_self_attr(value)] for name, value in pairs
                                  if isinstance(name, ast.Name) and _self_attr(value) in members})
            for node in ast.walk(func):
                if isinstance(node, ast.Attribute):
                    base = node.value
                    kind = local.get(base.id) if isinstance(base, ast.Name) else members.get(_self_attr(base))
                    if kind:
                        found.setdefault(kind, set()).add(node.attr)
    return found


def editor_reach() -> dict[tuple[str, str], set[str]]:
    """(module, class) -> the internals of that class the module reaches into."""
    modules = _ui_modules()
    owner, internals = {}, {}
    for module, tree in modules.items():
        for cls in (n for n in tree.body if isinstance(n, ast.ClassDef)):
            owner[cls.name], internals[cls.name] = module, _internals(cls)
    reach = {}
    for module, tree in modules.items():
        for kind, used in _reach(tree, owner, module).items():
            if used & internals[kind]:
                reach[(module, kind)] = used & internals[kind]
    return reach


def test_no_editor_module_reaches_into_more_than_a_handful_of_another_modules_internals():
    if not (ROOT / "nodeforge" / "ui" / "main_window.py").is_file():
        pytest.skip("no editor here")
    reach = editor_reach()
    assert reach, "the metric finds nothing: it no longer follows the editor's code"
    wide = [f"{module} uses {len(used)} internals of {kind}: {', '.join(sorted(used))}"
            for (module, kind), used in sorted(reach.items()) if len(used) > MAX_REACH]
    assert not wide, ("talk to it through methods or a small interface (a Protocol) instead: "
                      + "; ".join(wide))
