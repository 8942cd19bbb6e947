"""`opsagent report`'s "where the time goes" from real runs: a policy that got slower since
the previous period is ranked first and flagged, a steady one is not, and a period whose
predecessor the store does not cover says so. The earlier runs happen three days back in
time (libfaketime, for the opsagent process alone)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

FAKETIME = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1"
POLICIES = """\
apiVersion: opsagent/v1
kind: tasks
metadata: {name: grows}
targets: [all]
spec:
  tasks:
    - name: pause
      server.shell: {commands: ["sleep {{ pause }}"]}
---
apiVersion: opsagent/v1
kind: tasks
metadata: {name: steady}
targets: [all]
spec:
  tasks:
    - name: nap
      server.shell: {commands: ["sleep 0.2"]}
"""

pytestmark = pytest.mark.skipif(not Path(FAKETIME).exists(),
                                reason="libfaketime (Debian: faketime) not installed")


def opsagent(root: Path, *args: str, env: dict[str, str] | None = None) -> str:
    done = subprocess.run([sys.executable, "-m", "agent", *args], cwd=root, capture_output=True,
                          text=True, timeout=120, env={**os.environ, **(env or {})})
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def apply(root: Path, pause: float, days_ago: int = 0) -> None:
    (root / "inventory.yml").write_text(f"vars: {{pause: {pause}}}\nhosts: {{'@local': {{}}}}\n")
    env = {"LD_PRELOAD": FAKETIME, "FAKETIME": f"-{days_ago}d",
           "FAKETIME_DONT_FAKE_MONOTONIC": "1"} if days_ago else None
    opsagent(root, "apply", "policies", "-i", "inventory.yml", "--state-dir", "state", env=env)


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("time")
    (root / "policies").mkdir()
    (root / "policies" / "all.yml").write_text(POLICIES)
    apply(root, 0.1, days_ago=3)
    apply(root, 0.1, days_ago=3)
    apply(root, 1.2)
    return root


def time_spent(root: Path, since: str) -> dict[str, Any]:
    data = json.loads(opsagent(root, "report", "--format", "json", "--since", since,
                               "--state-dir", "state"))
    spent: dict[str, Any] = data["time"]
    spent["slower"] = data["summary"]["slower"]
    return spent


def test_the_policy_that_got_slower_comes_first_and_is_flagged(project: Path) -> None:
    spent = time_spent(project, "2d")
    grows, steady = spent["policies"]
    assert (grows["policy"], grows["runs"], grows["previous_runs"]) == ("grows", 1, 2)
    assert grows["mean"] >= 1.2 and grows["previous_mean"] < 0.6, grows
    assert grows["slower"] and grows["change"] > 1, grows
    assert (steady["policy"], steady["previous_runs"], steady["slower"]) == ("steady", 2, False)
    assert 0.2 <= steady["mean"] < 1 and abs(steady["change"]) < 0.5, steady
    assert spent["slower"] == 1
    pause = spent["operations"][0]
    assert (pause["policy"], pause["step"], pause["operation"]) == ("grows", "pause", "server.shell")
    assert spent["previous_partial"]  # results go back 3 days; the previous period began 4 days ago


def test_a_previous_period_without_runs_shows_new_not_a_fall(project: Path) -> None:
    spent = time_spent(project, "1d")  # the previous day had no run; the store goes back further
    assert [p["policy"] for p in spent["policies"]] == ["grows", "steady"]
    assert all(p["previous_mean"] is None and p["change"] is None and not p["slower"]
               for p in spent["policies"])
    assert not spent["previous_partial"] and spent["slower"] == 0
    assert [p["policy"] for p in time_spent(project, "4d")["policies"]] == ["grows", "steady"]


def test_the_html_report_marks_the_slower_policy(project: Path) -> None:
    page = opsagent(project, "report", "--since", "2d", "--top", "1", "--state-dir", "state")
    section = page.split("<h2>Where the time goes</h2>", 1)[1].split("<h2>", 1)[0]
    policies = section.split('id="slowest-policies"', 1)[1].split("</table>", 1)[0]
    assert policies.count("<tr>") == 2 and "grows" in policies and "steady" not in policies
    assert 'class="bad">+' in policies and "slower" in policies
    assert "the previous period is covered in part" in section


def test_a_bad_top_is_bad_input(project: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "agent", "report", "--top", "0", "--state-dir",
                           "state"], cwd=project, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and "--top: expected a whole number from 1, got '0'" in done.stderr
    assert "Traceback" not in done.stderr
