"""opsagent's security audit beside Lynis and OpenSCAP, on the same hosts, in one run.

Run by hand (not in CI), as root:  .venv/bin/python bench/security.py [--hosts 8] [--reps 3]
Needs the test fleet's tools and: apt-get install lynis openscap-scanner ssg-debian

1. opsagent over SSH: the debian-baseline profile audited (mode: audit, `opsagent apply`)
   on 1 fleet host and on --hosts fleet hosts; median wall time, and per check.
2. Lynis (Debian's, copied into the host: it is shell scripts) on one fleet host:
   `lynis audit system --quick`, its time and the tests it performed.
3. On a Debian 11 root made with mmdebstrap (Debian's ssg-debian content exists for 10
   and 11 only): OpenSCAP's standard profile (`oscap xccdf eval`, OSCAP_PROBE_ROOT as
   oscap-chroot sets it) and opsagent's host program (what it runs over SSH, here in the
   root with chroot), each with /proc mounted in a private mount namespace.
4. For the checks that overlap (OpenSCAP and opsagent on that root; Lynis and opsagent
   on the fleet host, where sshd runs: Lynis skips its SSH tests without one): whether
   the tools agree; each disagreement with its reason (written down below, after
   reading each tool's rule).
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
from typing import Any

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
    **dict.fromkeys(("sysctl_fs_protected_symlinks", "sysctl_fs_protected_hardlinks",
                     "sysctl_fs_suid_dumpable", "sysctl_kernel_randomize_va_space"),
                    "offline (OSCAP_PROBE_ROOT) OpenSCAP reads only the sysctl.d files; "
                    "opsagent wants the running kernel set too (in a root: this machine's)"),
    "KRNL-6000 kernel.unprivileged_bpf_disabled": "Lynis wants exactly 1; this kernel has 2 "
    "(Debian's default: off, and root cannot turn it back on), stricter, which opsagent "
    "accepts (>= 1)",
    "KRNL-6000 kernel.perf_event_paranoid": "Lynis wants 3 (Debian's patched kernels' "
    "strictest); opsagent accepts 2 or more (perf for privileged users only)",
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


def opsagent_over_ssh(fleet: Fleet, work: Path, names: list[str], reps: int
                      ) -> tuple[float, int, dict[str, dict[str, Any]]]:
    """(median seconds, checks judged, the first host's results by control, with parts)."""
    (work / "policies").mkdir(exist_ok=True)
    (work / "policies" / "security.yml").write_text(POLICY.replace("[all]", json.dumps(names)))
    seconds, out = median_run([sys.executable, "-m", "agent", "apply", "policies", "-i",
                               str(fleet.inventory), "--json", "--state-dir",
                               str(work / "state")], reps, cwd=work)
    hosts = json.loads(out)["hosts"]
    results = [{d["id"]: d for d in (json.loads(line[7:]) for op in h["ops"]
                                     for line in op["stdout"].splitlines()
                                     if line.startswith("RESULT "))} for h in hosts]
    return seconds, sum(len(r) for r in results), results[0]


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


def lynis_tests(report: dict[str, list[str]]) -> int:
    executed = report.get("tests_executed", [""])[-1]
    return len([t for t in executed.split("|") if t])


def lynis_flagged(report: dict[str, list[str]], test: str) -> set[str]:
    """The fields (sshd options, sysctl keys) a Lynis test would change: its details[]."""
    found = set()
    for value in report.get("details", []):
        if value.startswith(f"{test}|"):
            field = re.search(r"field:([^;]+);", value)
            if field:
                found.add(field[1].lower())
    return found


def lynis_sysctl_keys() -> set[str]:
    """The kernel parameters Lynis' KRNL-6000 compares (its default profile)."""
    text = Path("/etc/lynis/default.prf").read_text(errors="replace")
    return {m.lower() for m in re.findall(r"^config-data=sysctl;([^;]+);", text, re.M)}


def agreement(scap: dict[str, str], root: dict[str, str], lynis: dict[str, list[str]],
              fleet: dict[str, dict[str, Any]]) -> list[tuple[str, str, str, str, str]]:
    """(tool, its check, its result, opsagent's control and result, agree or why not):
    OpenSCAP and opsagent on the Debian 11 root, Lynis and opsagent on a fleet host."""
    rows = []
    for rule, control in sorted(OSCAP_SAME.items()):
        if rule not in scap or control not in root:
            continue
        theirs, mine = scap[rule], root[control]
        same = theirs == mine or (theirs == "notapplicable" and mine == "na")
        rows.append(("OpenSCAP", rule, theirs, f"{control} {mine}",
                     "agree" if same else WHY.get(rule, "UNEXPLAINED")))
    flagged = {"SSH-7408": lynis_flagged(lynis, "SSH-7408"),
               "KRNL-6000": lynis_flagged(lynis, "KRNL-6000")}
    judged = {"SSH-7408": LYNIS_SSHD, "KRNL-6000": lynis_sysctl_keys()}
    for c in profile("debian-baseline"):
        reads = c.check.reads() if c.check else {}
        for test, kind in (("SSH-7408", "sshd"), ("KRNL-6000", "sysctl")):
            for key in reads.get(kind) or {}:
                # opsagent's judgement of this very setting: its part of the control
                part = next((p for p in fleet.get(c.id, {}).get("parts", [])
                             if p["what"] == f"{kind} {key}"), None)
                if key.lower() not in judged[test] or part is None or part["result"] in (
                        "na", "error"):
                    continue
                theirs = "fail" if key.lower() in flagged[test] else "pass"
                mine, check = part["result"], f"{test} {key}"
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
            one, checks_one, on_fleet = opsagent_over_ssh(fleet, work, names[:1], args.reps)
            many, checks_many, _ = opsagent_over_ssh(fleet, work, names, args.reps)
            lynis_into(Path(fleet.host(names[0]).merged))
            started = time.monotonic()
            fleet.ssh(names[0], "lynis audit system --quick --no-colors --quiet")
            lynis_seconds = time.monotonic() - started
            lynis_fleet = lynis_report(Path(fleet.host(names[0]).merged))
            lynis_done = lynis_tests(lynis_fleet)
        finally:
            fleet.down()
    root = debian11()
    scap_seconds, scap = oscap(root)
    ours_seconds, ours = opsagent_in(root)
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
    rows = agreement(scap, ours, lynis_fleet, on_fleet)
    print("\nchecks that overlap (OpenSCAP: the Debian 11 root; Lynis: the fleet host):")
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
