"""opsagent installs, starts and enables a unit on a host that really runs systemd."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import pytest

from tests.fleet import Fleet, Host
from tests.support.project import opsagent

pytestmark = pytest.mark.fleet
REPO = Path(__file__).resolve().parents[2]

UNIT = """\
[Unit]
Description=opsagent e2e web server
[Service]
ExecStart=/usr/bin/python3 -m http.server --bind {{ host_address }} 8081 --directory /srv
[Install]
WantedBy=multi-user.target
"""

POLICY = """\
apiVersion: opsagent/v1
kind: tasks
metadata: {name: web-unit}
targets: [systemd]
spec:
  tasks:
    - name: unit file
      files.template: {src: e2e-web.service.j2, dest: /etc/systemd/system/e2e-web.service,
                       host_address: "{{ address }}"}
    - name: page
      files.line: {path: /srv/index.html, line: "hello from {{ host.name }}"}
    - name: reload units when a loaded unit's file changed
      server.shell: {commands: [systemctl daemon-reload]}
      only_if: "systemctl show -p NeedDaemonReload --value e2e-web | grep -qx yes"
    - name: service running and enabled
      systemd.service: {service: e2e-web.service, running: true, enabled: true}
"""


def test_a_unit_is_started_and_enabled_through_opsagent(
    fleet: Fleet, systemd_host: Host, tmp_path: Path,
) -> None:
    (tmp_path / "templates").mkdir()
    (tmp_path / "templates" / "e2e-web.service.j2").write_text(UNIT)
    (tmp_path / "policies").mkdir()
    (tmp_path / "policies" / "web.yml").write_text(POLICY)
    inventory = tmp_path / "inventory.yml"
    text = fleet.inventory.read_text()
    inventory.write_text(text.replace(
        f"  {systemd_host.name}: {{ssh: {{hostname: {systemd_host.address}}}}}",
        f"  {systemd_host.name}: {{ssh: {{hostname: {systemd_host.address}}}, "
        f"vars: {{address: {systemd_host.address}}}}}",
    ))

    def apply() -> dict[str, int]:
        proc = opsagent(tmp_path, "apply", "policies", "-i", str(inventory), "--json")
        assert proc.returncode == 0, proc.stdout + proc.stderr
        (host,) = json.loads(proc.stdout)["hosts"]  # only the systemd host is targeted
        assert host["host"] == systemd_host.name
        counts: dict[str, int] = host["counts"]
        return counts

    assert apply()["changed"] == 3  # the reload is not needed for a unit never loaded
    state = fleet.run(systemd_host.name, "systemctl is-active e2e-web; systemctl is-enabled e2e-web",
                      check=False)
    assert state.stdout.split() == ["active", "enabled"], state
    with urllib.request.urlopen(f"http://{systemd_host.address}:8081/index.html", timeout=10) as page:
        assert page.read().decode() == f"hello from {systemd_host.name}\n"

    second = apply()
    assert (second["changed"], second["ran"], second["ok"]) == (0, 0, 4)
