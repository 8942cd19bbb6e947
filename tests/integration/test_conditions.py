"""`when:` on a real host (@local): a false condition skips the task, saying why, in the
terminal and in --json; a true one runs it; nothing about it changes on a second apply."""

from __future__ import annotations

import json
from pathlib import Path

from tests.support.project import opsagent

POLICY = """\
apiVersion: opsagent/v1
kind: tasks
metadata: {{name: cond}}
targets: ["@local"]
spec:
  tasks:
    - name: only on web hosts
      files.directory: {{path: "{root}/web"}}
      when: "'web' in host.groups"
    - name: on the sandbox
      files.directory: {{path: "{root}/local"}}
      when: host.name == '@local'
"""


def test_a_false_when_skips_the_task_and_says_why(tmp_path: Path) -> None:
    (tmp_path / "p.yml").write_text(POLICY.format(root=tmp_path))
    args = ("p.yml", "-i", "@local", "--state-dir", str(tmp_path / "state"))
    done = opsagent(tmp_path, "apply", *args, "--json")
    assert done.returncode == 0, done.stderr
    ops = json.loads(done.stdout)["hosts"][0]["ops"]
    assert [(op["name"], op["status"], op["error"]) for op in ops] == [
        ("only on web hosts", "skipped", "when: 'web' in host.groups is false"),
        ("on the sandbox", "changed", "")]
    assert not (tmp_path / "web").exists() and (tmp_path / "local").is_dir()
    done = opsagent(tmp_path, "apply", *args)
    assert done.returncode == 0, done.stderr
    assert "when: 'web' in host.groups is false" in done.stdout
    assert "changed=0 " in done.stdout and "skipped=1 " in done.stdout
