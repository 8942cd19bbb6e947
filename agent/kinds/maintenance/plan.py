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
from agent.core.rollout import Health, Rollout
from agent.core.steps import Command, Sequence, Step
from agent.kinds.maintenance.spec import Cleanup, Git, MaintenanceSpec

ID = "git housekeeping"  # the commands' ids, which observe finds them by
CLEANUP = "disk cleanup"
PACKAGES = "package updates"
REBOOT = "reboot"
PENDING = "/run/opsagent-reboot-pending"  # on tmpfs: gone once the host has rebooted
REBOOT_SCRIPT = (
    'reason=""; for f in /run/reboot-required /var/run/reboot-required; do '
    '[ -e "$f" ] && { reason="$f says so"; break; }; done; '
    '[ "$1" = always ] && reason="${reason:-the policy reboots every run}"; '
    '[ -n "$reason" ] || exit 0; '
    'if [ "$2" = check ]; then echo "would reboot: $reason"; exit 0; fi; '
    f'touch {PENDING} && '
    'if command -v systemd-run >/dev/null && [ -d /run/systemd/system ]; then '
    'systemd-run --quiet --on-active=2 /bin/systemctl reboot; '
    'else (sleep 2; reboot) </dev/null >/dev/null 2>&1 & fi && echo "rebooting: $reason"')
QUIET = "^(REPO|GIT|CLEANUP|PACKAGES) "  # for observe; the diff shows the other lines for a person
KEEP = 4_000_000  # characters of output read back: a REPO line per repository
CHANGED = (r"^(would )?(prune|pruned|repack|repacked|pack refs of|packed refs of|"
           r"write the commit-graph of|wrote the commit-graph of|clear stale lock|"
           r"cleared stale lock|remove|removed|vacuumed|empty|emptied|upgrade|upgraded|"
           r"restart|restarted|reboot:|rebooting:) ")
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

        commands.append(_command(key, argv, closed, quiet=QUIET, keep=KEEP))
    if spec.reboot is not None:
        commands.append(reboot(spec, closed))
    env = {PROGRAMS[key][0]: program(PROGRAMS[key][1]) for key, _ in jobs}
    return [Sequence("maintenance", tuple(commands), env)] if commands else []


def reboot(spec: MaintenanceSpec, closed: str) -> Command:
    """A reboot two seconds after the command returns (so its result comes back), marked
    by a file on /run that the reboot removes: the wave's health check waits for that."""
    assert spec.reboot is not None
    when = "required" if spec.reboot.when_required else "always"

    def argv(check: bool) -> tuple[str, ...]:
        return ("sh", "-c", REBOOT_SCRIPT, "reboot", when, "check" if check else "apply")

    return _command(REBOOT, argv, closed)


def _command(key: str, argv: Callable[[bool], tuple[str, ...]], closed: str, **output: Any
             ) -> Command:
    """A part's command; outside the window (closed says when it opens) its check
    variant, which only reports what is pending. Every part runs whatever the one
    before did."""
    if closed:
        return Command(f"{key} (outside its window: {closed})", argv(True), check=argv(True),
                       when="always", effect="ok", listing=True, id=key, **output)
    return Command(key, argv(False), check=argv(True), when="always", effect="changed",
                   changed_if=CHANGED, listing=True, id=key, **output)


def rollout(spec: MaintenanceSpec) -> Rollout | None:
    """The waves a policy that reboots runs in: its batch and failure budget, and a health
    check that first waits for the reboot (the pending mark gone) and then runs the
    policy's checks, for up to `timeout`."""
    if spec.reboot is None:
        return None
    r = spec.reboot
    commands = [f"test ! -e {PENDING}"] + [f"( {h.command} )" for h in r.health if h.command]
    http = next((h.http for h in r.health if h.http is not None), None)
    delay = max(r.delay, 1, -(-r.timeout // 100))  # a rollout's health tries at most 100 times
    check = Health(command=" && ".join(commands), http=http, retries=max(1, r.timeout // delay),
                   delay=delay, reconnect=r.timeout)
    return Rollout(batch=(r.batch,), max_fail_percentage=r.max_fail_percentage, health=check)


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
