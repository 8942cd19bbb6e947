"""What a security policy runs on a host: in enforce mode the fixes first (sysctl and the
controls' tasks, as pyinfra operations), then one command that judges every control (the
host program, host_read.py and host_check.py joined, sent once in its environment).

Waivers are settled here, on the controller's clock in UTC: a waiver covering the host
that has not reached its day goes with its control; one that has, goes as the day it
expired, so the failure says since when.
"""

from __future__ import annotations

import datetime
import json
from functools import cache
from pathlib import Path
from typing import Any

from agent.core.hosts import HostInfo
from agent.core.steps import Command, Login, Sequence, Step
from agent.kinds.program import join
from agent.kinds.security.spec import Control, SecuritySpec, Waiver
from agent.kinds.security.spec import today as security_today

NAME = ID = "check controls"
PROGRAM = "OPSAGENT_SECURITY_PROGRAM"
LAUNCH = f"import os; exec(compile(os.environ.pop({PROGRAM!r}), 'host_check.py', 'exec'))"
PARTS = ("host_read.py", "host_check.py")
QUIET = "^(RESULT|EVIDENCE) "  # for observe; the diff shows the lines for a person
KEEP = 8_000_000  # characters of output read back: a RESULT line per control
SYSCTL_FILE = "/etc/sysctl.d/99-zz-opsagent-{policy}.conf"  # read after the others: it wins
SSHD_FILE = "/etc/ssh/sshd_config.d/00-opsagent-{policy}.conf"  # read first: its settings win
SSHD_BACKUP = "/var/lib/opsagent/security/{policy}.sshd-drop-in.before"
SSHD_PENDING = "/run/opsagent-sshd-{policy}.pending"
SSHD_WAIT = 120  # seconds the host waits for the new login before undoing by itself


@cache
def program() -> str:
    return join(Path(__file__).parent, PARTS, "from agent.kinds.security.")


@cache
def sshd_program() -> str:
    return (Path(__file__).parent / "host_sshd.py").read_text(encoding="utf-8")


def plan(spec: SecuritySpec, host: HostInfo, today: datetime.date | None = None
         ) -> list[Step | Sequence]:
    steps: list[Step | Sequence] = []
    if spec.mode == "enforce":
        steps += fixes(spec)
        steps += sshd_fix(spec)
    job = {"controls": [_job(c, spec.waivers, host, today or security_today()) for c in spec.effective]}
    argv = ("python3", "-c", LAUNCH, json.dumps(job, sort_keys=True, default=str))
    command = Command(NAME, argv, check=argv, effect="ok", listing=True, quiet=QUIET,
                      keep=KEEP, id=ID)
    return [*steps, Sequence("security", (command,), {PROGRAM: program()}, {})]


def fixes(spec: SecuritySpec) -> list[Step | Sequence]:
    """The fixes of every control that has one, in the controls' order."""
    steps: list[Step | Sequence] = []
    for control in spec.effective:
        fix = control.fix
        if fix is None:
            continue
        for key, value in (fix.sysctl or {}).items():
            steps.append(Step(f"{control.id}: sysctl {key} = {value}", "server.sysctl",
                              {"key": key, "value": value, "persist": True,
                               "persist_file": SYSCTL_FILE.format(policy=spec.policy)}))
        for task in fix.tasks or []:
            for each in task.each():
                step = each.step()
                steps.append(Step(f"{control.id}: {step.name}", step.operation, step.args,
                                  step.guard, sensitive=step.sensitive, tags=step.tags,
                                  skip=step.skip))
    return steps


def sshd_fix(spec: SecuritySpec) -> list[Step | Sequence]:
    """The sshd settings of every control's fix, as one drop-in, proven by a new login."""
    settings: dict[str, tuple[str, str]] = {}  # by keyword, any case: the first control's
    for control in spec.effective:
        for key, value in ((control.fix.sshd or {}) if control.fix else {}).items():
            settings.setdefault(key.lower(), (key, value))
    if not settings:
        return []

    file, backup, pending = (p.format(policy=spec.policy)
                             for p in (SSHD_FILE, SSHD_BACKUP, SSHD_PENDING))

    def argv(action: str, check: bool = False) -> tuple[str, ...]:
        job = {"action": action, "check": check, "settings": list(settings.values()),
               "file": file, "backup": backup, "pending": pending, "wait": SSHD_WAIT}
        return ("python3", "-c", sshd_program(), json.dumps(job))

    command = Command("sshd drop-in", argv("apply"), check=argv("apply", True),
                      effect="changed", changed_if="^(would )?change", listing=True,
                      login=Login(confirm=("rm", "-f", pending), undo=argv("undo")),
                      id="sshd drop-in")
    return [Sequence("sshd fixes", (command,))]


def _job(control: Control, waivers: list[Waiver], host: HostInfo, today: datetime.date
         ) -> dict[str, Any]:
    assert control.check is not None  # the spec keeps only controls that have one
    mine = [w for w in waivers if w.control == control.id and w.covers(host.name, host.groups)]
    active = [w for w in mine if w.expires > today]
    expired = [w.expires for w in mine if w.expires <= today]
    waiver = max(active, key=lambda w: w.expires) if active else None
    return {"id": control.id, "severity": control.severity, "check": control.check.reads(),
            "waiver": waiver.model_dump(mode="json", exclude={"hosts", "control"}) if waiver
            else None, "expired": str(max(expired)) if expired and not active else ""}
