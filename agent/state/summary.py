"""Summaries updated with every run: the latest result per policy and host, host
reachability, operation counters and run-duration histograms per policy.

They are what metrics, `opsagent status` and reports read, so a scrape costs one query
per table however long the history is.
"""

from __future__ import annotations

import json
import sqlite3
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from agent.core.results import HostResult, RunResult, Status

BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0)
OUTCOMES = ("ok", "changed", "ran", "failed", "skipped", "would_change", "would_run")


@dataclass(frozen=True)
class PolicyOnHost:
    """What one run did for one policy on one host."""

    policy: str
    kind: str
    host: str
    result: str  # success | failed | unreachable
    compliant: bool
    drift: int
    changed: int
    duration: float
    error: str
    counts: Counter[str]


def per_policy(host: HostResult) -> list[PolicyOnHost]:
    groups: dict[str, list[int]] = {}
    for i, op in enumerate(host.ops):
        groups.setdefault(op.policy, []).append(i)
    out = []
    for policy, indexes in groups.items():
        ops = [host.ops[i] for i in indexes]
        counts: Counter[str] = Counter()
        for op in ops:
            if op.planned and op.status in (Status.CHANGED, Status.RAN):
                counts["would_change" if op.status is Status.CHANGED else "would_run"] += 1
            else:
                counts[op.status.value] += 1
        errors = [op.error for op in ops if op.status is Status.FAILED and op.error]
        if host.unreachable:
            result = "unreachable"
        elif counts["failed"] or host.error:
            result = "failed"
        else:
            result = "success"
        out.append(PolicyOnHost(
            policy=policy, kind=ops[0].kind, host=host.host, result=result,
            compliant=result == "success" and not counts["would_change"],
            drift=counts["would_change"], changed=counts["changed"],
            duration=sum(op.duration for op in ops),
            error=_first_line(errors[0] if errors else host.error),
            counts=counts))
    return out


CONVERGING = ("apply", "plan")  # the commands whose results say whether hosts comply


def update(db: sqlite3.Connection, run: RunResult, run_id: int, command: str, finished: float,
           mask: Callable[[str], str], modes: dict[str, str] | None) -> None:
    """Actions (a restore, a playbook) are in history and the audit log, but say nothing
    of compliance: only apply and plan update the latest result per policy and host."""
    if command not in CONVERGING:
        return
    for host in run.hosts:
        db.execute("INSERT INTO hosts VALUES (?, ?, ?) ON CONFLICT (host) DO UPDATE SET"
                   " reachable = excluded.reachable, at = excluded.at",
                   (host.host, int(not host.unreachable), finished))
        for item in per_policy(host):
            success = finished if item.result == "success" and not run.check else None
            mode = (modes or {}).get(item.policy, "enforce")
            db.execute(
                "INSERT INTO latest VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (policy, host) DO UPDATE SET kind = excluded.kind,"
                " mode = excluded.mode, run_id = excluded.run_id, command = excluded.command,"
                " finished = excluded.finished, duration = excluded.duration,"
                " result = excluded.result, compliant = excluded.compliant,"
                " drift = excluded.drift, changed = excluded.changed, error = excluded.error,"
                " last_success = coalesce(excluded.last_success, latest.last_success)",
                (item.policy, item.host, item.kind, mode, run_id, command, finished,
                 item.duration, item.result, int(item.compliant), item.drift, item.changed,
                 mask(item.error), success))
            for outcome, n in item.counts.items():
                db.execute("INSERT INTO totals VALUES (?, ?, ?) ON CONFLICT (policy, outcome)"
                           " DO UPDATE SET count = count + excluded.count",
                           (item.policy, outcome, n))
            if not host.unreachable:
                _observe(db, item.policy, item.duration)


def _observe(db: sqlite3.Connection, policy: str, seconds: float) -> None:
    row = db.execute("SELECT buckets, sum, count FROM durations WHERE policy = ?",
                     (policy,)).fetchone()
    buckets, total, count = (json.loads(row[0]), row[1], row[2]) if row else ([0] * len(BUCKETS), 0.0, 0)
    buckets = [n + (seconds <= bound) for n, bound in zip(buckets, BUCKETS, strict=True)]
    db.execute("INSERT OR REPLACE INTO durations VALUES (?, ?, ?, ?)",
               (policy, json.dumps(buckets), total + seconds, count + 1))


def _first_line(text: str) -> str:
    return text.splitlines()[0] if text else ""
