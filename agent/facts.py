"""Host facts: a few things about a host, read in one round trip, for `facts.*` in policies.

    when: facts.os_family == 'Debian' and facts.memtotal_mb >= 2048

Named as Ansible's (without the ansible_ prefix): os_family, distribution,
distribution_version, distribution_major_version, distribution_release, architecture,
kernel, processor_vcpus, memtotal_mb, hostname, default_ipv4. They are read when a run
plans its hosts, only for hosts that a policy using `facts` targets (one shell command,
read-only, never recorded); `opsagent facts HOST` shows them. `validate` (and a
daemon checking a reloaded set) reads no host: it renders with this machine's facts as
stand-ins, so a misspelt fact is still an error there.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterable, Mapping
from typing import Any

from agent.core.hosts import Host
from agent.core.plans import HostPlan, PlannedStep, PolicyRef, RunPlan
from agent.core.steps import Command, Sequence

NAMES = ("os_family", "distribution", "distribution_version", "distribution_major_version",
         "distribution_release", "architecture", "kernel", "processor_vcpus", "memtotal_mb",
         "hostname", "default_ipv4")
USES = re.compile(r"\bfacts\b")

_SCRIPT = r"""
( . /etc/os-release 2>/dev/null
  printf 'id=%s\nid_like=%s\nversion_id=%s\ncodename=%s\n' "${ID:-}" "${ID_LIKE:-}" \
    "${VERSION_ID:-}" "${VERSION_CODENAME:-}" )
printf 'architecture=%s\nkernel=%s\nhostname=%s\n' "$(uname -m)" "$(uname -r)" "$(uname -n)"
printf 'cpus=%s\n' "$(getconf _NPROCESSORS_ONLN 2>/dev/null || nproc 2>/dev/null)"
printf 'memtotal_kb=%s\n' "$(awk '/^MemTotal:/ {print $2}' /proc/meminfo 2>/dev/null)"
dev=$(ip -4 route show default 2>/dev/null |
  awk '{for (i = 1; i < NF; i++) if ($i == "dev") {print $(i + 1); exit}}')
if [ -n "$dev" ]; then set -- dev "$dev"; else set -- scope global; fi
printf 'ipv4=%s\n' "$(ip -4 -o addr show "$@" 2>/dev/null | awk '{split($4, a, "/"); print a[1]; exit}')"
"""
_FAMILIES = {"debian": "Debian", "ubuntu": "Debian", "rhel": "RedHat", "fedora": "RedHat",
             "centos": "RedHat", "suse": "Suse", "arch": "Archlinux", "alpine": "Alpine"}
_NAMED = {"debian": "Debian", "ubuntu": "Ubuntu", "rhel": "RedHat", "centos": "CentOS",
          "fedora": "Fedora", "alpine": "Alpine", "arch": "Archlinux"}
_ID = "facts"
_REF = PolicyRef("facts", "facts", "audit")


def uses_facts(values: Iterable[Any]) -> bool:
    """Whether any string in values (at any depth) names `facts`."""
    for value in values:
        if isinstance(value, str) and USES.search(value):
            return True
        if isinstance(value, dict) and uses_facts([*value.keys(), *value.values()]):
            return True
        if isinstance(value, list) and uses_facts(value):
            return True
    return False


def parse(text: str) -> dict[str, Any]:
    """The facts from the script's `key=value` lines."""
    raw = dict(line.split("=", 1) for line in text.splitlines() if "=" in line)
    ids = [raw.get("id", ""), *raw.get("id_like", "").split()]
    family = next((_FAMILIES[i] for i in ids if i in _FAMILIES), raw.get("id", "").capitalize())
    version = raw.get("version_id", "")
    return {
        "os_family": family,
        "distribution": _NAMED.get(raw.get("id", ""), raw.get("id", "").capitalize()),
        "distribution_version": version,
        "distribution_major_version": version.split(".")[0],
        "distribution_release": raw.get("codename", ""),
        "architecture": raw.get("architecture", ""),
        "kernel": raw.get("kernel", ""),
        "processor_vcpus": _int(raw.get("cpus", "")),
        "memtotal_mb": _int(raw.get("memtotal_kb", "")) // 1024,
        "hostname": raw.get("hostname", ""),
        "default_ipv4": raw.get("ipv4", ""),
    }


def _int(text: str) -> int:
    return int(text) if text.strip().isdigit() else 0


_here: dict[str, Any] | None = None


def here() -> dict[str, Any]:
    """This machine's facts (the stand-ins validation renders with)."""
    global _here
    if _here is None:
        try:
            done = subprocess.run(["sh", "-c", _SCRIPT], capture_output=True, text=True,
                                  timeout=10, check=False)
            _here = parse(done.stdout)
        except (OSError, subprocess.SubprocessError):
            _here = parse("")
    return dict(_here)


def gather(hosts: Iterable[Host], connect_timeout: int = 10) -> dict[str, Mapping[str, Any] | str]:
    """Each host's facts, or why they could not be read (the host is then unreachable)."""
    from agent import runs

    command = Command("facts", ("sh", "-c", _SCRIPT), effect="ok",
                      check=("sh", "-c", _SCRIPT), id=_ID)
    plan = RunPlan(tuple(HostPlan(h, (PlannedStep(_REF, Sequence("facts", (command,))),))
                         for h in hosts), (_REF,))
    done = runs.run(plan, None, "facts", check=True, connect_timeout=connect_timeout)
    out: dict[str, Mapping[str, Any] | str] = {}
    for result in done.result.hosts:
        op = next((o for o in result.ops if o.id == _ID), None)
        if result.unreachable or result.error or op is None or op.error:
            why = result.error or (op.error if op else "") or "no answer"
            out[result.host] = f"facts could not be read: {why}"
        else:
            out[result.host] = parse(op.stdout)
    return out
