# Fixtures that run one test body on both backends: the pure-Python model (portalloc.Host) and the real
# kernel in a private network namespace (portalloc.live.LiveHost). The kernel is the reference: a test
# that fails on "live" is a wrong test; a test that passes on live and fails on "model" is a model bug.
#
# `make_host(**kwargs)` builds a host with the defaults of linux.md section 12 (kernel "linux-6.18",
# a fixed seed, 127.0.0.1/8 + ::1/128, ip_local_port_range 40000-40009) and closes every host it built
# at teardown. Live hosts are skipped, with the reason shown, when the backend cannot run here.
"""pytest fixtures: the backend-parametrized host factory."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

import pytest

from portalloc.constants import DEFAULT_ADDRESSES

#: Seed for the model's random choices: results are reproducible, never relied on for one port number.
#: PORTALLOC_TEST_SEED overrides it (to check that no assertion depends on a lucky seed).
SEED = int(os.environ.get("PORTALLOC_TEST_SEED", "7"))
DEFAULT_KERNEL = "linux-6.18"
DEFAULT_RANGE: tuple[int, int] = (40000, 40009)
RANGE_SYSCTL = "net.ipv4.ip_local_port_range"

BACKENDS = [
    pytest.param("model", id="model"),
    pytest.param("live", id="live", marks=pytest.mark.live),
]


class HostFactory:
    """Callable that builds hosts of one backend; ``backend`` is "model" or "live"."""

    def __init__(self, backend: str, stack: contextlib.ExitStack) -> None:
        self.backend = backend
        self._stack = stack

    @property
    def live(self) -> bool:
        return self.backend == "live"

    def __call__(
        self,
        *,
        kernel: str = DEFAULT_KERNEL,
        seed: int = SEED,
        addresses: tuple[str, ...] = DEFAULT_ADDRESSES,
        sysctls: dict[str, Any] | None = None,
        devices: tuple[str, ...] = ("lo",),
        port_range: tuple[int, int] | None = DEFAULT_RANGE,
    ) -> Any:
        """A new host. ``port_range=None`` leaves the kernel's default range; ``sysctls`` win over it."""
        all_sysctls: dict[str, Any] = {}
        if port_range is not None:
            all_sysctls[RANGE_SYSCTL] = f"{port_range[0]} {port_range[1]}"
        all_sysctls.update(sysctls or {})
        kwargs = dict(seed=seed, addresses=addresses, sysctls=all_sysctls, devices=devices)
        if self.backend == "model":
            from portalloc import Host

            return self._stack.enter_context(Host(kernel, **kwargs))
        try:
            from portalloc.live import LiveHost, LiveUnavailable
        except ImportError as exc:
            pytest.skip(f"live backend not importable: {exc}")
        try:
            return self._stack.enter_context(LiveHost(kernel, **kwargs))
        except LiveUnavailable as exc:
            pytest.skip(f"live kernel unavailable: {exc}")


@pytest.fixture(params=BACKENDS)
def make_host(request: pytest.FixtureRequest) -> Iterator[HostFactory]:
    """Factory of hosts on the parametrized backend; every host is closed at teardown."""
    with contextlib.ExitStack() as stack:
        yield HostFactory(request.param, stack)


@pytest.fixture
def model_host() -> Iterator[Any]:
    """A model-only factory (for claims too big to run on the live kernel)."""
    with contextlib.ExitStack() as stack:
        yield HostFactory("model", stack)
