"""What a maintenance policy runs on a host: one call with a command per part, each a
host program sent once in the call's environment (it needs only python3 and the part's
tools there) with its job as JSON: host_git.py reads every repository, clears stale
locks and runs only the tasks each one needs, ending each repository with a REPO line;
host_cleanup.py ends each part with a CLEANUP line (observe.py). A part that fails does
not stop the next.

The window is settled here, on the controller's clock: outside it the run is the
program's check job (what would be done: pending work, reported, nothing changed), so a
scheduled run at any hour is safe.
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

from agent.core.hosts import HostInfo
from agent.core.steps import Command, Sequence, Step
from agent.kinds.maintenance.spec import Cleanup, Git, MaintenanceSpec

ID = "git housekeeping"  # the commands' ids, which observe finds them by
CLEANUP = "disk cleanup"
PACKAGES = "package updates"
QUIET = "^(REPO|GIT|CLEANUP|PACKAGES) "  # for observe; the diff shows the other lines for a person
KEEP = 4_000_000  # characters of output read back: a REPO line per repository
CHANGED = (r"^(would )?(prune|pruned|repack|repacked|pack refs of|packed refs of|"
           r"write the commit-graph of|wrote the commit-graph of|clear stale lock|"
           r"cleared stale lock|remove|removed|vacuumed|empty|emptied|upgrade|upgraded|"
           r"restart|restarted) ")
PROGRAMS = {ID: ("OPSAGENT_MAINTENANCE_GIT", "host_git.py"),
            PACKAGES: ("OPSAGENT_MAINTENANCE_PACKAGES", "host_packages.py"),
            CLEANUP: ("OPSAGENT_MAINTENANCE_CLEANUP", "host_cleanup.py")}


@cache
def program(name: str) -> str:
    return (Path(__file__).parent / name).read_text(encoding="utf-8")


def plan(spec: MaintenanceSpec, host: HostInfo, now: float | None = None) -> list[Step | Sequence]:
    at = time.time() if now is None else now
    window = spec.window
    closed = "" if window is None or window.opened(at) is not None else window.said(at)
    jobs: list[tuple[str, Callable[[bool], dict[str, Any]]]] = []
    if spec.git is not None:
        jobs.append((ID, functools.partial(job, spec.git)))
    if spec.packages is not None:
        jobs.append((PACKAGES, functools.partial(packages, spec)))
    if spec.cleanup is not None:
        jobs.append((CLEANUP, functools.partial(cleanup, spec.cleanup)))
    commands = []
    for key, make in jobs:
        variable, _ = PROGRAMS[key]
        launch = f"import os; exec(compile(os.environ.pop({variable!r}), {key!r}, 'exec'))"

        def argv(check: bool, make: Callable[[bool], dict[str, Any]] = make, launch: str = launch
                 ) -> tuple[str, ...]:
            return ("python3", "-c", launch, json.dumps(make(check), sort_keys=True))

        if not closed:
            commands.append(Command(key, argv(False), check=argv(True), when="always",
                                    effect="changed", changed_if=CHANGED, listing=True,
                                    quiet=QUIET, keep=KEEP, id=key))
        else:  # outside the window: what is pending, nothing done
            commands.append(Command(f"{key} (outside its window: {closed})", argv(True),
                                    check=argv(True), when="always", effect="ok", listing=True,
                                    quiet=QUIET, keep=KEEP, id=key))
    env = {PROGRAMS[key][0]: program(PROGRAMS[key][1]) for key, _ in jobs}
    return [Sequence("maintenance", tuple(commands), env)] if commands else []


def job(git: Git, check: bool) -> dict[str, Any]:
    return {"repositories": git.repositories, "limits": git.thresholds.model_dump(),
            "fsck_every": git.fsck.frequency if git.fsck else 0,
            "prune_after": git.prune_after, "stale_lock": git.stale_lock, "nice": git.nice,
            "check": check}


def packages(spec: MaintenanceSpec, check: bool) -> dict[str, Any]:
    assert spec.packages is not None
    return {"upgrade": spec.packages.upgrade, "hold": spec.packages.hold,
            "restart_services": spec.restart_services, "check": check}


def cleanup(spec: Cleanup, check: bool) -> dict[str, Any]:
    return {"journal": spec.journal.max_size if spec.journal else "", "apt_cache": spec.apt_cache,
            "paths": [{"path": r.path, "older_than": r.older_than} for r in spec.paths],
            "check": check}
