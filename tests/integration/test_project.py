"""opsagent.yml gives every command its defaults; plan and apply say which inventory."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.project import opsagent

POLICY = """\
apiVersion: opsagent/v1
kind: tasks
metadata: {name: files}
targets: [all]
spec:
  tasks:
    - files.directory: {path: "{{ sandbox }}"}
    - files.template: {src: motd.j2, dest: "{{ sandbox }}/motd", who: "{{ host.name }}"}
"""


def project(root: Path, sandbox: Path) -> Path:
    for folder in ("site/policies", "site/templates", "site/inventories"):
        (root / folder).mkdir(parents=True)
    (root / "site/policies/files.yml").write_text(POLICY)
    (root / "site/templates/motd.j2").write_text("hello {{ who }}\n")
    (root / "site/inventories/dev.yml").write_text(f"vars: {{sandbox: {sandbox}}}\n"
                                                   "hosts: {'@local': {}}\n")
    (root / "opsagent.yml").write_text("inventory: site/inventories/dev.yml\n"
                                       "policies: [site/policies]\ntemplates: site/templates\n"
                                       "state_dir: site/state\n")
    return root


def test_every_command_takes_its_defaults_from_the_project_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPSAGENT_STATE_DIR")  # it would win over the project's state_dir
    root, sandbox = project(tmp_path / "p", tmp_path / "sandbox"), tmp_path / "sandbox"
    inventory = root / "site/inventories/dev.yml"
    plan = opsagent(root, "plan")
    assert plan.returncode == 0, plan.stderr
    assert plan.stdout.splitlines()[0] == (f"inventory: {inventory} (from opsagent.yml); "
                                           "1 host targeted")
    assert not sandbox.exists()
    apply = opsagent(root, "apply")
    assert apply.returncode == 0, apply.stderr
    assert (sandbox / "motd").read_text() == "hello @local\n"
    history = opsagent(root, "history")  # the project's state_dir
    assert history.returncode == 0 and "apply" in history.stdout and "plan" in history.stdout
    assert (root / "site/state/state.db").is_file()
    # the command line wins over the project file
    other = opsagent(root, "plan", "-i", "@local", "--state-dir", str(tmp_path / "other"))
    assert other.returncode == 1  # @local has no `sandbox` variable
    assert "undefined variable 'sandbox'" in other.stderr


def test_a_bad_project_file_is_located(tmp_path: Path) -> None:
    root = project(tmp_path / "p", tmp_path / "sandbox")
    (root / "opsagent.yml").write_text("inventory: site/inventories/dev.yml\npolices: [x]\n")
    done = opsagent(root, "validate")
    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        "opsagent.yml:2:1: project > polices: unknown field 'polices'; did you mean 'policies'?",
        "1 problem found; nothing was changed on any host."]
    explained = opsagent(root, "explain", "project")  # the help to fix it still works
    assert explained.returncode == 0 and "policies:" in explained.stdout


def test_without_inventory_the_first_line_says_this_machine(tmp_path: Path) -> None:
    (tmp_path / "policies").mkdir()
    (tmp_path / "policies/p.yml").write_text(POLICY.replace("{{ sandbox }}", str(tmp_path / "s"))
                                             .replace("    - files.template", "    # "))
    done = opsagent(tmp_path, "plan", "--state-dir", str(tmp_path / "state"))
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0] == ("inventory: @local (no -i, no opsagent.yml, no "
                                           "./inventories/local.yml: this machine itself); "
                                           "1 host targeted")
