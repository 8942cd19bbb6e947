"""A tasks policy rolled out in waves across the fleet: a host that fails its health
check stops the rollout, and the hosts of later waves are never touched."""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fleet import Fleet
from tests.support.project import opsagent

pytestmark = pytest.mark.fleet

POLICY = """\
apiVersion: opsagent/v1
kind: tasks
metadata: {{name: rolled}}
targets: [h1, h2, h3]
rollout:
  batch: [1]
  max_fail_percentage: {budget}
  health: {health}
spec:
  tasks:
    - name: release marker
      files.file: {{path: /srv/rolled, mode: "644"}}
"""


def rollout(fleet: Fleet, root: Path, health: str, budget: int = 0
            ) -> tuple[int, dict[str, Any], str]:
    (root / "policies").mkdir(parents=True, exist_ok=True)
    (root / "policies" / "rolled.yml").write_text(POLICY.format(budget=budget, health=health))
    done = opsagent(root, "apply", "policies", "-i", str(fleet.inventory), "--json",
                    "--state-dir", str(root / "state"))
    shown = opsagent(root, "history", "--state-dir", str(root / "state"))
    return done.returncode, json.loads(done.stdout), shown.stdout


def by_host(result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {h["host"]: h for h in result["hosts"]}


def touched(fleet: Fleet) -> dict[str, bool]:
    return {name: fleet.host(name).path("/srv/rolled").exists() for name in ("h1", "h2", "h3")}


def test_a_failed_health_check_stops_the_waves_left(fresh_fleet: Fleet, tmp_path: Path) -> None:
    fresh_fleet.run("h2", "touch /srv/sick")
    code, result, _ = rollout(fresh_fleet, tmp_path, '{command: "test ! -e /srv/sick"}')
    assert code == 2
    hosts = by_host(result)
    assert result["format"] == 1
    assert {n: h["waves"] for n, h in hosts.items()} == {
        "h1": {"rolled": 1}, "h2": {"rolled": 2}, "h3": {"rolled": 3}}
    assert [(op["name"], op["status"]) for op in hosts["h2"]["ops"]] == [
        ("release marker", "changed"), ("health check: test ! -e /srv/sick", "failed")]
    assert [op["status"] for op in hosts["h1"]["ops"]] == ["changed", "ok"]
    [skipped] = hosts["h3"]["ops"]
    assert skipped["status"] == "skipped"
    assert skipped["error"].startswith("rollout stopped after wave 2: 1 of 3 hosts failed (h2)")
    assert touched(fresh_fleet) == {"h1": True, "h2": True, "h3": False}  # h3 never touched


def test_the_budget_counts_failures_over_the_whole_rollout(
        fresh_fleet: Fleet, tmp_path: Path) -> None:
    # 34% of 3 hosts: one failure is within it, so every wave runs
    fresh_fleet.run("h1", "touch /srv/sick")
    code, result, _ = rollout(fresh_fleet, tmp_path, '{command: "test ! -e /srv/sick"}', 34)
    assert code == 2  # h1 failed its check, but the rollout went on
    assert touched(fresh_fleet) == {"h1": True, "h2": True, "h3": True}
    # a second failure passes the 34% of the whole rollout: the last wave does not start
    for name in ("h1", "h2", "h3"):
        fresh_fleet.run(name, "rm -f /srv/rolled")
    fresh_fleet.run("h2", "touch /srv/sick")
    code, result, _ = rollout(fresh_fleet, tmp_path, '{command: "test ! -e /srv/sick"}', 34)
    assert code == 2
    assert touched(fresh_fleet) == {"h1": True, "h2": True, "h3": False}
    assert "2 of 3 hosts failed (h1, h2)" in by_host(result)["h3"]["ops"][0]["error"]


@pytest.fixture
def health_server() -> Iterator[int]:
    """A loopback HTTP server: 200 for /h1 and /h3, 503 for anything else."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            self.send_response(200 if self.path in ("/h1", "/h3") else 503)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()


def test_an_http_probe_per_host_and_the_recap_says_each_wave(
        fresh_fleet: Fleet, tmp_path: Path, health_server: int) -> None:
    url = f"http://127.0.0.1:{health_server}/{{{{ host.name }}}}"
    code, result, history = rollout(fresh_fleet, tmp_path, f'{{http: {{url: "{url}"}}}}')
    assert code == 2
    h2 = by_host(result)["h2"]["ops"]
    assert (h2[-1]["name"], h2[-1]["status"]) == (f"health check: GET {url.replace('{{ host.name }}', 'h2')}",
                                                  "failed")
    assert "status 503, expected 200" in h2[-1]["error"]
    assert touched(fresh_fleet) == {"h1": True, "h2": True, "h3": False}
    # and the people's view: progress says each wave, the recap which wave a host was in
    for name in ("h1", "h2"):
        fresh_fleet.run(name, "rm -f /srv/rolled")
    (tmp_path / "policies" / "rolled.yml").write_text(POLICY.format(
        budget=0, health=f'{{http: {{url: "{url}"}}}}'))
    shown = opsagent(tmp_path, "apply", "policies", "-i", str(fresh_fleet.inventory),
                     "--state-dir", str(tmp_path / "state"))
    assert "tasks 'rolled': wave 2 of 3: h2" in shown.stdout
    assert "tasks 'rolled': rollout stopped after wave 2" in shown.stdout
    recap = shown.stdout.split("RECAP", 1)[1]
    assert [line.split()[0] for line in recap.splitlines() if "wave " in line] == ["h1", "h2", "h3"]
    assert "wave 3 of 'rolled'" in recap


def test_sigterm_during_the_pause_stops_the_waves_left(fresh_fleet: Fleet, tmp_path: Path) -> None:
    import signal
    import subprocess
    import sys

    (tmp_path / "policies").mkdir()
    (tmp_path / "policies" / "rolled.yml").write_text(
        POLICY.format(budget=0, health='{command: "true"}').replace(
            "  batch: [1]\n", "  batch: [1]\n  pause: 10m\n"))
    proc = subprocess.Popen(
        [sys.executable, "-m", "agent", "apply", "policies", "-i", str(fresh_fleet.inventory),
         "--state-dir", str(tmp_path / "state")], cwd=tmp_path, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith("pausing 600s"):
            break
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)  # not the 10 minutes of the pause
    assert proc.returncode == 2, err
    assert touched(fresh_fleet) == {"h1": True, "h2": False, "h3": False}
    assert "opsagent was asked to stop" in out  # the recap says why h2 and h3 did nothing
    history = opsagent(tmp_path, "history", "--state-dir", str(tmp_path / "state")).stdout
    assert "apply" in history and "interrupted" not in history  # recorded, not lost
