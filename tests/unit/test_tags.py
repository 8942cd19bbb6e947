"""--tags and --skip-tags, with Ansible's special tags."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.cli import main
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


def names(capsys: pytest.CaptureFixture[str]) -> list[str]:
    return [line.split(" > ")[1].split(":")[0] for line in capsys.readouterr().out.splitlines()
            if " > " in line]


def test_plan_runs_only_the_tagged_steps(tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                         ) -> None:
    (tmp_path / "p.yml").write_text(POLICY)
    base = ["plan", str(tmp_path / "p.yml"), "-i", "@local", "--state-dir", str(tmp_path / "s")]
    assert main(base) == 0
    assert names(capsys) == ["config", "packages"]  # never: not without --tags debug
    assert main([*base, "--tags", "config,debug"]) == 0
    assert names(capsys) == ["config", "debug dump"]
    assert main([*base, "--tags", "app", "--skip-tags", "config,debug"]) == 0  # policy tag
    assert names(capsys) == ["packages"]
    assert main([*base, "--tags", "nothing-has-this"]) == 1
    assert capsys.readouterr().err.splitlines()[0] == (
        "--tags: --tags nothing-has-this leave no step of the selected policies on any host: "
        "nothing to do")
