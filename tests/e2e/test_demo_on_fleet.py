"""opsagent apply / plan from the repository against three real, isolated fleet hosts."""

from __future__ import annotations

import hashlib
import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest

from tests.fleet import Fleet
from tests.support.project import opsagent

pytestmark = pytest.mark.fleet
REPO = Path(__file__).resolve().parents[2]
HOSTS = ("h1", "h2", "h3")


def apply(fleet: Fleet, *args: str, paths: tuple[str, ...] = ("policies",)) -> tuple[int, dict[str, Any]]:
    proc = opsagent(REPO, args[0], *paths, "-i", str(fleet.inventory), "--json", *args[1:])
    assert proc.stderr == "", proc.stderr
    return proc.returncode, json.loads(proc.stdout)


def counts(result: dict[str, Any]) -> dict[str, dict[str, int]]:
    return {h["host"]: h["counts"] for h in result["hosts"]}


def changes_on_disk(fleet: Fleet, name: str) -> dict[str, str]:
    """Every path the host changed against the image (its overlay upper dir), but logs."""
    upper = Path(fleet.host(name).dir) / "upper"
    found = {}
    for path in sorted(upper.rglob("*")):
        rel = str(path.relative_to(upper))
        if rel.startswith("var/log"):
            continue
        st = path.lstat()
        if stat.S_ISREG(st.st_mode):
            found[rel] = f"{st.st_mode:o} {hashlib.sha256(path.read_bytes()).hexdigest()}"
        else:
            found[rel] = f"{st.st_mode:o} {st.st_rdev}"
    return found


def test_demo_converges_on_every_host_then_changes_nothing(fresh_fleet: Fleet) -> None:
    code, first = apply(fresh_fleet, "apply")
    assert code == 0, first
    for name, c in counts(first).items():
        # 5 demo tasks, then the demo backup's init and first archive
        assert (c["changed"], c["failed"], c["drift"]) == (7, 0, 0), (name, c)
    for name in HOSTS:
        conf = fresh_fleet.host(name).path("/srv/sandbox/app.conf").read_text()
        assert name in conf
        # the host itself (over SSH, through its own sshd) sees the same file
        assert fresh_fleet.ssh(name, "cat /srv/sandbox/app.conf").stdout == conf

    code, second = apply(fresh_fleet, "apply")
    assert code == 0
    assert {n: (c["changed"], c["ran"], c["ok"]) for n, c in counts(second).items()} == \
        {n: (0, 0, 13) for n in HOSTS}  # no archive due yet, no check due


def test_a_change_on_one_host_is_not_seen_on_the_others(fresh_fleet: Fleet) -> None:
    assert apply(fresh_fleet, "apply")[0] == 0
    assert fresh_fleet.ssh("h2", "touch /srv/sandbox/stray && hostname").stdout == "h2\n"

    assert fresh_fleet.host("h2").path("/srv/sandbox/stray").exists()
    for other in ("h1", "h3"):
        assert not fresh_fleet.host(other).path("/srv/sandbox/stray").exists()
        assert fresh_fleet.ssh(other, "test -e /srv/sandbox/stray").returncode == 1
    code, audit = apply(fresh_fleet, "apply")
    assert code == 0
    assert {n: c["drift"] for n, c in counts(audit).items()} == {"h1": 0, "h2": 1, "h3": 0}


def test_plan_changes_no_file_on_any_host(fresh_fleet: Fleet) -> None:
    before = {name: changes_on_disk(fresh_fleet, name) for name in HOSTS}
    code, plan = apply(fresh_fleet, "plan", "--diff")
    assert code == 0
    # 5 demo tasks; init, create, prune and compact of the demo backup
    assert {n: c["would_change"] for n, c in counts(plan).items()} == {n: 9 for n in HOSTS}
    assert {name: changes_on_disk(fresh_fleet, name) for name in HOSTS} == before


ETC_POLICY = """\
apiVersion: opsagent/v1
kind: tasks
metadata: {name: etc-files}
targets: [all]
spec:
  tasks:
    - name: a file in /etc
      files.line: {path: /etc/opsagent-e2e.conf, line: "host={{ host.name }}"}
    - name: an edit to /etc/hosts
      files.line: {path: /etc/hosts, line: "10.213.99.99 opsagent-e2e"}
"""


def test_a_policy_writing_etc_changes_the_hosts_not_this_machine(fresh_fleet: Fleet, tmp_path: Path) -> None:
    (tmp_path / "etc.yml").write_text(ETC_POLICY)
    own_hosts = Path("/etc/hosts").read_bytes()
    code, result = apply(fresh_fleet, "apply", paths=(str(tmp_path),))
    assert code == 0, result
    assert {n: c["changed"] for n, c in counts(result).items()} == {n: 2 for n in HOSTS}
    for name in HOSTS:
        assert fresh_fleet.host(name).path("/etc/opsagent-e2e.conf").read_text() == f"host={name}\n"
        assert "opsagent-e2e" in fresh_fleet.ssh(name, "cat /etc/hosts").stdout
    assert not os.path.exists("/etc/opsagent-e2e.conf")
    assert Path("/etc/hosts").read_bytes() == own_hosts
