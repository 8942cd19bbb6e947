"""Blue-green deploys on three hosts over real sshd on loopback, each host with two app
instances (slots blue and green, each serving from PATH/slots/NAME) behind a real nginx,
and clients sending requests through nginx all along: cutovers lose no request; a new
release failing its health check in the idle slot is never switched to; an abort during
scale_down_delay moves every request back to the old slots at once, and the audit log
names who asked; after scale-down, an emergency rollback goes back through the idle slot
without losing a request."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.conftest import requires_sshd
from tests.support import nginx, sshd
from tests.support.deployapp import App, apps, release
from tests.support.project import opsagent

NAMES = ("h1", "h2", "h3")
SLOTS = ("blue", "green")
POLICY = """\
apiVersion: opsagent/v1
kind: deploy
metadata: {name: app}
targets: [app]
spec:
  version: "{{ release | default('0') }}"
  artifact: {src: "dist/app-{{ release | default('0') }}.tar.gz"}
  path: "{{ sandbox }}/app"
  health: {http: {url: "http://127.0.0.1:{{ slot_port }}/up"}, retries: 1, delay: 1}
  traffic:
    nginx: {host: lb, upstream: app_up, address: "127.0.0.1", config: "CONFIG", pid: "PID", nginx: "NGINX"}
  strategy:
    blue_green: {slots: {blue: "{{ blue_port }}", green: "{{ green_port }}"}, scale_down_delay: DELAY}
"""


class Site:
    def __init__(self, root: Path, inventory: Path, running: dict[str, App], lb: nginx.Nginx) -> None:
        self.root, self.inventory, self.apps, self.lb = root, inventory, running, lb

    def write(self, delay: str = "1s") -> None:
        (self.root / "policies").mkdir(exist_ok=True)
        (self.root / "policies" / "app.yml").write_text(
            POLICY.replace("CONFIG", str(self.lb.upstream_file)).replace("PID", str(self.lb.pid))
            .replace("NGINX", self.lb.command).replace("DELAY", delay))

    def deploy(self, verb: str, *args: str) -> subprocess.CompletedProcess[str]:
        return opsagent(self.root, "deploy", verb, "app", "policies", "-i", str(self.inventory),
                        "--state-dir", str(self.root / "state"), *args)

    def link(self, host: str, name: str) -> str | None:
        link = self.root / "hosts" / host / "app" / name
        return os.readlink(link).split("/")[-1] if link.is_symlink() else None


@pytest.fixture
def site(keys: sshd.Keys, servers: list[sshd.Sshd], tmp_path: Path) -> Iterator[Site]:
    if not nginx.available():
        pytest.skip("nginx (Debian: nginx-light) not installed")
    paths = {f"{n}-{s}": tmp_path / "hosts" / n / "app" / "slots" / s for n in NAMES for s in SLOTS}
    with apps(paths) as running:
        host_vars = {n: {"sandbox": str(tmp_path / "hosts" / n),
                         "blue_port": str(running[f"{n}-blue"].port),
                         "green_port": str(running[f"{n}-green"].port)} for n in NAMES}
        hosts = {n: s.port for n, s in zip(NAMES, servers, strict=True)}
        inventory = tmp_path / "inventory.yml"
        inventory.write_text(sshd.inventory_yaml(keys, {**hosts, "lb": servers[0].port}, host_vars)
                             + "groups:\n  app: {hosts: [h1, h2, h3]}\n")
        for version, status in (("1.0", 200), ("1.1", 200), ("1.2", 200), ("2.0-bad", 500)):
            release(tmp_path / "dist", version, status)
        lb = nginx.Nginx(tmp_path / "nginx", "app_up",
                         [f"127.0.0.1:{running[f'{n}-blue'].port}" for n in NAMES])
        try:
            yield Site(tmp_path, inventory, running, lb)
        finally:
            lb.stop()


@requires_sshd
def test_cutovers_lose_no_request_and_a_bad_slot_is_never_switched_to(site: Site) -> None:
    site.write()
    first = site.deploy("start", "--set", "release=1.0")
    assert first.returncode == 0, first.stdout + first.stderr
    assert {site.link(n, "slots/blue") for n in NAMES} == {"1.0"}
    load = nginx.Load(f"http://127.0.0.1:{site.lb.port}/")
    for version in ("1.1", "1.2"):
        done = site.deploy("start", "--set", f"release={version}")
        assert done.returncode == 0, done.stdout + done.stderr
        assert {site.link(n, "current") for n in NAMES} == {version}
    time.sleep(0.3)
    codes = load.stop()
    assert set(codes) == {200} and codes[200] > 50, codes  # not one request lost
    assert load.versions["1.2"] > 0
    assert {site.link(n, "slots/blue") for n in NAMES} == {"1.2"}  # 1.0 -> blue, 1.1 -> green, 1.2 -> blue
    assert {site.link(n, "slots/green") for n in NAMES} == {"1.1"}

    load = nginx.Load(f"http://127.0.0.1:{site.lb.port}/")
    bad = site.deploy("start", "--set", "release=2.0-bad")
    codes = load.stop()
    assert bad.returncode == 2, bad.stdout + bad.stderr
    assert "2.0-bad" not in load.versions and set(codes) == {200}, (load.versions, codes)
    assert {site.link(n, "current") for n in NAMES} == {"1.2"}
    assert "2.0-bad" in (site.root / "hosts/h1/app/.opsagent/deploy.json").read_text()  # failed


@requires_sshd
def test_an_abort_during_scale_down_delay_moves_every_request_back_at_once(site: Site) -> None:
    site.write()
    assert site.deploy("start", "--set", "release=1.0").returncode == 0
    site.write("60s")
    proc = subprocess.Popen([sys.executable, "-m", "agent", "deploy", "start", "app", "policies",
                             "-i", str(site.inventory), "--state-dir", str(site.root / "state"),
                             "--set", "release=1.1"], cwd=site.root, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 60
    while "keeping the old slots" not in site.deploy("status").stdout:
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.1)
    assert all(site.apps[f"{n}-green"].served["1.1"] > 0 for n in NAMES)  # its health checks
    load = nginx.Load(f"http://127.0.0.1:{site.lb.port}/")
    time.sleep(0.5)
    assert load.versions["1.1"] > 0 and "1.0" not in load.versions  # switched
    assert site.deploy("abort").returncode == 0
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 2, out
    load.versions.clear()
    time.sleep(0.5)
    codes = load.stop()
    assert load.versions["1.0"] > 0 and "1.1" not in load.versions  # all back on the old slots
    assert set(codes) == {200}, codes
    assert {site.link(n, "current") for n in NAMES} == {"1.0"}
    audit = opsagent(site.root, "audit", "log", "--state-dir", str(site.root / "state")).stdout
    assert "abort asked by" in audit, audit  # the controller acted; the log says for whom


@requires_sshd
def test_an_emergency_rollback_after_scale_down_goes_back_through_the_idle_slot(site: Site) -> None:
    site.write()
    for version in ("1.0", "1.1"):
        assert site.deploy("start", "--set", f"release={version}").returncode == 0
    assert {site.link(n, "current") for n in NAMES} == {"1.1"}  # settled: the old slot is idle
    load = nginx.Load(f"http://127.0.0.1:{site.lb.port}/")
    back = site.deploy("rollback", "--to", "1.0")
    assert back.returncode == 0, back.stdout + back.stderr
    load.versions.clear()
    time.sleep(0.5)
    codes = load.stop()
    assert set(codes) == {200}, codes  # not one request lost
    assert load.versions["1.0"] > 0 and "1.1" not in load.versions, load.versions
    assert {site.link(n, "current") for n in NAMES} == {"1.0"}
    assert {site.link(n, "slots/blue") for n in NAMES} == {"1.0"}  # the idle slot, made active
    again = site.deploy("rollback", "--to", "1.0")
    assert again.returncode == 0 and "already serves" in site.deploy("status").stdout
    missing = site.deploy("rollback", "--to", "0.9")  # not on the hosts: nothing switched
    assert missing.returncode == 2, missing.stdout + missing.stderr
    assert {site.link(n, "current") for n in NAMES} == {"1.0"}
    assert "still serves from its live slot" in site.deploy("status").stdout
