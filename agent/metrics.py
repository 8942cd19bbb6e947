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

from agent import __version__
from agent.state.summary import BUCKETS, OUTCOMES

TEXTFILE = "opsagent.prom"


class BuildCollector(Collector):
    def collect(self) -> Iterable[Metric]:
        from importlib.metadata import version

        info = InfoMetricFamily("opsagent_build", "Versions opsagent was built from.")
        info.add_metric([], {"version": __version__, "python": platform.python_version(),
                              "pyinfra": version("pyinfra")})
        yield info


class StoreCollector(Collector):
    """Compliance, drift, last runs, durations and counters, from the store's summaries."""

    def __init__(self, db_path: Path) -> None:
        self.db_path = db_path

    def collect(self) -> Iterable[Metric]:
        if not self.db_path.exists():
            return []
        db = sqlite3.connect(f"file:{self.db_path}?mode=ro", uri=True, timeout=10)
        try:
            return list(self._families(db))
        finally:
            db.close()

    def _families(self, db: sqlite3.Connection) -> Iterator[Metric]:
        ph = ["policy", "host"]
        policy_info = InfoMetricFamily("opsagent_policy", "Each policy's kind and mode.",
                                       labels=["policy"])
        compliant = GaugeMetricFamily("opsagent_policy_compliant", "1 if the policy's last run "
                                      "on the host succeeded and found nothing to change.", labels=ph)
        drift = GaugeMetricFamily("opsagent_policy_drift_operations", "Operations the last run "
                                  "found not as wanted and left so (audit mode, check mode).",
                                  labels=ph)
        changed = GaugeMetricFamily("opsagent_policy_changed_operations", "Operations the last "
                                    "run changed.", labels=ph)
        last = GaugeMetricFamily("opsagent_last_run_timestamp_seconds", "When the policy's last "
                                 "run on the host ended.", labels=ph)
        success = GaugeMetricFamily("opsagent_last_run_success", "1 if the policy's last run on "
                                    "the host succeeded, 0 if it failed or the host was "
                                    "unreachable.", labels=ph)
        last_ok = GaugeMetricFamily("opsagent_last_success_timestamp_seconds", "When the "
                                    "policy last ran on the host without failing (check mode "
                                    "not counted).", labels=ph)
        seconds = GaugeMetricFamily("opsagent_last_run_duration_seconds", "How long the "
                                    "policy's operations took on the host in its last run.",
                                    labels=ph)
        kinds: dict[str, tuple[str, str]] = {}
        for row in db.execute("SELECT policy, host, kind, mode, finished, duration, result,"
                              " compliant, drift, changed, last_success FROM latest"):
            policy, host, kind, mode, finished, duration, result, ok, n_drift, n_changed, good = row
            key = [policy, host]
            kinds[policy] = (kind, mode)
            compliant.add_metric(key, ok)
            drift.add_metric(key, n_drift)
            changed.add_metric(key, n_changed)
            last.add_metric(key, finished)
            success.add_metric(key, 1 if result == "success" else 0)
            seconds.add_metric(key, duration)
            if good is not None:
                last_ok.add_metric(key, good)
        for policy, (kind, mode) in sorted(kinds.items()):
            policy_info.add_metric([policy], {"kind": kind, "mode": mode})
        yield from (policy_info, compliant, drift, changed, last, success, last_ok, seconds)
        yield self._reachable(db)
        yield self._operations(db)
        yield self._durations(db)
        yield self._next_runs(db)

    def _reachable(self, db: sqlite3.Connection) -> Metric:
        family = GaugeMetricFamily("opsagent_host_reachable", "1 if the host answered in the "
                                   "last run that targeted it.", labels=["host"])
        for host, reachable in db.execute("SELECT host, reachable FROM hosts"):
            family.add_metric([host], reachable)
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
            pairs = [(_bound(b), n) for b, n in zip(BUCKETS, json.loads(buckets), strict=True)]
            family.add_metric([policy], [*pairs, ("+Inf", count)], total)
        return family

    def _next_runs(self, db: sqlite3.Connection) -> Metric:
        family = GaugeMetricFamily("opsagent_next_run_timestamp_seconds", "When the daemon will "
                                   "next run the policy on the host.", labels=["policy", "host"])
        for policy, host, at in db.execute("SELECT policy, host, at FROM next_runs"):
            family.add_metric([policy, host], at)
        return family


def _bound(value: float) -> str:
    return f"{value:g}" if value != int(value) else f"{value:.1f}"


def registry_for(db_path: Path, *extra: Collector) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(BuildCollector())
    registry.register(StoreCollector(db_path))
    for collector in extra:
        registry.register(collector)
    return registry


def write_textfile(db_path: Path, directory: str | Path) -> Path:
    """DIR/opsagent.prom, replaced atomically (written beside it, then renamed)."""
    folder = Path(directory)
    target = folder / TEXTFILE
    text = generate_latest(registry_for(db_path))
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
