"""From a playbook file to steps ready to run, with everything checked before any runs.

Variables are the playbook's `vars` with `-e NAME=VALUE` overrides (names must be
declared, so a typo is an error, not a silently ignored value). A string that is just
"{{ name }}" takes the variable's value as it is (a list stays a list); other strings
are Jinja2 templates. Problems name the playbook's file, line and column.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jinja2 import TemplateSyntaxError, meta
from pydantic import ValidationError

from agent import actions as registry
from agent.actions import Call
from agent.core.plans import HostPlan, PlannedStep, PolicyRef, RunPlan
from agent.errors import Problem, Problems, dotted
from agent.inventory import Inventory
from agent.kinds.tasks import KIND as TASKS
from agent.kinds.tasks import Task, TasksSpec
from agent.plan import Gather, build_plan
from agent.playbook.model import Playbook
from agent.policy.load import Document, Loc, load_one
from agent.policy.messages import problem, suggest
from agent.policy.render import Renderer
from agent.policy.validate import Policy, read_policies

_DEPTH = 8  # how deep variables may refer to variables
_WHOLE = re.compile(r"^\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}$")


@dataclass(frozen=True)
class PlaybookStep:
    title: str
    plan: RunPlan
    ref: PolicyRef
    call: Call | None = None  # a kind's action; None for an operation


@dataclass(frozen=True)
class PreparedPlaybook:
    name: str
    description: str
    steps: tuple[PlaybookStep, ...]


def prepare(path: Path, overrides: list[str], inventory: Inventory, source: str,
            templates: Path, gather: Gather | None = None) -> PreparedPlaybook:
    """Raises Problems listing everything wrong; nothing has run on any host then.

    gather reads the facts of hosts whose policies use them (see build_plan)."""
    doc = load_one(path, "playbook")
    try:
        book = Playbook.model_validate(doc.data)
    except ValidationError as e:
        raise Problems(problem(doc, err, "playbook", Playbook) for err in e.errors()) from None
    problems: list[Problem] = []
    variables = {**book.vars, **_overrides(overrides, book, problems)}
    maker = _Maker(doc, book, variables, inventory, source, templates, problems, gather)
    steps = []
    for i, raw in enumerate(book.steps):
        step = maker.step(i, raw)
        if step is not None:
            steps.append(step)
    if problems:
        raise Problems(problems)
    return PreparedPlaybook(book.metadata.name, book.metadata.description, tuple(steps))


def _overrides(pairs: list[str], book: Playbook, problems: list[Problem]) -> dict[str, str]:
    out = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            problems.append(Problem("-e", 0, 0, "", "", f"expected NAME=VALUE, got {pair!r}"))
        elif name not in book.vars:
            known = sorted(book.vars)
            problems.append(Problem(
                "-e", 0, 0, "", "", f"{name!r} is not a variable of playbook "
                f"{book.metadata.name!r}{suggest(name, known)} (its vars: "
                f"{', '.join(known) or 'none'})"))
        else:
            out[name] = value
    return out


class _Maker:
    def __init__(self, doc: Document, book: Playbook, variables: dict[str, Any],
                 inventory: Inventory, source: str, templates: Path,
                 problems: list[Problem], gather: Gather | None = None) -> None:
        self.doc, self.book, self.variables, self.gather = doc, book, variables, gather
        self.context = f"playbook {book.metadata.name!r}"
        self.inventory, self.source, self.templates = inventory, source, templates
        self.problems = problems
        self.renderer = Renderer()
        self._policies: dict[str, Policy] | None = None

    def fail(self, loc: Loc, message: str, at_key: bool = False) -> None:
        self.problems.append(self.doc.problem(loc, self.context, dotted(loc), message, at_key))

    def render(self, value: Any, variables: dict[str, Any], loc: Loc) -> Any:
        if isinstance(value, dict):
            return {k: self.render(v, variables, (*loc, k)) for k, v in value.items()}
        if isinstance(value, list):
            return [self.render(v, variables, (*loc, j)) for j, v in enumerate(value)]
        if isinstance(value, str):
            return self._string(value, variables, loc, 0)
        return value

    def _string(self, value: str, variables: dict[str, Any], loc: Loc, depth: int) -> Any:
        whole = _WHOLE.match(value)
        if whole and whole.group(1) in variables:
            return self._value(whole.group(1), variables, loc, depth)
        if "{{" not in value and "{%" not in value:
            return value
        try:
            names = meta.find_undeclared_variables(self.renderer.env.parse(value))
        except TemplateSyntaxError:
            names = set()  # the renderer reports it, with its position
        scope = {**variables, **{n: self._value(n, variables, loc, depth)
                                 for n in names if n in variables}}
        return self.renderer.render(value, scope, self.doc, loc, self.context, self.problems)

    def _value(self, name: str, variables: dict[str, Any], loc: Loc, depth: int) -> Any:
        """A variable's value; one that is itself a template is rendered (vars may use vars)."""
        value = variables[name]
        if isinstance(value, str) and depth < _DEPTH:
            return self._string(value, variables, loc, depth + 1)
        return value

    def step(self, i: int, raw: Any) -> PlaybookStep | None:
        loc: Loc = ("steps", i)
        if not isinstance(raw, dict):
            self.fail(loc, "expected a mapping: `- ACTION: {arguments}`")
            return None
        actions = [k for k in raw if "." in k]
        if len(actions) != 1:
            found = ", ".join(actions) or "none"
            self.fail(loc, f"a step names exactly one action ({', '.join(registry.names())}, or a pyinfra "
                           f"operation with hosts); found {found}")
            return None
        action = actions[0]
        if registry.find(action) is not None:
            return self._action(loc, raw, action)
        return self._operation(loc, raw, action)

    def _action(self, loc: Loc, raw: dict[str, Any], action: str) -> PlaybookStep | None:
        for key in raw:
            if key not in (action, "name"):
                self.fail((*loc, key), f"unknown field {key!r} for {action} (a step has name and"
                                       " one action)", at_key=True)
        count = len(self.problems)
        args = self.render(raw[action] or {}, self.variables, (*loc, action))
        if len(self.problems) > count:
            return None
        found = registry.find(action)
        assert found is not None
        kind, verb = found
        model = registry.step_model(action)
        try:
            checked = model.model_validate(args)
        except ValidationError as e:
            self.problems.extend(problem(self.doc, err, self.context, model, (*loc, action))
                                 for err in e.errors())
            return None
        name = checked.policy  # type: ignore[attr-defined]
        plan = self._policy_plan((*loc, action), kind.name, name, checked.host)  # type: ignore[attr-defined]
        if plan is None:
            return None
        own = verb.Args.model_validate(checked.model_dump(include=set(verb.Args.model_fields)))
        call = Call(kind, verb, plan, plan.policies[0], own)
        field, why = call.problem("with host:")
        if why:
            self.fail((*loc, action, field), why)
            return None
        title = raw.get("name") or f"{action} {name}"
        return PlaybookStep(str(title), plan, plan.policies[0], call)

    def _policy_plan(self, loc: Loc, kind: str, name: str, host: str | None) -> RunPlan | None:
        policies = self.policies()
        policy = policies.get(name)
        if policy is None:
            hint = suggest(name, sorted(policies))
            self.fail((*loc, "policy"), f"no policy named {name!r} in "
                                        f"{', '.join(self.book.policies)}{hint}")
            return None
        if policy.envelope.kind != kind:
            self.fail((*loc, "policy"), f"policy {name!r} is a {policy.envelope.kind} policy, "
                                        f"not {kind}")
            return None
        if host is not None and not self.inventory.knows(host):
            self.fail((*loc, "host"), f"no host {host!r} in inventory {self.source}")
            return None
        try:
            plan = build_plan([policy], self.inventory, self.source, self.templates,
                              [host] if host else None, gather=self.gather)
        except Problems as e:
            self.problems.extend(e.problems)
            return None
        if not plan.hosts:
            self.fail((*loc, "host"), f"policy {name!r} does not target {host!r} (targets: "
                                      f"{', '.join(policy.envelope.targets)})")
            return None
        return plan

    def policies(self) -> dict[str, Policy]:
        if self._policies is None:
            found, problems = read_policies([Path(p) for p in self.book.policies])
            self.problems.extend(problems)
            self._policies = {p.name: p for p in found}
        return self._policies

    def _operation(self, loc: Loc, raw: dict[str, Any], action: str) -> PlaybookStep | None:
        targets = self.render(raw.get("hosts"), self.variables, (*loc, "hosts"))
        if isinstance(targets, str):
            targets = [targets]
        if not targets or not isinstance(targets, list):
            self.fail((*loc, action), f"{action} is not an opsagent action ("
                      f"{', '.join(registry.names())}); as a pyinfra operation it needs `hosts:` "
                      "(inventory hosts or groups)", at_key=True)
            return None
        unknown = [t for t in targets if not self.inventory.knows(str(t))]
        if unknown:
            self.fail((*loc, "hosts"), f"no host or group {unknown[0]!r} in inventory "
                                       f"{self.source}")
            return None
        ref = PolicyRef(self.book.metadata.name, "playbook", "enforce")
        hosts = []
        task_raw = {k: v for k, v in raw.items() if k != "hosts"}
        chosen = self.inventory.resolve([str(t) for t in targets])
        if not chosen:
            self.fail((*loc, "hosts"), f"{', '.join(map(str, targets))}: no hosts in inventory "
                                       f"{self.source}")
            return None
        for host in chosen:
            variables = {**self.renderer.variables(host.info), **self.variables}
            count = len(self.problems)
            rendered = self.render(task_raw, variables, loc)
            if len(self.problems) > count:
                return None
            try:
                task = Task.model_validate(rendered, context={
                    "templates": self.templates, "renderer": self.renderer,
                    "variables": variables})
            except ValidationError as e:
                self.problems.extend(problem(self.doc, err, self.context, Task, loc)
                                     for err in e.errors())
                return None
            steps = TASKS.plan(TasksSpec(tasks=[task]), host.info)
            hosts.append(HostPlan(host, tuple(PlannedStep(ref, s) for s in steps)))
        title = str(raw.get("name") or task.title())
        return PlaybookStep(title, RunPlan(tuple(hosts), (ref,), self.source), ref)

