"""opsagent's security audit beside Lynis and OpenSCAP, on the same hosts, in one run.

Run by hand (not in CI), as root:  .venv/bin/python bench/security.py [--hosts 8] [--reps 3]
Needs the test fleet's tools and: apt-get install lynis openscap-scanner ssg-debian

1. opsagent over SSH: the debian-baseline profile audited (mode: audit, `opsagent apply`)
   on 1 fleet host and on --hosts fleet hosts; median wall time, and per check.
2. Lynis (Debian's, copied into the host: it is shell scripts) on one fleet host:
   `lynis audit system --quick`, its time and the tests it performed.
3. On a Debian 11 root made with mmdebstrap (Debian's ssg-debian content exists for 10
   and 11 only): OpenSCAP's standard profile (`oscap xccdf eval`, OSCAP_PROBE_ROOT as
   oscap-chroot sets it), opsagent's host program (what it runs over SSH, here in the
   root with chroot) and Lynis, each with /proc mounted in a private mount namespace.
4. For the checks that overlap on that root: whether the tools agree; each disagreement
   with its reason (written down below, after reading each tool's rule).
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from agent.kinds.security.plan import program  # noqa: E402
from agent.kinds.security.profiles import profile  # noqa: E402
from tests.fleet import image  # noqa: E402
from tests.fleet.fleet import Fleet  # noqa: E402

SSG = Path("/usr/share/xml/scap/ssg/content/ssg-debian11-ds.xml")
STANDARD = "xccdf_org.ssgproject.content_profile_standard"
POLICY = """\
apiVersion: opsagent/v1
kind: security
metadata: {name: baseline}
targets: [all]
mode: audit
spec: {profiles: [debian-baseline]}
"""
# OpenSCAP rule -> the opsagent control that checks the same thing
OSCAP_SAME = {
    "partition_for_tmp": "tmp-partition", "package_audit_installed": "auditd-installed",
    "sysctl_fs_protected_hardlinks": "protected-hardlinks",
    "sysctl_fs_protected_symlinks": "protected-symlinks",
    "sysctl_fs_suid_dumpable": "suid-dumpable-off",
    "sysctl_kernel_randomize_va_space": "aslr-full",
    "package_cron_installed": "cron-enabled", "service_cron_enabled": "cron-enabled",
    "package_inetutils-telnetd_removed": "pkg-inetutils-telnetd-absent",
    "package_nis_removed": "pkg-nis-absent", "package_telnetd_removed": "pkg-telnetd-absent",
    "sshd_set_keepalive_0": "ssh-client-alive",
    "sshd_disable_empty_passwords": "ssh-no-empty-passwords",
    "sshd_disable_root_login": "ssh-no-root-login",
    **{f"file_{what}_etc_{name}": f"perm-etc-{name}"
       for what in ("owner", "groupowner", "permissions")
       for name in ("group", "gshadow", "passwd", "shadow")},
}
# the sshd options Lynis' SSH-7408 judges (its include/tests_ssh, SSHOPS), from sshd -T
# as opsagent does: an option it would change is reported in details[]
LYNIS_SSHD = {o.lower() for o in (
    "AllowTcpForwarding", "ClientAliveCountMax", "ClientAliveInterval", "Compression",
    "FingerprintHash", "GatewayPorts", "IgnoreRhosts", "LoginGraceTime", "LogLevel",
    "MaxAuthTries", "MaxSessions", "PermitRootLogin", "PermitUserEnvironment", "PermitTunnel",
    "Port", "PrintLastLog", "StrictModes", "TCPKeepAlive", "UseDNS", "X11Forwarding",
    "AllowAgentForwarding")}
# why two tools judge the same thing differently (read from each tool's rule)
WHY = {
    "sshd_disable_empty_passwords": "OpenSCAP wants the keyword written in sshd_config; "
    "opsagent judges the effective setting (sshd -T), whose default is already no",
    "sshd_set_keepalive_0": "OpenSCAP's standard profile wants ClientAliveCountMax 0; CIS, "
    "which opsagent follows, wants at most 3 with an interval set",
    "SSH-7408 MaxSessions": "Lynis wants at most 2 sessions per connection; opsagent "
    "(dev-sec sshd-20) at most 10",
    "SSH-7408 LoginGraceTime": "Lynis accepts up to 120 s; opsagent (CIS) at most 60 s",
    "SSH-7408 ClientAliveInterval": "Lynis counts 0 (keepalives off) as at most 300 s; "
    "opsagent wants dead clients dropped, an interval above 0",
    "SSH-7408 ClientAliveCountMax": "Lynis wants at most 2; opsagent (CIS) at most 3",
    "SSH-7408 LogLevel": "Lynis flags INFO (it prefers VERBOSE); opsagent (CIS) accepts INFO",
    "SSH-7408 PermitRootLogin": "Lynis accepts key-only root logins (prohibit-password); "
    "opsagent (CIS) wants no",
}

def median_run(argv: list[str], reps: int, cwd: Path | None = None) -> tuple[float, str]:
    times, out = [], ""
    for _ in range(reps):
        started = time.monotonic()
        done = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, check=False)
        times.append(time.monotonic() - started)
        out = done.stdout
    return statistics.median(times), out


def opsagent_over_ssh(fleet: Fleet, work: Path, names: list[str], reps: int) -> tuple[float, int]:
    (work / "policies").mkdir(exist_ok=True)
    (work / "policies" / "security.yml").write_text(POLICY.replace("[all]", json.dumps(names)))
    seconds, out = median_run([sys.executable, "-m", "agent", "apply", "policies", "-i",
                               str(fleet.inventory), "--json", "--state-dir",
                               str(work / "state")], reps, cwd=work)
    hosts = json.loads(out)["hosts"]
    checks = sum(op["stdout"].count("\nRESULT ") + op["stdout"].startswith("RESULT ")
                 for h in hosts for op in h["ops"])
    return seconds, checks


def lynis_into(root: Path) -> None:
    """Lynis is shell scripts and data: put Debian's copy into a host's root."""
    for path in ("usr/sbin/lynis", "usr/share/lynis", "etc/lynis"):
        target = root / path
        if Path("/", path).is_dir():
            shutil.copytree(Path("/", path), target, dirs_exist_ok=True)
        else:
            shutil.copy2(Path("/", path), target)


def lynis_report(root: Path) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for line in (root / "var/log/lynis-report.dat").read_text(errors="replace").splitlines():
        key, _, value = line.partition("=")
        found.setdefault(key.removesuffix("[]"), []).append(value)
    return found


def debian11() -> Path:
    root = image.cache_root() / "bench-bullseye" / "rootfs"
    if not root.is_dir():
        root.parent.mkdir(parents=True, exist_ok=True)
        building = root.with_name("building")
        shutil.rmtree(building, ignore_errors=True)
        main, security = image.mirrors()
        subprocess.run(["mmdebstrap", "--variant=minbase",
                        "--include=python3,openssh-server,procps", "bullseye", str(building),
                        f"deb {main} bullseye main", f"deb {security} bullseye-security main"],
                       check=True, capture_output=True)
        building.rename(root)
    return root


def in_root(root: Path, command: str, env: str = "") -> tuple[float, subprocess.CompletedProcess[str]]:
    """command (sh) with /proc mounted in the root, in a mount namespace of its own."""
    script = f"mount -t proc proc {root}/proc && {env} {command}"
    started = time.monotonic()
    done = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c", script],
                          capture_output=True, text=True, check=False)
    return time.monotonic() - started, done


def oscap(root: Path) -> tuple[float, dict[str, str]]:
    results = root.parent / "oscap-results.xml"
    seconds, _ = in_root(root, f"oscap xccdf eval --profile {STANDARD} --results {results} {SSG}",
                         env=f"OSCAP_PROBE_ROOT={root} OSCAP_PROBE_OS_NAME=Linux")
    text = results.read_text()
    found = dict(re.findall(r'idref="xccdf_org\.ssgproject\.content_rule_([^"]+)"[^>]*>.*?'
                            r"<result>(\w+)</result>", text, re.S))
    return seconds, {k: v for k, v in found.items() if v != "notselected"}


def opsagent_in(root: Path) -> tuple[float, dict[str, str]]:
    job = {"controls": [{"id": c.id, "severity": c.severity, "check": c.check.reads(),
                         "waiver": None, "expired": ""} for c in profile("debian-baseline")
                        if c.check is not None]}
    (root / "tmp/opsagent-checks.py").write_text(program())
    (root / "tmp/opsagent-job.json").write_text(json.dumps(job))
    seconds, done = in_root(root, f"chroot {root} python3 /tmp/opsagent-checks.py "
                                  "\"$(cat " + str(root / "tmp/opsagent-job.json") + ")\"")
    found = {}
    for line in done.stdout.splitlines():
        if line.startswith("RESULT "):
            data = json.loads(line[7:])
            found[data["id"]] = data["result"]
    return seconds, found


def lynis_in(root: Path) -> tuple[float, dict[str, list[str]]]:
    lynis_into(root)
    seconds, _ = in_root(root, f"chroot {root} lynis audit system --quick --no-colors --quiet")
    return seconds, lynis_report(root)


def lynis_tests(report: dict[str, list[str]]) -> int:
    executed = report.get("tests_executed", [""])[-1]
    return len([t for t in executed.split("|") if t])


def lynis_sshd(report: dict[str, list[str]]) -> dict[str, str]:
    """Lynis' SSH-7408 verdicts: each sshd option it would change (details), by option."""
    found = {}
    for value in report.get("details", []):
        if value.startswith("SSH-7408|"):
            option = re.search(r"field:([^;]+);", value)
            if option:
                found[option[1].lower()] = "fail"
    return found


def agreement(scap: dict[str, str], ours: dict[str, str], lynis: dict[str, list[str]]
              ) -> list[tuple[str, str, str, str, str]]:
    """(tool, its check, its result, opsagent's control and result, agree or why not)."""
    rows = []
    for rule, control in sorted(OSCAP_SAME.items()):
        if rule not in scap or control not in ours:
            continue
        theirs = {"pass": "pass", "fail": "fail"}.get(scap[rule], scap[rule])
        mine = ours[control]
        same = theirs == mine or (theirs == "notapplicable" and mine == "na")
        rows.append(("OpenSCAP", rule, theirs, f"{control} {mine}",
                     "agree" if same else WHY.get(rule, "UNEXPLAINED")))
    lynis_fails = lynis_sshd(lynis)
    for c in profile("debian-baseline"):
        sshd = (c.check.reads().get("sshd") if c.check else None) or {}
        for option in sshd:
            if option.lower() not in LYNIS_SSHD or ours.get(c.id, "na") == "na":
                continue
            theirs = lynis_fails.get(option.lower(), "pass")
            mine, check = ours[c.id], f"SSH-7408 {option}"
            rows.append(("Lynis", check, theirs, f"{c.id} {mine}",
                         "agree" if theirs == mine else WHY.get(check, "UNEXPLAINED")))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=8)
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()
    missing = [t for t in ("lynis", "oscap", "mmdebstrap", "unshare") if not shutil.which(t)]
    if missing or not SSG.exists():
        sys.exit(f"bench/security.py needs {', '.join(missing) or 'ssg-debian'}: "
                 "apt-get install lynis openscap-scanner ssg-debian mmdebstrap")
    controls = len(profile("debian-baseline"))
    fleet = Fleet(slot=3)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        try:
            fleet.up(args.hosts)
            names = sorted(fleet.hosts)
            one, checks_one = opsagent_over_ssh(fleet, work, names[:1], args.reps)
            many, checks_many = opsagent_over_ssh(fleet, work, names, args.reps)
            lynis_into(Path(fleet.host(names[0]).merged))
            started = time.monotonic()
            fleet.ssh(names[0], "lynis audit system --quick --no-colors --quiet")
            lynis_seconds = time.monotonic() - started
            lynis_done = lynis_tests(lynis_report(Path(fleet.host(names[0]).merged)))
        finally:
            fleet.down()
    root = debian11()
    scap_seconds, scap = oscap(root)
    ours_seconds, ours = opsagent_in(root)
    lynis11_seconds, lynis11 = lynis_in(root)
    print(f"\nfleet hosts (Debian {image.suite()}), over SSH, median of {args.reps}:")
    print(f"  opsagent debian-baseline, 1 host:  {one:6.2f} s  {checks_one} checks, "
          f"{one / checks_one * 1000:.1f} ms per check")
    print(f"  opsagent debian-baseline, {args.hosts} hosts: {many:6.2f} s  {checks_many} checks")
    print(f"  Lynis, 1 host:                     {lynis_seconds:6.2f} s  {lynis_done} tests, "
          f"{lynis_seconds / max(lynis_done, 1) * 1000:.1f} ms per test "
          f"({lynis_seconds / max(lynis_done, 1) / (one / checks_one):.0f}x opsagent's per check)")
    print("\nDebian 11 root, run locally (no SSH), once:")
    print(f"  OpenSCAP standard profile:  {scap_seconds:5.2f} s  {len(scap)} rules, "
          f"{scap_seconds / len(scap) * 1000:.1f} ms per rule  "
          + ", ".join(f"{r} {list(scap.values()).count(r)}" for r in sorted(set(scap.values()))))
    print(f"  opsagent debian-baseline:   {ours_seconds:5.2f} s  {len(ours)} controls "
          f"(of {controls}), {ours_seconds / max(len(ours), 1) * 1000:.1f} ms per control  "
          + ", ".join(f"{r} {list(ours.values()).count(r)}" for r in sorted(set(ours.values()))))
    print(f"  Lynis:                      {lynis11_seconds:5.2f} s  {lynis_tests(lynis11)} tests")
    rows = agreement(scap, ours, lynis11)
    print("\nchecks that overlap (Debian 11 root):")
    print("| tool | its check | its result | opsagent | agreement |")
    print("|---|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    unexplained = [r for r in rows if r[4] == "UNEXPLAINED"]
    agreed = sum(r[4] == "agree" for r in rows)
    print(f"\n{agreed} of {len(rows)} agree; {len(rows) - agreed - len(unexplained)} disagree "
          f"for a reason given; {len(unexplained)} unexplained")


if __name__ == "__main__":
    main()
