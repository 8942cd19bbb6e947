"""The security kind on real hosts: the debian-baseline profile audited over SSH finds the
stock image's weaknesses; enforce fixes what has a fix, after which an audit passes
every such control and a second enforce changes nothing; and sshd changes that would lock
the controller out are each undone, leaving the host reachable with its old config."""

from __future__ import annotations

import datetime
import hashlib
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from agent.kinds.security.plan import SSHD_BACKUP, SSHD_FILE, SSHD_PENDING, sshd_program
from agent.kinds.security.profiles import profile
from tests.fleet import Fleet

pytestmark = pytest.mark.fleet
# the kernel's own parameters: a fleet host shares this machine's kernel, which tests
# must never change (its /proc/sys is read-only but for the network's)
KERNEL = ["aslr-full", "ptrace-restricted", "suid-dumpable-off", "dmesg-restricted",
          "kptr-restricted", "protected-hardlinks", "protected-symlinks", "protected-fifos",
          "protected-regular", "sysrq-off", "unprivileged-bpf-off", "bpf-jit-hardened",
          "perf-events-restricted", "core-uses-pid", "ctrl-alt-del-off", "kexec-load-disabled",
          "tty-ldisc-autoload-off", "mmap-min-addr", "unprivileged-userfaultfd-off"]
# the controller logs in as root (its own fix would lock it out: the lockout test shows
# that it is undone)
ROOT = ["ssh-no-root-login"]
POLICY = """\
apiVersion: opsagent/v1
kind: security
metadata: {{name: baseline}}
targets: [h1]
mode: {mode}
spec:
  profiles: [debian-baseline]
  skip: {skip}
{extra}"""


def run(root: Path, fleet: Fleet, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "agent", *args, "-i", str(fleet.inventory),
                           "--state-dir", str(root / "state")], cwd=root, capture_output=True,
                          text=True, timeout=600)


def apply(root: Path, fleet: Fleet, mode: str, skip: list[str], extra: str = ""
          ) -> tuple[int, dict[str, Any]]:
    (root / "policies").mkdir(exist_ok=True)
    (root / "policies" / "security.yml").write_text(
        POLICY.format(mode=mode, skip=json.dumps(skip), extra=extra))
    proc = run(root, fleet, "apply", "policies", "--json", "--diff")
    assert proc.stderr == "", proc.stderr
    [host] = json.loads(proc.stdout)["hosts"]
    return proc.returncode, host


def sshd_settings(fleet: Fleet, name: str) -> str:
    """`sshd -T` over a new SSH login, once sshd listens again: a reload (SIGHUP) makes it
    execute itself anew, and for that moment connections are refused."""
    deadline = time.monotonic() + 20
    while (done := fleet.ssh(name, "sshd -T")).returncode == 255 and time.monotonic() < deadline:
        time.sleep(0.1)
    return done.stdout


def results(host: dict[str, Any]) -> dict[str, str]:
    [check] = [op for op in host["ops"] if op["name"] == "check controls"]
    found = {}
    for line in check["stdout"].splitlines():
        if line.startswith("RESULT "):
            data = json.loads(line[7:])
            found[data["id"]] = data["result"]
    return found


def test_the_baseline_audited_finds_the_stock_images_weaknesses(fresh_host: Any, fleet: Fleet,
                                                                  tmp_path: Path) -> None:
    started = time.monotonic()
    code, host = apply(tmp_path, fleet, "audit", [])
    took = time.monotonic() - started
    found = results(host)
    assert len(found) == len(profile("debian-baseline")) >= 100
    assert code == 2  # controls fail: not compliant
    # what the stock image is known to lack
    for control in ("ssh-no-root-login", "kmod-cramfs-disabled", "login-umask",
                    "rp-filter-on", "apparmor-installed", "perm-etc-cron-d"):
        assert found[control] == "fail", control
    for control in ("accounts-uid0-root-only", "accounts-no-empty-passwords",
                    "pkg-telnetd-absent", "perm-etc-shadow", "ssh-no-empty-passwords",
                    "ports-legacy-tcp-closed"):
        assert found[control] == "pass", control
    assert "error" not in found.values(), [k for k, v in found.items() if v == "error"]
    print(f"debian-baseline audited on one fleet host in {took:.2f} s (apply, wall): "
          + ", ".join(f"{r} {list(found.values()).count(r)}" for r in sorted(set(found.values()))))
    state = str(tmp_path / "state")

    def opsagent(*args: str) -> str:
        return subprocess.run([sys.executable, "-m", "agent", *args, "--state-dir", state],
                              capture_output=True, text=True, check=True).stdout

    report = json.loads(opsagent("report", "--format", "json"))
    assert ("h1", "ssh-no-root-login", "fail (high)") in [
        (f["host"], f["subject"], f["state"]) for f in report["findings"]]
    [row] = [c for c in report["compliance"]["controls"] if c["control"] == "ssh-no-root-login"]
    assert (row["failing"], row["severity"]) == (["h1"], "high")
    [host_row] = report["compliance"]["hosts"]
    assert host_row["counts"]["pass"] == list(found.values()).count("pass")
    junit = opsagent("report", "--format", "junit")
    assert '<testsuite name="baseline h1"' in junit and 'name="ssh-no-root-login"' in junit
    # the evidence: one file for the run, its digest sealed into the audit log
    [kept] = (tmp_path / "state" / "evidence").glob("run-*.json")
    data = json.loads(kept.read_text())
    [proof] = data["evidence"]
    digest = hashlib.sha256(json.dumps(proof["document"], sort_keys=True,
                                       separators=(",", ":")).encode()).hexdigest()
    assert proof["sha256"] == digest and len(proof["document"]["controls"]) == len(found)
    assert f"h1  baseline > security evidence: evidence sha256:{digest}" in opsagent("audit", "log")
    opsagent("audit", "verify", "--expect-head", data["audit_head"])  # check=True: exit 0


def test_enforce_then_audit_passes_every_fixable_control_and_enforce_again_changes_nothing(
        fresh_host: Any, fleet: Fleet, tmp_path: Path) -> None:
    code, host = apply(tmp_path, fleet, "enforce", KERNEL + ROOT)
    failed = [op for op in host["ops"] if op["status"] == "failed" and op["name"] != "check controls"]
    assert failed == [], [(op["name"], op["error"]) for op in failed]
    assert "a new SSH login works: kept" in next(
        op["diff"] for op in host["ops"] if op["name"] == "sshd drop-in")
    fixable = {c.id for c in profile("debian-baseline") if c.fix is not None} - set(KERNEL + ROOT)
    code, host = apply(tmp_path, fleet, "audit", KERNEL + ROOT)
    found = results(host)
    assert {c: found[c] for c in fixable if found[c] != "pass"} == {}
    # what has no fix (in the profile, or on a test host): waived with the reasons an
    # operator would give; then the host passes
    still = sorted(c for c, r in found.items() if r not in ("pass", "na"))
    assert not set(still) & fixable
    assert {"apparmor-installed", "tmp-noexec", "ssh-access-limited"} <= set(still)

    def why(control: str) -> str:
        if control.endswith("-installed"):
            return "no package mirror on the test fleet"
        if control.startswith(("tmp-", "dev-shm-", "var-tmp-")) or control.endswith("-partition"):
            return "a fleet host's mounts are made by the test fleet"
        return "a choice left to the team (the profile has no fix)"

    unfixable = {c: why(c) for c in still}
    waivers = "".join(f"    - {{control: {c}, reason: \"{why}\", owner: qa@example.org, "
                      f"expires: {datetime.date.today() + datetime.timedelta(30)}}}\n"
                      for c, why in unfixable.items())
    code, host = apply(tmp_path, fleet, "audit", KERNEL + ROOT, "  waivers:\n" + waivers)
    assert code == 0, [op.get("error") for op in host["ops"]]  # compliant: a hardened host
    assert sorted(c for c, r in results(host).items() if r == "waived") == sorted(unfixable)
    code, host = apply(tmp_path, fleet, "enforce", KERNEL + ROOT)
    assert host["counts"]["changed"] == 0, [op["name"] for op in host["ops"]
                                            if op["status"] == "changed"]
    assert fleet.ssh("h1", "true").returncode == 0


LOCKOUTS = [
    ("PermitRootLogin", "no", "new SSH login failed"),  # the controller is root
    ("AllowUsers", "nobody", "new SSH login failed"),
    ("NoSuchDirective", "yes", "sshd -t refused the change"),
    ("Port", "2222", "new SSH login failed"),
    ("Ciphers", "chacha20-poly1305@openssh.com", "new SSH login failed"),
    ("HostKey", "/etc/ssh/no_such_host_key", "sshd -t refused the change"),
]


def test_sshd_changes_that_would_lock_the_controller_out_are_undone(
        fresh_host: Any, fleet: Fleet, tmp_path: Path) -> None:
    drop_in = fleet.host("h1").path(SSHD_FILE.format(policy="baseline"))
    for key, value, why in LOCKOUTS:
        extra = (f"  controls:\n    - {{id: trap, check: {{command: {{run: 'true'}}}}, "
                 f"fix: {{sshd: {{{key}: \"{value}\"}}}}}}\n")
        code, host = apply(tmp_path, fleet, "enforce", [c.id for c in profile("debian-baseline")],
                           extra)
        [op] = [op for op in host["ops"] if op["name"] == "sshd drop-in"]
        assert op["status"] == "failed" and why in op["error"], (key, op)
        assert not drop_in.exists(), (key, drop_in.read_text())  # as it was: no drop-in
        assert fleet.ssh("h1", "true").returncode == 0, key  # reachable, old config
        effective = fleet.ssh("h1", "sshd -T | grep -i '^port '").stdout.strip()
        assert effective == "port 22", key


def test_on_a_systemd_host_sshd_is_reloaded_by_systemctl_and_services_are_judged(
        systemd_host: Any, fleet: Fleet, tmp_path: Path) -> None:
    name = systemd_host.name
    policy = (f"apiVersion: opsagent/v1\nkind: security\nmetadata: {{name: units}}\n"
              f"targets: [{name}]\nspec:\n  controls:\n"
              "    - {id: ssh-tries, check: {sshd: {MaxAuthTries: '<= 4'}}, "
              "fix: {sshd: {MaxAuthTries: '4'}}}\n"
              "    - {id: ssh-on, check: {service: {name: ssh, enabled: true, active: true}}}\n"
              "    - {id: no-rsync, check: {service: {name: rsync, active: false}}}\n")
    (tmp_path / "policies").mkdir()
    (tmp_path / "policies" / "units.yml").write_text(policy)
    pid_before = fleet.run(name, "systemctl show -p MainPID --value ssh").stdout.strip()
    try:
        proc = run(tmp_path, fleet, "apply", "policies", "--json", "--diff")
        assert proc.returncode == 0, proc.stdout + proc.stderr
        [host] = json.loads(proc.stdout)["hosts"]
        [fix] = [op for op in host["ops"] if op["name"] == "sshd drop-in"]
        assert fix["status"] == "changed" and "a new SSH login works: kept" in fix["diff"]
        assert results(host) == {"ssh-tries": "pass", "ssh-on": "pass", "no-rsync": "pass"}
        # reloaded, not restarted: the same sshd read its configuration again
        pid_after = fleet.run(name, "systemctl show -p MainPID --value ssh").stdout.strip()
        assert pid_after == pid_before
        assert "maxauthtries 4" in fleet.ssh(name, "sshd -T").stdout
    finally:  # the systemd host is shared by the session's tests
        fleet.run(name, f"rm -f {SSHD_FILE.format(policy='units')} && systemctl reload ssh")


def test_an_sshd_change_nobody_confirms_is_put_back_by_the_host_itself(
        fresh_host: Any, fleet: Fleet) -> None:
    """The controller went away after the reload, before its new login: the host waits
    `wait` seconds (2 here, 120 in use), then puts the old drop-in back and reloads."""
    file, backup, pending = (p.format(policy="gone") for p in (SSHD_FILE, SSHD_BACKUP,
                                                                SSHD_PENDING))
    job = {"action": "apply", "check": False, "settings": [["MaxAuthTries", "3"]],
           "file": file, "backup": backup, "pending": pending, "wait": 2}
    h1 = fleet.host("h1")
    h1.path("/srv/sshd_fix.py").write_text(sshd_program())
    h1.path("/srv/sshd_job.json").write_text(json.dumps(job))
    started = time.monotonic()
    done = fleet.run("h1", "python3 /srv/sshd_fix.py \"$(cat /srv/sshd_job.json)\"")
    assert time.monotonic() - started < 2  # it does not wait for the watcher
    assert "changed sshd drop-in" in done.stdout
    assert "maxauthtries 3" in sshd_settings(fleet, "h1")
    deadline = time.monotonic() + 20
    while h1.path(file).exists():
        assert time.monotonic() < deadline, "the drop-in stayed"
        time.sleep(0.2)
    time.sleep(0.5)  # the reload after the file is back
    assert "maxauthtries 6" in sshd_settings(fleet, "h1")  # sshd's default again
    assert fleet.run("h1", f"test ! -e {pending}", check=False).returncode == 0
