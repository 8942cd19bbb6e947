"""The maintenance kind's package updates, run on the host (standard library, apt and
needrestart), as unattended-upgrades does them: the lists refreshed, the upgrades apt
would make read from a simulation, only security ones (a source whose suite ends in
-security or whose label names security) or all, minus the held patterns; then those
installed (never a removal, never a new package, the old config files kept), each
checked at its new version; then the services needrestart lists as using replaced
files restarted and checked active; and whether the host asks for a reboot.

`check` changes nothing: the lists are refreshed into a private copy, and only the
simulation runs. One `PACKAGES {json}` line ends the output. Exit 1 on a failure.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from typing import Any

INST = re.compile(r"^Inst (\S+) \[([^\]]+)\] \((\S+) (.*?)\s*\[[^\]]*\]\)", re.M)
LISTS = "/var/lib/apt/lists"
REBOOT_FILES = ("/run/reboot-required", "/var/run/reboot-required")
ENV = {**os.environ, "LC_ALL": "C", "DEBIAN_FRONTEND": "noninteractive",
       "NEEDRESTART_SUSPEND": "1", "APT_LISTCHANGES_FRONTEND": "none"}
KEEP_CONFIG = ("-o", "Dpkg::Options::=--force-confdef", "-o", "Dpkg::Options::=--force-confold")


def run(*argv: str, timeout: float = 3600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout,
                          check=False, env=ENV)


def security(origins: str) -> bool:
    """Whether one of the sources apt names for a version (`Label:Version/Suite, ...`) is
    a security archive."""
    for origin in origins.split(","):
        label, _, rest = origin.strip().partition(":")
        suite = rest.rpartition("/")[2]
        if suite.endswith("-security") or "security" in label.lower():
            return True
    return False


def upgrades(options: tuple[str, ...]) -> list[dict[str, Any]]:
    """What `apt-get upgrade` would install: name, from, to, security."""
    done = run("apt-get", "-s", "-q", *options, "upgrade")
    if done.returncode != 0:
        raise RuntimeError(f"apt-get -s upgrade: {_last(done)}")
    return [{"name": name, "from": old, "to": new, "security": security(origins)}
            for name, old, new, origins in INST.findall(done.stdout)]


def chosen(found: list[dict[str, Any]], job: dict[str, Any]) -> tuple[list[dict[str, Any]], list[str]]:
    """(the upgrades the policy makes, the names its hold patterns keep back)."""
    held = [p["name"] for p in found if any(fnmatch.fnmatchcase(p["name"], h) for h in job["hold"])]
    wanted = [p for p in found if p["name"] not in held
              and (job["upgrade"] == "all" or p["security"])]
    return wanted, held


def needrestart() -> tuple[list[str], int] | None:
    """(the services using replaced files, the kernel status: 0 unknown, 1 current, 2 an
    ABI-compatible upgrade pending, 3 a new version pending), or None without needrestart."""
    if shutil.which("needrestart") is None:
        return None
    done = run("needrestart", "-b", "-r", "l", timeout=600)
    services = re.findall(r"^NEEDRESTART-SVC:\s*(\S+)", done.stdout, re.M)
    kernel = re.search(r"^NEEDRESTART-KSTA:\s*(\d)", done.stdout, re.M)
    return services, int(kernel.group(1)) if kernel else 0


def restart(service: str) -> str:
    """"" when the service is active again after its restart, else why not."""
    done = run("systemctl", "restart", service, timeout=300)
    if done.returncode != 0:
        return f"systemctl restart {service}: {_last(done)}"
    for _ in range(20):
        state = run("systemctl", "is-active", service).stdout.strip()
        if state == "active":
            return ""
        if state not in ("activating", "reloading"):
            break
        time.sleep(0.5)
    return f"{service} is {state or 'unknown'} after its restart"


def _last(done: subprocess.CompletedProcess[str]) -> str:
    said = [line for line in (done.stderr or done.stdout).splitlines() if line.strip()]
    return said[-1] if said else f"exit {done.returncode}"


def main(job: dict[str, Any]) -> int:
    check = bool(job.get("check"))
    summary: dict[str, Any] = {"upgraded": [], "held": [], "restarted": [], "failed": []}
    if shutil.which("apt-get") is None:
        summary["note"] = "no apt-get"
        print("PACKAGES " + json.dumps(summary, sort_keys=True))
        return 0
    private = tempfile.mkdtemp(prefix="opsagent-lists-") if check else ""
    options: tuple[str, ...] = ()
    try:
        if private:  # a copy of the lists to refresh: the host's stay as they are
            shutil.copytree(LISTS, private, dirs_exist_ok=True,
                            ignore=shutil.ignore_patterns("lock", "partial"))
            os.makedirs(os.path.join(private, "partial"), exist_ok=True)
            options = ("-o", f"Dir::State::Lists={private}", "-o", "Dir::Cache::pkgcache=",
                       "-o", "Dir::Cache::srcpkgcache=")
        updated = run("apt-get", "update", "-q", *options, "-o", "APT::Update::Error-Mode=any")
        if updated.returncode != 0:
            summary["failed"].append(f"apt-get update: {_last(updated)}")
        found = upgrades(options)
        wanted, summary["held"] = chosen(found, job)
        for name in summary["held"]:
            print(f"held back {name} by the policy")
        if check:
            for p in wanted:
                print(f"would upgrade {p['name']} {p['from']} -> {p['to']}"
                      + (" (security)" if p["security"] else ""))
        elif wanted:
            names = [p["name"] for p in wanted]
            done = run("apt-get", "install", "-y", "-q", "--only-upgrade", "--no-install-recommends",
                       *KEEP_CONFIG, *names)
            if done.returncode != 0:
                summary["failed"].append(f"apt-get install: {_last(done)}")
            for p in wanted:  # the end state, package by package
                now = run("dpkg-query", "-W", "-f", "${Version}", p["name"]).stdout.strip()
                if now == p["to"]:
                    print(f"upgraded {p['name']} {p['from']} -> {p['to']}")
                    summary["upgraded"].append(p["name"])
                else:
                    summary["failed"].append(f"{p['name']} is at {now or 'nothing'}, expected {p['to']}")
            found = upgrades(options)
        summary["pending"] = {"security": sum(p["security"] for p in found), "all": len(found)}
        listed = needrestart()
        if listed is not None:
            services, kernel = listed
            summary["kernel"] = kernel
            for service in services:
                if check and job.get("restart_services"):
                    print(f"would restart {service} (uses replaced files)")
                    continue
                if not job.get("restart_services"):
                    print(f"needs a restart: {service} (uses replaced files)")
                    continue
                why = restart(service)
                if why:
                    summary["failed"].append(why)
                else:
                    print(f"restarted {service} (used replaced files), active again")
                    summary["restarted"].append(service)
            summary["services_pending"] = len(services) - len(summary["restarted"])
        summary["reboot_required"] = int(any(os.path.exists(f) for f in REBOOT_FILES)
                                         or summary.get("kernel", 0) in (2, 3))
    except (OSError, RuntimeError, subprocess.SubprocessError) as e:
        summary["failed"].append(str(e))
    finally:
        if private:
            shutil.rmtree(private, ignore_errors=True)
    for why in summary["failed"]:
        print(why, file=sys.stderr)
    print("PACKAGES " + json.dumps(summary, sort_keys=True))
    return 1 if summary["failed"] else 0


if __name__ == "__main__":
    sys.exit(main(json.loads(sys.argv[1])))
