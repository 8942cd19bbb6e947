"""Whatever a policy file holds, the daemon stays up and keeps its last good set running."""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.integration.test_daemon import TICK, daemons, make, running, ticks  # noqa: F401 (fixture)
from tests.support.daemon import REPO, Daemon, wait_for

HOSTILE = {
    "merge-key.yml": "a: &x {b: 1}\nc:\n  <<: *x\n",
    "binary.yml": "apiVersion: opsagent/v1\nkind: tasks\nmetadata: {name: b}\ntargets: [all]\n"
                  "spec: {tasks: [{files.directory: {path: !!binary aGVsbG8=}}]}\n",
    "deep.yml": "a: " + "[" * 400 + "]" * 400 + "\n",
    "bomb.yml": "apiVersion: opsagent/v1\nkind: tasks\nmetadata: {name: j}\ntargets: [all]\n"
                "spec: {tasks: [{files.directory: {path: \"{{ 'x' * 100000 * 100000 }}\"}}]}\n",
    "nul.yml": "kind: \x00tasks\n",
    "latin1.yml": "kind: caf\xe9\n",
}


def mutations(seed: int, count: int) -> list[bytes]:
    """The good policy with random bytes flipped, cut, doubled or inserted."""
    rng = random.Random(seed)
    base = (TICK % ("1s", "0")).replace("name: tick}", "name: m}").encode()
    out = []
    for _ in range(count):
        data = bytearray(base)
        for _ in range(rng.randint(1, 6)):
            at = rng.randrange(len(data))
            action = rng.choice(["flip", "cut", "double", "insert", "random"])
            if action == "flip":
                data[at] = rng.randrange(256)
            elif action == "cut":
                del data[at:at + rng.randint(1, 20)]
            elif action == "double":
                data[at:at] = data[at:at + rng.randint(1, 40)] * rng.randint(2, 50)
            elif action == "insert":
                data[at:at] = rng.choice([b"{{", b"}}", b"{%", b"[", b"{", b"&a ", b"*a", b"<<: ",
                                          b"!!set ", b"\t", b"\n  - ", b": ", b"'", b'"'])
            else:
                data = bytearray(rng.randbytes(rng.randint(1, 400)))
        out.append(bytes(data))
    return out


def test_no_policy_file_can_take_the_daemon_down(tmp_path: Path, daemons: list[Daemon]) -> None:  # noqa: F811
    root = make(tmp_path)
    d = running(root, daemons)
    policies = root / "policies"
    rounds: list[dict[str, bytes]] = [{name: text.encode("latin-1") for name, text in HOSTILE.items()}]
    corpus = mutations(seed=12, count=24)
    rounds += [{f"m{r}-{i}.yml": data for i, data in enumerate(corpus[r * 6:(r + 1) * 6])}
               for r in range(4)]
    for files in rounds:
        for old in policies.glob("m*.yml"):
            old.unlink()
        for name, data in files.items():
            (policies / name).write_bytes(data)
        done = d.count("reload_ok") + d.count("reload_failed")
        d.signal(signal.SIGHUP)
        wait_for(lambda: d.count("reload_ok") + d.count("reload_failed") > done, timeout=120,  # noqa: B023
                 what="the reload of a hostile round")
        assert d.proc.poll() is None, d.log_path.read_text()[-2000:]
        assert d.get("/healthz")[0] == 200
    assert d.count("reload_failed") >= len(rounds)
    assert "opsagent_config_last_reload_successful 0.0" in d.get("/metrics")[1]
    before = ticks(root)
    wait_for(lambda: ticks(root) >= before + 2, what="runs from the last good set")
    for path in policies.iterdir():
        if path.name != "tick.yml":
            path.unlink()
    wait_for(lambda: "opsagent_config_last_reload_successful 1.0" in d.get("/metrics")[1],
             what="the reload once the hostile files are gone")


def test_a_daemon_started_on_broken_files_resumes_the_last_good_set(
        tmp_path: Path, daemons: list[Daemon]) -> None:  # noqa: F811
    root = make(tmp_path)
    first = Daemon(root)
    daemons.append(first)
    first.up()
    wait_for(lambda: ticks(root) >= 1, what="a first run")
    assert first.stop() == 0
    (root / "policies" / "deep.yml").write_text(HOSTILE["deep.yml"])
    second = Daemon(root)
    daemons.append(second)
    second.up()  # serving, not in a crash loop
    failed = wait_for(lambda: [e for e in second.events() if e.get("event") == "reload_failed"],
                      what="the failed start")
    assert "still running" in failed[0]["message"]
    before = ticks(root)
    wait_for(lambda: ticks(root) >= before + 1, what="a run of the set kept from before")
    assert "opsagent_config_last_reload_successful 0.0" in second.get("/metrics")[1]


def test_a_daemon_with_no_good_set_stays_up_and_says_so(tmp_path: Path, daemons: list[Daemon]) -> None:  # noqa: F811
    root = make(tmp_path)
    (root / "policies" / "tick.yml").write_text(HOSTILE["bomb.yml"])
    d = Daemon(root)
    daemons.append(d)
    d.up()
    failed = wait_for(lambda: [e for e in d.events() if e.get("event") == "reload_failed"],
                      what="the failed start")
    assert failed[0]["message"].endswith("no good policy set yet: nothing runs until the files "
                                         "are fixed")
    assert "opsagent_config_last_reload_successful 0.0" in d.get("/metrics")[1]
    (root / "policies" / "tick.yml").write_text(TICK % ("1s", "0"))
    wait_for(lambda: ticks(root) >= 1, what="a run once the file is fixed")


def test_a_locked_store_is_reported_and_the_daemon_goes_on(tmp_path: Path, daemons: list[Daemon]) -> None:  # noqa: F811
    root = make(tmp_path)
    d = running(root, daemons)
    holder = sqlite3.connect(root / "state" / "state.db", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another process holds the write lock
    try:
        status, body = wait_for(lambda: (lambda r: r if r[0] == 503 else None)(d.get("/healthz")),
                                what="/healthz to report the store")
        assert body.startswith(f"state store {root / 'state' / 'state.db'}: database is locked")
        assert "opsagent_state_store_ok 0.0" in d.get("/metrics")[1]
        time.sleep(3)
        assert d.proc.poll() is None
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    wait_for(lambda: d.get("/healthz")[0] == 200, what="/healthz once the lock is released")
    assert d.count("store_failed") == 1 and d.count("store_recovered") == 1
    before = ticks(root)
    wait_for(lambda: ticks(root) >= before + 2, what="runs after the store came back")
    assert "opsagent_state_store_ok 1.0" in d.get("/metrics")[1]


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("unshare"),
                    reason="needs root and unshare for a mount namespace of the daemon's own")
def test_a_full_disk_is_reported_and_the_daemon_goes_on(tmp_path: Path, daemons: list[Daemon]) -> None:  # noqa: F811
    root = make(tmp_path)
    state = root / "state"
    state.mkdir()
    # a 16 MB filesystem for the state dir, seen by the daemon alone: this machine is untouched
    prefix = ("unshare", "--mount", "--propagation", "private", "sh", "-c",
              'mount -t tmpfs -o size=16m opsagent-test "$0" && exec "$@"', str(state))
    d = running(root, daemons, prefix=prefix)
    inside = Path(f"/proc/{d.proc.pid}/root") / str(state).lstrip("/")
    filler = inside / "filler"
    with filler.open("wb", buffering=0) as f:  # fill the daemon's filesystem to the last byte
        for size in (65536, 1):
            with contextlib.suppress(OSError):
                while f.write(b"\0" * size):
                    pass
    try:
        status, body = wait_for(lambda: (lambda r: r if r[0] == 503 else None)(d.get("/healthz")),
                                timeout=60, what="/healthz to report the full disk")
        assert "database or disk is full" in body
        wait_for(lambda: d.count("run_failed") + sum(  # a run that could not record itself
            1 for e in d.events() if e.get("event") == "run_finished" and e["exit_code"]),
            timeout=60, what="a run that failed for the full disk")
        assert d.proc.poll() is None
    finally:
        filler.unlink()
    wait_for(lambda: d.get("/healthz")[0] == 200, timeout=60, what="/healthz once there is room")
    assert d.count("store_recovered") >= 1
    before = ticks(root)
    wait_for(lambda: ticks(root) >= before + 2, what="runs once there is room")
    # the runs refused while the disk was full, recorded by the daemon once there was room
    done = subprocess.run(["nsenter", "-t", str(d.proc.pid), "-m", sys.executable, "-m", "agent",
                           "history", "--state-dir", str(state), "--json"], cwd=REPO,
                          capture_output=True, text=True, timeout=60, check=False)
    runs = json.loads(done.stdout)
    assert any(r["failed"] and "MiB needed to record a run; nothing was run" in json.dumps(r)
               for r in runs), runs


FAKETIME = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1"


@pytest.mark.skipif(not Path(FAKETIME).exists(), reason="libfaketime (Debian: faketime) not installed")
def test_a_clock_stepped_back_does_not_delay_interval_runs(
        tmp_path: Path, daemons: list[Daemon], monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    """The daemon's wall clock (only its own, through libfaketime) jumps 6 h back."""
    root = make(tmp_path, every="2s")
    offset = tmp_path / "faketime"
    offset.write_text("+0\n")
    monkeypatch.setenv("LD_PRELOAD", FAKETIME)
    monkeypatch.setenv("FAKETIME_TIMESTAMP_FILE", str(offset))
    monkeypatch.setenv("FAKETIME_NO_CACHE", "1")
    monkeypatch.setenv("FAKETIME_DONT_FAKE_MONOTONIC", "1")
    d = Daemon(root)
    daemons.append(d)
    d.up()
    wait_for(lambda: ticks(root) >= 2, what="runs before the clock step")
    offset.write_text("-6h\n")
    time.sleep(2)
    before = ticks(root)
    wait_for(lambda: ticks(root) >= before + 2, timeout=30, what="interval runs after the step")
    stepped = [e for e in d.events() if e.get("event") == "clock_stepped"]
    assert "stepped back by 6.0 h" in stepped[0]["message"]


def test_a_reload_while_the_store_is_locked_still_counts_the_new_set(
        tmp_path: Path, daemons: list[Daemon]) -> None:  # noqa: F811
    root = make(tmp_path)
    d = running(root, daemons)
    holder = sqlite3.connect(root / "state" / "state.db", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        (root / "policies" / "tick.yml").write_text((TICK % ("1s", "0")).replace("name: tick}",
                                                                              "name: tock}"))
        wait_for(lambda: d.count("reload_ok") >= 2, what="the reload during the lock")
        time.sleep(3)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    # once the store takes writes again, compliance is about the new set
    wait_for(lambda: 'opsagent_policy_compliant{host="@local",policy="tock"} 1.0'
             in d.get("/metrics")[1], timeout=60, what="the new set's compliance")
    assert 'opsagent_policy_compliant{host="@local",policy="tick"}' not in d.get("/metrics")[1]
