"""Runs begun and not yet recorded, so that no run goes unrecorded.

`apply` writes a row here before it touches any host; recording the finished run
removes it in the same transaction. A process killed in between (SIGKILL, OOM, a power
cut) leaves its row behind: the next process to open the store for a run records it
as an interrupted run, with an audit entry per host saying that what it changed there
is unknown. What a killed run had under way on a host is not stopped by its death
(pyinfra's remote command goes on until it ends): the entry says so.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from agent.state import audit

INTERRUPTED = ("interrupted: the run was killed before it could record its results; what it "
               "changed on this host is unknown, and an operation it had under way may have "
               "gone on after it died")


@dataclass(frozen=True)
class Begun:
    id: int
    started: float


def process_start(pid: int) -> str:
    """The process's start time in clock ticks since boot ('' if there is no such process)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    return stat.rsplit(")", 1)[1].split()[19]


def begin(db: sqlite3.Connection, command: str, who: str, check: bool, source: str,
          hosts: list[str]) -> Begun:
    """Call inside a write transaction."""
    now = time.time()
    pid = os.getpid()
    row = db.execute("INSERT INTO begun (started, command, who, check_mode, source, hosts, pid,"
                     " pid_start) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                     (now, command, who, int(check), source, json.dumps(hosts), pid,
                      process_start(pid))).lastrowid
    assert row is not None
    return Begun(row, now)


def end(db: sqlite3.Connection, begun: Begun) -> None:
    db.execute("DELETE FROM begun WHERE id = ?", (begun.id,))


def record_interrupted(db: sqlite3.Connection) -> int:
    """Record every begun run whose process is gone as an interrupted, failed run; inside
    a write transaction. Returns how many."""
    rows = db.execute("SELECT id, started, command, who, check_mode, source, hosts, pid, pid_start"
                      " FROM begun").fetchall()
    count = 0
    now = time.time()
    for id_, started, command, who, check, source, hosts, pid, pid_start in rows:
        if pid_start and process_start(pid) == pid_start:
            continue  # still running
        run_id = db.execute(
            "INSERT INTO runs (started, finished, command, who, check_mode, source, failed)"
            " VALUES (?, ?, ?, ?, ?, ?, 1)", (started, now, command, who, check, source)).lastrowid
        assert run_id is not None
        for host in json.loads(hosts):
            db.execute("INSERT INTO host_results VALUES (?, ?, 0, ?, ?)",
                       (run_id, host, INTERRUPTED, json.dumps({"failed": 1})))
            if not check:
                audit.append(db, audit.Entry(at=now, run_id=run_id, who=who, host=host, policy="",
                                             step="(the whole run)", operation="opsagent",
                                             status="interrupted", diff=""))
        db.execute("DELETE FROM begun WHERE id = ?", (id_,))
        count += 1
    return count
