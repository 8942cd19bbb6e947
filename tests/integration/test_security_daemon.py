"""A security policy scheduled by the daemon on @local: its controls reach /metrics with
bounded labels, a waiver counts apart, and every run's evidence is sealed in the audit
log; no check here reads sshd or changes anything (files the test made, a command)."""

from __future__ import annotations

import datetime
import re
from pathlib import Path

from tests.support.daemon import Daemon, wait_for

POLICY = """\
apiVersion: opsagent/v1
kind: security
metadata: {{name: local}}
targets: [all]
mode: audit
schedule: {{every: 1h}}
spec:
  controls:
    - {{id: motd-private, severity: critical, check: {{file: {{path: "{root}/motd", mode: "0600"}}}}}}
    - {{id: no-legacy, check: {{command: {{run: "test ! -e {root}/legacy"}}}}}}
    - {{id: tmp-noexec, check: {{command: {{run: "false"}}}}}}
  waivers:
    - {{control: tmp-noexec, reason: "compilers run from /tmp", owner: ops@example.org,
       expires: {expires}}}
"""


def test_a_scheduled_audit_reaches_metrics_and_seals_its_evidence(tmp_path: Path) -> None:
    (tmp_path / "motd").write_text("hello\n")
    (tmp_path / "motd").chmod(0o644)  # too open: a critical failure
    (tmp_path / "policies").mkdir()
    (tmp_path / "policies" / "security.yml").write_text(POLICY.format(
        root=tmp_path, expires=datetime.date.today() + datetime.timedelta(days=10)))
    (tmp_path / "agent.yml").write_text("policies: [policies]\nstate_dir: state\n"
                                        "log_format: json\n")
    daemon = Daemon(tmp_path)
    try:
        daemon.up()
        wait_for(lambda: daemon.count("run_finished") >= 1, timeout=60, what="the first run")
        text = daemon.get("/metrics")[1]

        def value(pattern: str) -> str | None:
            found = re.search(pattern, text, re.M)
            return found[1] if found else None

        labels = 'host="@local",policy="local"'
        assert value(rf'^opsagent_security_controls{{{labels},result="pass"}} (\S+)$') == "1.0"
        assert value(rf'^opsagent_security_controls{{{labels},result="fail"}} (\S+)$') == "1.0"
        assert value(rf'^opsagent_security_controls{{{labels},result="waived"}} (\S+)$') == "1.0"
        assert value(rf'^opsagent_security_score{{{labels}}} (\S+)$') == "0.5"
        assert value(r'^opsagent_security_control_failing_hosts\{control="motd-private",'
                     r'policy="local",severity="critical"\} (\S+)$') == "1.0"
        assert value(r'^opsagent_security_waiver_expiry_timestamp_seconds\{control="tmp-noexec",'
                     r'policy="local"\} (\S+)$') is not None
        assert not re.search(r'^opsagent_security_\w+\{[^}]*control=[^}]*host=', text, re.M)
        assert value(r'^opsagent_policy_compliant\{host="@local",policy="local"\} (\S+)$') == "0.0"
        assert list((tmp_path / "state" / "evidence").glob("run-*.json"))
    finally:
        assert daemon.stop() == 0
