"""The daemon pushing to three fleet hosts over SSH: scheduled runs with splay converge
every host; a host cut off shows in the metrics as unreachable while the others go on."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.fleet import Fleet, faults
from tests.support.daemon import Daemon, wait_for

pytestmark = pytest.mark.fleet

POLICY = """\
apiVersion: opsagent/v1
kind: tasks
metadata: {name: stamp}
targets: [all]
schedule: {every: 2s, splay: 1s, timeout: 30s}
spec:
  tasks:
    - name: sandbox
      files.directory: {path: "{{ sandbox }}"}
    - name: stamp
      server.shell: {commands: ["date +%s.%N >> {{ sandbox }}/stamps"]}
"""


def metric(text: str, name: str, host: str) -> str | None:
    found = re.search(rf'^{name}{{host="{host}"[^}}]*}} (\S+)$', text, re.M)
    return found.group(1) if found else None


def stamps(fleet: Fleet, host: str) -> int:
    path = fleet.host(host).path("/srv/sandbox/stamps")
    return len(path.read_text().splitlines()) if path.exists() else 0


def test_daemon_converges_the_fleet_and_reports_a_lost_host(fresh_fleet: Fleet, tmp_path: Path) -> None:
    (tmp_path / "policies").mkdir()
    (tmp_path / "policies" / "stamp.yml").write_text(POLICY)
    (tmp_path / "agent.yml").write_text(f"policies: [policies]\ninventory: {fresh_fleet.inventory}\n"
                                        "state_dir: state\nlog_format: json\ntimeout: 3\n")
    d = Daemon(tmp_path)
    try:
        d.up()
        wait_for(lambda: all(stamps(fresh_fleet, h) >= 2 for h in ("h1", "h2", "h3")), timeout=60,
                 what="two scheduled runs on every host")
        text = d.get("/metrics")[1]
        for host in ("h1", "h2", "h3"):
            assert metric(text, "opsagent_policy_compliant", host) == "1.0"
            assert metric(text, "opsagent_host_reachable", host) == "1.0"
        with faults.cut_off(fresh_fleet, "h2"):
            wait_for(lambda: metric(d.get("/metrics")[1], "opsagent_host_reachable", "h2") == "0.0",
                     timeout=60, what="h2 reported unreachable")
            before = {h: stamps(fresh_fleet, h) for h in ("h1", "h3")}
            wait_for(lambda: all(stamps(fresh_fleet, h) > before[h] for h in before), timeout=60,
                     what="h1 and h3 still converged while h2 is away")
        wait_for(lambda: metric(d.get("/metrics")[1], "opsagent_host_reachable", "h2") == "1.0",
                 timeout=60, what="h2 back")
    finally:
        assert d.stop() == 0
