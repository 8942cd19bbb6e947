"""--tags and --skip-tags, with Ansible's special tags."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from agent.tags import selected


@pytest.mark.parametrize("tags, only, skip, runs", [
    ((), None, None, True),
    (("web",), None, None, True),
    (("web",), ["web"], None, True),
    (("db",), ["web"], None, False),
    ((), ["web"], None, False),
    (("always",), ["web"], None, True),
    (("always",), ["web"], ["always"], False),
    (("web",), None, ["web"], False),
    (("web", "db"), ["db"], ["web"], False),  # a skip wins
    (("never",), None, None, False),
    (("never", "debug"), ["debug"], None, True),
    (("never", "debug"), ["all"], None, False),
    (("web",), ["all"], None, True),
    (("web",), ["tagged"], None, True),
    ((), ["tagged"], None, False),
    ((), ["untagged"], None, True),
    ((), None, ["untagged"], False),
    (("web",), None, ["tagged"], False),
])
def test_selection(tags: tuple[str, ...], only: list[str] | None, skip: list[str] | None,
                   runs: bool) -> None:
    assert selected(tags, only, skip) is runs


POLICY = """\
apiVersion: opsagent/v1
kind: tasks
metadata: {name: tagged}
targets: ["@local"]
tags: [app]
spec:
  tasks:
    - name: config
      files.directory: {path: /tmp/opsagent-tags/a}
      tags: [config]
    - name: packages
      files.directory: {path: /tmp/opsagent-tags/b}
    - name: debug dump
      server.shell: {commands: ["true"]}
      tags: [never, debug]
"""


def plan(*args: str) -> tuple[int, list[str], str]:
    """`opsagent plan` in a process of its own (it lets gevent patch its process): the exit
    code, the steps it names, its stderr."""
    done = subprocess.run([sys.executable, "-m", "agent", "plan", *args], capture_output=True,
                          text=True, timeout=120)
    names = [line.split(" > ")[1].split(":")[0] for line in done.stdout.splitlines() if " > " in line]
    return done.returncode, names, done.stderr


def test_plan_runs_only_the_tagged_steps(tmp_path: Path) -> None:
    (tmp_path / "p.yml").write_text(POLICY)
    base = [str(tmp_path / "p.yml"), "-i", "@local", "--state-dir", str(tmp_path / "s")]
    assert plan(*base)[:2] == (0, ["config", "packages"])  # never: not without --tags debug
    assert plan(*base, "--tags", "config,debug")[:2] == (0, ["config", "debug dump"])
    assert plan(*base, "--tags", "app", "--skip-tags", "config,debug")[:2] == (0, ["packages"])  # policy tag
    code, _, err = plan(*base, "--tags", "nothing-has-this")
    assert code == 1 and err.splitlines()[0] == (
        "--tags: --tags nothing-has-this leave no step of the selected policies on any host: "
        "nothing to do")
