"""A real nginx (Debian's nginx-light) on loopback for deploy tests: its own prefix,
pid file and config, proxying one upstream whose file opsagent writes; and a load
generator counting what clients got through it."""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from pathlib import Path

from tests.support.daemon import free_port


def available() -> bool:
    return shutil.which("nginx") is not None or Path("/usr/sbin/nginx").exists()


class Nginx:
    def __init__(self, folder: Path, upstream: str, servers: list[str]) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.folder, self.port = folder, free_port()
        self.conf, self.pid = folder / "nginx.conf", folder / "nginx.pid"
        self.upstream_file = folder / "upstream.conf"
        self.upstream_file.write_text(f"upstream {upstream} {{\n"
                                      + "".join(f"    server {s};\n" for s in servers) + "}\n")
        temp = "".join(f"    {name}_temp_path {folder}/{name};\n"
                       for name in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
        self.conf.write_text(
            ("user root;\n" if os.geteuid() == 0 else "")
            + f"pid {self.pid};\nerror_log {folder}/error.log;\nworker_processes 2;\n"
            "events { worker_connections 256; }\n"
            f"http {{\n    access_log off;\n{temp}    include {self.upstream_file};\n"
            f"    server {{ listen 127.0.0.1:{self.port};\n"
            f"        location / {{ proxy_pass http://{upstream}; }} }}\n}}\n")
        subprocess.run([self.binary, "-c", str(self.conf), "-p", str(folder)], check=True,
                       capture_output=True)
        deadline = time.monotonic() + 10
        while not self.pid.exists() and time.monotonic() < deadline:
            time.sleep(0.05)

    @property
    def binary(self) -> str:
        return shutil.which("nginx") or "/usr/sbin/nginx"

    @property
    def command(self) -> str:
        return f"{self.binary} -c {self.conf} -p {self.folder}"

    def stop(self) -> None:
        subprocess.run([self.binary, "-c", str(self.conf), "-p", str(self.folder), "-s", "stop"],
                       capture_output=True, check=False)


class Load:
    """Requests sent one after another through nginx until stopped: status codes counted
    (0: no answer), and the version that answered."""

    def __init__(self, url: str) -> None:
        self.url, self.codes, self.versions = url, Counter[int](), Counter[str]()
        self.seen: list[tuple[float, str]] = []  # (when, version or "HTTP CODE") of each answer
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                with urllib.request.urlopen(self.url, timeout=5) as answer:
                    version = answer.read().decode()
                    self.versions[version] += 1
                    self.seen.append((time.monotonic(), version))
                    self.codes[answer.status] += 1
            except urllib.error.HTTPError as e:
                self.codes[e.code] += 1
                self.seen.append((time.monotonic(), f"HTTP {e.code}"))
            except (urllib.error.URLError, OSError):
                self.codes[0] += 1
            time.sleep(0.005)

    def stop(self) -> Counter[int]:
        self._stop.set()
        self.thread.join(10)
        return self.codes
