"""Handlers on a real host (@local): run once at the end of their policy, only after a
change that notifies them, also after a later failure; 'would run' in check mode."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.support.project import opsagent

POLICY = """\
apiVersion: opsagent/v1
kind: tasks
metadata: {{name: web}}
targets: ["@local"]
spec:
  tasks:
    - name: site config
      files.line: {{path: "{root}/site.conf", line: "listen 8080"}}
      notify: reload
    - name: extra config
      files.line: {{path: "{root}/extra.conf", line: "gzip on"}}
      notify: [reload]
{more}
  handlers:
    - name: reload
      server.shell: {{commands: ["echo reloaded >> {root}/reloads"]}}
    - name: never notified
      server.shell: {{commands: ["touch {root}/never"]}}
"""


def apply(root: Path, *extra: str, more: str = "") -> tuple[int, dict[str, Any]]:
    (root / "p.yml").write_text(POLICY.format(root=root, more=more))
    for name in ("site.conf", "extra.conf"):
        (root / name).touch()
    done = opsagent(root, *(extra or ("apply",)), "p.yml", "-i", "@local", "--json",
                    "--state-dir", str(root / "state"))
    return done.returncode, json.loads(done.stdout)


def ops(result: dict[str, Any]) -> list[tuple[str, str]]:
    return [(op["name"], op["status"]) for op in result["hosts"][0]["ops"]]


def test_a_handler_runs_once_for_two_changes_and_not_when_nothing_changed(tmp_path: Path) -> None:
    code, result = apply(tmp_path, "plan")
    assert code == 0
    assert ops(result) == [("site config", "changed"), ("extra config", "changed"),
                           ("reload", "ran")]  # would run, judged only
    assert result["hosts"][0]["ops"][2]["diff"] == "notified by site config, extra config"
    assert not (tmp_path / "reloads").exists()
    code, result = apply(tmp_path)
    assert code == 0
    assert ops(result) == [("site config", "changed"), ("extra config", "changed"),
                           ("reload", "ran")]
    assert (tmp_path / "reloads").read_text() == "reloaded\n"  # once, for both
    assert not (tmp_path / "never").exists()
    code, result = apply(tmp_path)
    assert code == 0
    assert ops(result) == [("site config", "ok"), ("extra config", "ok")]  # nothing to notify
    assert (tmp_path / "reloads").read_text() == "reloaded\n"


def test_a_notified_handler_still_runs_after_a_later_failure(tmp_path: Path) -> None:
    failing = ('    - name: broken\n      server.shell: {commands: ["false"]}\n'
               '    - name: after it\n      server.shell: {commands: ["true"]}')
    code, result = apply(tmp_path, more=failing)
    assert code == 2
    assert ops(result) == [("site config", "changed"), ("extra config", "changed"),
                           ("broken", "failed"), ("after it", "skipped"), ("reload", "ran")]
    assert (tmp_path / "reloads").read_text() == "reloaded\n"


def test_an_unknown_handler_is_bad_input(tmp_path: Path) -> None:
    (tmp_path / "p.yml").write_text(POLICY.format(root=tmp_path, more="").replace(
        "notify: [reload]", "notify: [relaod]"))
    done = opsagent(tmp_path, "validate", "p.yml", "-i", "@local")
    assert done.returncode == 1
    assert done.stderr.splitlines()[0] == (
        "p.yml:12:16: tasks 'web' > spec.tasks[1].notify[0]: no handler named "
        "'relaod'; did you mean 'reload'?")
