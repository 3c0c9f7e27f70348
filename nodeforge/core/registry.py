"""The registry of node types and the loading of node packs.

A node pack is a Python package (a folder with `__init__.py`) or module whose top level defines
`NODES`: a sequence of NodeSpec. Packs come from the built-in `nodes/` folder, every folder in
NODEFORGE_NODE_PATH (each sub-folder of it is a pack, or the folder itself if it is one), and the
entry-point group `nodeforge.nodes`. A pack that fails to import is reported by name and the
others still load. Importing a pack must be cheap: heavy libraries (torch, diffusers) are
imported inside `run` functions, so listing and validating never load them.
"""
from __future__ import annotations

import importlib
import importlib.util
import os
import re
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

from nodeforge.core.spec import NodeSpec
from nodeforge.paths import builtin_dir

ENTRY_POINT_GROUP = "nodeforge.nodes"


@dataclass(frozen=True)
class PackFailure:
    """A pack that could not be loaded, with the reason the user sees."""

    pack: str
    source: str
    message: str
    detail: str = ""

    def __str__(self) -> str:
        return f"node pack {self.pack!r} ({self.source}) failed to load: {self.message}"


class DuplicateNodeType(ValueError):
    pass


class Registry:
    """Node types by name. Iteration order is registration order."""

    def __init__(self, specs: Iterable[NodeSpec] = ()) -> None:
        self._specs: dict[str, NodeSpec] = {}
        self.failures: list[PackFailure] = []
        self.packs: list[str] = []
        for spec in specs:
            self.register(spec)

    def register(self, spec: NodeSpec, *, replace: bool = False) -> None:
        if spec.type in self._specs and not replace:
            other = self._specs[spec.type].pack or "?"
            raise DuplicateNodeType(f"node type {spec.type!r} is defined by packs {other!r} and {spec.pack!r}")
        self._specs[spec.type] = spec

    def get(self, type_name: str) -> NodeSpec | None:
        return self._specs.get(type_name)

    def __getitem__(self, type_name: str) -> NodeSpec:
        return self._specs[type_name]

    def __contains__(self, type_name: object) -> bool:
        return type_name in self._specs

    def __iter__(self) -> Iterator[NodeSpec]:
        return iter(self._specs.values())

    def __len__(self) -> int:
        return len(self._specs)

    def types(self) -> list[str]:
        return list(self._specs)

    def categories(self) -> dict[str, list[NodeSpec]]:
        out: dict[str, list[NodeSpec]] = {}
        for spec in self._specs.values():
            out.setdefault(spec.category, []).append(spec)
        return out

    # -- packs ----------------------------------------------------------------------------------
    def add_pack_module(self, module: object, pack: str, source: str) -> None:
        nodes = getattr(module, "NODES", None)
        if nodes is None:
            raise ImportError("the pack defines no NODES list")
        # All or nothing: a pack that fails registers none of its nodes.
        nodes = list(nodes)
        seen: set[str] = set()
        for spec in nodes:
            if not isinstance(spec, NodeSpec):
                raise TypeError(f"NODES holds {type(spec).__name__}, not NodeSpec")
            if spec.type in self._specs or spec.type in seen:
                other = self._specs[spec.type].pack if spec.type in self._specs else pack
                raise DuplicateNodeType(f"node type {spec.type!r} is defined by packs {other or '?'!r} and {pack!r}")
            seen.add(spec.type)
        for spec in nodes:
            object.__setattr__(spec, "pack", spec.pack or pack)
            self.register(spec)
        self.packs.append(pack)

    def load_folder_pack(self, folder: Path) -> None:
        """Import a pack from a folder (package) or a single .py file, recording any failure."""
        folder = Path(folder)
        pack = folder.stem
        try:
            module = _import_path(folder)
            self.add_pack_module(module, pack, str(folder))
        except KeyboardInterrupt:
            raise
        except BaseException as exc:  # a broken pack (even sys.exit() in it) must not stop the others
            self.failures.append(_failure(pack, str(folder), exc))

    def load_search_path(self, folder: Path) -> None:
        """A NODEFORGE_NODE_PATH entry: a pack itself, or a folder of packs."""
        folder = Path(folder)
        if not folder.exists():
            self.failures.append(PackFailure(folder.name, str(folder), "folder does not exist"))
            return
        if (folder / "__init__.py").exists() or folder.suffix == ".py":
            self.load_folder_pack(folder)
            return
        for child in sorted(folder.iterdir()):
            if child.name.startswith((".", "_")):
                continue
            if (child.is_dir() and (child / "__init__.py").exists()) or child.suffix == ".py":
                self.load_folder_pack(child)

    def load_entry_points(self) -> None:
        from importlib.metadata import entry_points

        for ep in entry_points(group=ENTRY_POINT_GROUP):
            try:
                module = ep.load()
                self.add_pack_module(module, ep.name, f"entry point {ep.value}")
            except KeyboardInterrupt:
                raise
            except BaseException as exc:
                self.failures.append(_failure(ep.name, f"entry point {ep.value}", exc))


def _failure(pack: str, source: str, exc: BaseException) -> PackFailure:
    """A pack's import error as one line; SystemExit says the pack tried to end the program."""
    if isinstance(exc, SystemExit):
        message = f"the pack called sys.exit({exc.code!r}) while importing"
    else:
        message = f"{type(exc).__name__}: {exc}"
    return PackFailure(pack, source, message, traceback.format_exc())


def _import_path(path: Path) -> object:
    """Import a package folder or a .py file under a private, unique module name."""
    safe = re.sub(r"\W", "_", path.stem)
    name = f"nodeforge_packs.{safe}"
    if name in sys.modules:
        return sys.modules[name]
    if "nodeforge_packs" not in sys.modules:
        import types

        namespace = types.ModuleType("nodeforge_packs")
        namespace.__path__ = []  # type: ignore[attr-defined]
        sys.modules["nodeforge_packs"] = namespace
    if path.is_dir():
        spec = importlib.util.spec_from_file_location(name, path / "__init__.py",
                                                      submodule_search_locations=[str(path)])
    else:
        spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return module


def load_registry(*, builtin: bool = True, node_path: Iterable[Path] | None = None,
                  entry_points: bool = True) -> Registry:
    """A registry with the built-in pack, NODEFORGE_NODE_PATH packs and entry-point packs."""
    registry = Registry()
    if builtin:
        folder = builtin_dir("nodes")
        if folder.is_dir():
            registry.load_folder_pack(folder)
    if node_path is None:
        node_path = [Path(p) for p in os.environ.get("NODEFORGE_NODE_PATH", "").split(os.pathsep) if p.strip()]
    for folder in node_path:
        registry.load_search_path(folder)
    if entry_points:
        registry.load_entry_points()
    return registry


_default: Registry | None = None


def default_registry() -> Registry:
    """The process-wide registry, loaded on first use."""
    global _default
    if _default is None:
        _default = load_registry()
    return _default


def reset_default_registry() -> None:
    global _default
    _default = None


def builtin_module(submodule: str = "") -> object:
    """A module of the built-in pack, imported under the name the registry gives it.

    Tests and tools use this instead of `import nodes...` so that there is one copy of the
    pack's module state (its model cache) in the process.
    """
    name = "nodeforge_packs.nodes"
    if name not in sys.modules:
        _import_path(builtin_dir("nodes"))
    return importlib.import_module(f"{name}.{submodule}" if submodule else name)
