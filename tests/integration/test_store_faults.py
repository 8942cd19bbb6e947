"""A run that cannot be recorded does not start; a killed run is recorded at the next start."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.project import SLOW, local_project, opsagent

APPLY = ("apply", "policies", "-i", "inventory.yml")


def tree_digest(folder: Path) -> str:
    h = hashlib.sha256()
    for path in sorted(folder.rglob("*")) if folder.exists() else []:
        h.update(str(path).encode() + (path.read_bytes() if path.is_file() else b"/"))
    return h.hexdigest()


def damage(db_path: Path) -> None:
    with sqlite3.connect(db_path) as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    with db_path.open("r+b") as f:  # a page in the middle of the file, overwritten
        f.seek(4096 * 3)
        f.write(b"\xff" * 4096)


def test_a_damaged_store_is_found_before_any_host_changes(tmp_path: Path) -> None:
    root, state = local_project(tmp_path), tmp_path / "state"
    for _ in range(6):  # enough runs for the store to have a few pages
        assert opsagent(root, *APPLY, "--state-dir", str(state)).returncode == 0
    damage(state / "state.db")
    (state / "state.db-checked").unlink()  # as if the last full check were long ago
    (tmp_path / "sandbox" / "app.conf").write_text("edited by hand\n")
    before = tree_digest(tmp_path / "sandbox")
    done = opsagent(root, *APPLY, "--state-dir", str(state))
    assert done.returncode == 1
    assert done.stderr.startswith(f"opsagent: state store {state / 'state.db'} is damaged (")
    assert done.stderr.endswith("): move it aside or restore it from a backup; nothing was run\n")
    assert tree_digest(tmp_path / "sandbox") == before  # nothing was changed on the host
    history = opsagent(root, "history", "--state-dir", str(state))
    assert history.returncode == 1 and "Traceback" not in history.stderr
    assert history.stderr == (f"opsagent: state store {state / 'state.db'}: database disk image "
                              "is malformed\n")
    verify = opsagent(root, "audit", "verify", "--state-dir", str(state))
    assert verify.returncode == 1
    assert verify.stdout.startswith(f"audit log {state / 'state.db'}: the store is damaged (")


def test_audit_verify_of_a_missing_store_fails_and_makes_nothing(tmp_path: Path) -> None:
    state = tmp_path / "none"
    done = opsagent(tmp_path, "audit", "verify", "--state-dir", str(state))
    assert (done.returncode, done.stderr) == (1, f"opsagent audit: no state store at "
                                                 f"{state / 'state.db'}\n")
    assert not state.exists()


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("unshare"),
                    reason="needs root and unshare for a mount namespace of the run's own")
def test_a_full_disk_is_found_before_any_host_changes(tmp_path: Path) -> None:
    root, state = local_project(tmp_path), tmp_path / "state"
    state.mkdir()
    # a small filesystem for the state dir, filled, seen by this apply alone
    script = ('mount -t tmpfs -o size=16m opsagent-test "$0" && '
              'head -c 16000000 /dev/zero > "$0/filler"; exec "$@"')
    done = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", script,
                           str(state), sys.executable, "-m", "agent", *APPLY, "--state-dir",
                           str(state)], cwd=root, capture_output=True, text=True, timeout=120,
                          check=False)
    assert done.returncode == 1, done.stderr
    assert f"opsagent: state store {state / 'state.db'}: only " in done.stderr
    assert "MiB needed to record a run; nothing was run" in done.stderr
    assert not (tmp_path / "sandbox").exists()  # the policy's folder was never made


def test_a_killed_apply_is_recorded_as_interrupted_by_the_next_run(tmp_path: Path) -> None:
    root, state = local_project(tmp_path, SLOW), tmp_path / "state"
    proc = subprocess.Popen([sys.executable, "-m", "agent", *APPLY, "--state-dir", str(state)],
                            cwd=root, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    log = tmp_path / "sandbox" / "log"
    deadline = time.monotonic() + 30
    while not log.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    listed = json.loads(opsagent(root, "history", "--state-dir", str(state), "--json").stdout)
    assert listed == []  # not yet: nothing ran since
    assert opsagent(root, "plan", "policies", "-i", "inventory.yml", "--state-dir",
                    str(state)).returncode == 0
    runs = json.loads(opsagent(root, "history", "--state-dir", str(state), "--json").stdout)
    killed = runs[-1]
    assert (killed["command"], killed["failed"]) == ("apply", True)
    assert "interrupted: the run was killed before it could record its results" in json.dumps(killed)
    entries = opsagent(root, "audit", "log", "--state-dir", str(state)).stdout
    assert "@local   > (the whole run): interrupted" in entries
    assert opsagent(root, "audit", "verify", "--state-dir", str(state)).returncode == 0
