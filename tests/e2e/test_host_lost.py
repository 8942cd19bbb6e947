"""A host that drops off the network in the middle of a run is reported unreachable; the
others converge."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.fleet import Fleet, faults

pytestmark = pytest.mark.fleet
REPO = Path(__file__).resolve().parents[2]

SLOW = """\
apiVersion: opsagent/v1
kind: tasks
metadata: {name: slow}
targets: [all]
spec:
  tasks:
    - name: started
      files.directory: {path: "{{ sandbox }}"}
    - name: slow work
      server.shell: {commands: ["sleep 3"]}
    - name: finished
      files.line: {path: "{{ sandbox }}/done", line: "done"}
"""


def test_host_cut_off_mid_run_is_unreachable_while_others_converge(
    fresh_fleet: Fleet, tmp_path: Path,
) -> None:
    (tmp_path / "slow.yml").write_text(SLOW)
    run = subprocess.Popen(
        [sys.executable, "-m", "agent", "apply", str(tmp_path), "-i", str(fresh_fleet.inventory),
         "--json", "--timeout", "3"],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    started = fresh_fleet.host("h2").path("/srv/sandbox")
    deadline = time.monotonic() + 60
    while not started.exists():  # h2 has connected and done its first step
        assert run.poll() is None and time.monotonic() < deadline, run.communicate()
        time.sleep(0.02)
    with faults.cut_off(fresh_fleet, "h2"):
        out, err = run.communicate(timeout=120)
    assert err == ""
    assert run.returncode == 2
    hosts = {h["host"]: h for h in json.loads(out)["hosts"]}
    lost = hosts["h2"]
    assert lost["unreachable"] is True
    assert "connection lost" in lost["error"]
    assert [op["status"] for op in lost["ops"]] == ["changed", "failed", "skipped"]
    assert not fresh_fleet.host("h2").path("/srv/sandbox/done").exists()
    for name in ("h1", "h3"):
        assert hosts[name]["unreachable"] is False
        assert [op["status"] for op in hosts[name]["ops"]] == ["changed", "ran", "changed"]
        assert fresh_fleet.host(name).path("/srv/sandbox/done").read_text() == "done\n"


def test_host_cut_off_before_the_run_is_unreachable(fresh_fleet: Fleet) -> None:
    with faults.cut_off(fresh_fleet, "h3"):
        proc = subprocess.run(
            [sys.executable, "-m", "agent", "apply", "policies", "-i", str(fresh_fleet.inventory),
             "--json", "--timeout", "2"],
            cwd=REPO, capture_output=True, text=True, timeout=120,
        )
    assert proc.returncode == 2, proc.stderr
    hosts = {h["host"]: h for h in json.loads(proc.stdout)["hosts"]}
    assert hosts["h3"]["unreachable"] is True
    assert {op["status"] for op in hosts["h3"]["ops"]} == {"skipped"}
    assert not fresh_fleet.host("h3").path("/srv/sandbox").exists()
    assert hosts["h1"]["counts"]["changed"] == hosts["h2"]["counts"]["changed"] == 7
