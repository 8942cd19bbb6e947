"""A small app for deploy tests: releases as tarballs whose `status` file says what the
app answers (200 healthy, 500 failing), and one HTTP server per host that serves from the
host's `current` release at each request, counting the requests each version served and
exposing them at /metrics as http_requests_total{version, code} for Prometheus."""

from __future__ import annotations

import io
import tarfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


def release(dist: Path, version: str, status: int = 200) -> Path:
    dist.mkdir(parents=True, exist_ok=True)
    path = dist / f"app-{version}.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        for name, text in (("VERSION", version), ("status", str(status))):
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


class App:
    def __init__(self, current: Path) -> None:
        self.current = current
        self.served: Counter[str] = Counter()
        self.answered: Counter[tuple[str, int]] = Counter()  # (version, code) of requests to /
        self.delay = 0.0  # seconds each request to / takes more (a slow host)
        app = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                if self.path == "/metrics":
                    self._metrics()
                    return
                try:
                    version = (app.current / "VERSION").read_text()
                    code = int((app.current / "status").read_text())
                except OSError:
                    version, code = "none", 503
                app.served[version] += 1
                if self.path != "/up" and app.delay:
                    time.sleep(app.delay)
                if self.path != "/up":
                    app.answered[(version, code)] += 1
                body = version.encode()
                self.send_response(code)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _metrics(self) -> None:
                lines = ["# TYPE http_requests_total counter"] + [
                    f'http_requests_total{{version="{v}",code="{c}"}} {n}'
                    for (v, c), n in sorted(app.answered.items())]
                body = ("\n".join(lines) + "\n").encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@contextmanager
def apps(currents: dict[str, Path]) -> Iterator[dict[str, App]]:
    running = {name: App(path) for name, path in currents.items()}
    try:
        yield running
    finally:
        for app in running.values():
            app.server.shutdown()
            app.server.server_close()
