"""/metrics and /healthz on one small threaded HTTP server (standard library WSGI).

/healthz answers 200 only while the scheduler loop is alive (it beat within the last
`stale` seconds), so systemd or a load balancer can tell a hung daemon from a busy one.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CONTENT_TYPE_LATEST

StartResponse = Callable[..., Any]


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True
    allow_reuse_address = True


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (the base's name)
        pass  # one line per scrape would drown the daemon's own log


class Heartbeat:
    def __init__(self, stale: float = 10.0) -> None:
        self.stale = stale
        self.at = time.monotonic()

    def beat(self) -> None:
        self.at = time.monotonic()

    def alive(self) -> bool:
        return time.monotonic() - self.at < self.stale


def app(metrics: Callable[[], bytes], heartbeat: Heartbeat) -> Callable[..., Iterable[bytes]]:
    def route(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path == "/metrics":
            body = metrics()
            start_response("200 OK", [("Content-Type", CONTENT_TYPE_LATEST),
                                      ("Content-Length", str(len(body)))])
            return [body]
        if path == "/healthz":
            ok = heartbeat.alive()
            start_response("200 OK" if ok else "503 Service Unavailable",
                           [("Content-Type", "text/plain; charset=utf-8")])
            return [b"ok\n" if ok else b"scheduler loop is not running\n"]
        start_response("404 Not Found", [("Content-Type", "text/plain; charset=utf-8")])
        return [b"not found: try /metrics or /healthz\n"]

    return route


def serve(address: tuple[str, int], metrics: Callable[[], bytes], heartbeat: Heartbeat
          ) -> WSGIServer:
    """Start serving in a background thread; the caller shuts it down."""
    server = make_server(address[0], address[1], app(metrics, heartbeat), _Server, _Quiet)
    threading.Thread(target=server.serve_forever, name="http", daemon=True).start()
    return server
