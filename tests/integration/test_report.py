"""`opsagent report` from real runs: JSON, JUnit, and the HTML page rendered in headless
Chromium, its screenshot checked for the compliance colours and its DOM for the figures."""

from __future__ import annotations

import json
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tests.support.png import pixels
from tests.support.project import opsagent

POLICIES = """\
apiVersion: opsagent/v1
kind: tasks
metadata: {name: good}
targets: [all]
spec:
  tasks:
    - name: sandbox
      files.directory: {path: "{{ sandbox }}"}
---
apiVersion: opsagent/v1
kind: tasks
metadata: {name: watch}
targets: [all]
mode: audit
spec:
  tasks:
    - name: marker
      files.line: {path: "{{ sandbox }}/marker", line: "wanted", present: true}
---
apiVersion: opsagent/v1
kind: tasks
metadata: {name: broken}
targets: [all]
spec:
  tasks:
    - name: fails
      server.shell: {commands: ["echo no such thing >&2; exit 3"]}
"""
GREEN, AMBER, RED = (0x2E, 0x9E, 0x44), (0xE0, 0xA1, 0x00), (0xD0, 0x31, 0x2D)
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync")


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("report")
    (root / "policies").mkdir()
    (root / "templates").mkdir()
    (root / "policies" / "all.yml").write_text(POLICIES)
    (root / "inventory.yml").write_text(f"vars: {{sandbox: {root / 'sandbox'}}}\n"
                                        "hosts: {'@local': {}}\n")
    done = opsagent(root, "apply", "policies", "-i", "inventory.yml", "--state-dir", "state")
    assert done.returncode == 2, done.stdout + done.stderr
    return root


def test_json_report_counts_compliance_changes_and_failures(project: Path) -> None:
    done = opsagent(project, "report", "--format", "json", "--since", "1h", "--state-dir", "state")
    data = json.loads(done.stdout)
    assert data["summary"] == {"cells": 3, "compliant": 1, "changes": 1, "failures": 1, "runs": 1,
                               "failed_runs": 1, "findings": 0, "controls_failing": 0,
                               "deploys": 0, "slower": 0}
    cells = {c["policy"]: (c["result"], c["compliant"], c["drift"]) for c in data["cells"]}
    assert cells == {"good": ("success", True, 0), "watch": ("success", False, 1),
                     "broken": ("failed", False, 0)}
    assert "no such thing" in data["failures"][0]["detail"]


def test_junit_report_fails_the_non_compliant_cases(project: Path) -> None:
    done = opsagent(project, "report", "--format", "junit", "--state-dir", "state")
    root = ET.fromstring(done.stdout)
    assert (root.get("tests"), root.get("failures")) == ("3", "2")
    failures = {s.get("name"): [f.get("message") for f in s.iter("failure")] for s in root}
    assert failures["good"] == []
    assert failures["watch"] == ["1 operation(s) not as wanted"]
    assert "no such thing" in str(failures["broken"][0])


@pytest.mark.skipif(not shutil.which("chromium"), reason="chromium (Debian: chromium) not installed")
def test_html_report_renders_in_chromium_with_the_compliance_colours(project: Path, tmp_path: Path) -> None:
    page = tmp_path / "report.html"
    assert opsagent(project, "report", "-o", str(page), "--state-dir", "state").returncode == 0
    shot = tmp_path / "shot.png"
    common = (*CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}")
    subprocess.run(["chromium", *common, f"--screenshot={shot}", "--window-size=1200,900",
                    page.as_uri()], capture_output=True, timeout=120, check=True)
    width, height, colours = pixels(shot)
    assert (width, height) == (1200, 900)
    # one cell each: compliant (green), drift (amber), failed (red); a cell is ~90x34 px
    for colour in (GREEN, AMBER, RED):
        assert colours[colour] > 1500, (colour, colours[colour])
    dom = subprocess.run(["chromium", *common, "--dump-dom", page.as_uri()], capture_output=True,
                         text=True, timeout=120, check=True).stdout
    assert '<b id="compliant">1 / 3</b>' in dom
    assert "drift: 1" in dom and "no such thing" in dom
