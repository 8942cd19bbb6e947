"""A rollout's health check after a wave: a command on each host and/or an HTTP probe
from the controller, each tried `retries` more times `delay` apart.

Each check is one result of the policy on the host ("health check: ..."), ok or failed,
shown in progress, the recap, --json and the history like any other.
"""

from __future__ import annotations

import re
import time
import urllib.error
import urllib.request
from collections.abc import Callable

from agent.core.plans import HostPlan, PlannedStep, PolicyRef, RunPlan
from agent.core.results import HostResult, OpResult, Status
from agent.core.rollout import Health, Http
from agent.core.steps import Command, Sequence

HEALTH = "health"
LOST = re.compile(r"(?i)(unreachable|could not connect|connection (reset|closed|refused|lost)|"
                  r"session not active|socket is closed|no existing session|EOF)")
_TRIES = ('n=$1 d=$2 c=$3; i=0\n'
          'while :; do sh -c "$c" && exit 0; s=$?; i=$((i+1))\n'
          '  if [ "$i" -gt "$n" ]; then echo "unhealthy: exit code $s, $i tries" >&2; exit $s; fi\n'
          '  sleep "$d"; done')


def command_plan(hosts: list[HostPlan], ref: PolicyRef, source: str) -> RunPlan:
    """Each host's health command as one sequence (hosts without one are left out)."""
    planned = []
    for host_plan in hosts:
        health = host_plan.health_of(ref.name)
        if health is None or health.command is None:
            continue
        command = Command(f"health check: {health.command}",
                          ("sh", "-c", _TRIES, "health", str(health.retries),
                           str(int(health.delay)), health.command), effect="ok", id=HEALTH)
        sequence = Sequence(command.name, (command,))
        planned.append(HostPlan(host_plan.host, (PlannedStep(ref, sequence),)))
    return RunPlan(tuple(planned), (ref,), source)


def lost(result: HostResult) -> bool:
    """Whether the host could not be reached for its health command, or dropped the
    connection while it ran (a reboot): worth another try, unlike a command that failed."""
    if result.unreachable:
        return True
    return any(op.id == HEALTH and op.status is Status.FAILED and LOST.search(op.error)
               for op in result.ops)


def probe(ref: PolicyRef, health: Health, stop: Callable[[], bool]) -> OpResult | None:
    """The HTTP probe's result, or None when the check has none."""
    if health.http is None:
        return None
    started = time.monotonic()
    error = ""
    for attempt in range(health.retries + 1):
        error = _get(health.http)
        if not error or stop():
            break
        if attempt < health.retries:
            time.sleep(health.delay)
    return OpResult(ref.name, ref.kind, f"health check: GET {health.http.url}", "http",
                    Status.FAILED if error else Status.OK, error=error, id=HEALTH,
                    duration=time.monotonic() - started)


def _get(http: Http) -> str:
    """"" when the URL answers with the expected status; else what it did."""
    try:
        with urllib.request.urlopen(http.url, timeout=http.timeout) as answer:  # noqa: S310
            status = answer.status
    except urllib.error.HTTPError as e:
        status = e.code
    except (urllib.error.URLError, OSError, ValueError) as e:
        reason = getattr(e, "reason", e)
        return f"GET {http.url}: {reason}"
    if status != http.status:
        return f"GET {http.url}: status {status}, expected {http.status}"
    return ""
