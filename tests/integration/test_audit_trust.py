"""The audit log as someone who can write the store would attack it, and the head kept
elsewhere that catches them; entries shipped to syslog; `who` from the kernel's uids."""

from __future__ import annotations

import hashlib
import json
import os
import re
import socket
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from agent.state import audit
from tests.support.project import opsagent, write_project

HEAD = re.compile(r"audit log: (\d+) new entr(?:y|ies); head (\d+:[0-9a-f]{64})")


def applied(root: Path, *extra: str) -> str:
    """Apply the project once (a change each time); the head it printed."""
    (root / "sandbox").mkdir(exist_ok=True)
    (root / "sandbox" / "app.conf").write_text("changed behind our back\n")
    done = opsagent(root, "apply", "policies", "-i", "inventory.yml", "--state-dir", "state",
                    *extra)
    assert done.returncode == 0, done.stdout + done.stderr
    match = HEAD.search(done.stdout)
    assert match, done.stdout
    return match.group(2)


def project(root: Path) -> Path:
    write_project(root)
    (root / "inventory.yml").write_text(f"vars: {{sandbox: {root / 'sandbox'}}}\n"
                                        "hosts: {'@local': {}}\n")
    return root


def verify(root: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return opsagent(root, "audit", "verify", "--state-dir", "state", *extra)


def reseal(db: sqlite3.Connection) -> None:
    """What an attacker with the file does: recompute every hash, and the head."""
    prev, seq = audit.GENESIS, 0
    rows = db.execute(f"SELECT seq, {', '.join(audit.FIELDS)} FROM audit ORDER BY seq").fetchall()
    for row in rows:
        seq, digest = row[0], audit.seal(prev, audit.Entry(*row[1:]))
        db.execute("UPDATE audit SET prev = ?, hash = ? WHERE seq = ?", (prev, digest, seq))
        prev = digest
    db.execute("UPDATE audit_head SET seq = ?, hash = ?", (seq, prev))


@pytest.mark.parametrize("attack", ["drop-newest", "empty", "rewrite-all"])
def test_a_head_kept_elsewhere_catches_what_the_chain_alone_cannot(tmp_path: Path,
                                                                   attack: str) -> None:
    root = project(tmp_path)
    kept = applied(root)  # the operator keeps this head somewhere else
    newest = applied(root)
    assert int(newest.split(":")[0]) > int(kept.split(":")[0])
    assert verify(root, "--expect-head", kept).returncode == 0
    with sqlite3.connect(root / "state" / "state.db") as db:
        if attack == "drop-newest":
            db.execute("DELETE FROM audit WHERE seq >= ?", (int(kept.split(":")[0]),))
        elif attack == "empty":
            db.execute("DELETE FROM audit")
            db.execute("DELETE FROM audit_head")
        else:
            db.execute("UPDATE audit SET diff = 'nothing happened' WHERE seq = 1")
        reseal(db)
    plain = verify(root)
    assert plain.returncode == 0, plain.stdout  # a consistent forgery: the chain alone holds
    caught = verify(root, "--expect-head", kept)
    assert caught.returncode == 1
    assert re.search(r"audit: entry \d+ (of the expected head is not in the log|has hash)",
                     caught.stdout), caught.stdout


def test_every_run_publishes_its_head_as_text_json_metric_and_report(tmp_path: Path) -> None:
    root = project(tmp_path)
    head = applied(root, "--textfile-dir", str(tmp_path))
    seq = head.split(":")[0]
    prom = (tmp_path / "opsagent.prom").read_text()
    assert f"opsagent_audit_head_sequence {float(seq)}" in prom
    report = json.loads(opsagent(root, "report", "--format", "json", "--state-dir",
                                 "state").stdout)
    assert report["audit_head"] == head
    (root / "sandbox" / "app.conf").write_text("again\n")
    done = opsagent(root, "apply", "policies", "-i", "inventory.yml", "--state-dir", "state",
                    "--json")
    later = json.loads(done.stdout)["audit_head"]
    assert int(later.split(":")[0]) > int(seq)
    assert verify(root, "--expect-head", head).stdout.endswith(f"head {later}\n")


def test_audit_entries_are_shipped_to_syslog_as_they_are_kept(tmp_path: Path) -> None:
    root = project(tmp_path)
    address = str(tmp_path / "log.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
        server.bind(address)
        server.settimeout(5)
        head = applied(root, "--audit-syslog", address, "--diff")
        messages = []
        server.settimeout(0.5)
        try:
            while True:
                messages.append(server.recv(65536).decode())
        except TimeoutError:
            pass
    # <PRI>: facility authpriv (10), severity info (6)
    assert messages and all(m.startswith("<86>opsagent-audit: {") for m in messages)
    shipped = [json.loads(m.split(": ", 1)[1].rstrip("\x00")) for m in messages]
    assert f"{shipped[-1]['seq']}:{shipped[-1]['hash']}" == head
    assert [s["seq"] for s in shipped] == list(range(1, len(shipped) + 1))
    with sqlite3.connect(root / "state" / "state.db") as db:
        diff = db.execute("SELECT diff FROM audit WHERE step = 'config'").fetchone()[0]
    config = next(s for s in shipped if s["entry"]["step"] == "config")
    assert "diff" not in config["entry"] and diff  # its hash travels, not its text
    assert config["entry"]["diff_sha256"] == hashlib.sha256(diff.encode()).hexdigest()
    # a socket that is not there: the run is recorded all the same, and it says so
    (root / "sandbox" / "app.conf").write_text("x\n")
    done = opsagent(root, "apply", "policies", "-i", "inventory.yml", "--state-dir", "state",
                    "--audit-syslog", str(tmp_path / "gone.sock"))
    assert done.returncode == 0 and "audit entries not sent to syslog at" in done.stderr


def test_playbook_steps_ship_their_entries_too(tmp_path: Path) -> None:
    # before the run service, only apply set up shipping: a playbook's changes stayed local
    root = project(tmp_path)
    (root / "book.yml").write_text(
        "apiVersion: opsagent/v1\nkind: playbook\nmetadata: {name: touch}\nsteps:\n"
        "  - hosts: ['@local']\n    server.shell: {commands: ['true']}\n")
    address = str(tmp_path / "log.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
        server.bind(address)
        server.settimeout(5)
        done = opsagent(root, "run", "book.yml", "-i", "inventory.yml", "--state-dir", "state",
                        "--audit-syslog", address)
        assert done.returncode == 0, done.stdout + done.stderr
        shipped = json.loads(server.recv(65536).decode().split(": ", 1)[1].rstrip("\x00"))
    assert (shipped["seq"], shipped["entry"]["policy"], shipped["entry"]["status"]) == (
        1, "touch", "ran")


def test_who_comes_from_the_uids_not_from_the_environment(tmp_path: Path) -> None:
    root = project(tmp_path)
    env = {**os.environ, "OPSAGENT_TRIGGER": "opsagent daemon (pid 1)", "SUDO_USER": "nobody",
           "LOGNAME": "nobody", "USER": "nobody"}
    subprocess.run([sys.executable, "-m", "agent", "apply", "policies", "-i", "inventory.yml",
                    "--state-dir", "state"], cwd=root, env=env, check=True, capture_output=True)
    with sqlite3.connect(root / "state" / "state.db") as db:
        (who,) = db.execute("SELECT who FROM runs").fetchone()
    import pwd

    me = pwd.getpwuid(os.getuid()).pw_name
    assert who in (me, f"{me} (login {me})") or who.startswith(f"{me} (login ")
    assert "nobody" not in who and "daemon" not in who
    if os.getuid() != 0 or not os.access("/proc/self/loginuid", os.W_OK):
        return
    # a login session's uid (as pam_loginuid sets it) names the person behind root
    login = pwd.getpwnam("nobody").pw_uid
    script = (f"echo {login} > /proc/self/loginuid && exec {sys.executable} -m agent apply "
              "policies -i inventory.yml --state-dir state")
    if subprocess.run(["sh", "-c", script], cwd=root, env=env, capture_output=True).returncode:
        return  # loginuid already set and immutable here
    with sqlite3.connect(root / "state" / "state.db") as db:
        (who,) = db.execute("SELECT who FROM runs ORDER BY id DESC").fetchone()
    assert who == f"{me} (login nobody)"
