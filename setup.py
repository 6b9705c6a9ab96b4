# The build: pure-Python metadata lives in pyproject.toml; this file only adds the compiled core.
#
# portalloc.compiled.COMPILED_MODULES (the one list) are compiled to C with mypyc, from the same source. The
# build never fails for want of the compiled core: without mypyc, a C compiler or a clean type check it warns
# and installs pure Python, which portalloc runs unchanged (only slower). Set PORTALLOC_PURE=1 to skip the
# compilation. Once every extension is built, build_ext writes the manifest (each source's SHA-256) that
# portalloc.compiled checks at import: an edited source runs as pure Python until the next build.
"""setup.py: mypyc-compiles portalloc's hot modules (see portalloc/compiled.py)."""

from __future__ import annotations

import json
import os
import runpy
import sys
from pathlib import Path

from setuptools import setup
from setuptools.command.build_ext import build_ext

ROOT = Path(__file__).resolve().parent
_compiled = runpy.run_path(str(ROOT / "src" / "portalloc" / "compiled.py"))
MODULES: tuple[str, ...] = _compiled["COMPILED_MODULES"]


def _warn(msg: str) -> None:
    print(f"portalloc: {msg}; installing pure Python (same results, slower)", file=sys.stderr)


def _extensions() -> list:
    if os.environ.get(_compiled["PURE_ENV"], "") not in ("", "0"):
        return []
    try:
        from mypyc.build import mypycify
    except ImportError:
        _warn("mypyc is not available")
        return []
    paths = [str(_compiled["source_path"](m, Path("src/portalloc"))) for m in MODULES]
    try:
        # Only the compiled modules must type-check here: modules they import are read for their types, and the
        # build environment lacks the command line's packages (typer, rich).
        exts = mypycify(["--follow-imports=silent", "--ignore-missing-imports", *paths], opt_level="3",
                        debug_level="0")
    except (SystemExit, Exception) as exc:  # mypyc exits on a type error
        _warn(f"mypyc could not compile the core ({exc!r})")
        return []
    for ext in exts:
        ext.optional = True              # a failing C compiler: a warning, and pure Python
    return exts


class BuildExtWithManifest(build_ext):
    """build_ext, then the manifest, written only when every extension was built."""

    def run(self) -> None:
        super().run()
        if not self.extensions:
            return
        missing = [e.name for e in self.extensions if not Path(self.get_ext_fullpath(e.name)).exists()]
        if missing:
            _warn("the C build failed for " + ", ".join(missing))
            return
        src_root = ROOT / "src" / "portalloc"
        if self.inplace:
            target = src_root
        else:
            target = Path(self.build_lib) / "portalloc"
        target.mkdir(parents=True, exist_ok=True)
        import mypy.version

        manifest = {"modules": _compiled["source_hashes"](MODULES, src_root), "mypy": mypy.version.__version__}
        (target / _compiled["BUILD_MANIFEST"]).write_text(json.dumps(manifest, indent=1) + "\n")

    def get_outputs(self) -> list[str]:
        outputs = super().get_outputs()
        if self.extensions and not self.inplace:
            outputs.append(str(Path(self.build_lib) / "portalloc" / _compiled["BUILD_MANIFEST"]))
        return outputs


setup(ext_modules=_extensions(), cmdclass={"build_ext": BuildExtWithManifest})
