"""Deploys in the state store, step by step: the deploy, each host's phase, each
measurement, and the requests a person makes of a running deploy (pause, abort...).

Every write is its own transaction, committed before the deploy goes on, so a
controller killed at any point leaves the truth behind. Text is scrubbed of secrets.
"""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import dataclass
from typing import Any

from agent.core.secrets import scrub
from agent.state.actor import who
from agent.state.store import Store

OPEN = ("progressing", "paused")  # a deploy in these may be resumed


@dataclass(frozen=True)
class Deploy:
    id: int
    policy: str
    version: str
    strategy: str
    status: str
    phase: str
    wave: int
    waves: int
    hosts: list[str]
    vars: dict[str, str]
    who: str
    started: float
    updated: float
    finished: float | None
    request: str
    requested_by: str
    error: str


@dataclass(frozen=True)
class HostPhase:
    host: str
    phase: str
    version: str
    previous: str
    at: float
    detail: str


_COLUMNS = ("id, policy, version, strategy, status, phase, wave, waves, hosts, vars, who, "
            "started, updated, finished, request, requested_by, error")


def _deploy(row: tuple[Any, ...]) -> Deploy:
    values = list(row)
    values[8], values[9] = json.loads(values[8]), json.loads(values[9])
    return Deploy(*values)


def begin(store: Store, policy: str, version: str, strategy: str, hosts: list[str],
          variables: dict[str, str], waves: int, previous: dict[str, str]) -> Deploy:
    now = time.time()
    with store.transaction() as db:
        deploy_id = db.execute(
            "INSERT INTO deploys (policy, version, strategy, status, phase, wave, waves, hosts,"
            " vars, who, started, updated, request, requested_by, error) VALUES"
            " (?, ?, ?, 'progressing', 'starting', 0, ?, ?, ?, ?, ?, ?, '', '', '')",
            (policy, version, strategy, waves, json.dumps(hosts),
             scrub(json.dumps(variables)), who(), now, now)).lastrowid
        for host in hosts:
            db.execute("INSERT INTO deploy_hosts VALUES (?, ?, 'pending', ?, ?, ?, '')",
                       (deploy_id, host, previous.get(host, ""), previous.get(host, ""), now))
    found = get(store, int(deploy_id or 0))
    assert found is not None
    return found


def get(store: Store, deploy_id: int) -> Deploy | None:
    row = store.db.execute(f"SELECT {_COLUMNS} FROM deploys WHERE id = ?", (deploy_id,)).fetchone()
    return _deploy(row) if row else None


def latest(store: Store, policy: str) -> Deploy | None:
    row = store.db.execute(f"SELECT {_COLUMNS} FROM deploys WHERE policy = ? ORDER BY id DESC"
                           " LIMIT 1", (policy,)).fetchone()
    return _deploy(row) if row else None


def recent(store: Store, limit: int = 50) -> list[Deploy]:
    rows = store.db.execute(f"SELECT {_COLUMNS} FROM deploys ORDER BY id DESC LIMIT ?", (limit,))
    return [_deploy(r) for r in rows]


def update(store: Store, deploy_id: int, **fields: Any) -> None:
    """Set some of status, phase, wave, finished, error, request, requested_by."""
    allowed = {"status", "phase", "wave", "finished", "error", "request", "requested_by"}
    assert set(fields) <= allowed, set(fields) - allowed
    names = ", ".join(f"{k} = ?" for k in fields)
    values = [scrub(v) if isinstance(v, str) else v for v in fields.values()]
    with store.transaction() as db:
        db.execute(f"UPDATE deploys SET {names}, updated = ? WHERE id = ?",  # noqa: S608 - names are from `allowed`
                   (*values, time.time(), deploy_id))


def set_hosts(store: Store, deploy_id: int, hosts: list[str], phase: str, version: str | None = None,
              detail: str = "") -> None:
    now = time.time()
    with store.transaction() as db:
        for host in hosts:
            if version is None:
                db.execute("UPDATE deploy_hosts SET phase = ?, at = ?, detail = ? WHERE"
                           " deploy_id = ? AND host = ?", (phase, now, scrub(detail), deploy_id, host))
            else:
                db.execute("UPDATE deploy_hosts SET phase = ?, version = ?, at = ?, detail = ?"
                           " WHERE deploy_id = ? AND host = ?",
                           (phase, version, now, scrub(detail), deploy_id, host))


def hosts(store: Store, deploy_id: int) -> list[HostPhase]:
    rows = store.db.execute("SELECT host, phase, version, previous, at, detail FROM deploy_hosts"
                            " WHERE deploy_id = ?", (deploy_id,))
    return [HostPhase(*r) for r in rows]


def measured(store: Store, deploy_id: int, wave: int, metric: str, verdict: str,
             value: dict[str, Any]) -> None:
    with store.transaction() as db:
        db.execute("INSERT INTO deploy_measurements VALUES (?, ?, ?, ?, ?, ?)",
                   (deploy_id, time.time(), wave, metric, verdict, scrub(json.dumps(value))))


def measurements(store: Store, deploy_id: int, limit: int = 20) -> list[tuple[float, int, str, str,
                                                                            dict[str, Any]]]:
    rows = store.db.execute("SELECT at, wave, metric, verdict, value FROM deploy_measurements"
                            " WHERE deploy_id = ? ORDER BY at DESC LIMIT ?", (deploy_id, limit))
    return [(at, wave, metric, verdict, json.loads(value)) for at, wave, metric, verdict, value in rows]


def ran_healthy(store: Store, policy: str, version: str) -> float:
    """How long `version` ran in `policy`'s environment after a deploy of it succeeded
    there, until the next deploy of that policy (or now); 0 if it never did."""
    best = 0.0
    rows = store.db.execute("SELECT id, version, status, started, finished FROM deploys"
                            " WHERE policy = ? ORDER BY id", (policy,)).fetchall()
    for i, (_, found, status, _, finished) in enumerate(rows):
        if found == version and status == "succeeded" and finished:
            end = rows[i + 1][3] if i + 1 < len(rows) else time.time()
            best = max(best, end - finished)
    return best


def ask(store: Store, deploy_id: int, request: str) -> None:
    """A person's request to the deploy's controller (it reads it within an interval)."""
    update(store, deploy_id, request=request, requested_by=who())


def outcomes(db: sqlite3.Connection) -> list[tuple[str, str, int]]:
    """(policy, status, count) of finished deploys, for the metrics."""
    return list(db.execute("SELECT policy, status, COUNT(*) FROM deploys WHERE status NOT IN"
                           " ('progressing', 'paused') GROUP BY policy, status"))


def last_per_policy(db: sqlite3.Connection) -> list[tuple[str, str, str, float, float | None,
                                                         float]]:
    """(policy, status, phase, started, finished, updated) of each policy's newest deploy."""
    return list(db.execute(
        "SELECT policy, status, phase, started, finished, updated FROM deploys d WHERE id ="
        " (SELECT MAX(id) FROM deploys WHERE policy = d.policy) ORDER BY policy"))


def rollbacks(db: sqlite3.Connection) -> list[tuple[str, int]]:
    """(policy, hosts rolled back) over every deploy."""
    return list(db.execute(
        "SELECT d.policy, COUNT(*) FROM deploy_hosts h JOIN deploys d ON d.id = h.deploy_id"
        " WHERE h.phase = 'rolled back' GROUP BY d.policy ORDER BY d.policy"))


def measurement_counts(db: sqlite3.Connection) -> list[tuple[str, str, str, int]]:
    """(policy, metric, verdict, count) over every deploy, for the metrics."""
    return list(db.execute(
        "SELECT d.policy, m.metric, m.verdict, COUNT(*) FROM deploy_measurements m JOIN deploys d"
        " ON d.id = m.deploy_id GROUP BY d.policy, m.metric, m.verdict"))
