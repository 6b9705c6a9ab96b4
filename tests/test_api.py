# HostAPI / SocketAPI: both backends satisfy the Protocols that trace replay and the tools program against.
#
# Rules: the structural check is mypy's (the Protocols are typed; `mypy --strict` on a module assigning a Host,
# a LiveHost and their sockets to them passes); here the runtime view (runtime_checkable: every member
# exists) is asserted on the model and, with root, on the live backend.
"""Host and LiveHost satisfy HostAPI; their sockets satisfy SocketAPI."""

from __future__ import annotations

import socket

import pytest

import portalloc
from portalloc import Host, HostAPI, ModelHostAPI, SocketAPI


def test_model_host_satisfies_the_protocols() -> None:
    """The model's Host is a HostAPI and a ModelHostAPI; its sockets (TCP and UDP, accepted ones) SocketAPIs."""
    with Host("linux-6.18") as h:
        assert isinstance(h, HostAPI) and isinstance(h, ModelHostAPI)
        lst = h.socket()
        lst.bind(("127.0.0.1", 5000))
        lst.listen(8)
        c = h.socket()
        c.connect(("127.0.0.1", 5000))
        conn, _ = lst.accept()
        for s in (lst, c, conn, h.socket(socket.AF_INET6, socket.SOCK_DGRAM)):
            assert isinstance(s, SocketAPI)
    assert {"HostAPI", "SocketAPI", "ModelHostAPI", "PortSet"} <= set(portalloc.__all__)


@pytest.mark.live
def test_live_host_satisfies_the_protocols() -> None:
    """LiveHost is a HostAPI (not a ModelHostAPI: it has no port query or simulated peers)."""
    from portalloc.live import LiveHost, LiveUnavailable

    try:
        h = LiveHost("linux-live")
    except LiveUnavailable as exc:
        pytest.skip(f"live backend unavailable: {exc}")
    with h:
        assert isinstance(h, HostAPI) and not isinstance(h, ModelHostAPI)
        s = h.socket()
        assert isinstance(s, SocketAPI)
        s.close()
