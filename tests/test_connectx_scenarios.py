# The connectx scenarios of issue 12, written once over "a host": a portalloc model Host, or None for the
# real kernel (then they must run inside a private network namespace: test_connectx.py starts them with
# portalloc.live.netns.run_in_private_netns). Each returns a JSON-able dict of counts, so the model's
# result and the kernel's compare with ==.
#
# Set-up assumed (model: built by model_host(); live: the sysctls given to run_in_private_netns):
# sources 127.0.0.1-127.0.0.4 on lo, destinations 127.0.0.10:80 and 127.0.0.11:80, the system port range
# given by the caller. This module has no test functions of its own (pytest collects nothing from it).
"""Scenario bodies shared by the model tests and the namespace runs (test_connectx.py)."""

from __future__ import annotations

import asyncio
import errno
import os
import select
import socket
import sys
import threading
from typing import Any

SRC_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "src")
if SRC_DIR not in sys.path:           # the namespace child imports this file by path
    sys.path.insert(0, SRC_DIR)

from portalloc.connectx import SourcePool, connectx, connectx_async  # noqa: E402

SOURCES = ["127.0.0.1", "127.0.0.2", "127.0.0.3", "127.0.0.4"]
DST1 = ("127.0.0.10", 80)
DST2 = ("127.0.0.11", 80)
#: The 10-port range of the count scenarios.
RANGE = (40000, 40009)
#: Bound on any loop that counts until exhaustion (the expected counts are 40).
LOOP_CAP = 1000


def new_socket(host: Any, kind: int = socket.SOCK_STREAM) -> Any:
    """A socket on the model host, or a real one."""
    return host.socket(socket.AF_INET, kind) if host is not None else socket.socket(socket.AF_INET, kind)


def listeners(host: Any, proto: str) -> list[Any]:
    """A TCP listener (backlog 4096) or a bound UDP socket on each destination."""
    out = []
    for dst in (DST1, DST2):
        s = new_socket(host, socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM)
        s.bind(dst)
        if proto == "tcp":
            s.listen(4096)
        out.append(s)
    return out


def _fill(dst: tuple[str, int], pool: SourcePool, proto: str, host: Any, keep: list[Any]) -> tuple[int, str]:
    """connectx to ``dst`` until it fails: the count and "ERRNAME: message"."""
    n = 0
    for _ in range(LOOP_CAP):
        try:
            keep.append(connectx(dst, pool, proto, 5.0, host=host))
        except OSError as exc:
            return n, f"{errno.errorcode.get(exc.errno or 0, exc.errno)}: {exc.strerror}"
        n += 1
    return n, "no error"


def four_tuples(socks: list[Any]) -> list[tuple[Any, ...]]:
    """(local, remote) of each connected socket."""
    return [(tuple(s.getsockname()[:2]), tuple(s.getpeername()[:2])) for s in socks]


def connectx_counts(proto: str, ports: list[int] | None = None, host: Any = None) -> dict[str, Any]:
    """4 sources x a 10-port range: connections to DST1 until exhaustion, then to DST2 on the same ports."""
    keep: list[Any] = listeners(host, proto)
    pool = SourcePool(SOURCES, ports=tuple(ports) if ports else None)     # type: ignore[arg-type]
    conns: list[Any] = []
    first, first_error = _fill(DST1, pool, proto, host, conns)
    second, second_error = _fill(DST2, pool, proto, host, conns)
    tuples = four_tuples(conns)
    ports_used = sorted({local[1] for local, _ in tuples})
    per_source = {src: sum(1 for local, _ in tuples if local[0] == src) for src in SOURCES}
    result = {"first": first, "first_error": first_error, "second": second, "second_error": second_error,
              "distinct_4tuples": len(set(tuples)), "ports": [ports_used[0], ports_used[-1], len(ports_used)],
              "per_source": per_source}
    for s in conns + keep:
        s.close()
    return result


def plain_counts(proto: str, host: Any = None) -> dict[str, Any]:
    """``create_connection(dst, source_address=(ip, 0))`` alternating DST1/DST2, per source, until it fails."""
    keep: list[Any] = listeners(host, proto)
    counts: dict[str, Any] = {}
    for src in SOURCES:
        n, error = 0, "no error"
        for i in range(LOOP_CAP):
            dst = (DST1, DST2)[i % 2]
            try:
                if host is None and proto == "tcp":
                    keep.append(socket.create_connection(dst, 5.0, source_address=(src, 0)))
                else:
                    s = new_socket(host, socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM)
                    keep.append(s)
                    s.bind((src, 0))
                    s.connect(dst)
            except OSError as exc:
                error = errno.errorcode.get(exc.errno or 0, str(exc.errno))
                break
            n += 1
        counts[src] = [n, error]
    for s in keep:
        s.close()
    return counts


def concurrent_callers(proto: str, mode: str, callers: int = 200, host: Any = None) -> dict[str, Any]:
    """``callers`` threads or asyncio tasks call connectx toward DST1 at once (capacity: 4 x the range)."""
    keep = listeners(host, proto)
    pool = SourcePool(SOURCES)
    results: list[Any] = []
    errors: list[str] = []
    lock = threading.Lock()

    def record(sock: Any, exc: BaseException | None) -> None:
        with lock:
            if exc is None:
                results.append(sock)
            else:
                errors.append(errno.errorcode.get(getattr(exc, "errno", 0) or 0, repr(exc)))

    if mode == "threads":
        start = threading.Barrier(callers, timeout=30)

        def one() -> None:
            try:
                start.wait()
                record(connectx(DST1, pool, proto, 5.0, host=host), None)
            except Exception as exc:      # recorded, counted by errno
                record(None, exc)

        threads = [threading.Thread(target=one) for _ in range(callers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
    else:
        async def main() -> None:
            async def one() -> None:
                try:
                    record(await connectx_async(DST1, pool, proto, 5.0, host=host), None)
                except Exception as exc:
                    record(None, exc)
            await asyncio.wait_for(asyncio.gather(*(one() for _ in range(callers))), 60)
        asyncio.run(main())
    tuples = four_tuples(results)
    out = {"ok": len(results), "errors": {e: errors.count(e) for e in sorted(set(errors))},
           "distinct_4tuples": len(set(tuples)), "per_source": {s: sum(1 for t in tuples if t[0][0] == s)
                                                               for s in SOURCES}}
    for s in results + keep:
        s.close()
    return out


def _receiver(host: Any, socks: list[Any], peer: Any, port: int) -> list[int]:
    """Send one datagram from ``peer`` to 127.0.0.1:``port``; which of ``socks`` received it (indexes)."""
    peer.sendto(b"probe", ("127.0.0.1", port))
    got = []
    if host is None:
        readable, _, _ = select.select(socks, [], [], 2.0)
        for i, s in enumerate(socks):
            if s in readable:
                s.recvfrom(64)
                got.append(i)
        return got
    for i, s in enumerate(socks):
        try:
            s.recvfrom(64)
            got.append(i)
        except BlockingIOError:
            pass
    return got


def overshadowing(host: Any = None) -> dict[str, Any]:
    """An unconnected UDP socket on 127.0.0.1:40000 (SO_REUSEADDR) keeps its datagrams from DST1.

    System range 40000-40001. connectx must take 40001 and then refuse (40000 would overshadow the
    unconnected socket); the naive SO_REUSEADDR + bind(40000) + connect(DST1) does overshadow it: the
    datagram DST1 sends to 127.0.0.1:40000 goes to the naive socket, not to its owner.
    """
    peer = new_socket(host, socket.SOCK_DGRAM)
    peer.bind(DST1)
    owner = new_socket(host, socket.SOCK_DGRAM)
    owner.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    owner.bind(("127.0.0.1", 40000))
    owner.setblocking(False)
    pool = SourcePool(["127.0.0.1"])
    cx = connectx(DST1, pool, "udp", host=host)
    cx.setblocking(False)
    try:
        connectx(DST1, pool, "udp", host=host)
        second = "ok"
    except OSError as exc:
        second = errno.errorcode.get(exc.errno or 0, "?")
    result: dict[str, Any] = {"connectx_port": cx.getsockname()[1], "second_connectx": second,
                              "owner_receives": _receiver(host, [owner, cx], peer, 40000) == [0]}
    naive = new_socket(host, socket.SOCK_DGRAM)
    naive.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    naive.bind(("127.0.0.1", 40000))
    naive.connect(DST1)
    naive.setblocking(False)
    result["naive_steals"] = _receiver(host, [owner, naive], peer, 40000) == [1]
    for s in (peer, owner, cx, naive):
        s.close()
    return result


def udp_lock_semantics(host: Any = None) -> dict[str, str]:
    """The kernel fact Cloudflare's lock rests on (udp_lib_lport_inuse: sharing needs sk_reuse on BOTH):
    while the first socket has SO_REUSEADDR cleared, a second SO_REUSEADDR bind to the same 2-tuple fails;
    once it is set again, the bind succeeds."""
    def try_bind() -> str:
        s = new_socket(host, socket.SOCK_DGRAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", 40000))
            return "ok"
        except OSError as exc:
            return errno.errorcode.get(exc.errno or 0, "?")
        finally:
            s.close()

    first = new_socket(host, socket.SOCK_DGRAM)
    first.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    first.bind(("127.0.0.1", 40000))
    first.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 0)
    locked = try_bind()
    first.connect(DST1)
    still_locked_connected = try_bind()
    first.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    unlocked = try_bind()
    first.close()
    return {"locked": locked, "locked_connected": still_locked_connected, "unlocked": unlocked}


def http_adapter(held: int = 40) -> dict[str, Any]:
    """requests through SourcePoolAdapter against two local HTTP/1.1 servers (real kernel only).

    ``held`` sessions each keep one connection open to 127.0.0.10:8080, then as many to 127.0.0.11:8080;
    each response names the client's source address and port as the server saw it.
    """
    import http.server

    import requests

    from portalloc.connectx.adapters import SourcePoolAdapter

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            body = f"{self.client_address[0]}:{self.client_address[1]}".encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    class Server(http.server.ThreadingHTTPServer):
        request_queue_size = 1024

    servers = [Server((ip, 8080), Handler) for ip in ("127.0.0.10", "127.0.0.11")]
    threads = [threading.Thread(target=s.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
               for s in servers]
    for t in threads:
        t.start()
    pool = SourcePool(SOURCES)
    sessions = []
    seen: dict[str, list[str]] = {}
    errors: dict[str, str] = {}
    try:
        for ip in ("127.0.0.10", "127.0.0.11"):
            seen[ip] = []
            for _ in range(held + 1):
                session = requests.Session()
                session.mount("http://", SourcePoolAdapter(pool))
                sessions.append(session)
                try:
                    seen[ip].append(session.get(f"http://{ip}:8080/", timeout=5).text)
                except requests.ConnectionError as exc:
                    errors[ip] = "EADDRNOTAVAIL" if "every TCP source and port" in str(exc) else str(exc)
                    break
            # a held connection is reused: the same session asks again from the same source port
            again = sessions[0].get("http://127.0.0.10:8080/", timeout=5).text if ip == "127.0.0.10" else None
            if again is not None:
                seen["reuse_same_port"] = [str(again == seen[ip][0])]
    finally:
        for session in sessions:
            session.close()
        for s in servers:
            s.shutdown()
            s.server_close()
    return {"ok": {ip: len(v) for ip, v in seen.items() if ip != "reuse_same_port"},
            "distinct": {ip: len(set(v)) for ip, v in seen.items() if ip != "reuse_same_port"},
            "reuse_same_port": seen["reuse_same_port"][0] == "True",
            "per_source": {src: sum(1 for v in seen["127.0.0.10"] if v.startswith(src + ":")) for src in SOURCES},
            "errors": errors}


def probe_here() -> dict[str, bool]:
    """What the capability probe finds on the running kernel."""
    from portalloc.connectx import net_for
    caps = net_for(None).capabilities()
    return {"bind_address_no_port": caps.bind_address_no_port, "local_port_range": caps.local_port_range}


def ipv6_counts() -> dict[str, Any]:
    """connectx over IPv6 (real kernel): one source ::1, 10 ports, TCP and UDP to [::1]:80 until exhausted."""
    out: dict[str, Any] = {}
    for proto, kind in (("tcp", socket.SOCK_STREAM), ("udp", socket.SOCK_DGRAM)):
        lst = socket.socket(socket.AF_INET6, kind)
        lst.bind(("::1", 80))
        if proto == "tcp":
            lst.listen(4096)
        pool = SourcePool(["::1"])
        socks: list[Any] = []
        for _ in range(LOOP_CAP):
            try:
                socks.append(connectx(("::1", 80), pool, proto))
            except OSError as exc:
                out[proto] = [len(socks), errno.errorcode.get(exc.errno or 0, "?"), len(set(four_tuples(socks)))]
                break
        for s in socks + [lst]:
            s.close()
    return out
