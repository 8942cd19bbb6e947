"""apply / plan against real sshd processes on loopback, through the real CLI."""

from __future__ import annotations

from pathlib import Path

from tests.integration.conftest import requires_sshd
from tests.support import sshd
from tests.support.project import opsagent, run_json, snapshot, statuses, write_project

pytestmark = requires_sshd


def test_apply_converges_then_changes_nothing(loopback: Path, tmp_path: Path) -> None:
    root = write_project(tmp_path)
    code, first = run_json(root, "apply", loopback)
    assert code == 0
    assert statuses(first) == {h: ["changed", "changed", "changed", "changed", "ran"]
                               for h in ("h1", "h2", "h3")}
    for host in ("h1", "h2", "h3"):
        sandbox = tmp_path / "hosts" / host
        assert (sandbox / "app.conf").read_text() == f"owner = {host}\nport = 8080\n"
        assert (sandbox / "settings").read_text() == "mode=fast\n"
        assert (sandbox / "built").read_text() == "built\n"
    unguarded = first["hosts"][0]["ops"][4]
    assert unguarded["stdout"] == "hello"

    code, second = run_json(root, "apply", loopback)
    assert code == 0
    assert statuses(second) == {h: ["ok", "ok", "ok", "ok", "ran"] for h in ("h1", "h2", "h3")}


def test_plan_touches_nothing_and_shows_diffs(loopback: Path, tmp_path: Path) -> None:
    root = write_project(tmp_path)
    assert run_json(root, "apply", loopback)[0] == 0
    conf = tmp_path / "hosts" / "h2" / "app.conf"
    conf.write_text("owner = someone else\nport = 8080\n")
    (tmp_path / "hosts" / "h3" / "built").unlink()
    before = snapshot(tmp_path / "hosts")

    code, plan = run_json(root, "plan", loopback, "--diff")
    assert code == 0
    assert snapshot(tmp_path / "hosts") == before
    assert statuses(plan) == {
        "h1": ["ok", "ok", "ok", "ok", "ran"],
        "h2": ["ok", "changed", "ok", "ok", "ran"],
        "h3": ["ok", "ok", "ok", "changed", "ran"],
    }
    assert all(op["planned"] for h in plan["hosts"] for op in h["ops"])
    diff = plan["hosts"][1]["ops"][1]["diff"]
    assert f"Will modify {conf}" in diff
    assert "- owner = someone else" in diff and "+ owner = h2" in diff

    proc = opsagent(root, "plan", "policies", "-i", str(loopback), "--diff")
    assert proc.returncode == 0
    assert "h2  tasks 'files' > config: would change" in proc.stdout
    assert "+ owner = h2" in proc.stdout
    assert "PLAN RECAP" in proc.stdout
    assert snapshot(tmp_path / "hosts") == before


def test_unreachable_host_fails_alone(keys: sshd.Keys, servers: list[sshd.Sshd],
                                      tmp_path: Path) -> None:
    hosts = {"h1": servers[0].port, "down": sshd.free_port(), "h3": servers[2].port}
    host_vars = {n: {"sandbox": str(tmp_path / "hosts" / n)} for n in hosts}
    inventory = tmp_path / "inventory.yml"
    inventory.write_text(sshd.inventory_yaml(keys, hosts, host_vars))
    root = write_project(tmp_path)

    code, result = run_json(root, "apply", inventory)
    assert code == 2
    by_host = {h["host"]: h for h in result["hosts"]}
    assert by_host["down"]["unreachable"] is True
    assert "down" in by_host["down"]["error"] or "onnect" in by_host["down"]["error"]
    assert statuses(result)["down"] == ["skipped"] * 5
    for host in ("h1", "h3"):
        assert by_host[host]["unreachable"] is False
        assert statuses(result)[host] == ["changed", "changed", "changed", "changed", "ran"]
    assert not (tmp_path / "hosts" / "down").exists()

    proc = opsagent(root, "apply", "policies", "-i", str(inventory))
    assert proc.returncode == 2
    recap = proc.stdout.split("RECAP")[1]
    assert "unreachable=1" in recap and recap.count("unreachable=0") == 2


FAILING = """\
apiVersion: opsagent/v1
kind: tasks
metadata: {name: fragile}
targets: [all]
spec:
  tasks:
    - name: only h1 fails
      server.shell: {commands: ["test {{ host.name }} != h1"]}
    - name: after the failure
      files.directory: {path: "{{ sandbox }}/after"}
---
apiVersion: opsagent/v1
kind: tasks
metadata: {name: independent}
targets: [all]
spec:
  tasks:
    - files.directory: {path: "{{ sandbox }}/independent"}
---
apiVersion: opsagent/v1
kind: tasks
metadata: {name: watch}
targets: [all]
mode: audit
spec:
  tasks:
    - files.line: {path: "{{ sandbox }}/watched", line: "x=1"}
"""


def test_failure_skips_rest_of_its_policy_on_that_host_only(loopback: Path, tmp_path: Path) -> None:
    root = write_project(tmp_path, FAILING)
    for host in ("h1", "h2", "h3"):
        (tmp_path / "hosts" / host).mkdir(parents=True)
    code, result = run_json(root, "apply", loopback)
    assert code == 2
    assert statuses(result) == {
        "h1": ["failed", "skipped", "changed", "changed"],
        "h2": ["ran", "changed", "changed", "changed"],
        "h3": ["ran", "changed", "changed", "changed"],
    }
    audit = result["hosts"][0]["ops"][3]
    assert audit["planned"] is True  # audit: judged, never executed
    assert not (tmp_path / "hosts" / "h1" / "after").exists()
    assert (tmp_path / "hosts" / "h1" / "independent").is_dir()
    assert not (tmp_path / "hosts" / "h2" / "watched").exists()
    assert result["hosts"][0]["ops"][0]["error"] != ""
    proc = opsagent(root, "apply", "policies", "-i", str(loopback))
    recap = proc.stdout.split("RECAP")[1]
    assert "h1  ok=1" in recap and "failed=1" in recap and recap.count("drift=1") == 3


def test_bad_policy_changes_nothing_anywhere(loopback: Path, tmp_path: Path) -> None:
    typo = FAILING.replace('{path: "{{ sandbox }}/after"}', '{path: "{{ sandbox }}/after", mod: 1}')
    root = write_project(tmp_path, typo)
    proc = opsagent(root, "apply", "policies", "-i", str(loopback))
    assert proc.returncode == 1
    assert proc.stdout == ""
    assert "policies/main.yml:10:54: tasks 'fragile' > spec.tasks[1].files.directory.mod: " \
           "unknown argument for files.directory; did you mean 'mode'?" in proc.stderr
    assert not (tmp_path / "hosts").exists()
