"""Where the time goes: the policies and the operations that took the most time over a
period, each against the same length of time just before it.

A policy's time on a host in a run is the sum of its operations' durations there (as
`opsagent_last_run_duration_seconds` counts it); its runs are those host runs. Figures
come from the operation results the store keeps (`retention.results`, 30 days by
default): a previous period older than that has no figures, and says so (None), rather
than showing a fall to zero. Everything is aggregated in SQL, so a week of a large
fleet's results is read without loading them row by row.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

SLOWER = 1.5  # a mean this many times the previous period's is flagged slower
NOTICEABLE = 0.5  # ...when it grew by at least this many seconds per run, too

POLICIES = """
SELECT policy, '', '', count(*), sum(took), max(took) FROM (
    SELECT o.policy, sum(o.duration) AS took FROM op_results o JOIN runs r ON r.id = o.run_id
    WHERE r.finished >= ? AND r.finished < ? GROUP BY o.run_id, o.host, o.policy)
GROUP BY policy
"""
OPERATIONS = """
SELECT o.policy, o.step, o.operation, count(*), sum(o.duration), max(o.duration)
FROM op_results o JOIN runs r ON r.id = o.run_id
WHERE r.finished >= ? AND r.finished < ? AND o.status != 'skipped'
GROUP BY o.policy, o.step, o.operation
"""


@dataclass(frozen=True)
class Timing:
    """Time spent by one policy (step and operation empty) or one of its operations."""

    policy: str
    step: str
    operation: str
    runs: int  # host runs of the policy, or times the operation ran or was judged
    total: float  # seconds, over the period
    mean: float
    max: float
    previous_runs: int
    previous_mean: float | None  # None: nothing kept of the previous period

    @property
    def change(self) -> float | None:
        """The mean's relative change against the previous period (0.5: half as long again)."""
        if not self.previous_mean:
            return None
        return self.mean / self.previous_mean - 1

    @property
    def slower(self) -> bool:
        return (self.previous_mean is not None and self.mean >= SLOWER * self.previous_mean
                and self.mean - self.previous_mean >= NOTICEABLE)


@dataclass(frozen=True)
class TimeSpent:
    policies: list[Timing]
    operations: list[Timing]
    previous_since: float  # the previous period: [previous_since, the period's since)
    kept_from: float | None  # the oldest run whose results are kept; None: none are

    @property
    def previous_partial(self) -> bool:
        """The store keeps results from after the previous period began (retention, or
        a new agent): its figures cover only part of it."""
        return self.kept_from is None or self.kept_from > self.previous_since


def time_spent(db: sqlite3.Connection, since: float, until: float, top: int = 10) -> TimeSpent:
    """The `top` policies and operations by time spent in [since, until), with the
    previous period [since - (until - since), since) beside them."""
    before = since - (until - since)
    oldest = db.execute("SELECT finished FROM runs WHERE EXISTS (SELECT 1 FROM op_results"
                        " WHERE run_id = runs.id) ORDER BY finished LIMIT 1").fetchone()
    return TimeSpent(_ranked(db, POLICIES, since, until, before, top),
                     _ranked(db, OPERATIONS, since, until, before, top), before,
                     oldest[0] if oldest else None)


def _ranked(db: sqlite3.Connection, query: str, since: float, until: float, before: float,
            top: int) -> list[Timing]:
    previous = {row[:3]: row for row in db.execute(query, (before, since))}
    now = sorted(db.execute(query, (since, until)), key=lambda row: (-row[4], row[:3]))[:top]
    out = []
    for policy, step, operation, runs, total, longest in now:
        old = previous.get((policy, step, operation))
        out.append(Timing(policy, step, operation, runs, total, total / runs, longest,
                          old[3] if old else 0, old[4] / old[3] if old else None))
    return out
