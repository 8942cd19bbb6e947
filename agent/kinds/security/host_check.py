"""The security host program: every control's check judged from the host's reads
(host_read.py), in one run. Job (JSON, the last argument): {"controls": [{"id",
"severity", "check", "waiver": {...} | None, "expired": "DATE" | ""}]}.

Out, per control: a line for a person when it did not pass (FAIL, ERROR, WAIVED) and a
`RESULT {json}` line for the kind (its parts: what was expected, found, read); then
`EVIDENCE {json}` (each read: exit code and sha256) and the counts. Exit code 1 when a
control failed or could not be judged, else 0. Results: pass, fail, waived, na (not
applicable: the thing checked is not there, e.g. sshd on a host without it), error.
"""

from __future__ import annotations

import grp
import hashlib
import json
import os
import pwd
import re
import stat
import sys
from collections.abc import Callable
from typing import Any

from agent.kinds.security.host_read import (
    EVIDENCE,
    READS,
    Data,
    listening,
    modules,
    mounts,
    noted,
    packages,
    run,
    sshd,
    sysctl,
    sysctl_files,
    table,
    text_of,
    unit,
    version_holds,
)

COMPARE = re.compile(r"^(<=|>=|<|>)\s*(-?\d+(\.\d+)?)$")
NOLOGIN = ("/usr/sbin/nologin", "/sbin/nologin", "/bin/false", "/usr/bin/false", "")
SYSTEM_LOGINS = ("root", "sync", "shutdown", "halt")
LOOPBACK = ("0100007F", "00000000000000000000000001000000")


def part(what: str, expected: Any, found: Any, ok: bool | None, read: str, error: str = ""
         ) -> Data:
    result = "error" if error else "na" if ok is None else "pass" if ok else "fail"
    return {"what": what, "expected": expected, "found": error or found, "result": result,
            "read": read}


def holds(found: str, expected: Any, fold: bool) -> bool:
    """Whether a setting's value meets what is expected (see checks.py)."""
    if isinstance(expected, list):
        return any(holds(found, e, fold) for e in expected)
    text = str(expected)
    compare = COMPARE.match(text)
    if compare:
        try:
            value, limit = float(found), float(compare[2])
        except ValueError:
            return False
        return {"<": value < limit, "<=": value <= limit, ">": value > limit,
                ">=": value >= limit}[compare[1]]
    if text.startswith("!~"):
        return re.search(text[2:].strip(), found) is None
    if text.startswith("~"):
        return re.search(text[1:].strip(), found) is not None
    if fold:
        return found.lower() == text.lower()
    return " ".join(found.split()) == " ".join(text.split())


def check_file(c: Data) -> list[Data]:
    path = c["path"]
    read = f"stat {path}"
    try:
        st = os.stat(path)
    except FileNotFoundError:
        noted(read, 1, "missing")
        if c["exists"] and not c["required"]:
            return [part(f"{path} exists", True, False, None, read)]
        return [part(f"{path} exists", c["exists"], False, not c["exists"], read)]
    except OSError as e:
        return [part(f"{path}", "readable", "", None, read, e.strerror or "unreadable")]
    noted(read, 0, f"{st.st_mode:o} {st.st_uid} {st.st_gid}")
    if not c["exists"]:
        return [part(f"{path} exists", False, True, False, read)]
    parts = []
    if "mode" in c:
        bits = st.st_mode & 0o7777
        parts.append(part(f"{path} mode", f"at most {c['mode']}", f"{bits:04o}",
                          not bits & ~int(c["mode"], 8), read))
    if "owner" in c:
        owner = _name(pwd.getpwuid, st.st_uid)
        parts.append(part(f"{path} owner", c["owner"], owner, owner == c["owner"], read))
    if "group" in c:
        group = _name(grp.getgrgid, st.st_gid)
        parts.append(part(f"{path} group", c["group"], group, group == c["group"], read))
    for key, want in (("matches", True), ("not_matches", False)):
        if key in c:
            text = text_of(path)
            if text is None:
                parts.append(part(f"{path} content", c[key], "", None, f"file {path}",
                                  "cannot be read"))
                continue
            found = re.search(c[key], text, re.M)
            shown = found[0][:120] if found else "no match"
            parts.append(part(f"{path} {'matches' if want else 'does not match'} {c[key]}",
                              want, shown, bool(found) == want, f"file {path}"))
    if "sha256" in c:
        digest = _sha256(path)
        parts.append(part(f"{path} sha256", c["sha256"], digest or "cannot be read",
                          None if digest is None else digest == c["sha256"], f"sha256 {path}",
                          "" if digest is not None else "cannot be read"))
    return parts or [part(f"{path} exists", True, True, True, read)]


def _sha256(path: str) -> str | None:
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
                return None  # a device would never end
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    except OSError:
        return None
    noted(f"sha256 {path}", 0, digest.hexdigest())
    return digest.hexdigest()


def _name(lookup: Callable[[int], Any], number: int) -> str:
    try:
        return str(lookup(number)[0])
    except KeyError:
        return str(number)


def check_sshd(c: Data) -> list[Data]:
    settings, why = sshd()
    parts = []
    for key, expected in c.items():
        if settings is None:
            missing = why == "sshd is not installed"
            parts.append(part(f"sshd {key}", expected, why, None, "sshd -T",
                              "" if missing else why))
            continue
        values = settings.get(key.lower())
        if values is None:
            parts.append(part(f"sshd {key}", expected, "", None, "sshd -T",
                              f"sshd -T does not print {key}"))
            continue
        found = " ".join(values)
        parts.append(part(f"sshd {key}", expected, found, holds(found, expected, True),
                          "sshd -T"))
    return parts


def check_sysctl(c: Data) -> list[Data]:
    parts = []
    for key, expected in c.items():
        found = sysctl(key)
        read = "file /proc/sys/" + key.replace(".", "/")
        parts.append(part(f"sysctl {key}", expected, "not in this kernel" if found is None
                          else found, None if found is None else holds(found, expected, False),
                          read))
    return parts


def check_sysctl_conf(c: Data) -> list[Data]:
    files = sysctl_files()
    parts = []
    for key, expected in c.items():
        value, path = files.get(key, ("", ""))
        parts.append(part(f"sysctl.d {key}", expected, f"{value} ({path})" if path
                          else "set by no file", bool(path) and holds(value, expected, False),
                          f"file {path}" if path else "sysctl.d"))
    return parts


def check_module(c: Data) -> list[Data]:
    name = c["name"].replace("-", "_")
    loaded, rules = modules()
    parts = []
    if "loaded" in c:
        parts.append(part(f"module {name} loaded", c["loaded"], name in loaded,
                          (name in loaded) == c["loaded"], "file /proc/modules"))
    if "disabled" in c:
        rule = rules.get(name, "")
        off = bool(re.match(r"^install (/usr)?/bin/(false|true)$", rule))
        parts.append(part(f"module {name} disabled", c["disabled"], rule or "no modprobe.d rule",
                          off == c["disabled"], "modprobe.d"))
    return parts


def check_package(c: Data) -> list[Data]:
    installed = packages()
    name = c["name"]
    if installed is None:
        return [part(f"package {name}", "", "dpkg is not there", None, "dpkg-query -W")]
    version = installed.get(name)
    parts = [part(f"package {name} installed", c["present"], version or "not installed",
                  (version is not None) == c["present"], "dpkg-query -W")]
    if version is not None and c.get("version"):
        parts.append(part(f"package {name} version", c["version"], version,
                          version_holds(version, c["version"]), "dpkg-query -W"))
    return parts


def check_service(c: Data) -> list[Data]:
    name = c["name"]
    enabled, active = unit(name)
    parts = []
    if "enabled" in c:
        if enabled == "no systemctl":
            parts.append(part(f"{name} enabled", c["enabled"], enabled, None, "systemctl"))
        else:
            on = enabled in ("enabled", "enabled-runtime", "linked", "linked-runtime", "alias",
                             "indirect", "generated")
            parts.append(part(f"{name} enabled", c["enabled"], enabled, on == c["enabled"],
                              f"systemctl is-enabled {name}"))
    if "active" in c:
        parts.append(part(f"{name} active", c["active"], active,
                          (active == "active") == c["active"], f"systemctl is-active {name}"))
    return parts


def check_accounts(c: Data) -> list[Data]:
    passwd = [row for row in table("/etc/passwd") if len(row) >= 7]
    groups = [row for row in table("/etc/group") if len(row) >= 4]
    parts = []
    if "uid0" in c:
        found = sorted(row[0] for row in passwd if row[2] == "0")
        parts.append(part("accounts with UID 0", c["uid0"], found,
                          set(found) <= set(c["uid0"]), "file /etc/passwd"))
    if "empty_passwords" in c:
        shadow = text_of("/etc/shadow")
        empty = sorted(row[0] for row in table("/etc/shadow") if len(row) > 1 and row[1] == "")
        parts.append(part("accounts with an empty password", c["empty_passwords"], empty,
                          bool(empty) == c["empty_passwords"] if shadow is not None else None,
                          "file /etc/shadow", "" if shadow is not None else "cannot be read"))
    if "system_logins" in c:
        first = _uid_min()
        logins = sorted(row[0] for row in passwd if row[2].isdigit() and int(row[2]) < first
                        and row[0] not in SYSTEM_LOGINS and row[6] not in NOLOGIN)
        parts.append(part("system accounts that can log in", c["system_logins"], logins,
                          bool(logins) == c["system_logins"], "file /etc/passwd"))
    if "duplicates" in c:
        twice = sorted({f"{kind} {v}" for kind, values in (
            ("user", [r[0] for r in passwd]), ("uid", [r[2] for r in passwd]),
            ("group", [r[0] for r in groups]), ("gid", [r[2] for r in groups]))
            for v in values if values.count(v) > 1})
        parts.append(part("names and ids used twice", c["duplicates"], twice,
                          bool(twice) == c["duplicates"], "file /etc/passwd, /etc/group"))
    for name, allowed in c.get("group_members", {}).items():
        row = next((r for r in groups if r[0] == name), None)
        if row is None:
            parts.append(part(f"members of {name}", allowed, "no such group", None, "file /etc/group"))
            continue
        members = {m for m in row[3].split(",") if m} | {r[0] for r in passwd if r[3] == row[2]}
        extra = sorted(members - set(allowed))
        parts.append(part(f"members of {name}", allowed, sorted(members), not extra,
                          "file /etc/group"))
    return parts


def _uid_min() -> int:
    found = re.search(r"^\s*UID_MIN\s+(\d+)", text_of("/etc/login.defs") or "", re.M)
    return int(found[1]) if found else 1000


def check_mount(c: Data) -> list[Data]:
    points = mounts()
    path = c["path"]
    options = points.get(path)
    if options is None:
        return [part(f"{path} is a mount point", True, False, not c["mounted"],
                     "file /proc/self/mounts")]
    parts = [part(f"{path} is a mount point", c["mounted"], True, c["mounted"],
                  "file /proc/self/mounts")]
    for option in c.get("options", []):
        parts.append(part(f"{path} mounted {option}", True, ",".join(options), option in options,
                          "file /proc/self/mounts"))
    return parts


def check_ports(c: Data) -> list[Data]:
    protocol = c["protocol"]
    sockets = listening(protocol)
    read = f"file /proc/net/{protocol}, {protocol}6"
    parts = []
    if c.get("closed"):
        open_ = sorted({port for _, port in sockets} & set(c["closed"]))
        parts.append(part(f"{protocol} ports closed", c["closed"], open_, not open_, read))
    if c.get("only") is not None:
        outside = sorted({port for address, port in sockets
                          if address not in LOOPBACK and not address.endswith("7F")
                          and port not in c["only"]})
        parts.append(part(f"{protocol} ports listening only", c["only"], outside, not outside,
                          read))
    return parts


def check_command(c: Data) -> list[Data]:
    read = f"sh -c {c['run']}"
    if read not in READS:  # controls that ask the same command share its one run
        READS[read] = run(["sh", "-c", c["run"]], timeout=c["timeout"])
        noted(read, *READS[read])
    code, out = READS[read]
    out = out.rstrip("\n")
    if code in (124, 127) and code != c["exit"]:
        return [part(c["run"], f"exit {c['exit']}", "", None, read, out.strip()[:200])]
    parts = [part(f"{c['run']} exit code", c["exit"], code, code == c["exit"], read)]
    for key, want in (("matches", True), ("not_matches", False)):
        if key in c:
            found = re.search(c[key], out, re.M)
            parts.append(part(f"{c['run']} output {'matches' if want else 'does not match'} "
                              f"{c[key]}", want, found[0][:120] if found else "no match",
                              bool(found) == want, read))
    return parts


CHECKS: dict[str, Callable[[Data], list[Data]]] = {
    "file": check_file, "sshd": check_sshd, "sysctl": check_sysctl,
    "sysctl_conf": check_sysctl_conf,
    "kernel_module": check_module, "package": check_package, "service": check_service,
    "accounts": check_accounts, "mount": check_mount, "ports": check_ports,
    "command": check_command}


def judge(control: Data) -> Data:
    parts: list[Data] = []
    for kind, check in control["check"].items():
        try:
            parts.extend(CHECKS[kind](check))
        except Exception as e:  # a check that breaks is an error of that control only
            parts.append(part(kind, "", "", None, kind, f"{type(e).__name__}: {e}"))
    results = {p["result"] for p in parts}
    result = ("error" if "error" in results else "fail" if "fail" in results
              else "pass" if "pass" in results else "na")
    done: Data = {"id": control["id"], "result": result, "parts": parts}
    if result == "fail" and control.get("waiver"):
        done["result"] = "waived"
    if control.get("waiver"):
        done["waiver"] = control["waiver"]
    if control.get("expired") and result == "fail":
        done["note"] = f"waiver expired on {control['expired']}"
    return done


def line(control: Data, done: Data) -> str:
    """What a person reads about a control that did not pass."""
    bad = [p for p in done["parts"] if p["result"] in ("fail", "error")] or done["parts"]
    said = "; ".join(f"{p['what']}: {_shown(p['found'])}, expected {_shown(p['expected'])}"
                     for p in bad[:3])
    head = f"{done['result'].upper()} {done['id']} ({control['severity']})"
    if done["result"] == "waived":
        w = done["waiver"]
        return f"{head}: {said} (waived until {w['expires']} by {w['owner']}: {w['reason']})"
    return f"{head}: {said}" + (f" ({done['note']})" if done.get("note") else "")


def _shown(value: Any) -> str:
    if isinstance(value, list):
        return ", ".join(str(v) for v in value) if value else "none"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value) if value != "" else "nothing"


def main(job: Data) -> int:
    counts = dict.fromkeys(("pass", "fail", "waived", "na", "error"), 0)
    failed = []
    for control in job["controls"]:
        done = judge(control)
        counts[done["result"]] += 1
        if done["result"] != "pass" and done["result"] != "na":
            print(line(control, done))
        if done["result"] in ("fail", "error"):
            failed.append(done["id"])
        print("RESULT " + json.dumps(done, sort_keys=True, default=str))
    print("EVIDENCE " + json.dumps(EVIDENCE, sort_keys=True))
    print(f"{len(job['controls'])} controls: {counts['pass']} pass, {counts['fail']} fail, "
          f"{counts['waived']} waived, {counts['na']} not applicable, {counts['error']} error")
    if failed:
        shown = ", ".join(failed[:5]) + (f" and {len(failed) - 5} more" if len(failed) > 5 else "")
        print(f"{len(failed)} control{'s' if len(failed) > 1 else ''} did not pass: {shown}",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(json.loads(sys.argv[-1])))
