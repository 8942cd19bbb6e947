"""The state store: one SQLite file (WAL) with runs, per-host and per-operation results,
and the hash-chained audit log of every change.

One writer at a time (SQLite's own lock, waited on for `busy_timeout`); every run is
written in one transaction, so a process killed at any moment leaves either the whole
run or none of it. `synchronous=FULL` makes a committed run survive a power cut too.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.core.results import RunResult, Status
from agent.core.secrets import scrub
from agent.state import audit, begun, summary
from agent.state.actor import who
from agent.state.errors import StateError as StateError  # re-exported: raised to callers
from agent.state.evidence import Proof, line
from agent.state.private import open_private, private_dir
from agent.state.schema import VERSION, migrate
from agent.state.ship import Syslog

MIN_FREE = 8 * 1024 * 1024  # bytes the store's filesystem must have before a run begins
CHECK_EVERY = 600.0  # seconds between full checks of the store before runs (0.8 s per 300 MB)


def default_dir() -> Path:
    """`--state-dir`, else OPSAGENT_STATE_DIR, else /var/lib/opsagent (root) or ~/.local/state."""
    if os.environ.get("OPSAGENT_STATE_DIR"):
        return Path(os.environ["OPSAGENT_STATE_DIR"])
    if os.geteuid() == 0:
        return Path("/var/lib/opsagent")
    return Path.home() / ".local" / "state" / "opsagent"


def state_dir(given: Path | None) -> Path:
    return given or default_dir()


@dataclass
class RunRow:
    id: int
    started: float
    finished: float
    command: str
    who: str
    check_mode: bool
    source: str
    failed: bool


@dataclass
class StatusRow:
    policy: str
    host: str
    finished: float
    result: str
    compliant: bool
    drift: int
    error: str
    next_run: float | None


def merge(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """New facts over old ones; mappings (e.g. checks by name) merged key by key."""
    merged = dict(old)
    for key, value in new.items():
        if isinstance(value, dict) and isinstance(old.get(key), dict):
            merged[key] = {**old[key], **value}
        else:
            merged[key] = value
    return merged


class Store:
    def __init__(self, directory: Path, busy_timeout: float = 30.0) -> None:
        """busy_timeout: how long a write waits for another process's write lock."""
        self.path = directory / "state.db"
        self.ship: Syslog | None = None  # where audit entries are also sent as they are kept
        try:
            private_dir(directory)
            for name in ("state.db", "state.db-wal", "state.db-shm"):  # 0600, not SQLite's 0644
                if name == "state.db" or (directory / name).exists():
                    os.close(open_private(directory / name, os.O_RDWR | os.O_CREAT))
            self.db = sqlite3.connect(self.path, timeout=busy_timeout, isolation_level=None)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=FULL")
            self.db.execute("PRAGMA foreign_keys=ON")
            self._migrate()
        except (OSError, sqlite3.Error) as e:
            raise StateError(f"state store {self.path}: {e}") from e

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, kind: object, error: BaseException | None, tb: object) -> None:
        self.close()
        if isinstance(error, sqlite3.Error):  # said with the file's name, not as a traceback
            raise StateError(f"state store {self.path}: {error}") from error

    def damage(self) -> str:
        """What SQLite's quick_check finds wrong, in one line; '' if nothing."""
        found = [str(r[0]) for r in self.db.execute("PRAGMA quick_check")]
        return "" if found == ["ok"] else " ".join(" ".join(found[:3]).split())

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        self.db.execute("BEGIN IMMEDIATE")  # take the write lock now: the audit head is read
        try:
            yield self.db
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    def _migrate(self) -> None:
        if self.db.execute("PRAGMA user_version").fetchone()[0] == VERSION:
            return  # the usual case: no write lock needed just to open the store
        with self.transaction() as db:  # re-read under the lock: another process may have begun
            version = db.execute("PRAGMA user_version").fetchone()[0]
            if version > VERSION:
                raise StateError(f"state store {self.path} was written by a newer opsagent"
                                 f" (schema {version}, this one knows {VERSION})")
            migrate(db, version)

    def probe(self) -> None:
        """Can a run be recorded now? Takes the write lock and lets it go, and checks the
        free space; raises StateError (the daemon's health check)."""
        try:
            self._check_room()
            with self.transaction():
                pass
        except (OSError, sqlite3.Error) as e:
            raise StateError(f"state store {self.path}: {e}") from e

    def _check_room(self) -> None:
        room = os.statvfs(self.path.parent)
        free = room.f_bavail * room.f_frsize
        if free < MIN_FREE:
            raise StateError(f"state store {self.path}: only {free // 1024} KiB free on its "
                             f"filesystem, {MIN_FREE // 1048576} MiB needed to record a run")

    def begin(self, command: str, source: str, hosts: list[str], check: bool,
              asked_by: str = "") -> begun.Begun:
        """Before a run touches any host: refuse if the store is damaged (checked at most
        every CHECK_EVERY seconds) or its disk nearly full (raises StateError), record runs
        an earlier process left unrecorded as interrupted, and note this one as begun
        (asked_by: as in record)."""
        try:
            stamp = self.path.with_name("state.db-checked")  # quick_check reads the whole file
            if not stamp.exists() or time.time() - stamp.stat().st_mtime > CHECK_EVERY:
                damaged = self.damage()
                if damaged:
                    raise StateError(f"state store {self.path} is damaged ({damaged}): move it "
                                     "aside or restore it from a backup; nothing was run")
                stamp.touch(mode=0o600)
                os.utime(stamp)
            try:
                self._check_room()
            except StateError as e:
                raise StateError(f"{e}; nothing was run") from None
            with self.transaction() as db:
                begun.record_interrupted(db)
                return begun.begin(db, command, who(asked_by), check, source, hosts)
        except (OSError, sqlite3.Error) as e:
            raise StateError(f"state store {self.path}: {e}; nothing was run") from e

    def record(self, result: RunResult, *, command: str, source: str,
               started: float | None = None, modes: dict[str, str] | None = None,
               facts: dict[tuple[str, str], dict[str, Any]] | None = None,
               begun_as: begun.Begun | None = None,
               evidence: dict[tuple[str, str], Proof] | None = None, asked_by: str = "") -> int:
        """Store a finished run, append an audit entry for each change it made or tried
        (changed, ran, failed), and update
        the summaries (modes: each policy's enforce | audit, for the summaries; facts:
        what kinds observed per policy and host, merged into what was known; begun_as:
        what begin() returned, replaced by this record; evidence: per policy and host,
        what to seal into the audit log, one entry each; asked_by: the person whose request
        to another process this run carries out, said after this process's own user).
        Every text is scrubbed of the secrets resolved in this process."""
        mask = scrub
        finished = time.time()
        if begun_as is not None:
            started = begun_as.started
        first = started if started is not None else finished - result.duration
        actor = who(asked_by)
        sealed: list[tuple[int, str, str, audit.Entry]] = []
        with self.transaction() as db:
            if begun_as is not None:
                begun.end(db, begun_as)
            run_id = db.execute(
                "INSERT INTO runs (started, finished, command, who, check_mode, source, failed)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (first, finished, command, actor, int(result.check), source, int(result.failed)),
            ).lastrowid
            assert run_id is not None
            for host in result.hosts:
                db.execute("INSERT INTO host_results VALUES (?, ?, ?, ?, ?)",
                           (run_id, host.host, int(host.unreachable), mask(host.error),
                            json.dumps(dict(host.counts()))))
                for seq, op in enumerate(host.ops):
                    db.execute(
                        "INSERT INTO op_results VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        (run_id, host.host, seq, op.policy, op.kind, op.name, op.operation,
                         op.status.value, int(op.planned), op.duration, mask(op.diff),
                         mask(op.error or op.warning)),
                    )
                    # a failed step may have changed something before it failed (a
                    # script half run, a push that reached some remotes): it is kept too
                    if not op.planned and op.status in (Status.CHANGED, Status.RAN,
                                                        Status.FAILED):
                        entry = audit.Entry(
                            at=finished, run_id=run_id, who=actor, host=host.host, policy=op.policy,
                            step=op.name, operation=op.operation, status=op.status.value,
                            diff=mask(op.diff))
                        sealed.append((*audit.append(db, entry), entry))
            for (policy, host_name), proof in sorted((evidence or {}).items()):
                entry = audit.Entry(
                    at=finished, run_id=run_id, who=actor, host=host_name, policy=policy,
                    step=f"{proof.kind} evidence", operation="evidence", status="evidence",
                    diff=mask(line(proof)))
                sealed.append((*audit.append(db, entry), entry))
            summary.update(db, result, run_id, command, finished, mask, modes)
            kinds = {op.policy: op.kind for host in result.hosts for op in host.ops}
            for (policy, host_name), data in (facts or {}).items():
                row = db.execute("SELECT data FROM facts WHERE policy = ? AND host = ?",
                                 (policy, host_name)).fetchone()
                merged = merge(json.loads(row[0]) if row else {}, data)
                db.execute("INSERT OR REPLACE INTO facts VALUES (?, ?, ?, ?, ?)",
                           (policy, host_name, kinds.get(policy, ""), mask(json.dumps(merged)),
                            finished))
        if self.ship is not None:  # once committed: what is shipped is what is kept
            self.ship.send(sealed)
        return run_id

    def audit_head(self) -> tuple[int, str]:
        """The audit log's newest entry: its sequence number and hash."""
        return audit.head(self.db)

    def facts(self, kind: str) -> list[tuple[str, str, dict[str, Any]]]:
        """(policy, host, facts) for every pair a policy of this kind observed."""
        rows = self.db.execute("SELECT policy, host, data FROM facts WHERE kind = ?"
                               " ORDER BY policy, host", (kind,))
        return [(policy, host, json.loads(data)) for policy, host, data in rows]

    def runs(self, limit: int = 20) -> list[RunRow]:
        rows = self.db.execute(
            "SELECT id, started, finished, command, who, check_mode, source, failed FROM runs"
            " ORDER BY id DESC LIMIT ?", (limit,)).fetchall()
        return [RunRow(r[0], r[1], r[2], r[3], r[4], bool(r[5]), r[6], bool(r[7])) for r in rows]

    def host_counts(self, run_id: int) -> list[tuple[str, bool, dict[str, int], str]]:
        """(host, unreachable, counts, error) for each host of the run."""
        rows = self.db.execute("SELECT host, unreachable, counts, error FROM host_results"
                               " WHERE run_id = ? ORDER BY host", (run_id,)).fetchall()
        return [(r[0], bool(r[1]), json.loads(r[2]), r[3]) for r in rows]

    def last_runs(self) -> dict[tuple[str, str], float]:
        """When each policy last ran on each host (any command but plan)."""
        rows = self.db.execute("SELECT policy, host, finished FROM latest WHERE command != 'plan'")
        return {(policy, host): finished for policy, host, finished in rows}

    def set_next_runs(self, due: dict[tuple[str, str], float]) -> None:
        with self.transaction() as db:
            db.execute("DELETE FROM next_runs")
            db.executemany("INSERT INTO next_runs VALUES (?, ?, ?)",
                           [(p, h, at) for (p, h), at in due.items()])

    def set_in_force(self, digest: str, pairs: list[tuple[str, str]]) -> None:
        """The daemon's policy set, as (policy, host) pairs (host '*': one-shot only)."""
        with self.transaction() as db:
            db.execute("DELETE FROM in_force")
            db.executemany("INSERT OR IGNORE INTO in_force VALUES (?, ?)", pairs)
            db.execute("INSERT OR REPLACE INTO in_force_set VALUES (1, ?, ?)", (digest, time.time()))

    def prune(self, results_before: float, runs_before: float) -> tuple[int, int]:
        """Retention: drop operation results (diffs included) of runs older than
        results_before, and whole runs older than runs_before. The audit log and the
        summaries stay; so do their sealed digests of the evidence files of runs dropped.
        Returns (operation results dropped, runs dropped)."""
        with self.transaction() as db:
            old = db.execute("DELETE FROM op_results WHERE run_id IN (SELECT id FROM runs"
                             " WHERE finished < ?)", (results_before,)).rowcount
            gone = db.execute("DELETE FROM runs WHERE finished < ?", (runs_before,)).rowcount
            kept = {row[0] for row in db.execute("SELECT id FROM runs")}
        for path in (self.path.parent / "evidence").glob("run-*.json"):
            number = path.stem.removeprefix("run-")
            if number.isdigit() and int(number) not in kept:
                path.unlink(missing_ok=True)
        return old, gone

    def status(self) -> list[StatusRow]:
        rows = self.db.execute(
            "SELECT l.policy, l.host, l.finished, l.result, l.compliant, l.drift, l.error, n.at"
            " FROM compliance l LEFT JOIN next_runs n USING (policy, host)"
            " ORDER BY l.policy, l.host")
        return [StatusRow(r[0], r[1], r[2], r[3], bool(r[4]), r[5], r[6], r[7]) for r in rows]
