"""`when:` on a real host (@local): a false condition skips the task, saying why, in the
terminal and in --json; a true one runs it; nothing about it changes on a second apply."""

from __future__ import annotations

import json
import os
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


REGISTER = """\
apiVersion: opsagent/v1
kind: tasks
metadata: {{name: upgrade}}
targets: ["@local"]
spec:
  tasks:
    - name: read version
      server.shell: {{commands: ["cat {root}/version 2>/dev/null || echo none"]}}
      register: version
    - name: upgrade
      server.shell: {{commands: ["echo 2 > {root}/version"]}}
      when: version.stdout != '2'
    - name: conf
      files.line: {{path: "{root}/app.conf", line: "listen {{{{ facts.processor_vcpus * 1000 }}}}"}}
      register: conf
    - name: restart after conf
      server.shell: {{commands: ["echo restart >> {root}/restarts"]}}
      when: conf.changed and facts.os_family != ''
"""


def test_when_reads_results_registered_earlier_on_the_host(tmp_path: Path) -> None:
    (tmp_path / "p.yml").write_text(REGISTER.format(root=tmp_path))
    (tmp_path / "app.conf").touch()
    args = ("p.yml", "-i", "@local", "--state-dir", str(tmp_path / "state"), "--json")
    done = opsagent(tmp_path, "apply", *args)
    assert done.returncode == 0, done.stderr
    ops = json.loads(done.stdout)["hosts"][0]["ops"]
    assert [(op["name"], op["status"]) for op in ops] == [
        ("read version", "ran"), ("upgrade", "ran"), ("conf", "changed"),
        ("restart after conf", "ran")]
    online = os.sysconf("SC_NPROCESSORS_ONLN")  # what getconf _NPROCESSORS_ONLN says
    assert (tmp_path / "app.conf").read_text() == f"listen {online * 1000}\n"  # a number
    done = opsagent(tmp_path, "apply", *args)
    ops = json.loads(done.stdout)["hosts"][0]["ops"]
    assert [(op["name"], op["status"], op["error"]) for op in ops] == [
        ("read version", "ran", ""), ("upgrade", "skipped", "when: version.stdout != '2' is false"),
        ("conf", "ok", ""), ("restart after conf", "skipped", "when: conf.changed and "
                             "facts.os_family != '' is false")]
    assert (tmp_path / "restarts").read_text() == "restart\n"
