"""The pack's declarations: cheap to import, names as the file format fixes them (docs/architecture.md)."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from nodeforge.core.registry import builtin_module

ROOT = Path(__file__).resolve().parents[2]


def test_importing_the_pack_leaves_torch_out():
    code = ("import sys, time; t = time.perf_counter()\n"
            "from nodeforge.core.registry import load_registry\n"
            "r = load_registry(entry_points=False)\n"
            "assert not r.failures, r.failures\n"
            "heavy = [m for m in ('torch', 'diffusers', 'transformers', 'peft', 'PIL') if m in sys.modules]\n"
            "print(len(r), heavy, time.perf_counter() - t)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    count, heavy, _ = out.stdout.split(" ", 2)
    assert heavy.startswith("[]"), out.stdout
    assert int(count) >= 11


def test_node_facts_users_rely_on(registry):
    # No copy of the node table here (issue 26): port and param names are fixed by the files that name
    # them (workflows/, the interop fixtures field by field, each node's own tests), so a rename fails
    # there; the README is checked against the declarations below. Here: what no file shows.
    assert registry.get("Preview").output_node and registry.get("SaveImage").output_node
    assert not registry.get("SaveImage").cacheable
    empty = registry.get("EmptyLatent")
    assert empty.param("width").multiple_of == 4 and empty.param("width").min == 16
    denoise = registry.get("UNetDenoise")
    # The declaration is the table (nodes/schedulers.py), dpmpp_sde included (torchsde is a dependency).
    assert list(denoise.param("sampler").choice_list()) == list(builtin_module("schedulers").SAMPLERS)
    for s in ("euler", "euler_ancestral", "heun", "dpm_2", "lms", "dpmpp_2m", "dpmpp_sde", "dpmpp_2m_sde",
              "uni_pc", "uni_pc_bh2", "ddim", "ddpm", "pndm", "lcm"):
        assert s in denoise.param("sampler").choice_list()
    assert list(denoise.param("schedule").choice_list()) == ["default", "normal", "karras", "exponential",
                                                             "sgm_uniform", "simple", "ddim_uniform", "beta"]
    assert denoise.param("sampler").default == "euler" and denoise.param("schedule").default == "default"
    assert registry.get("UNetDenoise").param("seed").max >= 2 ** 63 - 1


def test_prompt_weights_parse_like_a1111():
    from nodeforge.core.prompt_syntax import parse_weights as parse
    assert parse("a (red:1.5) circle") == [("a ", 1.0), ("red", 1.5), (" circle", 1.0)]
    assert parse("(a)") == [("a", 1.1)]
    assert parse("[a]")[0][1] == 1 / 1.1
    assert parse(r"\(literal\)") == [("(literal)", 1.0)]
    assert parse("((a))")[0][1] == 1.1 * 1.1
    assert parse("") == [("", 1.0)]


def _pack_specs(registry):
    pack = builtin_module().__name__
    return pack, [spec for spec in registry if spec.run.__module__.startswith(pack)]


def _run_module(spec) -> str:
    """The pack module holding a node's run function: "sampling", "families.sd3_nodes", "__init__"."""
    if hasattr(spec.run, "lazy_target"):
        return spec.run.lazy_target[0]
    return spec.run.__module__.removeprefix(builtin_module().__name__).removeprefix(".") or "__init__"


def test_every_lazy_run_function_of_the_pack_imports(registry):
    # The pack binds run functions by module and name so that listing stays torch-free; a renamed
    # function would only fail when a graph first runs that node. Import each one now.
    import importlib

    pack, specs = _pack_specs(registry)
    targets = {spec.type: spec.run.lazy_target for spec in specs if hasattr(spec.run, "lazy_target")}
    assert len(targets) >= len(specs) - 1, sorted({s.type for s in specs} - set(targets))
    for name, (module, function) in targets.items():
        assert callable(getattr(importlib.import_module(f"{pack}.{module}"), function, None)), (name, module, function)


def _readme_rows() -> list[tuple[set[str], str]]:
    """nodes/README.md's module table: (the modules a row names, the row's text)."""
    rows, lines = [], (ROOT / "nodes" / "README.md").read_text(encoding="utf-8").splitlines()
    table = lines[lines.index("| module | role |") + 2:]
    for line in table[:next((i for i, l in enumerate(table) if not l.startswith("|")), len(table))]:
        modules, text = line.strip("|").split("|", 1)
        # `lora.py` names a module, `families/` a folder of them: "lora", "families."
        rows.append(({m.removesuffix(".py").replace("/", ".") for m in re.findall(r"`([\w./]+)`", modules)}, text))
    return rows


def _in_row(module: str, row: set[str]) -> bool:
    return any(module == name or (name.endswith(".") and module.startswith(name)) for name in row)


def test_nodes_readme_lists_each_node_in_its_modules_row(registry):
    # The declarations are the truth (which module runs each node); the README's module table follows them.
    _, specs = _pack_specs(registry)
    types = {spec.type: _run_module(spec) for spec in specs}
    rows = _readme_rows()
    homeless = {m for m in types.values() if not any(_in_row(m, mods) for mods, _ in rows)}
    assert not homeless, f"nodes/README.md has no row for {sorted(homeless)}"
    for modules, text in rows:
        named = set(re.findall(r"\b[A-Z]\w+\b", text)) & set(types)
        declared = {t for t, m in types.items() if _in_row(m, modules)}
        assert named == declared, (f"nodes/README.md row {sorted(modules)}: names {sorted(named - declared)} not run "
                                   f"there, misses {sorted(declared - named)}")
