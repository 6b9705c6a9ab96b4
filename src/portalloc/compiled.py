# The compiled build: which modules mypyc compiles, and whether this process runs them.
#
# Theory of operation:
# - The model's hot path (the connect search, the tables, the stack, the simulator's engine) is compiled to C by
#   mypyc when the package is built (setup.py). mypyc compiles *this same source*: there is no second
#   implementation of any rule. Compiled code checks its type annotations at run time, so a value of the wrong
#   type is a TypeError there, never a silent difference.
# - The build records each compiled module's source SHA-256 in BUILD_MANIFEST beside this file, only once every
#   extension has been built.
# - At import, before any of these modules loads, ``use_compiled_or_source()`` decides for the whole set:
#   the compiled modules run only when the manifest exists and every source still hashes as recorded, and
#   PORTALLOC_PURE is not set. Otherwise a finder makes Python load each module's .py file (all or none: the
#   compiled modules call each other directly, so a mix would run old code). An editable install whose source
#   changed since its build therefore runs the new source, pure Python, until it is rebuilt.
#
# Rules:
# - COMPILED_MODULES is the one list: setup.py compiles it and this module guards it.
# - A compiled module may be subclassed by pure-Python code only where it says so (mypyc_attr
#   allow_interpreted_subclasses): model/core.CoreStack and model/sock.Sock, which the BSD and Windows stacks extend.
"""Whether this process runs the mypyc-compiled core or pure Python, and the guard that keeps it honest."""

from __future__ import annotations

import hashlib
import importlib.abc
import importlib.machinery
import importlib.util
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

#: The modules setup.py compiles with mypyc: the simulator's hot path, and nothing that does I/O.
COMPILED_MODULES: tuple[str, ...] = (
    "portalloc.model.addr",
    "portalloc.model.core",
    "portalloc.model.siphash",
    "portalloc.model.sock",
    "portalloc.model.stack",
    "portalloc.model.tables",
    "portalloc.kernels.profile",
    "portalloc.kernels.strategies",
    "portalloc.sim.engine",
)

#: Written by the build beside this file: {"modules": {name: source sha256}, "mypy": version}.
BUILD_MANIFEST = "_compiled.json"

#: Set to 1 to run pure Python even where a compiled build is installed (differential tests, debugging).
PURE_ENV = "PORTALLOC_PURE"

_PACKAGE_ROOT = Path(__file__).resolve().parent
_state: dict[str, str] = {}


def source_path(module: str, root: Path = _PACKAGE_ROOT) -> Path:
    """The .py file of ``module`` (a name in COMPILED_MODULES) under the package root ``root``."""
    parts = module.split(".")
    return root.joinpath(*parts[1:]).with_suffix(".py")


def source_hashes(modules: Sequence[str] = COMPILED_MODULES, root: Path = _PACKAGE_ROOT) -> dict[str, str]:
    """Each module's source SHA-256, as the build records them."""
    return {m: hashlib.sha256(source_path(m, root).read_bytes()).hexdigest() for m in modules}


def stale_reason(root: Path = _PACKAGE_ROOT) -> str | None:
    """Why the compiled modules under ``root`` may not run (None: they may): no build, or a source changed."""
    manifest = root / BUILD_MANIFEST
    try:
        recorded = json.loads(manifest.read_text())["modules"]
    except (OSError, ValueError, KeyError, TypeError):
        return "no compiled build"
    try:
        now = source_hashes(root=root)
    except OSError as exc:
        return f"cannot read the source: {exc}"
    changed = sorted(m for m in COMPILED_MODULES if recorded.get(m) != now[m])
    if changed:
        return "source changed since the build: " + ", ".join(changed) + " (rebuild: pip install -e .)"
    return None


class _SourceFinder(importlib.abc.MetaPathFinder):
    """Loads the listed modules from their .py files, whatever extension modules lie beside them."""

    def __init__(self, paths: dict[str, Path]) -> None:
        self.paths = paths

    def find_spec(self, fullname: str, path: Sequence[str] | None,
                  target: ModuleType | None = None) -> importlib.machinery.ModuleSpec | None:
        where = self.paths.get(fullname)
        if where is None:
            return None
        return importlib.util.spec_from_file_location(fullname, where)


def use_compiled_or_source() -> str:
    """Decide once per process, before the compiled modules load; returns :func:`core_kind`'s answer."""
    if _state:
        return _state["kind"]
    if os.environ.get(PURE_ENV, "") not in ("", "0"):
        reason: str | None = f"{PURE_ENV} is set"
    else:
        reason = stale_reason()
    if reason is None:
        _state["kind"] = "compiled (mypyc)"
    else:
        _state["kind"] = f"pure Python ({reason})"
        loaded = [m for m in COMPILED_MODULES if m in sys.modules]
        if not loaded:
            sys.meta_path.insert(0, _SourceFinder({m: source_path(m) for m in COMPILED_MODULES}))
    return _state["kind"]


def core_kind() -> str:
    """"compiled (mypyc)", or "pure Python (why)": what runs the model in this process (read off the loaded
    modules themselves, so an install whose extension files are missing says pure Python)."""
    kind = use_compiled_or_source()
    if kind.startswith("compiled"):
        import portalloc.model.stack as probe

        if not str(probe.__file__).endswith(tuple(importlib.machinery.EXTENSION_SUFFIXES)):
            return "pure Python (no compiled modules found beside the build manifest)"
    return kind


def is_compiled() -> bool:
    """Does this process run the compiled modules?"""
    return core_kind().startswith("compiled")


if __name__ == "portalloc.compiled":       # imported by the package, first (setup.py reads the file with runpy)
    use_compiled_or_source()
