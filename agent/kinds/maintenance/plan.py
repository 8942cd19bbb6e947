"""What a maintenance policy runs on a host: one command, the host program (host_git.py,
sent once in the command's environment; it needs only python3 and git there) with the
job as JSON. It reads every repository, clears stale locks and runs only the tasks each
one needs, ending each repository with a REPO line (observe.py).

The window is settled here, on the controller's clock: outside it the run is the
program's check job (what would be done: pending work, reported, nothing changed), so a
scheduled run at any hour is safe.
"""

from __future__ import annotations

import json
import time
from functools import cache
from pathlib import Path
from typing import Any

from agent.core.hosts import HostInfo
from agent.core.steps import Command, Sequence, Step
from agent.kinds.maintenance.spec import Git, MaintenanceSpec

ID = "git housekeeping"  # the command's id, which observe finds it by
PROGRAM = "OPSAGENT_MAINTENANCE_PROGRAM"
LAUNCH = f"import os; exec(compile(os.environ.pop({PROGRAM!r}), 'host_git.py', 'exec'))"
QUIET = "^(REPO|GIT) "  # for observe; the diff shows the other lines for a person
KEEP = 4_000_000  # characters of output read back: a REPO line per repository
CHANGED = (r"^(would )?(prune|pruned|repack|repacked|pack refs of|packed refs of|"
           r"write the commit-graph of|wrote the commit-graph of|clear stale lock|"
           r"cleared stale lock) ")


@cache
def program() -> str:
    return (Path(__file__).parent / "host_git.py").read_text(encoding="utf-8")


def plan(spec: MaintenanceSpec, host: HostInfo, now: float | None = None) -> list[Step | Sequence]:
    if spec.git is None:
        return []
    at = time.time() if now is None else now
    window = spec.window
    if window is None or window.opened(at) is not None:
        command = Command(ID, _argv(spec.git, False), check=_argv(spec.git, True),
                          effect="changed", changed_if=CHANGED, listing=True, quiet=QUIET,
                          keep=KEEP, id=ID)
    else:
        check = _argv(spec.git, True)
        command = Command(f"{ID} (outside its window: {window.said(at)})", check, check=check,
                          effect="ok", listing=True, quiet=QUIET, keep=KEEP, id=ID)
    return [Sequence("maintenance", (command,), {PROGRAM: program()})]


def job(git: Git, check: bool) -> dict[str, Any]:
    return {"repositories": git.repositories, "limits": git.thresholds.model_dump(),
            "fsck_every": git.fsck.frequency if git.fsck else 0,
            "prune_after": git.prune_after, "stale_lock": git.stale_lock, "nice": git.nice,
            "check": check}


def _argv(git: Git, check: bool) -> tuple[str, ...]:
    return ("python3", "-c", LAUNCH, json.dumps(job(git, check), sort_keys=True))
