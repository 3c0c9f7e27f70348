"""The source stays readable as it grows: no function in nodeforge/ or the built-in node pack
nodes/ over 60 lines, every file path and code name docs/architecture.md cites is there, and no
editor module reaching into more than a handful of another's internals."""
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


# Names docs/architecture.md cites that come from other libraries, and where they are defined.
EXTERNAL_NAMES = {
    "QDockWidget": "PySide6",
    "Protocol": "typing",
    "scheduler.step": "diffusers (every scheduler)",
    "scheduler.add_noise": "diffusers (every scheduler)",
    "pred_original_sample": "diffusers (a scheduler step's output)",
    "init_noise_sigma": "diffusers (a scheduler's attribute)",
    "scale_model_input": "diffusers (a scheduler's method)",
    "scale_noise": "diffusers (the flow-matching schedulers' forward process)",
}
# A cited name: `read_workflow`, `Workflow.find_param`, `ctx.progress(step, total, preview)`,
# `@common.guarded("train-x")`, `Param.int/float/string/bool/choice`, `cacheable=False`.
_CODE_NAME = re.compile(r"^@?([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*(?:/[A-Za-z_]\w*)*)(?:\(.*\))?(?:\s*->.*)?$"
                        r"|^([A-Za-z_]\w*)=\S*$")


class _Index:
    """Every name defined in nodeforge/, nodes/ and tests/: module-level names per module, members
    per class (methods, fields, `self.x` attributes), module and package names, and identifier-like
    string constants (env variables, entry-point groups, PNG chunk keys)."""

    def __init__(self, files: list[Path]) -> None:
        self.anywhere: set[str] = set()
        self.modules: dict[str, set[str]] = {}      # module or package basename -> its top-level names
        self.classes: dict[str, set[str]] = {}      # class name -> member names
        self.bases: dict[str, list[str]] = {}
        for path in files:
            self._read(path)

    def _read(self, path: Path) -> None:
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        rel = path.relative_to(ROOT).with_suffix("")
        parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
        self.anywhere.update(parts)
        self.anywhere.add(".".join(parts))
        top = self.modules.setdefault(parts[-1], set())
        for node in tree.body:
            top.update(_defined(node))
        for node in ast.walk(tree):
            self.anywhere.update(_defined(node))
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and re.fullmatch(r"[\w.]+", node.value):
                self.anywhere.add(node.value)
            if isinstance(node, ast.ClassDef):
                members = self.classes.setdefault(node.name, set())
                self.bases.setdefault(node.name, []).extend(ast.unparse(b).split(".")[-1] for b in node.bases)
                for item in node.body:
                    members.update(_defined(item))
                for item in ast.walk(node):
                    if isinstance(item, ast.Attribute) and isinstance(item.ctx, ast.Store) \
                            and isinstance(item.value, ast.Name) and item.value.id == "self":
                        members.add(item.attr)
        self.anywhere.update(m for ms in self.classes.values() for m in ms)

    def members(self, cls: str, seen: frozenset[str] = frozenset()) -> set[str]:
        own = set(self.classes.get(cls, ()))
        for base in self.bases.get(cls, ()):
            if base not in seen:
                own |= self.members(base, seen | {cls})
        return own

    def problem(self, name: str) -> str | None:
        head, _, rest = name.partition(".")
        if not rest:
            return None if name in self.anywhere else "is defined nowhere"
        last = rest.split(".")[-1]
        if head in self.classes:
            return None if last in self.members(head) else f"{head} has no member {last!r}"
        if head in self.modules and head not in ("nodeforge", "nodes"):
            return None if rest.split(".")[0] in self.modules[head] else f"module {head} defines no {rest!r}"
        if name in self.anywhere:
            return None   # a dotted module path or string constant: `nodeforge.batch`, `nodeforge.nodes`
        known = any(last in members for members in self.classes.values())
        return None if known else f"no class has a member {last!r}"


def _defined(node: ast.AST) -> set[str]:
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return {node.name}
    return {t.id for target in _assigned(node) for t in ast.walk(target) if isinstance(t, ast.Name)}


def _cited_names(text: str) -> set[str]:
    names = set()
    for quoted in re.findall(r"`([^`\n]+)`", text):
        if _PATH.match(quoted) or quoted.endswith(":"):
            continue
        match = _CODE_NAME.match(quoted)
        if match is None:
            continue   # a command line or an expression: `nodeforge run FILE`, `x - sigma * v`
        if match.group(2):
            names.add(match.group(2))
            continue
        first, *alternatives = match.group(1).split("/")
        names.add(first)
        names.update(first.rsplit(".", 1)[0] + "." + alt for alt in alternatives if "." in first)
    return names


def test_every_code_name_docs_architecture_cites_exists():
    """`Workflow.find_param` must be a member of Workflow, `graph.apply_switches` a function of the
    graph module, `read_workflow` defined somewhere: a rename that leaves the page behind fails."""
    doc = ROOT / "docs" / "architecture.md"
    if not doc.is_file():
        pytest.skip("no docs here")
    cited = _cited_names(doc.read_text(encoding="utf-8")) - set(EXTERNAL_NAMES)
    assert len(cited) >= 100 and "Workflow.find_param" in cited, sorted(cited)
    files = [p for folder in ("nodeforge", "nodes", "tests") for p in sorted((ROOT / folder).rglob("*.py"))]
    index = _Index(files)
    wrong = {name: index.problem(name) for name in sorted(cited)}
    wrong = {name: why for name, why in wrong.items() if why}
    assert not wrong, "docs/architecture.md cites names that are not there: " + "; ".join(
        f"`{name}` ({why})" for name, why in wrong.items())


def test_the_name_check_catches_a_renamed_member_and_a_removed_function():
    index = _Index([ROOT / "nodeforge" / "core" / "workflow.py", ROOT / "nodeforge" / "core" / "graph.py"])
    assert index.problem("Workflow.find_param") is None and index.problem("graph.apply_switches") is None
    assert index.problem("Workflow.find_parameter") == "Workflow has no member 'find_parameter'"
    assert index.problem("graph.apply_switch") == "module graph defines no 'apply_switch'"
    assert index.problem("load_workflow_file") == "is defined nowhere"
    assert _cited_names("`Param.int/float` `@common.guarded(\"x\")` `cacheable=False` `nodeforge run FILE`") == {
        "Param.int", "Param.float", "common.guarded", "cacheable"}


def test_third_party_names_every_bundled_weight_file():
    """THIRD-PARTY.md lists every asset the wheel ships: each weights file under resources/ is named
    there, or lies in a folder it names (a demo LoRA added without its row is a licence gap)."""
    listing = ROOT / "THIRD-PARTY.md"
    if not listing.is_file():
        pytest.skip("no source tree here")
    named = re.findall(r"`(resources/[^`]+)`", listing.read_text(encoding="utf-8"))
    weights = sorted((ROOT / "resources").rglob("*.safetensors"))
    assert weights, "no bundled weights found"
    missing = [str(f.relative_to(ROOT)) for f in weights
               if not any(str(f.relative_to(ROOT)).startswith(name) for name in named)]
    assert missing == [], f"add a row to THIRD-PARTY.md for {missing}"
