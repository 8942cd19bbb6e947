"""The metrics text: the fast writer of per-policy-and-host families says exactly what
prometheus_client would, and the whole exposition passes promtool."""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from agent.core.results import HostResult, OpResult, RunResult, Status
from agent.metrics import NEXT_RUN, PER_POLICY_HOST, bulk_text, exposition, registry_for
from agent.state.store import Store


class Reference(Collector):
    """The same families built the ordinary way, one Metric object per family."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def collect(self) -> list[Metric]:
        families = []
        for name, text, column in PER_POLICY_HOST:
            family = GaugeMetricFamily(name, text, labels=["policy", "host"])
            for policy, host, value in self.db.execute(f"SELECT policy, host, {column} FROM latest"):
                if value is not None:
                    family.add_metric([policy, host], value)
            families.append(family)
        family = GaugeMetricFamily(*NEXT_RUN, labels=["policy", "host"])
        for policy, host, at in self.db.execute("SELECT policy, host, at FROM next_runs"):
            family.add_metric([policy, host], at)
        return [*families, family]


def fill(path: Path) -> None:
    odd = 'we"ird\\host\nname'  # quotes, backslashes and newlines must be escaped
    hosts = [HostResult(h, [
        OpResult("web", "tasks", "a", "files.line", Status.CHANGED, duration=0.25),
        OpResult("audit", "tasks", "b", "files.file", Status.CHANGED, planned=True, duration=1e-7),
        OpResult("broken", "tasks", "c", "server.shell", Status.FAILED, duration=12345.678),
    ]) for h in ("h1", odd)]
    with Store(path) as store:
        store.record(RunResult(hosts, False, 1.0), command="apply", source="-")
        store.set_next_runs({("web", "h1"): time.time() + 3600, ("web", odd): 1.5})


def test_bulk_text_is_what_prometheus_client_writes(tmp_path: Path) -> None:
    fill(tmp_path)
    with sqlite3.connect(tmp_path / "state.db") as db:
        registry = CollectorRegistry(auto_describe=False)
        registry.register(Reference(db))
        assert bulk_text(db) == generate_latest(registry).decode()
        assert 'host="we\\"ird\\\\host\\nname"' in bulk_text(db)


@pytest.mark.skipif(not shutil.which("promtool"), reason="promtool (Debian: prometheus) not installed")
def test_the_whole_exposition_passes_promtool(tmp_path: Path) -> None:
    fill(tmp_path)
    db_path = tmp_path / "state.db"
    text = exposition(db_path, registry_for(db_path)).decode()
    check = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True,
                           text=True, check=False)
    assert (check.returncode, check.stdout + check.stderr) == (0, "")
    assert 'opsagent_last_run_success{host="h1",policy="broken"} 0.0' in text
    assert 'opsagent_policy_drift_operations{host="h1",policy="audit"} 1.0' in text
    assert 'opsagent_operations_total{outcome="failed",policy="broken"} 2.0' in text
