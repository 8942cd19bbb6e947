"""The new SSH login that proves an sshd change: sshd re-executes itself on a reload and
for a moment refuses connections; that moment must not count as a lockout (and undo a
good change). A login refused for longer, or refused by authentication, still fails."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support import sshd

pytestmark = [pytest.mark.sshd, pytest.mark.skipif(not sshd.available(), reason="no sshd")]

LOGIN = """\
import json, sys
from pyinfra.api import Config, Inventory, State
from agent.engine import login
login.REFUSED_FOR = float(sys.argv[2])
data = json.loads(sys.argv[1])
inventory = Inventory(([("127.0.0.1", data)], {}))
state = State(inventory, Config())
host = inventory.get_host("127.0.0.1")
host.init(state)
print(json.dumps(login.new_login(host, ("true",))))
"""


def login(keys: sshd.Keys, port: int, key: Path, refused_for: float) -> subprocess.Popen[str]:
    data = {"ssh_port": port, "ssh_user": "root", "ssh_key": str(key),
            "ssh_known_hosts_file": str(keys.known_hosts), "ssh_config_file": "/dev/null",
            "ssh_strict_host_key_checking": "yes"}
    return subprocess.Popen([sys.executable, "-c", LOGIN, json.dumps(data), str(refused_for)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def answer(proc: subprocess.Popen[str]) -> str:
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    why: str = json.loads(out)
    return why


def test_a_login_refused_for_a_moment_is_tried_again(tmp_path: Path) -> None:
    keys = sshd.Keys.make(tmp_path / "keys")
    server = sshd.Sshd(keys, tmp_path / "sshd")
    server.dir.mkdir()
    sshd.keygen(server.dir / "host_key")  # known before it listens, as a reloaded sshd is
    kind, key = (server.dir / "host_key.pub").read_text().split()[:2]
    keys.known_hosts.write_text(f"[127.0.0.1]:{server.port} {kind} {key}\n")
    proc = login(keys, server.port, keys.client, refused_for=10)
    time.sleep(1.5)  # nothing listens yet: as while sshd re-executes itself
    server.start()
    try:
        assert answer(proc) == ""  # logged in and ran `true`
        assert answer(login(keys, server.port, keys.dir / "client_key", 10)) == ""
    finally:
        server.stop()
    gone = answer(login(keys, server.port, keys.client, refused_for=0.5))
    assert gone.startswith("ConnectError: Could not connect") and "Unable to connect" in gone


def test_a_login_the_server_turns_away_fails_at_once(tmp_path: Path) -> None:
    keys = sshd.Keys.make(tmp_path / "keys")
    server = sshd.Sshd(keys, tmp_path / "sshd").start()
    try:
        server.wait()
        sshd.keygen(tmp_path / "stranger")
        started = time.monotonic()
        why = answer(login(keys, server.port, tmp_path / "stranger", refused_for=10))
        assert why and "refused" not in why.lower()
        assert time.monotonic() - started < 8  # not tried again for REFUSED_FOR
    finally:
        server.stop()
