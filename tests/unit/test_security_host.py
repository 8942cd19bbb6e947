"""The security host program (host_read.py and host_check.py joined), run as hosts run
it: `python3 -c PROGRAM JOB`, lines out. Each case is controls in and results out, on
files this test makes and on what this machine shows read-only (/proc, /etc/passwd); no
case reads sshd here (its check may create /run/sshd), the fleet tests do."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from agent.kinds.security.checks import Check
from agent.kinds.security.plan import program


def judged(controls: list[dict[str, Any]]) -> tuple[int, list[str], dict[str, dict[str, Any]]]:
    job = {"controls": [{"severity": "medium", "waiver": None, "expired": "", **c,
                         "check": Check.model_validate(c["check"]).reads()} for c in controls]}
    done = subprocess.run(["python3", "-c", program(), json.dumps(job, default=str)],
                          capture_output=True, text=True, timeout=60, check=False)
    results = {r["id"]: r for r in (json.loads(line[7:]) for line in done.stdout.splitlines()
                                    if line.startswith("RESULT "))}
    said = [line for line in done.stdout.splitlines() if not line.startswith(("RESULT", "EVIDENCE"))]
    return done.returncode, said, results


def one(check: dict[str, Any]) -> str:
    return str(judged([{"id": "c", "check": check}])[2]["c"]["result"])


@pytest.fixture
def files(tmp_path: Path) -> Path:
    (tmp_path / "open").write_text("umask 022\nPermitRootLogin yes\n")
    (tmp_path / "open").chmod(0o644)
    (tmp_path / "tight").write_text("x\n")
    (tmp_path / "tight").chmod(0o600)
    return tmp_path


def test_file_checks(files: Path) -> None:
    me = subprocess.run(["id", "-un"], capture_output=True, text=True, check=True).stdout.strip()
    cases = [
        ({"path": f"{files}/tight", "mode": "0640"}, "pass"),  # fewer bits: fine
        ({"path": f"{files}/open", "mode": "0640"}, "fail"),  # o+r is beyond 0640
        ({"path": f"{files}/open", "owner": me}, "pass"),
        ({"path": f"{files}/open", "owner": "nobody"}, "fail"),
        ({"path": f"{files}/open", "matches": "^umask 0[0-7]2"}, "pass"),
        ({"path": f"{files}/open", "not_matches": "^PermitRootLogin yes"}, "fail"),
        ({"path": f"{files}/none"}, "fail"),  # must exist
        ({"path": f"{files}/none", "exists": False}, "pass"),
        ({"path": f"{files}/open", "exists": False}, "fail"),
        ({"path": f"{files}/none", "mode": "0600", "required": False}, "na"),  # e.g. shadow-
        ({"path": f"{files}/tight", "sha256": hashlib.sha256(b"x\n").hexdigest()}, "pass"),
        ({"path": f"{files}/tight", "sha256": "0" * 64}, "fail"),  # changed since its baseline
    ]
    for check, want in cases:
        assert one({"file": check}) == want, check


def test_settings_are_compared_as_written() -> None:
    aslr = Path("/proc/sys/kernel/randomize_va_space").read_text().strip()
    cases = [
        ({"kernel.randomize_va_space": int(aslr)}, "pass"),
        ({"kernel.randomize_va_space": f">= {aslr}"}, "pass"),
        ({"kernel.randomize_va_space": f"< {aslr}"}, "fail"),
        ({"kernel.randomize_va_space": [int(aslr) + 1, int(aslr)]}, "pass"),  # one of them
        ({"kernel.randomize_va_space": f"~ ^{aslr}$"}, "pass"),
        ({"kernel.randomize_va_space": f"!~ {aslr}"}, "fail"),
        ({"kernel.no_such_parameter": 1}, "na"),  # not in this kernel
    ]
    for check, want in cases:
        assert one({"sysctl": check}) == want, check
    # what the next boot sets: Debian's procps ships fs.protected_hardlinks = 1 in
    # /usr/lib/sysctl.d (99-protect-links.conf); nothing sets kernel.sysrq's
    files = Path("/usr/lib/sysctl.d/99-protect-links.conf")
    if files.exists() and "fs.protected_hardlinks = 1" in files.read_text():
        assert one({"sysctl_conf": {"fs.protected_hardlinks": 1}}) == "pass"
        assert one({"sysctl_conf": {"fs.protected_hardlinks": 0}}) == "fail"
    assert one({"sysctl_conf": {"kernel.no_such_parameter": 1}}) == "fail"  # set by no file


def test_accounts_ports_commands_and_packages() -> None:
    cases: list[tuple[dict[str, Any], str]] = [
        ({"accounts": {"uid0": ["root"]}}, "pass"),
        ({"accounts": {"uid0": []}}, "fail"),  # root has UID 0
        ({"accounts": {"group_members": {"no-such-group-here": []}}}, "na"),
        ({"command": {"run": "echo hello", "matches": "^hello$"}}, "pass"),
        ({"command": {"run": "exit 3", "exit": 3}}, "pass"),
        ({"command": {"run": "exit 3"}}, "fail"),
        ({"command": {"run": "sleep 5", "timeout": 1}}, "error"),  # could not be judged
        ({"command": {"run": "sleep 30 & echo started", "timeout": 2}}, "error"),  # held open
        ({"command": {"run": "yes", "not_matches": "^n"}}, "error"),  # endless: stopped
        ({"file": {"path": "/dev/zero", "matches": "x"}}, "error"),  # not a regular file
        ({"file": {"path": "/dev/zero", "sha256": "0" * 64}}, "error"),
        ({"command": {"run": "echo a; echo b", "not_matches": "^b"}}, "fail"),
        ({"ports": {"closed": [1]}}, "pass"),  # tcpmux: nothing here listens on it
        ({"package": {"name": "python3"}}, "pass"),
        ({"package": {"name": "python3", "version": ">= 1"}}, "pass"),
        ({"package": {"name": "python3", "version": "< 1"}}, "fail"),
        ({"package": {"name": "no-such-package-here", "present": False}}, "pass"),
        ({"mount": {"path": "/proc"}}, "pass"),
        ({"mount": {"path": "/proc", "options": ["no-such-option"]}}, "fail"),
        ({"kernel_module": {"name": "no_such_module_here", "loaded": False}}, "pass"),
        ({"kernel_module": {"name": "no_such_module_here", "disabled": True}}, "fail"),
    ]
    for check, want in cases:
        assert one(check) == want, check


def test_every_part_must_hold_and_waivers_count_apart(files: Path) -> None:
    code, said, results = judged([
        {"id": "both", "check": {"file": {"path": f"{files}/tight"},
                                 "command": {"run": "false"}}},
        {"id": "waived", "severity": "high", "check": {"command": {"run": "false"}},
         "waiver": {"reason": "legacy", "owner": "ops@example.org", "expires": "2027-03-01"}},
        {"id": "expired", "check": {"command": {"run": "false"}}, "expired": "2026-01-01"},
        {"id": "fine", "check": {"command": {"run": "true"}}},
    ])
    assert {k: r["result"] for k, r in results.items()} == {
        "both": "fail", "waived": "waived", "expired": "fail", "fine": "pass"}
    assert code == 1  # both and expired fail; the waived one does not count
    assert "WAIVED waived (high): false exit code: 1, expected 0 (waived until 2027-03-01 by " \
           "ops@example.org: legacy)" in said
    assert "FAIL expired (medium): false exit code: 1, expected 0 (waiver expired on " \
           "2026-01-01)" in said
    assert said[-1] == "4 controls: 1 pass, 2 fail, 1 waived, 0 not applicable, 0 error"
    evidence = results["both"]["parts"]
    assert [p["read"] for p in evidence] == [f"stat {files}/tight", "sh -c false"]


def test_all_passing_exits_0_and_a_broken_check_is_an_error_of_its_control_only() -> None:
    code, _, results = judged([{"id": "fine", "check": {"command": {"run": "true"}}}])
    assert code == 0 and results["fine"]["result"] == "pass"
    job = {"controls": [{"id": "odd", "severity": "low", "waiver": None, "expired": "",
                         "check": {"file": {"path": 5}}},
                        {"id": "fine", "severity": "low", "waiver": None, "expired": "",
                         "check": {"command": {"run": "true", "exit": 0, "timeout": 5}}}]}
    done = subprocess.run(["python3", "-c", program(), json.dumps(job)], capture_output=True,
                          text=True, timeout=60, check=False, env={**os.environ})
    lines = [json.loads(x[7:]) for x in done.stdout.splitlines() if x.startswith("RESULT ")]
    assert [(r["id"], r["result"]) for r in lines] == [("odd", "error"), ("fine", "pass")]
