"""The client's side of `opsagent warm`: a signal that comes before the server has said
which child runs the command still reaches that child."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path


def test_a_signal_before_the_childs_pid_is_passed_on_once_it_comes(tmp_path: Path) -> None:
    path = tmp_path / "warm.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    listener.bind(str(path))
    listener.listen(1)
    env = {k: v for k, v in os.environ.items() if k != "OPSAGENT_COLD"}
    client = subprocess.Popen([sys.executable, "-m", "agent", "apply", "policies"], env={
        **env, "OPSAGENT_WARM_SOCKET": str(path)}, cwd=tmp_path, stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    stand_in = subprocess.Popen(["sleep", "60"])  # the "command" a server would have forked
    try:
        listener.settimeout(60)
        conn, _ = listener.accept()
        data, fds, _, _ = socket.recv_fds(conn, 1 << 20, 3)
        for fd in fds:
            os.close(fd)
        assert json.loads(data)["args"] == ["apply", "policies"]
        client.send_signal(signal.SIGINT)  # before the server answers
        time.sleep(0.5)
        assert client.poll() is None  # not ended by it: it waits for the pid
        conn.send(json.dumps({"pid": stand_in.pid}).encode())
        assert stand_in.wait(timeout=30) == -signal.SIGINT
        conn.send(json.dumps({"exit": -signal.SIGINT}).encode())
        assert client.wait(timeout=30) == -signal.SIGINT  # ended as the command was
    finally:
        stand_in.kill()
        client.kill()
        client.communicate()
        listener.close()
