"""The maintenance kind's journal and apt cache cleanup on a fleet host booted with systemd:
a real journald with archived journal files to vacuum, and an apt cache with packages in
it. Check mode says what it would reclaim and changes nothing; apply reclaims it, the
bytes it reports match what the host's own tools measure, and a second apply is ok."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.utils import floatToGoString

from agent.metrics import exposition, registry_for
from tests.fleet import Fleet, Host

pytestmark = pytest.mark.fleet
POLICY = """\
apiVersion: opsagent/v1
kind: maintenance
metadata: {{name: cleanup}}
targets: [{host}]
spec:
  cleanup:
    journal: {{max_size: 8M}}
    apt_cache: true
"""
JOURNALD = "[Journal]\nStorage=persistent\nSystemMaxFileSize=2M\nRateLimitBurst=0\n"
UNITS = {"B": 1, "K": 1024, "M": 1024**2, "G": 1024**3}


def run(root: Path, fleet: Fleet, host: Host, command: str) -> tuple[int, dict[str, Any], list[Any]]:
    (root / "p.yml").write_text(POLICY.format(host=host.name))
    done = subprocess.run([sys.executable, "-m", "agent", command, "p.yml", "-i", str(fleet.inventory),
                           "--json", "--diff", "--state-dir", str(root / "state")], cwd=root,
                          capture_output=True, text=True, timeout=600)
    assert done.stdout, done.stderr
    [op] = [o for o in json.loads(done.stdout)["hosts"][0]["ops"] if o["name"] == "disk cleanup"]
    parts = [json.loads(x[8:]) for x in op["stdout"].splitlines() if x.startswith("CLEANUP ")]
    return done.returncode, op, parts


def journal_bytes(fleet: Fleet, host: Host) -> int:
    """What journalctl --disk-usage says the journal files take."""
    said = fleet.run(host.name, "journalctl --disk-usage").stdout
    number, unit = re.search(r"take up ([\d.]+)([BKMG])", said).groups()  # type: ignore[union-attr]
    return int(float(number) * UNITS[unit])


def cache(host: Host) -> list[str]:
    return sorted(p.name for p in host.path("/var/cache/apt/archives").glob("*.deb"))


def test_the_journal_is_vacuumed_and_the_apt_cache_emptied_on_a_systemd_host(
        tmp_path: Path, fleet: Fleet, systemd_host: Host) -> None:
    host = systemd_host
    try:
        conf = host.path("/etc/systemd/journald.conf.d/test.conf")
        conf.parent.mkdir(parents=True, exist_ok=True)
        conf.write_text(JOURNALD)
        fleet.run(host.name, "mkdir -p /var/log/journal && systemctl restart systemd-journald && "
                  "head -c 24000000 /dev/urandom | base64 -w 200 | systemd-cat -t filler && "
                  "journalctl --sync && journalctl --rotate")
        archived = [p for p in host.path("/var/log/journal").rglob("*.journal") if "@" in p.name]
        assert len(archived) >= 5, archived
        before = journal_bytes(fleet, host)
        assert before > 24 * 1024**2
        for i in range(3):
            host.path(f"/var/cache/apt/archives/opsfill{i}_1.0_all.deb").write_bytes(bytes(1024**2))
        debs = cache(host)

        code, op, parts = run(tmp_path, fleet, host, "plan")
        assert code == 0 and op["status"] == "changed", op
        assert "would vacuum the journal to 8M" in op["diff"], op["diff"]
        assert "would empty the apt cache" in op["diff"]
        apt = next(p for p in parts if p["part"] == "apt_cache")
        assert apt["files"] >= 3 and apt["bytes"] >= 3 * 1024**2
        assert journal_bytes(fleet, host) == before and cache(host) == debs

        code, op, parts = run(tmp_path, fleet, host, "apply")
        assert code == 0 and op["status"] == "changed", op
        reclaimed = {p["part"]: p["bytes"] for p in parts}
        after = journal_bytes(fleet, host)
        assert after <= 10 * 1024**2, after  # 8M of files, and the active ones
        freed = before - after
        assert abs(reclaimed["journal"] - freed) <= 0.1 * freed, (reclaimed, before, after)
        assert cache(host) == [] and reclaimed["apt_cache"] >= 3 * 1024**2
        db = tmp_path / "state" / "state.db"
        text = exposition(db, registry_for(db)).decode()
        line = (f'opsagent_maintenance_cleanup_reclaimed_bytes{{host="{host.name}",part="journal",'
                f'policy="cleanup"}} ')
        assert line + floatToGoString(reclaimed["journal"]) in text, text  # type: ignore[no-untyped-call]

        code, op, parts = run(tmp_path, fleet, host, "apply")
        assert code == 0 and op["status"] == "ok", op
        assert {p["part"]: p["bytes"] for p in parts} == {"journal": 0, "apt_cache": 0}
    finally:
        fleet.reset(host.name)
