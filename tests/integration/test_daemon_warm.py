"""The daemon's warm runs: forked from a fork server that imported opsagent once, each
run still in a process of its own, whose crash reaches neither the server nor the daemon."""

from __future__ import annotations

import os
import signal
import sqlite3
from pathlib import Path
from typing import Any

from tests.integration.test_daemon import daemons, make, ticks  # noqa: F401 (fixture)
from tests.support.daemon import Daemon, wait_for


def started(d: Daemon) -> list[dict[str, Any]]:
    return [e for e in d.events() if e.get("event") == "run_started"]


def finished(d: Daemon) -> list[dict[str, Any]]:
    return [e for e in d.events() if e.get("event") == "run_finished"]


def server_pid(d: Daemon) -> int:
    (ready,) = wait_for(lambda: [e for e in d.events() if e.get("event") == "warm_ready"],
                        what="the fork server")
    return int(ready["message"].split("pid ")[1].split(")")[0])


def whos(root: Path) -> set[str]:
    with sqlite3.connect(root / "state" / "state.db") as db:
        return {w for (w,) in db.execute("SELECT who FROM runs")}


def test_runs_are_forked_warm_and_recorded_as_cold_ones_are(tmp_path: Path,
                                                            daemons: list[Daemon]) -> None:  # noqa: F811
    root = make(tmp_path, every="1s")
    d = Daemon(root)
    daemons.append(d)
    d.up()
    server = server_pid(d)
    wait_for(lambda: sum(e["warm"] for e in started(d)) >= 3, what="three warm runs")
    warm = [e for e in started(d) if e["warm"]]
    assert server not in {e["pid"] for e in warm} and len({e["pid"] for e in warm}) == len(warm)
    wait_for(lambda: len(finished(d)) >= 4, what="four finished runs")
    assert {e["exit_code"] for e in finished(d)} == {0}
    assert ticks(root) >= 4
    (who,) = whos(root)  # a warm run is the daemon's as a cold one is
    assert who.endswith(f" via opsagent daemon (pid {d.proc.pid})"), who
    assert d.stop() == 0
    assert not os.path.exists(f"/proc/{server}")  # the server ends with the daemon


def test_a_run_killed_by_a_signal_is_a_failed_run_and_the_next_is_warm(
        tmp_path: Path, daemons: list[Daemon]) -> None:  # noqa: F811
    root = make(tmp_path, every="1s")
    policy = root / "policies" / "tick.yml"
    policy.write_text(policy.read_text().replace(
        "echo $$ >> {{ sandbox }}/ticks; sleep 0",
        "echo $$ >> {{ sandbox }}/ticks; test -e {{ sandbox }}/warm || exit 0; "
        "test -e {{ sandbox }}/crashed || "
        "{ touch {{ sandbox }}/crashed; kill -SEGV $(cut -d' ' -f6 /proc/$$/stat); sleep 5; }"))
    d = Daemon(root)
    daemons.append(d)
    d.up()
    server = server_pid(d)
    wait_for(lambda: ticks(root) >= 1, what="a first run")
    (root / "sandbox" / "warm").touch()  # the next run crashes: forked by the server
    failed = wait_for(lambda: [e for e in finished(d) if e["exit_code"] == -11],
                      what="the crashed run")[0]
    assert failed["error"] == "killed by signal 11" and failed["warm"]
    wait_for(lambda: [e for e in finished(d) if e["exit_code"] == 0 and e["seconds"] < 5],
             what="a run after the crash")
    assert started(d)[-1]["warm"] and server_pid(d) == server  # the same server goes on
    assert os.path.exists(f"/proc/{server}")


def test_a_fork_server_killed_is_replaced_and_no_run_is_lost(tmp_path: Path,
                                                             daemons: list[Daemon]) -> None:  # noqa: F811
    root = make(tmp_path, every="1s", sleep="2")
    d = Daemon(root)
    daemons.append(d)
    d.up()
    server = server_pid(d)
    wait_for(lambda: [e for e in started(d) if e["warm"]], what="a warm run")
    os.kill(server, signal.SIGKILL)
    wait_for(lambda: d.count("warm_ended"), what="the daemon to see the server end")
    wait_for(lambda: d.count("warm_ready") >= 2, timeout=40, what="a new fork server")
    wait_for(lambda: sum(e["warm"] for e in started(d)[-2:]) and finished(d)
             and finished(d)[-1]["exit_code"] == 0, timeout=40, what="warm runs again")
    ended = [e for e in d.events() if e.get("event") in ("run_finished", "run_failed")]
    assert len(ended) >= len(started(d)) - 1  # every run but the one under way was seen end
    assert d.stop() == 0


def test_warm_runs_false_starts_each_run_cold(tmp_path: Path, daemons: list[Daemon]) -> None:  # noqa: F811
    root = make(tmp_path, every="1s", extra="warm_runs: false\n")
    d = Daemon(root)
    daemons.append(d)
    d.up()
    wait_for(lambda: len(finished(d)) >= 2, what="two runs")
    assert not any(e["warm"] for e in started(d)) and not d.count("warm_ready")
