"""The tasks language on real SSH hosts: facts read from each host, a template with group
variables and facts rendered differently per host, a loop over users with per-item
diffs, a handler run once, and a host whose facts cannot be read reported unreachable
while the others converge."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.fleet import Fleet, faults
from tests.support.project import opsagent

pytestmark = pytest.mark.fleet

POLICY = """\
apiVersion: opsagent/v1
kind: tasks
metadata: {name: site}
targets: [h1, h2]
spec:
  tasks:
    - name: motd
      files.template: {src: motd.j2, dest: /etc/motd}
      notify: note
    - name: user
      server.user: {user: "{{ item.name }}", shell: "{{ item.shell }}"}
      loop: "{{ users }}"
    - name: login
      files.template: {src: login.j2, dest: "/srv/login-{{ user.name }}"}
      loop: "{{ users }}"
      loop_control: {loop_var: user}
    - include: common/marks.yml
      vars: {mark: fleet}
  handlers:
    - name: note
      server.shell: {commands: ["echo noted >> /root/notes"]}
"""
MARKS = """\
- name: mark for the os family
  files.file: {path: "/srv/{{ mark }}-{{ facts.os_family | lower }}"}
  when: facts.memtotal_mb > 0
"""
MOTD = "{{ host.name }} ({{ facts.hostname }}, {{ facts.default_ipv4 }}) in {{ tier }}: " \
       "{{ ports | join(',') }}\n"


def project(fleet: Fleet, root: Path, bob_shell: str = "/bin/sh") -> Path:
    (root / "policies" / "common").mkdir(parents=True, exist_ok=True)
    (root / "templates").mkdir(exist_ok=True)
    (root / "policies" / "site.yml").write_text(POLICY)
    (root / "policies" / "common" / "marks.yml").write_text(MARKS)
    (root / "templates" / "motd.j2").write_text(MOTD)
    (root / "templates" / "login.j2").write_text("{{ user.name }} logs in with {{ user.shell }}\n")
    inventory = fleet.inventory.read_text().replace("groups:\n", (
        "groups:\n  front: {hosts: [h1], vars: {tier: front, ports: [80, 443]}}\n"
        "  back: {hosts: [h2], vars: {tier: back, ports: [5432]}}\n"))
    inventory = inventory.replace("vars:\n", "vars:\n  users: [{name: alice, shell: /bin/bash}, "
                                  f"{{name: bob, shell: {bob_shell}}}]\n", 1)
    (root / "inventory.yml").write_text(inventory)
    return root


def apply(root: Path, *extra: str) -> tuple[int, dict[str, dict[str, Any]]]:
    done = opsagent(root, "apply", "policies", "-i", "inventory.yml", "--json", "--diff",
                    "--state-dir", str(root / "state"), "--timeout", "3", *extra)
    assert done.stdout, done.stderr
    return done.returncode, {h["host"]: h for h in json.loads(done.stdout)["hosts"]}


def statuses(host: dict[str, Any]) -> list[tuple[str, str]]:
    return [(op["name"], op["status"]) for op in host["ops"]]


def test_facts_templates_loops_includes_and_handlers_on_two_hosts(
        fresh_fleet: Fleet, tmp_path: Path) -> None:
    root = project(fresh_fleet, tmp_path)
    shown = opsagent(root, "facts", "h1", "-i", "inventory.yml", "--json")
    assert shown.returncode == 0, shown.stderr
    facts = json.loads(shown.stdout)["h1"]
    assert (facts["hostname"], facts["os_family"]) == ("h1", "Debian")
    assert facts["default_ipv4"] == fresh_fleet.host("h1").address
    assert facts["processor_vcpus"] >= 1 and facts["memtotal_mb"] > 0
    code, hosts = apply(root)
    assert code == 0
    assert statuses(hosts["h1"]) == [
        ("motd", "changed"), ("user (alice)", "changed"), ("user (bob)", "changed"),
        ("login (alice)", "changed"), ("login (bob)", "changed"),
        ("mark for the os family", "changed"), ("note", "ran")]
    for name, tier, ports in (("h1", "front", "80,443"), ("h2", "back", "5432")):
        address = fresh_fleet.host(name).address
        assert fresh_fleet.host(name).path("/etc/motd").read_text() == \
            f"{name} ({name}, {address}) in {tier}: {ports}\n"
        assert fresh_fleet.host(name).path("/srv/fleet-debian").exists()
        assert fresh_fleet.host(name).path("/root/notes").read_text() == "noted\n"
    assert fresh_fleet.run("h2", "getent passwd bob").stdout.strip().endswith(":/bin/sh")
    project(fresh_fleet, tmp_path, bob_shell="/bin/bash")
    code, hosts = apply(root)
    assert code == 0
    assert statuses(hosts["h2"]) == [
        ("motd", "ok"), ("user (alice)", "ok"), ("user (bob)", "changed"),
        ("login (alice)", "ok"), ("login (bob)", "changed"),
        ("mark for the os family", "ok")]  # the handler: nothing notified it
    login = {op["name"]: op["diff"] for op in hosts["h2"]["ops"] if op["name"].startswith("login")}
    assert login["login (alice)"] == ""
    assert "- bob logs in with /bin/sh" in login["login (bob)"]
    assert "+ bob logs in with /bin/bash" in login["login (bob)"]
    assert fresh_fleet.run("h2", "getent passwd bob").stdout.strip().endswith(":/bin/bash")
    assert fresh_fleet.host("h2").path("/root/notes").read_text() == "noted\n"
    code, hosts = apply(root)
    assert code == 0
    assert {op["status"] for h in hosts.values() for op in h["ops"]} == {"ok"}


def test_a_host_whose_facts_cannot_be_read_is_unreachable_and_the_other_converges(
        fresh_fleet: Fleet, tmp_path: Path) -> None:
    root = project(fresh_fleet, tmp_path)
    with faults.cut_off(fresh_fleet, "h2"):
        code, hosts = apply(root)
    assert code == 2
    assert hosts["h2"]["unreachable"] is True
    assert hosts["h2"]["error"].startswith("facts could not be read: ")
    assert not fresh_fleet.host("h2").path("/etc/motd").read_text().startswith("h2 (")
    assert [s for _, s in statuses(hosts["h1"])] == ["changed"] * 6 + ["ran"]
