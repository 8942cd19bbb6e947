"""`opsagent warm`: one-shot commands handed to a warm server give what they give cold
(output, exit code, the audit record and who it names), a stop signal reaches them, and
only the server's own user may hand it anything."""

from __future__ import annotations

import json
import os
import pwd
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.project import SLOW, local_project, stop_midway


class Warm:
    def __init__(self, folder: Path) -> None:
        self.socket = folder / "run" / "warm.sock"
        self.log = folder / "warm.log"
        folder.mkdir()
        self.env = {k: v for k, v in os.environ.items() if k != "OPSAGENT_COLD"}
        self.env["OPSAGENT_WARM_SOCKET"] = str(self.socket)
        with self.log.open("w") as log:
            self.proc = subprocess.Popen([sys.executable, "-m", "agent", "warm", "--idle", "5m"],
                                         env=self.env, stdout=log, stderr=log)
        deadline = time.monotonic() + 60
        while "serving" not in self.log.read_text():
            assert self.proc.poll() is None and time.monotonic() < deadline, self.log.read_text()
            time.sleep(0.05)

    def served(self) -> list[str]:
        return [line for line in self.log.read_text().splitlines() if "(pid " in line
                and "exit" in line]

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=30)


@pytest.fixture
def warm(tmp_path: Path) -> Iterator[Warm]:
    server = Warm(tmp_path / "warm")
    try:
        yield server
    finally:
        server.stop()
    assert server.proc.returncode == 0 and not server.socket.exists()


def command(root: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "agent", *args], cwd=root, env=env, text=True,
                          capture_output=True, timeout=120)


def runs(state: Path) -> list[tuple[str, str]]:
    with sqlite3.connect(state / "state.db") as db:
        return db.execute("SELECT command, who FROM runs ORDER BY id").fetchall()


def test_a_command_handed_to_the_server_gives_what_it_gives_cold(
        warm: Warm, tmp_path: Path) -> None:
    root = local_project(tmp_path)
    cold_env = {**warm.env, "OPSAGENT_COLD": "1"}
    apply = ("apply", "policies", "-i", "inventory.yml", "--state-dir", "state", "--json")
    first = command(root, warm.env, *apply)
    assert first.returncode == 0, first.stderr
    assert [line.split(" (pid")[0] for line in warm.served()] == ["opsagent warm: apply"]
    cold = command(root, cold_env, *apply)
    again = command(root, warm.env, *apply)
    assert len(warm.served()) == 2  # the cold one was not handed off
    strip = [{k: v for k, v in op.items() if k != "duration"}
             for op in json.loads(cold.stdout)["hosts"][0]["ops"]]
    assert [{k: v for k, v in op.items() if k != "duration"}
            for op in json.loads(again.stdout)["hosts"][0]["ops"]] == strip
    assert (again.returncode, again.stderr) == (cold.returncode, cold.stderr)
    (first_who, cold_who, again_who) = [who for _, who in runs(root / "state")]
    assert first_who == cold_who == again_who
    # bad input: the same message, file:line:col, and exit code as cold
    (root / "policies" / "main.yml").write_text(
        "apiVersion: opsagent/v1\nkind: tasks\nmetadata: {name: x}\ntargets: [all]\n"
        "spec:\n  tasks:\n    - files.directroy: {path: /tmp/x}\n")
    bad, bad_cold = (command(root, env, "validate", "policies", "-i", "inventory.yml")
                     for env in (warm.env, cold_env))
    assert bad.returncode == bad_cold.returncode == 1
    assert bad.stderr == bad_cold.stderr and "main.yml:7:" in bad.stderr
    assert warm.served()[-1].startswith("opsagent warm: validate") and "exit 1" in warm.served()[-1]


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGTERM, 2), (signal.SIGINT, 130)],
                         ids=["SIGTERM", "SIGINT"])
def test_a_stop_signal_reaches_the_command_the_server_runs(
        warm: Warm, tmp_path: Path, signum: int, code: int) -> None:
    root = local_project(tmp_path, SLOW)
    returncode, out, err = stop_midway(root, root / "state", signum, warm.env)
    assert returncode == code, err
    assert "stopping after the operations under way; the run is recorded" in err
    (host,) = json.loads(out)["hosts"]
    assert [op["status"] for op in host["ops"]] == ["changed", "ran", "skipped"]
    assert (tmp_path / "sandbox" / "log").read_text() == "1\n"
    assert len(runs(root / "state")) == 1 and len(warm.served()) == 1


def test_the_audit_names_the_callers_login_not_the_servers(warm: Warm, tmp_path: Path) -> None:
    if os.getuid() != 0 or not os.access("/proc/self/loginuid", os.W_OK):
        pytest.skip("needs root and a writable /proc/self/loginuid (pam_loginuid's)")
    root = local_project(tmp_path)
    nobody = pwd.getpwnam("nobody").pw_uid
    script = (f"echo {nobody} > /proc/self/loginuid && exec {sys.executable} -m agent apply "
              "policies -i inventory.yml --state-dir state")
    done = subprocess.run(["sh", "-c", script], cwd=root, env=warm.env, capture_output=True,
                          text=True, timeout=120)
    if done.returncode and "loginuid" in done.stderr:
        pytest.skip("this process's loginuid is already set (immutable)")
    assert done.returncode == 0, done.stderr
    assert len(warm.served()) == 1  # the server's own loginuid is unset
    me = pwd.getpwuid(os.getuid()).pw_name
    assert runs(root / "state")[-1][1] == f"{me} (login nobody)"


def test_only_the_servers_user_reaches_it_and_the_daemon_runs_cold(
        warm: Warm, tmp_path: Path) -> None:
    assert warm.socket.stat().st_mode & 0o777 == 0o600
    assert warm.socket.parent.stat().st_mode & 0o777 == 0o700
    if os.getuid() == 0:
        nobody = pwd.getpwnam("nobody")
        probe = (f"import os, socket; os.setgid({nobody.pw_gid}); os.setuid({nobody.pw_uid}); "
                 "s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)\n"
                 f"try:\n s.connect({str(warm.socket)!r}); print('connected')\n"
                 "except PermissionError: print('refused')")
        done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                              timeout=60, check=True)
        assert done.stdout.strip() == "refused"
    # a run the daemon starts (or claims to) is not handed off: it keeps its own parent
    root = local_project(tmp_path)
    env = {**warm.env, "OPSAGENT_TRIGGER": "opsagent daemon (pid 1)"}
    done = command(root, env, "apply", "policies", "-i", "inventory.yml", "--state-dir", "state")
    assert done.returncode == 0, done.stderr
    assert warm.served() == []
    # a second server on the same socket is refused, the first keeps serving
    second = subprocess.run([sys.executable, "-m", "agent", "warm"], env=warm.env,
                            capture_output=True, text=True, timeout=120)
    assert second.returncode == 1
    assert second.stderr == f"opsagent warm: a server already answers at {warm.socket}\n"
    client = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    client.connect(str(warm.socket))
    client.close()
