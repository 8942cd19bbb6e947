"""Package updates on a fleet host booted with systemd, from local apt repositories made
in the test (dpkg-deb and dpkg-scanpackages) and served from the fleet's bridge: a
security-only policy upgrades the package from the security archive and nothing else,
keeps a held one back, restarts the service that used its replaced library (found by
needrestart) and checks it active; check mode lists the same and changes nothing; a
second apply changes nothing; `upgrade: all` then takes the rest."""

from __future__ import annotations

import functools
import gzip
import hashlib
import http.server
import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agent.metrics import exposition, registry_for
from tests.fleet import Fleet, Host

pytestmark = pytest.mark.fleet
LIB = "/usr/lib/x86_64-linux-gnu/libopsdemo.so.1"
UNIT = f"""[Unit]
Description=opsagent test service using libopsdemo
[Service]
ExecStart=/usr/bin/python3 -c "import ctypes, time; ctypes.CDLL('{LIB}'); time.sleep(10**9)"
"""
POLICY = """\
apiVersion: opsagent/v1
kind: maintenance
metadata: {{name: os-updates}}
targets: [{host}]
spec:
  packages: {{upgrade: {upgrade}, hold: ["ops*held"]}}
  restart_services: true
"""


def deb(out: Path, name: str, version: str, files: dict[str, bytes]) -> Path:
    root = out / f"{name}-{version}"
    (root / "DEBIAN").mkdir(parents=True)
    arch = subprocess.run(["dpkg", "--print-architecture"], capture_output=True, text=True,
                          check=True).stdout.strip()
    (root / "DEBIAN" / "control").write_text(
        f"Package: {name}\nVersion: {version}\nArchitecture: {arch}\nMaintainer: t <t@t>\n"
        f"Description: opsagent test package\n")
    for path, data in files.items():
        (root / path.lstrip("/")).parent.mkdir(parents=True, exist_ok=True)
        (root / path.lstrip("/")).write_bytes(data)
    target = out / f"{name}_{version}.deb"
    subprocess.run(["dpkg-deb", "--root-owner-group", "-b", str(root), str(target)],
                   capture_output=True, check=True)
    return target


def library(out: Path, version: int) -> bytes:
    source = out / f"lib{version}.c"
    source.write_text(f"int opsdemo_version(void) {{ return {version}; }}\n")
    subprocess.run(["gcc", "-shared", "-fPIC", "-o", str(out / f"lib{version}.so"), str(source)],
                   check=True)
    return (out / f"lib{version}.so").read_bytes()


def repository(folder: Path, debs: list[Path], suite: str, label: str) -> None:
    """A flat repository (`deb URL ./`) with a Release naming its suite and label."""
    folder.mkdir(parents=True)
    for path in debs:
        (folder / path.name).write_bytes(path.read_bytes())
    packages = subprocess.run(["dpkg-scanpackages", "-m", "."], cwd=folder, capture_output=True,
                              check=True).stdout
    (folder / "Packages").write_bytes(packages)
    (folder / "Packages.gz").write_bytes(gzip.compress(packages))
    sums = "".join(f" {hashlib.sha256((folder / n).read_bytes()).hexdigest()} "
                   f"{(folder / n).stat().st_size} {n}\n" for n in ("Packages", "Packages.gz"))
    (folder / "Release").write_text(f"Origin: opsagent-test\nLabel: {label}\nSuite: {suite}\n"
                                    f"Codename: {suite}\nDate: Thu, 03 Dec 2026 00:00:00 UTC\n"
                                    f"SHA256:\n{sums}")


class Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def served(tmp_path: Path, fleet: Fleet) -> Iterator[tuple[str, dict[str, Path]]]:
    """The packages built and the two repositories served on the fleet's bridge."""
    build = tmp_path / "build"
    build.mkdir()
    old_lib, new_lib = library(build, 1), library(build, 2)
    unit = {"/lib/systemd/system/opsdemo.service": UNIT.encode()}
    first = {"demo": deb(build, "opsdemo", "1.0", {LIB: old_lib, **unit}),
             "other": deb(build, "opsother", "1.0", {"/usr/share/opsother/v": b"1"}),
             "held": deb(build, "opsheld", "1.0", {"/usr/share/opsheld/v": b"1"})}
    repository(tmp_path / "www" / "security",
               [deb(build, "opsdemo", "1.1", {LIB: new_lib, **unit}),
                deb(build, "opsheld", "1.1", {"/usr/share/opsheld/v": b"2"})],
               "bookworm-security", "Debian-Security")
    repository(tmp_path / "www" / "updates", [deb(build, "opsother", "2.0",
                                                  {"/usr/share/opsother/v": b"2"})],
               "bookworm-updates", "opsagent-test")
    handler = functools.partial(Quiet, directory=str(tmp_path / "www"))
    server = http.server.ThreadingHTTPServer((fleet.net.gateway, 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://{fleet.net.gateway}:{server.server_address[1]}", first
    finally:
        server.shutdown()
        server.server_close()


def versions(fleet: Fleet, host: Host) -> dict[str, str]:
    out = fleet.run(host.name, "dpkg-query -W opsdemo opsother opsheld").stdout
    return dict(line.split("\t") for line in out.splitlines())


def main_pid(fleet: Fleet, host: Host) -> str:
    return fleet.run(host.name, "systemctl show -p MainPID --value opsdemo").stdout.strip()


def run(root: Path, fleet: Fleet, host: Host, command: str, upgrade: str = "security"
        ) -> tuple[int, dict[str, Any], dict[str, Any]]:
    (root / "p.yml").write_text(POLICY.format(host=host.name, upgrade=upgrade))
    done = subprocess.run([sys.executable, "-m", "agent", command, "p.yml", "-i", str(fleet.inventory),
                           "--json", "--diff", "--state-dir", str(root / "state")], cwd=root,
                          capture_output=True, text=True, timeout=600)
    assert done.stdout, done.stderr
    [op] = [o for o in json.loads(done.stdout)["hosts"][0]["ops"] if o["name"] == "package updates"]
    line = [json.loads(x[9:]) for x in op["stdout"].splitlines() if x.startswith("PACKAGES ")]
    return done.returncode, op, line[-1] if line else {}


def test_security_updates_held_packages_and_needrestart_on_a_systemd_host(
        tmp_path: Path, fleet: Fleet, systemd_host: Host, served: tuple[str, dict[str, Path]]) -> None:
    url, first = served
    host = systemd_host
    try:
        for path in first.values():
            (host.path(f"/root/{path.name}")).write_bytes(path.read_bytes())
        fleet.run(host.name, "rm -f /etc/apt/sources.list.d/*; dpkg -i /root/*.deb >/dev/null && "
                  "systemctl daemon-reload && systemctl start opsdemo")
        host.path("/etc/apt/sources.list").write_text(
            f"deb [trusted=yes] {url}/security ./\ndeb [trusted=yes] {url}/updates ./\n")
        before_pid = main_pid(fleet, host)
        lists = sorted(p.name for p in host.path("/var/lib/apt/lists").iterdir())

        code, op, said = run(tmp_path, fleet, host, "plan")
        assert code == 0 and op["status"] == "changed", op
        assert "would upgrade opsdemo 1.0 -> 1.1 (security)" in op["diff"]
        assert "held back opsheld by the policy" in op["diff"] and "opsother" not in op["diff"]
        assert said["pending"] == {"security": 2, "all": 3}
        assert versions(fleet, host) == {"opsdemo": "1.0", "opsother": "1.0", "opsheld": "1.0"}
        assert sorted(p.name for p in host.path("/var/lib/apt/lists").iterdir()) == lists

        code, op, said = run(tmp_path, fleet, host, "apply")
        assert code == 0 and op["status"] == "changed", op
        assert versions(fleet, host) == {"opsdemo": "1.1", "opsother": "1.0", "opsheld": "1.0"}
        assert said["upgraded"] == ["opsdemo"] and said["pending"] == {"security": 1, "all": 2}
        assert said["restarted"] == ["opsdemo.service"], op["diff"]
        assert "restarted opsdemo.service (used replaced files), active again" in op["diff"]
        assert main_pid(fleet, host) not in ("0", before_pid)
        assert fleet.run(host.name, "systemctl is-active opsdemo").stdout.strip() == "active"

        code, op, said = run(tmp_path, fleet, host, "apply")
        assert code == 0 and op["status"] == "ok", op
        assert said["upgraded"] == [] and said["restarted"] == []

        code, op, said = run(tmp_path, fleet, host, "apply", upgrade="all")
        assert code == 0 and said["upgraded"] == ["opsother"], op
        assert versions(fleet, host) == {"opsdemo": "1.1", "opsother": "2.0", "opsheld": "1.0"}
        db = tmp_path / "state" / "state.db"
        text = exposition(db, registry_for(db)).decode()
        assert (f'opsagent_maintenance_updates_pending{{host="{host.name}",kind="security",'
                f'policy="os-updates"}} 1.0') in text, text
        pending = f'opsagent_maintenance_services_restart_pending{{host="{host.name}",policy="os-updates"}}'
        assert f"{pending} 0.0" in text
    finally:
        fleet.reset(host.name)
