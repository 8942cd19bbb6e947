"""What a run will do: for each host, the steps of every policy that targets it, in order."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from agent import facts
from agent.core.hosts import Host, HostInfo
from agent.core.plans import HostPlan, PlannedStep, PolicyRef, RunPlan
from agent.core.rollout import Health, Rollout
from agent.errors import Problem, Problems
from agent.inventory import Inventory
from agent.patterns import PatternError
from agent.policy.render import Renderer
from agent.policy.validate import Policy, check_targets, host_spec
from agent.tags import selected


def build_plan(
    policies: list[Policy],
    inventory: Inventory,
    inventory_source: str,
    templates: Path,
    limit: list[str] | None = None,
    only: list[str] | None = None,
    tags: list[str] | None = None,
    skip_tags: list[str] | None = None,
    gather: Gather | None = None,
) -> RunPlan:
    """Validate every policy for every host it targets and plan its steps.

    gather reads the facts of the hosts that policies using `facts` target (a host whose
    facts cannot be read is planned as unreachable); without it, this machine's facts
    stand in (validation reads no host).
    Raises Problems with everything wrong, so that nothing runs on any host.
    """
    problems = check_targets(policies, inventory, inventory_source)
    problems.extend(_check_selection(policies, only))
    chosen = [p for p in policies if not only or p.name in only]
    allowed = _limited(inventory, limit, problems)
    renderer = Renderer()
    using = [p.name for p in chosen if _uses_facts(p, templates)]  # reads their templates once
    known = _facts([p for p in chosen if p.name in using], inventory, allowed, gather)
    per_host: dict[str, list[PlannedStep]] = {}
    specs: dict[str, list[tuple[PolicyRef, BaseModel]]] = {}
    health: dict[str, list[tuple[str, Health]]] = {}
    refs: dict[str, PolicyRef] = {}  # those whose kind gives them their waves
    for policy in chosen:
        ref = _ref(policy)
        targeted = [h for h in inventory.resolve(policy.envelope.targets)
                    if allowed is None or h.name in allowed]
        failed_on: dict[Problem, list[str]] = {}
        for host in targeted:
            info = host.info
            if policy.name in using:
                found = known.get(host.name, {})
                if isinstance(found, str):
                    continue  # planned as unreachable, below
                info = replace(info, facts=found)
            try:
                spec = host_spec(policy, info, renderer, templates)
            except Problems as e:
                for problem in e.problems:
                    failed_on.setdefault(problem, []).append(host.name)
                continue
            own = _own_rollout(policy, spec, host.name, failed_on)
            if own is not None:
                ref = refs[policy.name] = replace(ref, rollout=own)
            check = own.health if own is not None else _health(policy, info, renderer, failed_on)
            if check is not None:
                health.setdefault(host.name, []).append((policy.name, check))
            planned = [PlannedStep(ref, s) for s in policy.kind.plan(spec, info)
                       if selected((*policy.envelope.tags, *getattr(s, "tags", ())), tags,
                                   skip_tags)]
            if not planned:
                continue
            per_host.setdefault(host.name, []).extend(planned)
            specs.setdefault(host.name, []).append((ref, spec))
        problems.extend(_on_hosts(p, hosts, len(targeted)) for p, hosts in failed_on.items())
    down = {name: why for name, why in known.items() if isinstance(why, str)}
    if chosen and not problems and not per_host and not down:
        problems.append(_nothing_selected(chosen, inventory_source, limit, tags, skip_tags))
    if problems:
        raise Problems(problems)
    hosts = tuple(
        HostPlan(h, tuple(per_host.get(h.name, ())), tuple(specs.get(h.name, ())),
                 tuple(health.get(h.name, ())), down.get(h.name, ""))
        for h in inventory.hosts if h.name in per_host or h.name in down
    )
    return RunPlan(hosts, tuple(refs.get(p.name) or _ref(p) for p in chosen), inventory_source)


Gather = Callable[[list[Host]], Mapping[str, Mapping[str, Any] | str]]


def _facts(using: list[Policy], inventory: Inventory, allowed: set[str] | None,
           gather: Gather | None) -> Mapping[str, Mapping[str, Any] | str]:
    """Facts (or why none) of every host that the policies using them target."""
    needed: dict[str, Host] = {}
    for policy in using:
        needed.update((h.name, h) for h in inventory.resolve(policy.envelope.targets)
                      if allowed is None or h.name in allowed)
    if not needed:
        return {}
    if gather is None:
        return {name: facts.here() for name in needed}
    return gather([h for h in inventory.hosts if h.name in needed])


def _uses_facts(policy: Policy, templates: Path) -> bool:
    """Whether the policy's strings, or a template file it names as a src, use `facts`."""
    spec = policy.envelope.spec
    if facts.uses_facts([spec]):
        return True
    return any(_template_uses_facts(templates, src) for src in _sources(spec))


def _sources(value: Any) -> list[str]:
    if isinstance(value, dict):
        own = [value["src"]] if isinstance(value.get("src"), str) else []
        return own + [s for v in value.values() for s in _sources(v)]
    if isinstance(value, list):
        return [s for v in value for s in _sources(v)]
    return []


def _template_uses_facts(templates: Path, src: str) -> bool:
    path = Path(src) if Path(src).is_absolute() else templates / src
    try:
        with path.open("rb") as f:
            return facts.USES.search(f.read(1024 * 1024).decode("utf-8", "replace")) is not None
    except OSError:
        return False  # validation says what is wrong with it


def _ref(policy: Policy) -> PolicyRef:
    envelope = policy.envelope
    return PolicyRef(policy.name, envelope.kind, envelope.mode, envelope.rollout)


def _own_rollout(policy: Policy, spec: BaseModel, host: str,
                 failed_on: dict[Problem, list[str]]) -> Rollout | None:
    """The waves the policy's kind gives it from its spec (a maintenance policy that
    reboots), which leave no room for the envelope's own rollout."""
    ask = getattr(policy.kind, "rollout", None)
    own: Rollout | None = ask(spec) if ask is not None else None
    if own is not None and policy.envelope.rollout is not None:
        problem = policy.doc.problem(("rollout",), policy.label, "rollout",
                                     "this policy's waves come from its spec (reboot: batch, "
                                     "max_fail_percentage, health): remove rollout")
        failed_on.setdefault(problem, []).append(host)
    return own


def _health(policy: Policy, host: HostInfo, renderer: Renderer,
            failed_on: dict[Problem, list[str]]) -> Health | None:
    """The policy's rollout health check with this host's variables rendered into it."""
    rollout = policy.envelope.rollout
    if rollout is None or rollout.health is None or rollout.health.is_empty():
        return None
    problems: list[Problem] = []
    raw = renderer.render(rollout.health.model_dump(exclude_none=True), renderer.variables(host),
                          policy.doc, ("rollout", "health"), policy.label, problems)
    if not problems:
        try:
            return Health.model_validate(raw)
        except ValueError as e:  # a rendered url that is no longer one
            problems.append(policy.doc.problem(("rollout", "health"), policy.label,
                                               "rollout.health", str(e).splitlines()[-1]))
    for problem in problems:
        failed_on.setdefault(problem, []).append(host.name)
    return None


def _on_hosts(problem: Problem, hosts: list[str], targeted: int) -> Problem:
    """A problem found for only some of the targeted hosts says which ones."""
    if len(hosts) == targeted:
        return problem
    return replace(problem, message=f"{problem.message} (for host {', '.join(hosts)})")


def _nothing_selected(chosen: list[Policy], source: str, limit: list[str] | None,
                      tags: list[str] | None, skip_tags: list[str] | None) -> Problem:
    if tags or skip_tags:
        said = " and ".join(([f"--tags {','.join(tags)}"] if tags else [])
                            + ([f"--skip-tags {','.join(skip_tags)}"] if skip_tags else []))
        return Problem("--tags" if tags else "--skip-tags", 0, 0, "", "",
                       f"{said} leave no step of the selected policies on any host: nothing "
                       "to do")
    targets = "; ".join(f"{p.name} targets {', '.join(p.envelope.targets) or 'nothing'}"
                        for p in chosen)
    if limit:
        return Problem("--limit", 0, 0, "", "", f"no selected policy targets "
                       f"{', '.join(limit)} ({targets}): nothing to do")
    return Problem(source, 0, 0, "", "", f"the policies target no host of the inventory "
                   f"({targets}): nothing to do")


def _check_selection(policies: list[Policy], only: list[str] | None) -> list[Problem]:
    problems = []
    names = {p.name for p in policies}
    for name in only or ():
        if name not in names:
            problems.append(Problem("--policy", 0, 0, "", "", f"no policy named {name!r}; "
                                    f"known: {', '.join(sorted(names))}"))
    return problems


def _limited(inventory: Inventory, limit: list[str] | None, problems: list[Problem]
             ) -> set[str] | None:
    """The host names --limit allows (None: every one); a pattern that selects nothing or
    names an unknown host or group is a problem."""
    if not limit:
        return None
    try:
        allowed = {h.name for h in inventory.select(limit)}
    except PatternError as e:
        problems.append(Problem("--limit", 0, 0, "", "", str(e)))
        return set()
    if not allowed:
        problems.append(Problem("--limit", 0, 0, "", "", f"{','.join(limit)!r} selects no host "
                                "of the inventory"))
    return allowed
