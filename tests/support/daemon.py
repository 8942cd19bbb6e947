"""A real `opsagent daemon` process on a project folder, for tests."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(check: Callable[[], Any], timeout: float = 30, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


class Daemon:
    def __init__(self, root: Path, *args: str, config: str = "agent.yml",
                 prefix: tuple[str, ...] = ()) -> None:
        """prefix: a command that execs the daemon (e.g. in a mount namespace of its own)."""
        self.root = root
        self.port = free_port()
        self.log_path = root / f"daemon-{self.port}.log"
        self.log_file = self.log_path.open("w")
        self.proc = subprocess.Popen(
            [*prefix, sys.executable, "-m", "agent", "daemon", "-c", config, "--listen",
             f"127.0.0.1:{self.port}", *args],
            cwd=root, stdout=self.log_file, stderr=subprocess.STDOUT, text=True)

    def get(self, path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=10) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()
        except OSError:
            return 0, ""

    def up(self) -> None:
        wait_for(lambda: self.get("/healthz")[0] == 200, what="the daemon's /healthz")

    def events(self) -> list[dict[str, Any]]:
        lines = self.log_path.read_text().splitlines()
        return [json.loads(line) for line in lines if line.startswith("{")]

    def count(self, event: str) -> int:
        return sum(1 for e in self.events() if e.get("event") == event)

    def signal(self, signum: int) -> None:
        self.proc.send_signal(signum)

    def stop(self, timeout: float = 60) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            self.log_file.close()
        return code
