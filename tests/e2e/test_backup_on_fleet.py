"""Backups across real hosts: h1 backs up to a borg repository on h3 over SSH."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fleet import Fleet, faults

pytestmark = pytest.mark.fleet
PASSPHRASE = f"pp-{uuid.uuid4().hex}"  # unique: searched for everywhere afterwards
SSH = ("ssh -o BatchMode=yes -o StrictHostKeyChecking=accept-new -o ServerAliveInterval=2"
       " -o ServerAliveCountMax=3")
POLICY = """\
apiVersion: opsagent/v1
kind: backup
metadata: {{name: h1-data}}
targets: [h1]
spec:
  repository: ssh://borg@{h3}/srv/borg/{{{{ host.name }}}}
  passphrase: {{env: OPSAGENT_TEST_BORG_PASS}}
  sources: [/srv/data]
  compression: zstd,3
  ssh_command: {ssh}
  retention: {{keep_last: 10}}
  lock_wait: 120
  checks: [{{name: repository, frequency: always}}, {{name: extract, frequency: always}}]
"""


class Project:
    def __init__(self, root: Path, fleet: Fleet) -> None:
        self.root, self.fleet = root, fleet
        self.outputs: list[str] = []
        (root / "policies").mkdir(parents=True)
        (root / "policies" / "backup.yml").write_text(POLICY.format(
            h3=fleet.host("h3").address, ssh=SSH))
        (root / "metrics").mkdir()

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        # The controller 14 hours east of the hosts (UTC): archive times are the host's.
        env = {**os.environ, "OPSAGENT_TEST_BORG_PASS": PASSPHRASE, "TZ": "XXX-14"}
        proc = subprocess.run([sys.executable, "-m", "agent", *args, "-i",
                               str(self.fleet.inventory), "--state-dir", str(self.root / "state")],
                              cwd=self.root, env=env, capture_output=True, text=True, timeout=600)
        self.outputs += [proc.stdout, proc.stderr]
        return proc

    def apply(self) -> tuple[int, dict[str, Any]]:
        proc = self.run("apply", "policies", "--json", "--timeout", "3",
                        "--textfile-dir", str(self.root / "metrics"))
        return proc.returncode, json.loads(proc.stdout)

    def metric(self, name: str) -> float:
        for line in (self.root / "metrics" / "opsagent.prom").read_text().splitlines():
            if line.startswith(name + "{"):
                return float(line.rsplit(" ", 1)[1])
        raise AssertionError(f"no {name} in the metrics")


def ops(result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    [host] = result["hosts"]
    return {op["name"]: op for op in host["ops"]}


def hashes(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def pair(fleet: Fleet, tmp_path: Path) -> Iterator[Project]:
    """h1 with data and an SSH key that h3's `borg` user accepts."""
    for name in ("h1", "h3"):
        fleet.reset(name)
    fleet.run("h3", "useradd -m -s /bin/sh -p '*' borg && install -d -o borg /srv/borg "
                    "&& printf 'ClientAliveInterval 2\\nClientAliveCountMax 3\\n' "
                    ">> /etc/ssh/sshd_config && kill -HUP $(cat /run/sshd.pid)")
    fleet.run("h1", "ssh-keygen -q -t ed25519 -N '' -f /root/.ssh/id_ed25519")
    key = fleet.host("h1").path("/root/.ssh/id_ed25519.pub").read_text()
    fleet.run("h3", f"install -d -o borg -m 700 /home/borg/.ssh && echo '{key.strip()}' "
                    "> /home/borg/.ssh/authorized_keys && chown borg /home/borg/.ssh/*")
    fleet.run("h1", "mkdir -p /srv/data/docs && head -c 2000000 /dev/urandom > /srv/data/blob"
                    " && for i in $(seq 200); do seq $i 5000 > /srv/data/docs/$i.txt; done")
    yield Project(tmp_path / "project", fleet)


def test_h1_to_h3_dedups_restores_byte_identical_and_never_shows_the_passphrase(
        pair: Project, fleet: Fleet) -> None:
    code, first = pair.apply()
    assert code == 0, [(o["name"], o["status"], o["error"]) for o in ops(first).values()]
    done = ops(first)
    assert done["init repository"]["status"] == "changed"
    assert done["create archive"]["status"] == "changed"
    assert done["check repository"]["status"] == "ok"
    assert done["restore drill (extract --dry-run)"]["status"] == "ok"
    assert fleet.host("h3").path("/srv/borg/h1/config").is_file()  # the repository is on h3
    assert pair.metric("opsagent_backup_last_archive_deduplicated_bytes") > 2_000_000

    with fleet.host("h1").path("/srv/data/docs/7.txt").open("a") as changed:
        changed.write("one more line\n")
    time.sleep(1.1)
    code, second = pair.apply()
    assert code == 0, second
    assert ops(second)["init repository"]["status"] == "ok"  # never initialised again
    assert pair.metric("opsagent_backup_last_archive_original_bytes") > 5_000_000
    assert pair.metric("opsagent_backup_last_archive_deduplicated_bytes") < 64 * 1024
    assert pair.metric("opsagent_backup_archives") == 2
    assert abs(pair.metric("opsagent_backup_last_success_timestamp_seconds") - time.time()) < 120
    assert pair.metric("opsagent_backup_restore_drill_success") == 1

    listing = pair.run("backup", "list", "h1-data", "policies")
    assert listing.returncode == 0 and listing.stdout.startswith("h1: 2 archives\n"), listing

    restore = pair.run("backup", "restore", "h1-data", "policies", "--to", "/srv/restore")
    assert restore.returncode == 0, restore.stderr
    assert restore.stdout.startswith("h1: restored h1-")
    source = hashes(fleet.host("h1").path("/srv/data"))
    assert len(source) == 201
    assert hashes(fleet.host("h1").path("/srv/restore/srv/data")) == source

    secret = PASSPHRASE.encode()
    assert not [text for text in pair.outputs if PASSPHRASE in text]
    found = [str(p) for p in (pair.root).rglob("*") if p.is_file() and secret in p.read_bytes()]
    assert found == []  # state store (with its WAL), metrics, policies
    for name in ("h1", "h3"):  # every file either host wrote, logs included
        upper = Path(fleet.host(name).dir) / "upper"
        found = [str(p) for p in upper.rglob("*") if p.is_file() and secret in p.read_bytes()]
        assert found == [], name


def test_a_backup_cut_off_mid_create_leaves_the_repository_usable(
        pair: Project, fleet: Fleet) -> None:
    code, first = pair.apply()
    assert code == 0, first
    fleet.run("h1", "head -c 300000000 /dev/urandom > /srv/data/big.bin")
    env = {**os.environ, "OPSAGENT_TEST_BORG_PASS": PASSPHRASE}
    running = subprocess.Popen(
        [sys.executable, "-m", "agent", "apply", "policies", "--json", "--timeout", "3", "-i",
         str(fleet.inventory), "--state-dir", str(pair.root / "state")],
        cwd=pair.root, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while fleet.run("h1", "pgrep -f '[b]org create'", check=False).returncode != 0:
        assert time.monotonic() < deadline and running.poll() is None, "create never started"
        time.sleep(0.2)
    time.sleep(1.0)
    with faults.cut_off(fleet, "h1"):
        out, _ = running.communicate(timeout=120)
        cut = json.loads(out)
    assert running.returncode == 2
    [host] = cut["hosts"]
    assert host["unreachable"] and "connection lost" in host["error"]
    assert ops(cut)["create archive"]["status"] == "failed"  # cut off mid-create

    deadline = time.monotonic() + 90  # borg on h1 notices its lost link (ServerAlive) and ends
    while fleet.run("h1", "pgrep -f '[b]org create'", check=False).returncode == 0:
        assert time.monotonic() < deadline, "borg create still running on h1"
        time.sleep(0.5)
    code, after = pair.apply()
    assert code == 0, after
    done = ops(after)
    assert done["create archive"]["status"] == "changed"
    assert done["check repository"]["status"] == "ok"
    assert done["restore drill (extract --dry-run)"]["status"] == "ok"
