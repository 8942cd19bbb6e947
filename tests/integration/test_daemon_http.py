"""The daemon's HTTP port cannot take it down: floods, slow clients, a taken port, IPv6."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

from agent.daemon.http import MAX_CONNECTIONS, READ_TIMEOUT
from tests.integration.test_daemon import daemons, make, running, ticks  # noqa: F401 (fixture)
from tests.support.daemon import Daemon, free_port, wait_for

FLOOD = 300


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def test_silent_clients_are_capped_and_dropped_while_runs_go_on(
        tmp_path: Path, daemons: list[Daemon]) -> None:  # noqa: F811
    root = make(tmp_path)
    d = running(root, daemons)
    idle = open_fds(d.proc.pid)
    flood: list[socket.socket] = []
    try:
        for _ in range(FLOOD):  # each connects and sends nothing, as a slowloris client does
            s = socket.socket()
            s.settimeout(5)
            s.connect(("127.0.0.1", d.port))
            flood.append(s)
        time.sleep(1)
        assert d.proc.poll() is None
        assert open_fds(d.proc.pid) <= idle + MAX_CONNECTIONS + 8  # not one per client
        before = ticks(root)
        wait_for(lambda: ticks(root) >= before + 2, what="runs while the port is flooded")
        # once the silent clients time out, the port answers again
        wait_for(lambda: d.get("/healthz")[0] == 200, timeout=READ_TIMEOUT + 20,
                 what="/healthz after the flood timed out")
    finally:
        for s in flood:
            s.close()
    assert d.proc.poll() is None


def test_a_port_in_use_is_one_line_and_exit_1(tmp_path: Path) -> None:
    root = make(tmp_path)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run([sys.executable, "-m", "agent", "daemon", "-c", "agent.yml",
                               "--listen", f"127.0.0.1:{port}"], cwd=root, capture_output=True,
                              text=True, timeout=60, check=False)
    assert done.returncode == 1
    lines = (done.stdout + done.stderr).splitlines()
    assert len(lines) == 1 and "Traceback" not in lines[0]
    assert f"cannot listen on 127.0.0.1:{port}: the port is in use (another daemon?)" in lines[0]
    assert not (root / "sandbox").exists()  # nothing ran


def test_an_ipv6_address_is_served(tmp_path: Path, daemons: list[Daemon]) -> None:  # noqa: F811
    root = make(tmp_path, every="1h")
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "agent", "daemon", "-c", "agent.yml",
                             "--listen", f"[::1]:{port}"], cwd=root, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        def healthz() -> bytes:
            try:
                with socket.create_connection(("::1", port), timeout=2) as s:
                    s.sendall(b"GET /healthz HTTP/1.0\r\n\r\n")
                    return s.recv(1024)
            except OSError:
                return b""

        answer = wait_for(healthz, what="/healthz on [::1]")
        assert re.match(rb"HTTP/1\.0 200 OK\r\n", answer)
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0
    assert f"serving /metrics and /healthz on http://[::1]:{port}" in out
