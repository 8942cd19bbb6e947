"""The run service: what every run goes through, whoever asks for it.

Given a plan: lock its hosts (unless only judging them), note the run as begun in the
store, execute it (in waves where a policy has a rollout), record it with what each kind
observed, and return the result with the audit head. Progress reaches the caller
through callbacks. `apply`/`plan`, the daemon's children (which are `apply --json`),
playbook steps and kind actions (backup restore ...) all come here, so locking,
recording and observing are written once.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from agent.core.plans import RunPlan
from agent.core.results import RunResult
from agent.state import evidence
from agent.state.errors import StateError
from agent.state.store import Store
from agent.waves import OnResult, OnWave, Waves


def _never() -> bool:
    return False


@dataclass(frozen=True)
class Finished:
    result: RunResult
    head: tuple[int, str] | None = None  # the audit log's newest entry once recorded
    error: str = ""  # why the run could not be recorded ("" when it was, or need not be)


def run(
    plan: RunPlan, store: Store | None, command: str, *, check: bool, diff: bool = False,
    connect_timeout: int = 10, lock_wait: int = 300, on_result: OnResult | None = None,
    on_wave: OnWave | None = None, stop: Callable[[], bool] = _never,
    modes: dict[str, str] | None = None, observing: bool = True,
    audit_syslog: str | None = None, asked_by: str = "",
) -> Finished:
    """Run the plan; with a store, locked (when not check) and recorded as `command`.

    audit_syslog: a syslog socket each audit entry is also sent to once kept.
    asked_by: whose request to this process the run carries out (the audit log's who).
    observing: ask each kind what it reads from its results (not for a kind's action,
    whose results are not the policy's runs). Without a store (a reading action such as
    backup list) nothing is locked or kept.
    Raises StateError (a lock not had in time, a store that cannot note the run) only
    before any host was touched."""
    waves = Waves(plan, check, diff, connect_timeout, on_result, on_wave, stop)
    if store is None:
        return Finished(waves.execute())
    from agent.state.locks import host_locks

    if audit_syslog:
        from agent.state.ship import Syslog

        store.ship = Syslog(audit_syslog)

    names = [hp.host.name for hp in plan.hosts]
    # once the hosts are ours, and before any is touched, the run is noted as begun: a run
    # that could not be recorded does not start, one that gave up waiting is not noted
    with host_locks(store.path.parent, [] if check else names, f"opsagent {command}",
                    lock_wait):
        started = store.begin(command, plan.source, names, check, asked_by)
        result = waves.execute()
    if modes is None:
        modes = {p.name: p.mode for p in plan.policies}
    try:
        facts, proofs = observe(plan, result) if observing else ({}, {})
        run_id = store.record(result, command=command, source=plan.source, modes=modes,
                              facts=facts, begun_as=started,
                              evidence=proofs, asked_by=asked_by)
        head = store.audit_head()
        if proofs:
            evidence.keep(store.path.parent, run_id, head, proofs)
        return Finished(result, head)
    except (StateError, sqlite3.Error, OSError) as e:
        return Finished(result, error=str(e))


def observe(plan: RunPlan, result: RunResult) -> tuple[
        dict[tuple[str, str], dict[str, Any]], dict[tuple[str, str], evidence.Proof]]:
    """What each kind reads from its results, per (policy, host), for the state store;
    and the evidence to seal."""
    from agent.kinds import KINDS

    by_host = {h.host: h for h in result.hosts}
    facts: dict[tuple[str, str], dict[str, Any]] = {}
    proofs: dict[tuple[str, str], evidence.Proof] = {}
    for host_plan in plan.hosts:
        host_result = by_host.get(host_plan.host.name)
        if host_result is None:
            continue
        for ref, spec in host_plan.specs:
            kind = KINDS.get(ref.kind)
            if kind is None:
                continue
            ops = [op for op in host_result.ops if op.policy == ref.name]
            seen = kind.observe(spec, host_plan.host.info, ops)
            if seen is not None:
                facts[(ref.name, host_plan.host.name)] = dict(seen.facts)
                if seen.evidence is not None:
                    proofs[(ref.name, host_plan.host.name)] = evidence.proof(
                        ref.kind, seen.summary, seen.evidence)
    return facts, proofs
