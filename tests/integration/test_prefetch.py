"""A converged host costs one remote command, however many operations it has: the facts
are read in rounds (agent/engine/prefetch.py), the files' checksums along with their
stat (agent/engine/fact_reader.py), counted here by a real sshd that logs every command
it starts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.conftest import requires_sshd
from tests.support import sshd
from tests.support.project import run_json, statuses, write_project

pytestmark = requires_sshd

FILES = 8
POLICY = """\
apiVersion: opsagent/v1
kind: tasks
metadata: {name: many}
targets: [all]
spec:
  tasks:
    - name: folder
      files.directory: {path: "{{ sandbox }}"}
STEPS
    - name: guarded
      server.shell: {commands: ["echo built > {{ sandbox }}/built"]}
      creates: "{{ sandbox }}/built"
""".replace("STEPS", "\n".join(
    f'    - name: file {i}\n      files.put: {{src: files/f{i}, dest: "{{{{ sandbox }}}}/f{i}"}}\n'
    f'    - name: line {i}\n      files.line: {{path: "{{{{ sandbox }}}}/conf", line: "key{i} = {i}"}}'
    for i in range(FILES)))


@pytest.fixture
def counted(keys: sshd.Keys, tmp_path: Path) -> Iterator[tuple[Path, sshd.Sshd]]:
    """One host on an sshd that logs each command, and its inventory."""
    server = sshd.Sshd(keys, tmp_path / "sshd", log_level="VERBOSE").start()
    try:
        server.wait()
        inventory = tmp_path / "inventory.yml"
        inventory.write_text(sshd.inventory_yaml(keys, {"h1": server.port},
                                                 {"h1": {"sandbox": str(tmp_path / "host")}}))
        yield inventory, server
    finally:
        server.stop()


def commands(server: sshd.Sshd) -> int:
    return (server.dir / "sshd.log").read_text().count("Starting session: command")


def project(tmp_path: Path) -> Path:
    root = write_project(tmp_path / "project", POLICY)
    (root / "templates" / "files").mkdir()
    for i in range(FILES):
        (root / "templates" / "files" / f"f{i}").write_text(f"file {i}\n")
    return root


def test_a_converged_host_is_judged_in_one_remote_command(
        counted: tuple[Path, sshd.Sshd], tmp_path: Path) -> None:
    inventory, server = counted
    root = project(tmp_path)
    code, first = run_json(root, "apply", inventory)
    assert code == 0 and set(statuses(first)["h1"]) == {"changed"}
    before = commands(server)
    code, second = run_json(root, "apply", inventory)
    assert code == 0 and set(statuses(second)["h1"]) == {"ok"}
    # 18 operations: their facts in one command, the files' checksums with their stat
    assert commands(server) - before == 1
    before = commands(server)
    code, plan = run_json(root, "plan", inventory, "--diff")
    assert code == 0 and set(statuses(plan)["h1"]) == {"ok"}
    assert commands(server) - before == 1


def test_a_change_is_found_shown_and_made_as_before(
        counted: tuple[Path, sshd.Sshd], tmp_path: Path) -> None:
    inventory, _ = counted
    root = project(tmp_path)
    assert run_json(root, "apply", inventory)[0] == 0
    host = tmp_path / "host"
    (host / "f3").write_text("edited by hand\n")
    (host / "built").unlink()
    code, plan = run_json(root, "plan", inventory, "--diff")
    assert code == 0
    changed = {op["name"]: op for op in plan["hosts"][0]["ops"] if op["status"] != "ok"}
    assert set(changed) == {"file 3", "guarded"}
    assert "- edited by hand" in changed["file 3"]["diff"] and "+ file 3" in changed["file 3"]["diff"]
    assert (host / "f3").read_text() == "edited by hand\n"  # a plan changes nothing
    code, applied = run_json(root, "apply", inventory)
    assert code == 0
    done = {op["name"]: op["status"] for op in applied["hosts"][0]["ops"] if op["status"] != "ok"}
    assert done == {"file 3": "changed", "guarded": "changed"}  # a guard knows
    assert (host / "f3").read_text() == "file 3\n" and (host / "built").exists()
    assert set(statuses(run_json(root, "apply", inventory)[1])["h1"]) == {"ok"}


def test_a_host_without_python3_reads_its_facts_the_way_pyinfra_does(tmp_path: Path) -> None:
    """@local with a PATH that has every command but python3: the round's program cannot
    start, and every fact is read on its own, with the same results."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in Path("/usr/bin").iterdir():
        if "python" not in tool.name:
            (bin_dir / tool.name).symlink_to(tool)
    root = project(tmp_path)
    inventory = tmp_path / "local.yml"
    inventory.write_text(f"hosts: {{'@local': {{vars: {{sandbox: {tmp_path / 'host'}}}}}}}\n")
    env = {**os.environ, "PATH": str(bin_dir)}
    for expected in ({"changed"}, {"ok"}):
        done = subprocess.run([sys.executable, "-m", "agent", "apply", "policies", "-i",
                               str(inventory), "--json"], cwd=root, env=env, capture_output=True,
                              text=True, timeout=300)
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
        assert set(statuses(json.loads(done.stdout))["@local"]) == expected
    assert (tmp_path / "host" / "f5").read_text() == "file 5\n"
