"""`loop:` on a real host (@local): one step per item, each with its own result line and
diff; a changed item changes alone; a second apply changes nothing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.support.project import opsagent

POLICY = """\
apiVersion: opsagent/v1
kind: tasks
metadata: {{name: users}}
targets: [all]
spec:
  tasks:
    - name: login file
      files.template: {{src: user.j2, dest: "{root}/{{{{ user.name }}}}.conf"}}
      loop: "{{{{ users }}}}"
      loop_control: {{loop_var: user}}
"""


def apply(root: Path, bob_shell: str) -> dict[str, Any]:
    (root / "inventory.yml").write_text(
        "vars:\n  users: [{name: alice, shell: /bin/bash}, {name: bob, shell: "
        f"{bob_shell}}}]\nhosts: {{'@local': {{}}}}\n")
    done = opsagent(root, "apply", "p.yml", "-i", "inventory.yml", "--templates", "tpl", "--json",
                    "--diff", "--state-dir", str(root / "state"))
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def test_each_item_is_its_own_step_with_its_own_diff(tmp_path: Path) -> None:
    (tmp_path / "tpl").mkdir()
    (tmp_path / "tpl" / "user.j2").write_text("{{ user.name }} logs in with {{ user.shell }}\n")
    (tmp_path / "p.yml").write_text(POLICY.format(root=tmp_path))
    ops = apply(tmp_path, "/bin/sh")["hosts"][0]["ops"]
    assert [(op["name"], op["status"]) for op in ops] == [
        ("login file (alice)", "changed"), ("login file (bob)", "changed")]
    assert (tmp_path / "bob.conf").read_text() == "bob logs in with /bin/sh\n"
    ops = apply(tmp_path, "/bin/zsh")["hosts"][0]["ops"]
    assert [(op["name"], op["status"]) for op in ops] == [
        ("login file (alice)", "ok"), ("login file (bob)", "changed")]
    assert "- bob logs in with /bin/sh" in ops[1]["diff"]
    assert "+ bob logs in with /bin/zsh" in ops[1]["diff"]
    assert not ops[0]["diff"]
    ops = apply(tmp_path, "/bin/zsh")["hosts"][0]["ops"]
    assert [op["status"] for op in ops] == ["ok", "ok"]
