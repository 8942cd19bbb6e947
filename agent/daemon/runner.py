"""Runs started by the daemon: each is `opsagent apply` for one policy and its due hosts,
in a child process.

A child is the same code path as a one-shot apply (host locks, recording, metrics), its
memory is returned when it ends, and it can be stopped: SIGTERM ends it after the
operations under way (it records what it did); past a grace period it is killed, and the
daemon records the run as failed.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.cli.output import FORMAT
from agent.core.results import HostResult, OpResult, RunResult, Status
from agent.daemon.policyset import PolicySet, Scheduled
from agent.daemon.warm import ForkServer, Lost, WarmProc
from agent.state.store import Store

log = logging.getLogger(__name__)
GRACE = 10.0  # seconds between SIGTERM and SIGKILL when a run overruns


@dataclass
class Child:
    policy: Scheduled
    hosts: tuple[str, ...]
    policy_set: PolicySet
    proc: subprocess.Popen[bytes] | WarmProc
    out: Any  # temporary files for the child's stdout and stderr
    err: Any
    started: float  # wall clock, for the records
    deadline: float  # the rest on the monotonic clock: a stepped wall clock moves none of them
    begun: float = 0.0
    terminated_at: float | None = None
    reason: str = ""


@dataclass(frozen=True)
class Settings:
    state_dir: Path
    timeout: int
    lock_wait: int
    cwd: Path
    audit_syslog: str | None = None


def start(policy: Scheduled, hosts: tuple[str, ...], policy_set: PolicySet, settings: Settings,
          now: float, warm: ForkServer | None = None) -> Child:
    """The run in a child: forked by the warm server when it is up, else a new interpreter."""
    args = ["apply", *map(str, policy_set.policy_paths),
            "-i", policy_set.inventory, "--templates", str(policy_set.templates),
            "--policy", policy.name, "--json", "--state-dir", str(settings.state_dir),
            "--timeout", str(settings.timeout), "--lock-wait", str(settings.lock_wait)]
    for host in hosts:
        args += ["--limit", host]
    if settings.audit_syslog:
        args += ["--audit-syslog", settings.audit_syslog]
    env = {**os.environ, "OPSAGENT_TRIGGER": f"opsagent daemon (pid {os.getpid()})",
           "PYINFRA_PROGRESS": "off"}
    out = tempfile.TemporaryFile()  # noqa: SIM115 (closed in finish(), when the child ends)
    err = tempfile.TemporaryFile()  # noqa: SIM115
    proc: subprocess.Popen[bytes] | WarmProc | None = None
    if warm is not None:
        try:
            proc = warm.run(args, env, settings.cwd, out, err)
        except Lost as e:
            log.debug("policy %s: a cold start (fork server: %s)", policy.name, e)
    if proc is None:
        proc = subprocess.Popen([sys.executable, "-m", "agent", *args], stdout=out, stderr=err,
                                stdin=subprocess.DEVNULL, env=env, cwd=settings.cwd,
                                start_new_session=True)
    log.info("policy %s: run started on %s", policy.name, ", ".join(hosts),
             extra={"policy": policy.name, "hosts": list(hosts), "event": "run_started",
                    "pid": proc.pid, "warm": isinstance(proc, WarmProc)})
    begun = time.monotonic()
    return Child(policy, hosts, policy_set, proc, out, err, now,
                 begun + policy.schedule.timeout, begun)


def stop(child: Child, reason: str) -> None:
    """Ask the run to end after the operations under way."""
    if child.terminated_at is None and child.proc.poll() is None:
        child.proc.send_signal(signal.SIGTERM)
        child.terminated_at = time.monotonic()
        child.reason = reason


def overdue(child: Child) -> None:
    """Stop a run past its timeout; kill one that did not stop within the grace period."""
    now = time.monotonic()
    if child.terminated_at is None and now >= child.deadline:
        stop(child, f"timed out after {child.policy.schedule.timeout} s")
    elif (child.terminated_at is not None and now >= child.terminated_at + GRACE
          and child.proc.poll() is None):
        os.killpg(child.proc.pid, signal.SIGKILL)


def _report(stdout: str) -> dict[str, Any] | None:
    """The child's apply --json, if it is the format this daemon reads."""
    try:
        result = json.loads(stdout)
    except ValueError:
        return None
    if not isinstance(result, dict) or result.get("format") != FORMAT:
        return None
    return result


def finish(child: Child) -> RunResult | None:
    """After the child exited: log what it did; a failure it could not record itself is
    returned, for the daemon to record (see record_failure)."""
    code = child.proc.returncode
    child.out.seek(0)
    child.err.seek(0)
    stdout, stderr = child.out.read().decode(errors="replace"), child.err.read().decode(errors="replace")
    child.out.close()
    child.err.close()
    name = child.policy.name
    seconds = time.monotonic() - child.begun
    fields = {"policy": name, "hosts": list(child.hosts), "event": "run_finished",
              "seconds": round(seconds, 3), "exit_code": code, "pid": child.proc.pid,
              "warm": isinstance(child.proc, WarmProc)}
    result = _report(stdout) if code in (0, 2) else None
    if code in (0, 2) and result is None:
        stderr = f"its output is not apply --json format {FORMAT}\n{stderr}"
    if result is not None:
        summary = {h["host"]: h["counts"] for h in result["hosts"]}
        if "audit_head" in result:  # published in the journal: a head kept off the store
            fields["audit_head"] = result["audit_head"]
        log.log(logging.INFO if code == 0 else logging.WARNING, "policy %s: run %s in %.1f s%s: %s",
                name, "succeeded" if code == 0 else "failed", seconds,
                f" ({child.reason})" if child.reason else "", _counts(summary),
                extra={**fields, "counts": summary})
        return None
    if code == -signal.SIGTERM and child.reason:  # ended before its handler was set: it did nothing
        log.info("policy %s: run stopped before it began (%s)", name, child.reason,
                 extra={**fields, "event": "run_stopped"})
        return None
    lines = stderr.strip().splitlines() or [f"exit code {code}"]
    why = child.reason or "; ".join(lines[:3]) + (f" (and {len(lines) - 3} more lines)"
                                                   if len(lines) > 3 else "")
    if code is not None and code < 0:
        why = f"{why}; killed by signal {-code}" if child.reason else f"killed by signal {-code}"
    log.error("policy %s: run failed: %s", name, why, extra={**fields, "error": why})
    failed = RunResult([HostResult(h, [OpResult(name, child.policy.kind, "run", "opsagent",
                                                Status.FAILED, error=why)], error=why)
                        for h in child.hosts], False, seconds)
    return failed


def record_failure(store: Store, child: Child, failed: RunResult) -> None:
    store.record(failed, command="apply", source=child.policy_set.inventory,
                 started=child.started, modes={child.policy.name: child.policy.mode})


def _counts(summary: dict[str, dict[str, int]]) -> str:
    parts = []
    for host, counts in summary.items():
        shown = " ".join(f"{k}={v}" for k, v in counts.items() if v)
        parts.append(f"{host} {shown or 'nothing to do'}")
    return "; ".join(parts)


def wait_all(children: list[Child], limit: float) -> None:
    """Wait for every child to exit, up to limit seconds; kill the rest."""
    deadline = time.monotonic() + limit
    for child in children:
        remaining = max(0.0, deadline - time.monotonic())
        try:
            child.proc.wait(remaining)
        except subprocess.TimeoutExpired:
            os.killpg(child.proc.pid, signal.SIGKILL)
            child.proc.wait()
            child.reason = child.reason or "still running at shutdown"
