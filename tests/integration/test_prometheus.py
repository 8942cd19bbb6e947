"""A real Prometheus server (Debian's `prometheus`) scrapes a running daemon; PromQL returns
the compliance series, the alert rules load, and every dashboard query evaluates."""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from tests.integration.test_contrib import CONTRIB, dashboard_exprs
from tests.integration.test_daemon import make
from tests.support.daemon import Daemon, wait_for
from tests.support.prometheus import RULES, Prometheus

yaml = YAML(typ="safe")
pytestmark = pytest.mark.skipif(not shutil.which("prometheus"),
                                reason="prometheus (Debian: prometheus) not installed")


@pytest.fixture
def prometheus_and_daemon(tmp_path: Path) -> Iterator[tuple[Prometheus, Daemon]]:
    root = make(tmp_path / "project", every="2s")
    daemon = Daemon(root)
    prom = Prometheus(tmp_path, [f"127.0.0.1:{daemon.port}"], job="opsagent", rules=RULES)
    try:
        daemon.up()
        yield prom, daemon
    finally:
        prom.stop()
        daemon.stop()


def test_prometheus_scrapes_the_daemon_and_promql_finds_compliance(
        prometheus_and_daemon: tuple[Prometheus, Daemon]) -> None:
    prom, _ = prometheus_and_daemon
    series = wait_for(lambda: prom.query('opsagent_policy_compliant{policy="tick"} == 1'),
                      timeout=60, what="the compliance series in Prometheus")
    (one,) = series
    assert one["metric"] == {"__name__": "opsagent_policy_compliant", "host": "@local",
                             "instance": one["metric"]["instance"], "job": "opsagent",
                             "policy": "tick"}
    assert prom.query('up{job="opsagent"}')[0]["value"][1] == "1"
    groups = prom.api("rules")["data"]["groups"]
    rules_file = (CONTRIB / "prometheus" / "opsagent-rules.yml").read_text()
    shipped = re.findall(r"^\s*- alert: (\w+)$", rules_file, re.M)
    assert [g["name"] for g in groups] == ["opsagent", "opsagent-trends"] and len(shipped) == 18
    assert [r["name"] for r in groups[0]["rules"]] == shipped
    assert all(r["health"] == "ok" for r in groups[0]["rules"]), groups[0]["rules"]
    trends = yaml.load((CONTRIB / "prometheus" / "opsagent-trends.yml").read_text())
    rules = trends["groups"][0]["rules"]
    assert [r.get("record") or r["alert"] for r in rules] == [r["name"] for r in groups[1]["rules"]]
    for rule in rules:  # the group runs every 5 minutes: evaluate each expression now instead
        prom.query(rule["expr"])
    for expr in dashboard_exprs():
        prom.query(expr.replace("$__rate_interval", "1m").replace("$instance", ".*"))
    answer = prom.api("query", query="sum(opsagent_policy_compliant) / count(opsagent_policy_compliant)")
    assert answer["data"]["result"][0]["value"][1] == "1"
