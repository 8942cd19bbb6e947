"""/metrics and /healthz on one small threaded HTTP server (standard library WSGI), and
POST /hooks/sync/POLICY when webhooks are configured (agent/daemon/hooks.py).

/healthz answers 200 only while the scheduler loop is alive (it beat within the last
`stale` seconds) and has no fault to report (such as a state store it cannot write), so
systemd or a load balancer can tell a hung or stuck daemon from a busy one.

No client can take the daemon down through the port: at most MAX_CONNECTIONS are served
at once (more are closed at once), a client that sends nothing for READ_TIMEOUT seconds
is dropped, methods other than GET and HEAD (and POST to a hook) get 405, and the
scheduler never waits for the server (it runs in threads of its own).
"""

from __future__ import annotations

import errno
import socket
import threading
import time
from collections.abc import Callable, Iterable
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CONTENT_TYPE_LATEST

from agent.daemon.hooks import PREFIX, Hooks

StartResponse = Callable[..., Any]
MAX_CONNECTIONS = 32
READ_TIMEOUT = 10.0
TEXT = ("Content-Type", "text/plain; charset=utf-8")


class ListenError(RuntimeError):
    """The address cannot be listened on (in use, not on this machine, not allowed)."""


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
        super().__init__(*args, **kwargs)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self.slots.acquire(blocking=False):  # full: refuse at once, keep serving
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self.slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.slots.release()

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that went away or timed out is not the daemon's fault


class _Server6(_Server):
    address_family = socket.AF_INET6


class _Quiet(WSGIRequestHandler):
    timeout = READ_TIMEOUT  # per socket read: a slow or silent client is dropped

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (the base's name)
        pass  # one line per scrape would drown the daemon's own log


class Heartbeat:
    def __init__(self, stale: float = 10.0) -> None:
        self.stale = stale
        self.at = time.monotonic()
        self.fault = ""  # set while the loop cannot do its work (e.g. the store is locked)

    def beat(self) -> None:
        self.at = time.monotonic()

    def alive(self) -> bool:
        return time.monotonic() - self.at < self.stale

    def problem(self) -> str:
        """Why the daemon is not healthy; empty when it is."""
        if not self.alive():
            return "scheduler loop is not running"
        return self.fault


def app(metrics: Callable[[], bytes], heartbeat: Heartbeat, hooks: Hooks | None = None
        ) -> Callable[..., Iterable[bytes]]:
    def route(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        method = environ.get("REQUEST_METHOD", "GET")
        path = environ.get("PATH_INFO", "")
        if hooks is not None and path.startswith(PREFIX):
            if method == "POST":
                answer = hooks.handle(path, environ, environ.get("REMOTE_ADDR", "?"))
                status, headers, body = answer.status, [TEXT], answer.text.encode()
            else:
                status, headers, body = "405 Method Not Allowed", [TEXT, ("Allow", "POST")], \
                    b"a hook takes POST\n"
        elif method not in ("GET", "HEAD"):
            status, headers, body = "405 Method Not Allowed", [TEXT, ("Allow", "GET, HEAD")], \
                b"only GET and HEAD\n"
        elif path == "/metrics":
            status, headers, body = "200 OK", [("Content-Type", CONTENT_TYPE_LATEST)], metrics()
        elif path == "/healthz":
            problem = heartbeat.problem()
            status = "503 Service Unavailable" if problem else "200 OK"
            headers, body = [TEXT], (problem + "\n").encode() if problem else b"ok\n"
        else:
            status, headers, body = "404 Not Found", [TEXT], b"not found: try /metrics or /healthz\n"
        start_response(status, [*headers, ("Content-Length", str(len(body)))])
        return [b"" if method == "HEAD" else body]

    return route


def serve(address: tuple[str, int], metrics: Callable[[], bytes], heartbeat: Heartbeat,
          hooks: Hooks | None = None) -> WSGIServer:
    """Start serving in a background thread; the caller shuts it down. Raises ListenError."""
    host, port = address
    server_class = _Server6 if ":" in host else _Server
    try:
        server = make_server(host, port, app(metrics, heartbeat, hooks), server_class, _Quiet)
    except OSError as e:
        where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        in_use = e.errno == errno.EADDRINUSE
        why = "the port is in use (another daemon?)" if in_use else (e.strerror or str(e))
        raise ListenError(f"cannot listen on {where}: {why}") from None
    threading.Thread(target=server.serve_forever, name="http", daemon=True).start()
    return server
