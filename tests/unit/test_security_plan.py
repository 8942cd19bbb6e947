"""The security kind without hosts: spec -> what it plans (waivers settled on the
controller's clock in UTC), and results -> facts, findings and metrics."""

from __future__ import annotations

import datetime
import json
from typing import Any

from agent.core.hosts import HostInfo
from agent.core.results import OpResult, Status
from agent.core.steps import Sequence, Step
from agent.kinds.security import KIND
from agent.kinds.security.plan import ID, plan
from agent.kinds.security.profiles import profile
from agent.kinds.security.spec import SecuritySpec

TODAY = datetime.date(2026, 12, 3)
CONTROLS = [
    {"id": "no-telnet", "severity": "high", "check": {"package": {"name": "telnetd", "present": False}},
     "fix": {"tasks": [{"apt.packages": {"packages": ["telnetd"], "present": False}}]}},
    {"id": "forwarding-off", "check": {"sysctl": {"net.ipv4.ip_forward": 0}},
     "fix": {"sysctl": {"net.ipv4.ip_forward": 0}}},
    {"id": "root-login", "check": {"sshd": {"PermitRootLogin": "no"}},
     "fix": {"sshd": {"PermitRootLogin": "no"}}},
]


def spec(mode: str = "enforce", **more: Any) -> SecuritySpec:
    return SecuritySpec.model_validate({"controls": CONTROLS, **more},
                                       context={"mode": mode, "policy": "baseline"})


def job(steps: list[Step | Sequence]) -> dict[str, Any]:
    last = steps[-1]
    assert isinstance(last, Sequence) and last.commands[0].id == ID
    return dict(json.loads(last.commands[0].argv[-1]))


def test_enforce_plans_the_fixes_then_the_checks_and_audit_only_the_checks() -> None:
    steps = plan(spec(), HostInfo("h1"), TODAY)
    names = [s.name for s in steps]
    assert names == ["no-telnet: apt.packages telnetd", "forwarding-off: sysctl net.ipv4.ip_forward = 0",
                     "sshd fixes", "security"]
    assert isinstance(steps[1], Step) and steps[1].args == {
        "key": "net.ipv4.ip_forward", "value": "0", "persist": True,
        "persist_file": "/etc/sysctl.d/99-zz-opsagent-baseline.conf"}
    sshd = steps[2]
    assert isinstance(sshd, Sequence) and sshd.commands[0].login is not None
    sshd_job = json.loads(sshd.commands[0].argv[-1])
    assert sshd_job["settings"] == [["PermitRootLogin", "no"]]
    assert sshd_job["file"] == "/etc/ssh/sshd_config.d/00-opsagent-baseline.conf"  # its own
    audit = plan(spec("audit"), HostInfo("h1"), TODAY)
    assert [s.name for s in audit] == ["security"]
    assert [c["id"] for c in job(audit)["controls"]] == ["no-telnet", "forwarding-off", "root-login"]


def test_waivers_go_with_the_hosts_they_cover_until_their_day() -> None:
    waivers = [
        {"control": "no-telnet", "hosts": ["build*"], "reason": "legacy", "owner": "ops@x",
         "expires": "2026-12-04"},
        {"control": "forwarding-off", "hosts": ["routers"], "reason": "routes", "owner": "net@x",
         "expires": "2026-12-03"},  # its day: no longer holds
    ]
    s = spec(waivers=waivers)
    build = {c["id"]: c for c in job(plan(s, HostInfo("build1"), TODAY))["controls"]}
    assert build["no-telnet"]["waiver"] == {"reason": "legacy", "owner": "ops@x",
                                            "expires": "2026-12-04"}
    assert build["forwarding-off"]["waiver"] is None and build["forwarding-off"]["expired"] == ""
    router = {c["id"]: c for c in job(plan(s, HostInfo("r1", ("routers",)), TODAY))["controls"]}
    assert router["forwarding-off"] == {**router["forwarding-off"], "waiver": None,
                                        "expired": "2026-12-03"}
    later = {c["id"]: c for c in job(plan(s, HostInfo("build1"), TODAY + datetime.timedelta(1)))[
        "controls"]}
    assert later["no-telnet"]["waiver"] is None and later["no-telnet"]["expired"] == "2026-12-04"


def test_a_policy_changes_adds_and_skips_profile_controls() -> None:
    s = SecuritySpec.model_validate({
        "profiles": ["debian-baseline"], "skip": ["tmp-partition"],
        "controls": [{"id": "ssh-no-root-login", "severity": "critical"}, *CONTROLS[:1]]})
    by_id = {c.id: c for c in s.effective}
    base = {c.id: c for c in profile("debian-baseline")}
    assert by_id["ssh-no-root-login"].severity == "critical"
    assert by_id["ssh-no-root-login"].check == base["ssh-no-root-login"].check  # kept
    assert "tmp-partition" not in by_id and "no-telnet" in by_id
    assert len(s.effective) == len(base)  # one skipped, one added


def op(stdout: str) -> OpResult:
    return OpResult(policy="baseline", kind="security", name=ID, operation="command",
                    status=Status.FAILED, stdout=stdout, id=ID)


def test_results_become_facts_findings_and_bounded_metrics() -> None:
    lines = [
        {"id": "no-telnet", "result": "fail", "parts": [
            {"what": "package telnetd installed", "expected": False, "found": "0.17-44",
             "result": "fail", "read": "dpkg-query -W"}]},
        {"id": "forwarding-off", "result": "waived",
         "waiver": {"reason": "routes", "owner": "net@x", "expires": "2027-01-01"}, "parts": []},
        {"id": "root-login", "result": "pass", "parts": []},
    ]
    out = "".join(f"RESULT {json.dumps(x)}\n" for x in lines) + 'EVIDENCE {"dpkg-query -W": {}}\n'
    seen = KIND.observe(spec(), HostInfo("h1"), [op(out)])
    assert seen is not None
    facts = dict(seen.facts)
    assert facts["counts"] == {"pass": 1, "fail": 1, "waived": 1, "na": 0, "error": 0}
    assert facts["score"] == 0.5  # waived counts in neither
    assert seen.evidence is not None and seen.evidence["reads"] == {"dpkg-query -W": {}}
    assert seen.summary == "3 controls: 1 pass, 1 fail, 1 waived, 0 not applicable, 0 error"
    [finding] = KIND.findings([("baseline", "h1", facts)])
    assert (finding.subject, finding.state) == ("no-telnet", "fail (high)")
    assert "package telnetd installed: 0.17-44, expected False" in finding.detail
    families = {f.name: f for f in KIND.families([("baseline", "h1", facts), ("baseline", "h2", facts)])}
    failing = {tuple(s.labels.values()): s.value
               for s in families["opsagent_security_control_failing_hosts"].samples}
    assert failing[("baseline", "no-telnet", "high")] == 2
    assert failing[("baseline", "root-login", "medium")] == 0
    [ends] = families["opsagent_security_waiver_expiry_timestamp_seconds"].samples
    assert ends.value == datetime.datetime(2027, 1, 1, tzinfo=datetime.UTC).timestamp()
    assert all("host" not in s.labels for s in families["opsagent_security_control_failing_hosts"].samples)
