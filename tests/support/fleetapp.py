"""A small HTTP app for deploy tests on fleet hosts: a release tarball holding app.py
(standard library only), its VERSION, its MODE (healthy, failing: 5 % of requests answer
500, slow: 300 ms per request) and restart.sh [PORT] (stop the one running on that port,
default 8080, start this one there, wait until it listens). /up is its health check (200
in every mode: only the analysis can tell a failing version), /metrics its
http_requests_total{version, code}."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

APP = r'''
import random, sys, threading, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
here = Path(__file__).resolve().parent
version, mode = (here / "VERSION").read_text().strip(), (here / "MODE").read_text().strip()
counts, lock = {}, threading.Lock()
class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/metrics":
            with lock:
                lines = [f'http_requests_total{{version="{v}",code="{c}"}} {n}'
                         for (v, c), n in counts.items()]
            text = "# TYPE http_requests_total counter\n" + "\n".join(lines) + "\n"
            return self.answer(200, text.encode())
        code = 200
        if self.path != "/up":
            time.sleep(0.3 if mode == "slow" else 0.01)
            code = 500 if mode == "failing" and random.random() < 0.05 else 200
            with lock:
                counts[(version, code)] = counts.get((version, code), 0) + 1
        self.answer(code, version.encode())
    def answer(self, code, body):
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
ThreadingHTTPServer.allow_reuse_address = True
ThreadingHTTPServer(("0.0.0.0", int(sys.argv[1])), Handler).serve_forever()
'''
RESTART = r'''cd "$(dirname "$0")"
port=${1:-8080}
pid=/srv/app-$port.pid
if [ -f $pid ]; then
  old=$(cat $pid); kill "$old" 2>/dev/null
  while kill -0 "$old" 2>/dev/null; do sleep 0.05; done
fi
setsid python3 app.py "$port" > /srv/app-$port.log 2>&1 < /dev/null &
echo $! > $pid
i=0
until python3 -c "import socket; socket.create_connection(('127.0.0.1', $port), 1)" 2>/dev/null; do
  i=$((i+1)); [ $i -gt 200 ] && exit 1; sleep 0.05
done
'''


def release(dist: Path, name: str, version: str, mode: str = "healthy") -> Path:
    dist.mkdir(parents=True, exist_ok=True)
    path = dist / f"{name}-{version}.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        for member, text in (("app.py", APP), ("restart.sh", RESTART), ("VERSION", version),
                             ("MODE", mode)):
            data = text.encode()
            info = tarfile.TarInfo(member)
            info.size, info.mode = len(data), 0o755
            tar.addfile(info, io.BytesIO(data))
    return path
