"""The demo as a new user meets it, and `opsagent run` playbooks, on @local with real borg."""

from __future__ import annotations

import hashlib
import json
import shutil
import sqlite3
import subprocess
from pathlib import Path

from tests.support.project import opsagent

REPO = Path(__file__).resolve().parents[2]


def demo_project(root: Path) -> Path:
    """The repository's demo policies, playbooks and templates, with the sandbox below root."""
    for name in ("policies", "playbooks", "templates"):
        shutil.copytree(REPO / name, root / name)
    (root / "inventories").mkdir()
    inventory = (REPO / "inventories" / "local.yml").read_text()
    assert "/tmp/opsagent-sandbox" in inventory
    (root / "inventories" / "local.yml").write_text(
        inventory.replace("/tmp/opsagent-sandbox", str(root / "sandbox")))
    return root


def run(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return opsagent(root, *args, "--state-dir", str(root / "state"))


def digests(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def changed(proc: subprocess.CompletedProcess[str]) -> int:
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return sum(sum(1 for op in h["ops"] if op["status"] == "changed")
               for h in json.loads(proc.stdout)["hosts"])


def test_demo_applies_then_the_restore_playbook_brings_the_sandbox_back(tmp_path: Path) -> None:
    root = demo_project(tmp_path)
    sandbox = root / "sandbox"
    assert changed(run(root, "apply", "--json")) >= 7  # files, passphrase, init, create
    assert changed(run(root, "apply", "--json")) == 0  # nothing due: the archive is fresh
    passphrase = (sandbox / "borg.pass").read_text().strip()
    assert len(passphrase) >= 40 and (sandbox / "borg.pass").stat().st_mode & 0o077 == 0

    target = root / "restored"
    proc = run(root, "run", "playbooks/restore.yml", "--check", "-e", f"to={target}")
    assert proc.returncode == 0, proc.stderr
    assert "  @local: 1 archive\n    local-" in proc.stdout
    assert f"would restore latest from {sandbox}/borg into {target}" in proc.stdout
    assert not target.exists()

    proc = run(root, "run", "playbooks/restore.yml", "-e", f"to={target}")
    assert proc.returncode == 0, proc.stderr
    assert "playbook restore: 2 steps done" in proc.stdout
    came_back = target / str(sandbox).lstrip("/")
    wanted = {k: v for k, v in digests(sandbox).items()
              if not k.startswith("borg")}  # the repository and passphrase are excluded
    assert digests(came_back) == wanted and "app.conf" in wanted

    before = digests(target)
    proc = run(root, "run", "playbooks/restore.yml", "-e", f"to={target}")
    assert proc.returncode == 2
    assert f"{target} is not empty" in proc.stderr
    assert "playbook restore: step 2 (restore) failed" in proc.stderr
    assert digests(target) == before

    only = root / "only-motd"
    proc = run(root, "run", "playbooks/restore.yml", "-e", f"to={only}",
               "-e", f"paths={sandbox}/motd")
    assert proc.returncode == 0, proc.stderr
    assert list(digests(only)) == [f"{str(sandbox).lstrip('/')}/motd"]

    with sqlite3.connect(root / "state" / "state.db") as db:
        commands = [r[0] for r in db.execute("SELECT command FROM runs ORDER BY id")]
        dump = "\n".join(db.iterdump())
    assert commands.count("playbook restore") == 3  # the check run restores nothing
    assert passphrase not in dump and passphrase not in proc.stdout + proc.stderr


BAD = """\
apiVersion: opsagent/v1
kind: playbook
metadata: {name: bad}
vars: {where: /tmp/x}
steps:
  - backup.restore: {policy: "{{ polcy }}", to: "{{ where }}"}
  - backup.restore: {policy: demo-backup, to: relative, arhive: latest}
  - backup.list: {policy: demo-files}
  - backup.list: {policy: no-such}
  - backup.lst: {policy: demo-backup}
  - name: on a stranger
    hosts: [nowhere]
    files.directory: {path: /tmp/x}
"""


def test_bad_playbooks_name_file_line_and_field_and_run_nothing(tmp_path: Path) -> None:
    root = demo_project(tmp_path)
    (root / "playbooks" / "bad.yml").write_text(BAD)
    proc = run(root, "run", "playbooks/bad.yml", "-e", "wher=/tmp/y")
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    lines = proc.stderr.splitlines()
    assert lines == [
        "-e: 'wher' is not a variable of playbook 'bad'; did you mean 'where'? (its vars: where)",
        "playbooks/bad.yml:6:30: playbook 'bad' > steps[0].backup.restore.policy: undefined "
        "variable 'polcy'",
        "playbooks/bad.yml:7:57: playbook 'bad' > steps[1].backup.restore.arhive: unknown field "
        "'arhive'; did you mean 'archive'?",
        "playbooks/bad.yml:8:27: playbook 'bad' > steps[2].backup.list.policy: policy "
        "'demo-files' is a tasks policy, not backup",
        "playbooks/bad.yml:9:27: playbook 'bad' > steps[3].backup.list.policy: no policy named "
        "'no-such' in policies; expected one of demo-audit, demo-backup, demo-files",
        "playbooks/bad.yml:10:5: playbook 'bad' > steps[4].backup.lst: backup.lst is not an "
        "opsagent action (backup.list, backup.restore, sync.rollback); as a pyinfra operation it needs "
        "`hosts:` (inventory hosts or groups)",
        "playbooks/bad.yml:12:12: playbook 'bad' > steps[5].hosts: no host or group 'nowhere' "
        "in inventory inventories/local.yml",
        "7 problems found; nothing was changed on any host.",
    ]
    assert not (root / "sandbox").exists() and not (root / "state").exists()

    explained = opsagent(root, "explain", "playbook")
    assert explained.returncode == 0
    assert "backup.restore: extract an archive" in explained.stdout
    assert "  to: str (required)" in explained.stdout

    (root / "playbooks" / "typo.yml").write_text(BAD.replace("steps:", "stesp:"))
    proc = run(root, "run", "playbooks/typo.yml")
    assert proc.returncode == 1
    assert "playbooks/typo.yml:5:1: playbook > stesp: unknown field 'stesp'" in proc.stderr


STEPS = """\
apiVersion: opsagent/v1
kind: playbook
metadata: {name: steps}
vars: {folder: "{{ sandbox }}-steps"}
steps:
  - name: a folder
    hosts: all
    files.directory: {path: "{{ folder }}"}
  - name: say where
    hosts: ["@local"]
    server.shell: {commands: ["echo on {{ host.name }} in {{ folder }}"]}
  - name: fail
    hosts: all
    server.shell: {commands: ["false"]}
  - name: never
    hosts: all
    files.file: {path: "{{ folder }}/never"}
"""


def test_operation_steps_render_per_host_and_stop_at_the_first_failure(tmp_path: Path) -> None:
    root = demo_project(tmp_path)
    (root / "playbooks" / "steps.yml").write_text(STEPS)
    folder = root / "sandbox-steps"
    proc = run(root, "run", "playbooks/steps.yml", "--check")
    assert proc.returncode == 0, proc.stderr  # `false` is not run in check mode: "would run"
    assert "playbook 'steps' > fail: would run" in proc.stdout
    assert "playbook steps: 4 steps checked; nothing was changed" in proc.stdout
    assert not folder.exists()
    proc = run(root, "run", "playbooks/steps.yml")
    assert proc.returncode == 2
    assert folder.is_dir() and not (folder / "never").exists()
    assert f"    on @local in {folder}\n" in proc.stdout
    assert "playbook steps: step 3 (fail) failed; the 1 step after it did not run" in proc.stderr


def test_an_operation_step_on_an_empty_group_is_refused(tmp_path: Path) -> None:
    root = demo_project(tmp_path)
    (root / "inventories" / "empty.yml").write_text(
        'hosts: {"@local": {}}\ngroups: {nobody: {hosts: []}}\n')
    (root / "playbooks" / "empty.yml").write_text(STEPS.replace("hosts: all", "hosts: nobody"))
    proc = run(root, "run", "playbooks/empty.yml", "-i", "inventories/empty.yml")
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert ("playbooks/empty.yml:7:12: playbook 'steps' > steps[0].hosts: nobody: no hosts in "
            "inventory inventories/empty.yml") in proc.stderr
    assert not (root / "state").exists()
