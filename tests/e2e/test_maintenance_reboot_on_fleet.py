"""Reboots in waves on three fleet hosts booted with systemd, each asking for a reboot
(/run/reboot-required): one host at a time reboots for real (the fleet boots a container
again when it asks to), the next wave waits until it is back and healthy; the second
host fails its health check after its reboot, so the third is never rebooted, its steps
skipped saying why, and the run fails."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fleet import Fleet, Host

pytestmark = [pytest.mark.fleet, pytest.mark.slow]
POLICY = """\
apiVersion: opsagent/v1
kind: maintenance
metadata: {{name: reboots}}
targets: [{targets}]
spec:
  reboot:
    batch: 1
    max_fail_percentage: 0
    timeout: 90s
    delay: 2s
    health:
      - command: 's=$(systemctl is-system-running --wait); [ "$s" = running ] || [ "$s" = degraded ]'
      - command: test ! -e /etc/opsagent-test-broken
"""


@pytest.fixture
def three(fleet: Fleet, systemd_host: Host) -> Iterator[list[Host]]:
    """The session's systemd host and two more, taken out of the fleet again afterwards."""
    added = fleet.up(0, systemd=2)
    try:
        yield [systemd_host, *added]
    finally:
        for host in added:
            fleet.remove(host.name)
        fleet.reset(systemd_host.name)


def booted_again(fleet: Fleet, host: Host) -> bool:
    """Whether the host rebooted since the test marked its /run (a tmpfs of each boot)."""
    return fleet.ssh(host.name, "test -e /run/opsagent-test-boot").returncode != 0


def test_reboots_go_a_wave_at_a_time_and_a_host_failing_its_health_check_stops_them(
        tmp_path: Path, fleet: Fleet, three: list[Host]) -> None:
    first, second, third = three
    for host in three:
        fleet.run(host.name, "touch /run/reboot-required /run/opsagent-test-boot")
    fleet.run(second.name, "touch /etc/opsagent-test-broken")
    (tmp_path / "p.yml").write_text(POLICY.format(targets=", ".join(h.name for h in three)))
    args = [sys.executable, "-m", "agent", "apply", "p.yml", "-i", str(fleet.inventory), "--json",
            "--diff", "--state-dir", str(tmp_path / "state")]
    done = subprocess.run(args, cwd=tmp_path, capture_output=True, text=True, timeout=900)
    assert done.stdout, done.stderr
    result = {h["host"]: h for h in json.loads(done.stdout)["hosts"]}
    assert done.returncode == 2, done.stdout

    ops = {name: {op["name"]: op for op in result[name]["ops"]} for name in result}
    assert ops[first.name]["reboot"]["status"] == "changed"
    assert "rebooting: /run/reboot-required says so" in ops[first.name]["reboot"]["diff"]
    assert booted_again(fleet, first) and booted_again(fleet, second)
    assert not booted_again(fleet, third)  # the waves stopped before it
    first_health = [op for name, op in ops[first.name].items() if name.startswith("health check")]
    assert [op["status"] for op in first_health] == ["ok"], ops[first.name]
    second_health = [op for name, op in ops[second.name].items() if name.startswith("health check")]
    assert [op["status"] for op in second_health] == ["failed"], ops[second.name]
    assert ops[third.name]["reboot"]["status"] == "skipped"
    assert "rollout stopped after wave 2" in ops[third.name]["reboot"]["error"]
    assert fleet.ssh(first.name, "test ! -e /run/reboot-required").returncode == 0
