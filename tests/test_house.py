# The layout rules of issue 10 ("the house"), checked on the code itself: the OS stacks are siblings over the
# OS-neutral CoreStack, each implements every hook CoreStack leaves to the OS, none compares an OS name, each
# reads only its own sysctl names, and kernels/ (the data package) imports nothing from model/ and no I/O module.
#
# Rules: these are structural checks of docs/design.md's "OS stacks" and "Profiles are data" sections; the
# behaviour of each OS is held to its sources by test_bsd.py, test_reproductions*.py and test_vectors.py.
"""The sibling stacks, their hooks, and the data-only kernels package."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from portalloc import get_profile, kernels
from portalloc.model import core
from portalloc.model.core import CoreStack
from portalloc.model.host import STACKS, stack_class

SRC = Path(core.__file__).resolve().parents[1]
OS_NAMES = {"linux", "freebsd", "openbsd", "netbsd", "macos", "xnu", "windows", "bsd"}


def _stack_classes() -> dict[str, type[CoreStack]]:
    return {key: stack_class(next(get_profile(n) for n in kernels() if get_profile(n).stack == key))
            for key in STACKS}


def _hooks() -> list[str]:
    """The methods CoreStack leaves to each OS (their body raises NotImplementedError), read from the source:
    a compiled CoreStack (portalloc/compiled.py) keeps no Python source to inspect."""
    tree = ast.parse((SRC / "model" / "core.py").read_text())
    cls = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "CoreStack")
    return [fn.name for fn in cls.body if isinstance(fn, ast.FunctionDef)
            and "raise NotImplementedError" in ast.unparse(fn)]


def test_os_stacks_are_siblings_over_corestack() -> None:
    """Linux, BSD and Windows each subclass CoreStack, and none subclasses another (no inherited OS rules)."""
    classes = _stack_classes()
    assert set(classes) == {"linux", "bsd", "windows"}
    for key, cls in classes.items():
        assert issubclass(cls, CoreStack)
        for other_key, other in classes.items():
            if other_key != key:
                assert not issubclass(cls, other), f"{cls.__name__} inherits {other.__name__}"


@pytest.mark.parametrize("key", sorted(STACKS))
def test_every_hook_is_implemented_by_each_os(key: str) -> None:
    """Every hook CoreStack leaves to the OS (sysctls, bind, listen, connect, the port query, the listener
    score, ...) is the OS's own method, not CoreStack's NotImplementedError."""
    cls = _stack_classes()[key]
    hooks = _hooks()
    assert {"sysctl_specs", "_mirror_sysctls", "bind", "listen", "tcp_connect", "usable_ports",
            "listener_score"} <= set(hooks)
    missing = [h for h in hooks if getattr(cls, h) is getattr(CoreStack, h)
               and not (key != "linux" and h == "set_bound_device")]   # SO_BINDTODEVICE is Linux's only
    assert not missing, f"{cls.__name__} leaves {missing} to CoreStack"


@pytest.mark.parametrize("module", ["core", "pcb", "bsd", "windows"])
def test_no_os_name_is_compared(module: str) -> None:
    """The shared and non-Linux stacks decide by typed data (BsdRules, registries), never by comparing a name
    of an OS."""
    tree = ast.parse((SRC / "model" / f"{module}.py").read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare):
            for part in [node.left, *node.comparators]:
                for leaf in ast.walk(part):
                    if isinstance(leaf, ast.Constant) and isinstance(leaf.value, str):
                        assert leaf.value.lower() not in OS_NAMES, f"model/{module}.py:{node.lineno}"


@pytest.mark.parametrize("name", [n for n in kernels() if get_profile(n).stack != "linux"])
def test_other_oses_read_no_linux_sysctl(name: str) -> None:
    """A BSD or Windows profile's sysctl schema has none of Linux's net.ipv4/net.ipv6/net.core names (the
    FIN_WAIT_2 orphan once read net.ipv4.tcp_fin_timeout with Linux's default)."""
    cls = stack_class(get_profile(name))
    names = set(cls.sysctl_specs(cls.__new__(cls), get_profile(name)))
    assert names and not {n for n in names if n.startswith(("net.ipv4.", "net.ipv6.", "net.core."))}


def test_kernels_package_is_data_only() -> None:
    """kernels/ imports nothing from portalloc.model and no I/O module (os, subprocess, socket, pathlib)."""
    banned = ("portalloc.model", "os", "subprocess", "socket", "pathlib", "portalloc.live")
    for path in sorted((SRC / "kernels").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for n in names:
                assert not any(n == b or n.startswith(b + ".") for b in banned), f"{path.name} imports {n}"
