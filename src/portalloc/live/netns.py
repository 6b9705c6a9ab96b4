# Run one Python function in a fresh private network namespace and get its JSON result back.
#
# Theory: the caller stays in its own namespace; a child interpreter (sys.executable, same sys.path) first
# does what the LiveHost agent does — unshare(CLONE_NEWNET), check that /proc/self/ns/net changed, bring lo
# up (Agent.start) — then writes the requested net.* sysctls through the agent's guarded writer (it refuses
# to write outside its own namespace), imports the target ("package.module:function" or
# "/path/to/file.py:function"), calls it with the JSON arguments and prints one result line. The namespace
# is unnamed, so it dies with the child: nothing to clean up, nothing leaks into the machine's namespace.
# Rules: the child is bounded by `timeout` (then killed, by its own PID); the result must be JSON-able; an
# exception in the child comes back as NetnsError carrying the child's traceback; a machine where the
# namespace cannot be made gives portalloc.live.LiveUnavailable (the tests skip with its text). In the new
# namespace only lo exists: 127.0.0.0/8 (all of it is local on lo) and ::1 are the usable addresses.
"""run_in_private_netns(): call a function inside a new, private network namespace."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

from portalloc.live.host import LiveUnavailable

#: The marker of the child's result line on its stdout (anything else the function prints is ignored).
RESULT_MARK = "PORTALLOC-NETNS-RESULT "
_UNAVAILABLE = 3

_CHILD = r"""
import importlib, importlib.util, json, sys, traceback
spec = json.loads(sys.stdin.read())
sys.path[:0] = spec["path"]
from portalloc.live.agent import Agent
agent = Agent(sys.stdout.buffer)
try:
    agent.start()
except OSError as exc:
    print(f"cannot create a network namespace: {exc}", file=sys.stderr)
    sys.exit(3)
try:
    for name, value in spec["sysctls"]:
        agent.op_sysctl_set(name, str(value))
    where, _, func = spec["target"].rpartition(":")
    if where.endswith(".py"):
        mod_spec = importlib.util.spec_from_file_location("_portalloc_netns_target", where)
        module = importlib.util.module_from_spec(mod_spec)
        sys.modules[mod_spec.name] = module
        mod_spec.loader.exec_module(module)
    else:
        module = importlib.import_module(where)
    out = {"ok": getattr(module, func)(*spec["args"], **spec["kwargs"])}
except BaseException as exc:
    out = {"error": type(exc).__name__, "message": str(exc), "traceback": traceback.format_exc()}
sys.stdout.write("\n" + __MARK__ + json.dumps(out) + "\n")
sys.stdout.flush()
""".replace("__MARK__", repr(RESULT_MARK))


class NetnsError(RuntimeError):
    """The function raised in the namespace child (``kind``: the exception's class name)."""

    def __init__(self, kind: str, message: str, child_traceback: str) -> None:
        super().__init__(f"{kind}: {message}\n--- in the namespace child ---\n{child_traceback}")
        self.kind = kind
        self.child_traceback = child_traceback


def run_in_private_netns(target: str, *args: Any, sysctls: dict[str, Any] | None = None,
                         timeout: float = 60.0, **kwargs: Any) -> Any:
    """Call ``target(*args, **kwargs)`` in a fresh private network namespace; return its JSON result.

    ``target``: ``"package.module:function"`` or ``"/path/to/file.py:function"``. ``sysctls``: net.*
    values written in the new namespace first (in order), e.g. ``{"net.ipv4.ip_local_port_range":
    "40000 40009"}``. Arguments and the result travel as JSON. Raises :class:`LiveUnavailable` when no
    namespace can be made here, :class:`NetnsError` when the function raised, ``TimeoutError`` after
    ``timeout`` seconds (the child is killed).
    """
    if ":" not in target:
        raise ValueError(f"target must be 'module:function' or '/path/file.py:function', not {target!r}")
    spec = {"target": target, "args": list(args), "kwargs": kwargs, "path": [p for p in sys.path if p],
            "sysctls": [[k, v] for k, v in (sysctls or {}).items()]}
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(spec["path"]))
    try:
        proc = subprocess.run([sys.executable, "-c", _CHILD], input=json.dumps(spec), capture_output=True,
                              text=True, timeout=timeout, env=env, check=False)
    except subprocess.TimeoutExpired as exc:       # subprocess.run has killed the child
        raise TimeoutError(f"{target} did not finish in {timeout} s inside the namespace") from exc
    if proc.returncode == _UNAVAILABLE:
        raise LiveUnavailable(proc.stderr.strip() or "cannot create a network namespace")
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(RESULT_MARK):
            out = json.loads(line[len(RESULT_MARK):])
            if "error" in out:
                raise NetnsError(out["error"], out["message"], out["traceback"])
            return out["ok"]
    raise RuntimeError(f"the namespace child exited with status {proc.returncode} without a result:\n"
                       f"{proc.stderr[-2000:]}")
