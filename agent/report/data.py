"""What a report says: compliance now per policy and host, what the kinds' last runs left
for a person (their findings: a sync conflict), the security controls per control and
per host (compliance), the deploys and how they ended, where the time went (the slowest
policies and operations against the period before), and the changes and failures of the
period (changes from the audit log, which retention never prunes; failures from the
operation results still kept)."""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass, field

from agent.kinds import KINDS
from agent.kinds.contract import Finding
from agent.kinds.security.compliance import Compliance, compliance
from agent.report.timing import TimeSpent, time_spent
from agent.state import deploys
from agent.state.store import Store


@dataclass(frozen=True)
class Cell:
    policy: str
    host: str
    result: str
    compliant: bool
    drift: int
    finished: float
    error: str


@dataclass(frozen=True)
class Event:
    at: float
    host: str
    policy: str
    step: str
    operation: str
    status: str  # changed | ran | failed
    detail: str  # the diff of a change, the error of a failure
    who: str = ""


@dataclass(frozen=True)
class DeployRow:
    """A deploy of the period: what went where, how it ended, who started it."""

    policy: str
    version: str
    strategy: str
    status: str
    started: float
    finished: float | None
    who: str
    hosts: int
    rolled_back: int
    error: str


@dataclass
class Report:
    since: float
    made: float
    cells: list[Cell] = field(default_factory=list)
    changes: list[Event] = field(default_factory=list)
    failures: list[Event] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    compliance: Compliance = field(default_factory=Compliance)  # security policies' controls
    deploys: list[DeployRow] = field(default_factory=list)
    time: TimeSpent | None = None
    runs: int = 0
    failed_runs: int = 0
    audit_head: str = ""  # SEQ:HASH of the audit log's newest entry, to keep elsewhere

    @property
    def compliant(self) -> int:
        return sum(c.compliant for c in self.cells)

    @property
    def hosts(self) -> list[str]:
        return sorted({c.host for c in self.cells})

    @property
    def policies(self) -> list[str]:
        return sorted({c.policy for c in self.cells})

    def cell(self, policy: str, host: str) -> Cell | None:
        return next((c for c in self.cells if c.policy == policy and c.host == host), None)


def collect(store: Store, since: float, top: int = 10) -> Report:
    """top: how many policies and operations 'where the time goes' lists."""
    db: sqlite3.Connection = store.db
    report = Report(since=since, made=time.time())
    report.cells = [Cell(row[0], row[1], row[2], bool(row[3]), row[4], row[5], row[6])
                    for row in db.execute("SELECT policy, host, result, compliant, drift, finished,"
                                          " error FROM compliance ORDER BY policy, host")]
    report.changes = [Event(*row) for row in db.execute(
        "SELECT at, host, policy, step, operation, status, diff, who FROM audit WHERE at >= ?"
        " AND status NOT IN ('failed', 'evidence') ORDER BY seq", (since,))]  # failures: below
    report.failures = [Event(*row) for row in db.execute(
        "SELECT r.finished, o.host, o.policy, o.step, o.operation, o.status, o.error"
        " FROM op_results o JOIN runs r ON r.id = o.run_id"
        " WHERE r.finished >= ? AND o.status = 'failed' ORDER BY r.id, o.host, o.seq", (since,))]
    report.findings = [finding for name, kind in KINDS.items()
                       for finding in kind.findings(store.facts(name))]
    report.compliance = compliance(store.facts("security"))
    report.deploys = [DeployRow(d.policy, d.version, d.strategy, d.status, d.started, d.finished,
                                d.who, len(d.hosts),
                                sum(h.phase == "rolled back" for h in deploys.hosts(store, d.id)),
                                d.error)
                      for d in deploys.recent(store, 200) if d.started >= since]
    report.time = time_spent(db, since, report.made, top)
    report.runs, report.failed_runs = db.execute(
        "SELECT count(*), coalesce(sum(failed), 0) FROM runs WHERE finished >= ?", (since,)).fetchone()
    seq, digest = store.audit_head()
    report.audit_head = f"{seq}:{digest}"
    return report
