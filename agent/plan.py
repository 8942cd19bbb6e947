"""What a run will do: for each host, the steps of every policy that targets it, in order."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from agent.engine.results import RunResult
from agent.errors import Problem, Problems
from agent.inventory import Host, Inventory
from agent.kinds.base import Sequence, Step
from agent.policy.render import Renderer
from agent.policy.validate import Policy, check_targets, host_spec


@dataclass(frozen=True)
class PolicyRef:
    name: str
    kind: str
    mode: str  # enforce | audit

    @property
    def label(self) -> str:
        return f"{self.kind} {self.name!r}"


@dataclass(frozen=True)
class PlannedStep:
    policy: PolicyRef
    step: Step | Sequence


@dataclass(frozen=True)
class HostPlan:
    host: Host
    steps: tuple[PlannedStep, ...]
    specs: tuple[tuple[PolicyRef, BaseModel], ...] = ()  # each policy's spec for this host


@dataclass(frozen=True)
class RunPlan:
    hosts: tuple[HostPlan, ...]
    policies: tuple[PolicyRef, ...]
    source: str = ""  # the inventory's path, or @local


def build_plan(
    policies: list[Policy],
    inventory: Inventory,
    inventory_source: str,
    templates: Path,
    limit: list[str] | None = None,
    only: list[str] | None = None,
) -> RunPlan:
    """Validate every policy for every host it targets and plan its steps.

    Raises Problems with everything wrong, so that nothing runs on any host.
    """
    problems = check_targets(policies, inventory, inventory_source)
    problems.extend(_check_selection(policies, inventory, limit, only))
    chosen = [p for p in policies if not only or p.name in only]
    allowed = {h.name for h in inventory.resolve(limit)} if limit else None
    renderer = Renderer()
    per_host: dict[str, list[PlannedStep]] = {}
    specs: dict[str, list[tuple[PolicyRef, BaseModel]]] = {}
    for policy in chosen:
        ref = PolicyRef(policy.name, policy.envelope.kind, policy.envelope.mode)
        targeted = [h for h in inventory.resolve(policy.envelope.targets)
                    if allowed is None or h.name in allowed]
        failed_on: dict[Problem, list[str]] = {}
        for host in targeted:
            try:
                spec = host_spec(policy, host.info, renderer, templates)
            except Problems as e:
                for problem in e.problems:
                    failed_on.setdefault(problem, []).append(host.name)
                continue
            steps = per_host.setdefault(host.name, [])
            steps.extend(PlannedStep(ref, s) for s in policy.kind.plan(spec, host.info))
            specs.setdefault(host.name, []).append((ref, spec))
        problems.extend(_on_hosts(p, hosts, len(targeted)) for p, hosts in failed_on.items())
    if chosen and not problems and not per_host:
        problems.append(_nothing_selected(chosen, inventory_source, limit))
    if problems:
        raise Problems(problems)
    hosts = tuple(
        HostPlan(h, tuple(per_host[h.name]), tuple(specs[h.name]))
        for h in inventory.hosts if h.name in per_host
    )
    refs = tuple(PolicyRef(p.name, p.envelope.kind, p.envelope.mode) for p in chosen)
    return RunPlan(hosts, refs, inventory_source)


def observe(plan: RunPlan, result: RunResult) -> dict[tuple[str, str], dict[str, Any]]:
    """What each kind reads from its results, per (policy, host), for the state store."""
    from agent.kinds import KINDS

    by_host = {h.host: h for h in result.hosts}
    facts: dict[tuple[str, str], dict[str, Any]] = {}
    for host_plan in plan.hosts:
        host_result = by_host.get(host_plan.host.name)
        if host_result is None:
            continue
        for ref, spec in host_plan.specs:
            ops = [op for op in host_result.ops if op.policy == ref.name]
            seen = KINDS[ref.kind].observe(spec, host_plan.host.info, ops)
            if seen is not None:
                facts[(ref.name, host_plan.host.name)] = dict(seen.facts)
    return facts


def _on_hosts(problem: Problem, hosts: list[str], targeted: int) -> Problem:
    """A problem found for only some of the targeted hosts says which ones."""
    if len(hosts) == targeted:
        return problem
    return replace(problem, message=f"{problem.message} (for host {', '.join(hosts)})")


def _nothing_selected(chosen: list[Policy], source: str, limit: list[str] | None) -> Problem:
    targets = "; ".join(f"{p.name} targets {', '.join(p.envelope.targets) or 'nothing'}"
                        for p in chosen)
    if limit:
        return Problem("--limit", 0, 0, "", "", f"no selected policy targets "
                       f"{', '.join(limit)} ({targets}): nothing to do")
    return Problem(source, 0, 0, "", "", f"the policies target no host of the inventory "
                   f"({targets}): nothing to do")


def _check_selection(
    policies: list[Policy], inventory: Inventory, limit: list[str] | None, only: list[str] | None
) -> list[Problem]:
    problems = []
    names = {p.name for p in policies}
    for name in only or ():
        if name not in names:
            problems.append(Problem("--policy", 0, 0, "", "", f"no policy named {name!r}; "
                                    f"known: {', '.join(sorted(names))}"))
    for target in limit or ():
        if not inventory.knows(target):
            problems.append(Problem("--limit", 0, 0, "", "", f"no host or group {target!r} "
                                    "in the inventory"))
    return problems
