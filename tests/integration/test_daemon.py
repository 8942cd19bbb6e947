"""`opsagent daemon` as a real process converging @local (a sandbox folder) on schedules."""

from __future__ import annotations

import json
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agent.state import audit
from tests.support.daemon import Daemon, wait_for
from tests.support.project import opsagent

TICK = """\
apiVersion: opsagent/v1
kind: tasks
metadata: {name: tick}
targets: [all]
schedule: {every: %s}
spec:
  tasks:
    - name: sandbox
      files.directory: {path: "{{ sandbox }}"}
    - name: tick
      server.shell: {commands: ["echo $$ >> {{ sandbox }}/ticks; sleep %s"]}
"""


def make(root: Path, every: str = "1s", sleep: str = "0", extra: str = "") -> Path:
    (root / "policies").mkdir(parents=True)
    (root / "templates").mkdir()
    (root / "policies" / "tick.yml").write_text(TICK % (every, sleep))
    (root / "inventory.yml").write_text(f"vars: {{sandbox: {root / 'sandbox'}}}\n"
                                        "hosts: {'@local': {}}\n")
    (root / "agent.yml").write_text("policies: [policies]\ninventory: inventory.yml\n"
                                    f"state_dir: state\nlog_format: json\n{extra}")
    return root


def ticks(root: Path) -> int:
    path = root / "sandbox" / "ticks"
    return len(path.read_text().splitlines()) if path.exists() else 0


def running(root: Path, daemons: list[Daemon], *args: str, **options: Any) -> Daemon:
    """A daemon on the project at root, up, after its first run; stopped after the test."""
    d = Daemon(root, *args, **options)
    daemons.append(d)
    d.up()
    wait_for(lambda: ticks(root) >= 1, what="a first run")
    return d


@pytest.fixture
def daemons() -> Iterator[list[Daemon]]:
    started: list[Daemon] = []
    yield started
    for d in started:
        d.stop()


def test_runs_on_schedule_and_serves_metrics_and_health(tmp_path: Path, daemons: list[Daemon]) -> None:
    root = make(tmp_path)
    d = Daemon(root)
    daemons.append(d)
    d.up()
    wait_for(lambda: ticks(root) >= 3, what="three scheduled runs")
    status, text = d.get("/metrics")
    assert status == 200
    assert 'opsagent_policy_compliant{host="@local",policy="tick"} 1.0' in text
    assert "opsagent_config_last_reload_successful 1.0" in text
    if shutil.which("promtool"):
        check = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True,
                               text=True, check=False)
        assert (check.returncode, check.stdout + check.stderr) == (0, "")
    assert d.get("/nope")[0] == 404
    shown = opsagent(root, "status", "--state-dir", "state").stdout.splitlines()
    assert re.fullmatch(rf"daemon: running, pid {d.proc.pid} \(opsagent daemon, since [\d:]+\)",
                        shown[0])
    assert shown[1].split() == ["policy", "host", "last", "run", "result", "compliant", "drift",
                                 "next", "run"]
    row = shown[2].split()
    assert row[:2] == ["tick", "@local"] and row[4:7] == ["success", "yes", "0"]
    assert len(row) == 9 and row[7] != "-"  # the daemon's next run is shown
    finished = [e for e in d.events() if e.get("event") == "run_finished"]
    assert finished and all(e["exit_code"] == 0 for e in finished)
    # each run's log line publishes the audit head, for the journal to keep off the store
    assert all(re.fullmatch(r"\d+:[0-9a-f]{64}", e["audit_head"]) for e in finished)
    assert d.stop() == 0
    assert d.get("/healthz")[0] == 0  # stopped listening
    after = opsagent(root, "status", "--state-dir", "state").stdout.splitlines()
    assert after[0] == "daemon: not running" and after[2].split()[-1] == "-"
    with sqlite3.connect(root / "state" / "state.db") as db:
        whos = {w for (w,) in db.execute("SELECT who FROM runs")}
    assert len(whos) == 1 and re.fullmatch(r".+ via opsagent daemon \(pid \d+\)", whos.pop())


def test_a_broken_edit_is_reported_and_the_last_good_set_keeps_running(
        tmp_path: Path, daemons: list[Daemon]) -> None:
    root = make(tmp_path)
    d = Daemon(root)
    daemons.append(d)
    d.up()
    wait_for(lambda: ticks(root) >= 1, what="a first run")
    policy = root / "policies" / "tick.yml"
    policy.write_text(policy.read_text().replace("every: 1s", "every: 1s, splay: soon"))
    d.signal(signal.SIGHUP)
    wait_for(lambda: d.count("reload_failed") >= 1, what="the failed reload")
    problems = [e["message"] for e in d.events() if e.get("event") == "reload_problem"]
    assert problems[0] == (f"reload (SIGHUP): {policy}:5:30: tasks 'tick' > schedule.splay: "
                           "expected a duration like 90s, 5m, 1h or 1d, got 'soon'")
    assert "opsagent_config_last_reload_successful 0.0" in d.get("/metrics")[1]
    before = ticks(root)
    wait_for(lambda: ticks(root) >= before + 2, what="runs from the last good set")
    # a fixed file is picked up without a signal, by its changed size and time
    policy.write_text((TICK % ("1s", "0")).replace("name: tick}", "name: tock}"))
    wait_for(lambda: d.count("reload_ok") >= 2, what="the reload after the fix")
    assert "opsagent_config_last_reload_successful 1.0" in d.get("/metrics")[1]
    wait_for(lambda: 'policy="tock"' in d.get("/metrics")[1], what="a run of the new policy")


def test_a_policy_runs_its_included_tasks_and_an_edit_there_is_a_reload(
        tmp_path: Path, daemons: list[Daemon]) -> None:
    root = make(tmp_path)
    policy = root / "policies" / "tick.yml"
    head, tasks = policy.read_text().split("  tasks:\n")
    policy.write_text(head + "  tasks:\n    - include: common/tick.yml\n      vars: {mark: a}\n")
    (root / "policies" / "common").mkdir()
    shared = root / "policies" / "common" / "tick.yml"
    shared.write_text(tasks.replace("      ", "  ").replace("    - ", "- ").replace(
        "echo $$", "echo {{ mark }}"))
    d = running(root, daemons)
    assert (root / "sandbox" / "ticks").read_text().splitlines()[0] == "a"
    shared.write_text(shared.read_text().replace("{{ mark }}", "{{ mrak }}"))
    wait_for(lambda: d.count("reload_failed") >= 1, what="the failed reload")
    problems = [e["message"] for e in d.events() if e.get("event") == "reload_problem"]
    assert problems[0].startswith(f"reload (files changed): {policy}:8 → {shared}:4:29: ")
    assert problems[0].endswith("undefined variable 'mrak'")
    before = ticks(root)
    wait_for(lambda: ticks(root) >= before + 1, what="runs from the last good set")


def test_a_second_daemon_on_the_same_state_dir_is_refused(tmp_path: Path, daemons: list[Daemon]) -> None:
    root = make(tmp_path, every="1h")
    first = Daemon(root)
    daemons.append(first)
    first.up()
    second = Daemon(root)
    code = second.proc.wait(30)
    second.log_file.close()
    assert code == 1
    text = second.log_path.read_text()
    assert re.fullmatch(rf"opsagent: another opsagent daemon is using {root / 'state'}: pid "
                        rf"{first.proc.pid} \(opsagent daemon, since \d\d:\d\d:\d\d\)\n", text), text
    # a killed daemon's lock is free at once: the next one starts
    first.proc.kill()
    first.proc.wait()
    third = Daemon(root)
    daemons.append(third)
    third.up()


def test_sigterm_lets_the_running_operation_end_and_exits_0(tmp_path: Path, daemons: list[Daemon]) -> None:
    root = make(tmp_path, every="1h", sleep="3")
    d = Daemon(root)
    daemons.append(d)
    d.up()
    wait_for(lambda: ticks(root) == 1, what="the run to begin its command")
    started = time.monotonic()
    assert d.stop() == 0
    assert time.monotonic() - started < 15
    (finished,) = [e for e in d.events() if e.get("event") == "run_finished"]
    assert finished["exit_code"] == 0  # the command under way was let finish
    assert d.events()[-1]["event"] == "stopped"


def test_a_run_past_its_timeout_is_stopped_and_reported(tmp_path: Path, daemons: list[Daemon]) -> None:
    root = make(tmp_path, every="1h", sleep="60")
    policy = root / "policies" / "tick.yml"
    policy.write_text(policy.read_text().replace("every: 1h", "every: 1h, timeout: 2s"))
    d = Daemon(root)
    daemons.append(d)
    d.up()
    event = wait_for(lambda: [e for e in d.events() if e.get("event") == "run_failed" or
                              (e.get("event") == "run_finished" and e["exit_code"])],
                     timeout=40, what="the timed-out run")[0]
    assert "timed out after 2 s" in event["message"]
    text = d.get("/metrics")[1]
    assert 'opsagent_last_run_success{host="@local",policy="tick"} 0.0' in text


def test_one_shot_apply_waits_for_the_daemon_and_names_it(tmp_path: Path, daemons: list[Daemon]) -> None:
    root = make(tmp_path, every="1h", sleep="20")
    d = Daemon(root)
    daemons.append(d)
    d.up()
    wait_for(lambda: ticks(root) == 1, what="the daemon's run")
    done = opsagent(root, "apply", "policies", "-i", "inventory.yml", "--state-dir", "state",
                    "--lock-wait", "1")
    assert done.returncode == 1
    assert re.fullmatch(r"opsagent: host @local is being converged by pid \d+ \(opsagent apply, "
                        r"since \d\d:\d\d:\d\d\) in state; gave up after waiting 1 s\n", done.stderr)
    assert ticks(root) == 1


def test_a_missed_run_happens_once_after_downtime(tmp_path: Path, daemons: list[Daemon]) -> None:
    root = make(tmp_path, every="1h")
    assert opsagent(root, "apply", "policies", "-i", "inventory.yml", "--state-dir", "state"
                    ).returncode == 0
    with sqlite3.connect(root / "state" / "state.db") as db:  # as if the last run was 10 h ago
        db.execute("UPDATE latest SET finished = finished - 36000")
    d = Daemon(root)
    daemons.append(d)
    d.up()
    wait_for(lambda: ticks(root) == 2, what="the made-up run")
    time.sleep(3)
    assert ticks(root) == 2  # once, not once per missed slot


def test_sigkill_at_any_moment_leaves_a_sound_store(tmp_path: Path) -> None:
    root = make(tmp_path, every="1s")
    for delay in (0.3, 0.9, 1.7, 2.6, 3.1):
        d = Daemon(root)
        time.sleep(delay)
        d.proc.kill()
        d.proc.wait()
        d.log_file.close()
        subprocess.run(["pkill", "-KILL", "-f", f"--state-dir {root / 'state'}"], check=False)
    with sqlite3.connect(root / "state" / "state.db") as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert audit.verify(db)[1] == []
        orphans = db.execute("SELECT count(*) FROM host_results WHERE run_id NOT IN"
                             " (SELECT id FROM runs)").fetchone()
        assert orphans == (0,)
    done = subprocess.run([sys.executable, "-m", "agent", "history", "--state-dir", "state", "--json"],
                          cwd=root, capture_output=True, text=True, check=True)
    assert len(json.loads(done.stdout)) >= 1


def test_a_one_off_plan_of_another_policy_does_not_count_for_compliance(
        tmp_path: Path, daemons: list[Daemon]) -> None:
    root = make(tmp_path, every="1h")
    d = Daemon(root)
    daemons.append(d)
    d.up()
    wait_for(lambda: ticks(root) >= 1, what="the daemon's run")
    other = root / "other"
    other.mkdir()
    (other / "drift.yml").write_text(
        "apiVersion: opsagent/v1\nkind: tasks\nmetadata: {name: trial}\ntargets: [all]\n"
        f"spec:\n  tasks:\n    - files.directory: {{path: {root / 'nowhere'}}}\n")
    done = opsagent(root, "plan", "other", "-i", "inventory.yml", "--state-dir", "state")
    assert done.returncode == 0, done.stderr
    metrics = d.get("/metrics")[1]
    assert 'opsagent_policy_compliant{host="@local",policy="tick"} 1.0' in metrics
    # compliance is about the set in force (operation counters still count what ran)
    for family in ("opsagent_policy_compliant", "opsagent_policy_drift_operations"):
        assert f'{family}{{host="@local",policy="trial"}}' not in metrics
    assert 'opsagent_policy_info{kind="tasks",mode="enforce",policy="trial"}' not in metrics
    status = opsagent(root, "status", "--state-dir", "state").stdout
    assert "tick" in status and "trial" not in status
    history = opsagent(root, "history", "--state-dir", "state").stdout
    assert "plan" in history  # the one-off run is still in history
