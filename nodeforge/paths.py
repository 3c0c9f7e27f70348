"""Where the built-in folders (nodes/, workflows/, resources/) are, in a checkout or installed.

In a source checkout they sit beside the `nodeforge` package; a wheel carries them inside it as
`nodeforge/builtin/<name>` (see pyproject.toml), so the installed command finds them anywhere.
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


@lru_cache(maxsize=None)
def builtin_dir(name: str) -> Path:
    """The folder of a built-in item: "nodes", "workflows" or "resources"."""
    checkout = _PACKAGE.parent / name
    if checkout.is_dir() and (_PACKAGE.parent / "pyproject.toml").exists():
        return checkout
    return _PACKAGE / "builtin" / name
