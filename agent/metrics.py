"""Prometheus metrics, read from the state store at each scrape, in an explicit registry.

The same collector serves the daemon's /metrics and `apply --textfile-dir` (one file,
written atomically, for node_exporter's textfile collector), so a one-shot run and the
daemon report the same series. Labels are bounded: policy, host, kind, mode, outcome.
"""

from __future__ import annotations

import json
import os
import platform
import sqlite3
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from agent import __version__
from agent.deploys.metrics import families as deploy_families
from agent.kinds import KINDS
from agent.state.summary import BUCKETS, OUTCOMES

TEXTFILE = "opsagent.prom"


class BuildCollector(Collector):
    def collect(self) -> Iterable[Metric]:
        from importlib.metadata import version

        info = InfoMetricFamily("opsagent_build", "Versions opsagent was built from.")
        info.add_metric([], {"version": __version__, "python": platform.python_version(),
                              "pyinfra": version("pyinfra")})
        yield info


# The families with one series per policy and host (20,000 at 1,000 hosts x 20 policies):
# name, help, and the column of `latest` they show. They are written by bulk_text(), which
# produces what prometheus_client's generate_latest would for the same families (a test
# holds them equal) about ten times faster, by escaping each label set once per row.
PER_POLICY_HOST = (
    ("opsagent_policy_compliant", "1 if the policy's last run on the host succeeded and found "
     "nothing to change.", "compliant"),
    ("opsagent_policy_drift_operations", "Operations the last run found not as wanted and left "
     "so (audit mode, check mode).", "drift"),
    ("opsagent_policy_changed_operations", "Operations the last run changed.", "changed"),
    ("opsagent_last_run_timestamp_seconds", "When the policy's last run on the host ended.",
     "finished"),
    ("opsagent_last_run_success", "1 if the policy's last run on the host succeeded, 0 if it "
     "failed or the host was unreachable.", "result = 'success'"),
    ("opsagent_last_success_timestamp_seconds", "When the policy last ran on the host without "
     "failing (check mode not counted).", "last_success"),
    ("opsagent_last_run_duration_seconds", "How long the policy's operations took on the host in "
     "its last run.", "duration"),
)
NEXT_RUN = ("opsagent_next_run_timestamp_seconds", "When the daemon will next run the policy on "
            "the host.")


def bulk_text(db: sqlite3.Connection) -> str:
    """The per-policy-and-host families in the text exposition format."""
    columns = ", ".join(column for _, _, column in PER_POLICY_HOST)
    rows = db.execute(f"SELECT policy, host, {columns} FROM compliance").fetchall()
    labels = [f'{{host="{_escape(r[1])}",policy="{_escape(r[0])}"}} ' for r in rows]
    out: list[str] = []
    for i, (name, text, _) in enumerate(PER_POLICY_HOST, start=2):
        out.append(f"# HELP {name} {text}\n# TYPE {name} gauge\n")
        out.extend(f"{name}{label}{_value(row[i])}\n"
                   for label, row in zip(labels, rows, strict=True) if row[i] is not None)
    name, text = NEXT_RUN
    out.append(f"# HELP {name} {text}\n# TYPE {name} gauge\n")
    out.extend(f'{name}{{host="{_escape(h)}",policy="{_escape(p)}"}} {_value(at)}\n'
               for p, h, at in db.execute("SELECT policy, host, at FROM next_runs"))
    return "".join(out)


def _value(v: float) -> str:
    return "1.0" if v == 1 else "0.0" if v == 0 else str(floatToGoString(v))  # type: ignore[no-untyped-call]


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


class StoreCollector(Collector):
    """The per-policy families (kind and mode, counters, durations) and host reachability."""

    def __init__(self, db_path: Path) -> None:
        self.db_path = db_path

    def collect(self) -> Iterable[Metric]:
        if not self.db_path.exists():
            return []
        with _read(self.db_path) as db:
            return list(self._families(db))

    def _families(self, db: sqlite3.Connection) -> Iterator[Metric]:
        family = InfoMetricFamily("opsagent_policy", "Each policy's kind and mode.",
                                  labels=["policy"])
        for policy, kind, mode in db.execute("SELECT policy, max(kind), max(mode) FROM compliance"
                                             " GROUP BY policy ORDER BY policy"):
            family.add_metric([policy], {"kind": kind, "mode": mode})
        yield family
        yield self._reachable(db)
        yield self._audit_head(db)
        yield self._operations(db)
        yield self._durations(db)
        yield from deploy_families(db)
        for name, kind in KINDS.items():  # each kind's own families, from its facts
            yield from kind.families(
                [(p, h, json.loads(d)) for p, h, d in
                 db.execute("SELECT policy, host, data FROM facts WHERE kind = ?"
                            " ORDER BY policy, host", (name,))])

    def _reachable(self, db: sqlite3.Connection) -> Metric:
        family = GaugeMetricFamily("opsagent_host_reachable", "1 if the host answered in the "
                                   "last run that targeted it.", labels=["host"])
        for host, reachable in db.execute("SELECT host, reachable FROM hosts"):
            family.add_metric([host], reachable)
        return family

    def _audit_head(self, db: sqlite3.Connection) -> Metric:
        family = GaugeMetricFamily("opsagent_audit_head_sequence", "Sequence number of the "
                                   "audit log's newest entry: it only ever grows; a fall means "
                                   "entries were deleted or the log replaced.")
        row = db.execute("SELECT seq FROM audit_head WHERE one = 1").fetchone()
        family.add_metric([], row[0] if row else 0)
        return family

    def _operations(self, db: sqlite3.Connection) -> Metric:
        family = CounterMetricFamily("opsagent_operations", "Operations run or judged, by "
                                     "outcome.", labels=["policy", "outcome"])
        for policy, outcome, count in db.execute("SELECT policy, outcome, count FROM totals"):
            if outcome in OUTCOMES:
                family.add_metric([policy, outcome], count)
        return family

    def _durations(self, db: sqlite3.Connection) -> Metric:
        family = HistogramMetricFamily("opsagent_run_duration_seconds", "How long a policy's "
                                       "operations took on a host, per run.", labels=["policy"])
        for policy, buckets, total, count in db.execute("SELECT policy, buckets, sum, count"
                                                        " FROM durations"):
            pairs = [(_value(b), n) for b, n in zip(BUCKETS, json.loads(buckets), strict=True)]
            family.add_metric([policy], [*pairs, ("+Inf", count)], total)
        return family


def registry_for(db_path: Path, *extra: Collector) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(BuildCollector())
    registry.register(StoreCollector(db_path))
    for collector in extra:
        registry.register(collector)
    return registry


def exposition(db_path: Path, registry: CollectorRegistry) -> bytes:
    """Everything: the registry's families, then the per-policy-and-host ones."""
    text = generate_latest(registry)
    if not db_path.exists():
        return text
    with _read(db_path) as db:
        return text + bulk_text(db).encode()


@contextmanager
def _read(db_path: Path) -> Iterator[sqlite3.Connection]:
    db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=10)
    try:
        db.execute("BEGIN")  # one snapshot for every query of a scrape
        yield db
    finally:
        db.close()


def write_textfile(db_path: Path, directory: str | Path) -> Path:
    """DIR/opsagent.prom, replaced atomically (written beside it, then renamed)."""
    folder = Path(directory)
    target = folder / TEXTFILE
    text = exposition(db_path, registry_for(db_path))
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".opsagent.prom.")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target
