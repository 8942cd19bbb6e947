"""From documents to policies: the envelope, unique names, known targets, each kind's spec.

The one place below the kinds that reaches them: through the registry (agent.kinds.KINDS).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from agent.core.hosts import HostInfo
from agent.errors import Problem, Problems
from agent.inventory import Inventory
from agent.kinds import KINDS
from agent.kinds.contract import Kind
from agent.policy import include
from agent.policy.load import Document, iter_documents
from agent.policy.messages import problem
from agent.policy.model import Envelope
from agent.policy.render import Renderer


@dataclass(frozen=True)
class Policy:
    doc: Document
    envelope: Envelope

    @property
    def name(self) -> str:
        return self.envelope.metadata.name

    @property
    def kind(self) -> Kind[Any]:
        return KINDS[self.envelope.kind]

    @property
    def label(self) -> str:
        return f"{self.envelope.kind} {self.name!r}"


def label_of(data: Any, doc: Document) -> str:
    """'KIND 'NAME'' as far as the raw document tells, for errors before validation."""
    if not isinstance(data, dict):
        return f"document {doc.index + 1}"
    kind = data.get("kind") if isinstance(data.get("kind"), str) else "policy"
    meta = data.get("metadata")
    name = meta.get("name") if isinstance(meta, dict) else None
    return f"{kind} {name!r}" if isinstance(name, str) else f"{kind} (document {doc.index + 1})"


def load_policies(paths: list[Path]) -> list[Policy]:
    """Every policy under paths; raises Problems listing everything wrong at once."""
    policies, problems = read_policies(paths)
    if problems:
        raise Problems(problems)
    return policies


def read_policies(paths: list[Path]) -> tuple[list[Policy], list[Problem]]:
    """The policies that passed the envelope checks, and the problems of the others."""
    problems: list[Problem] = []
    policies: list[Policy] = []
    seen: dict[str, Policy] = {}
    for item in iter_documents(paths):
        if isinstance(item, Problems):
            problems.extend(item.problems)
            continue
        doc = item
        context = label_of(doc.data, doc)
        if not isinstance(doc.data, dict):
            problems.append(doc.problem((), context, "", "expected a mapping with apiVersion, "
                                        "kind, metadata, targets and spec"))
            continue
        kind = KINDS.get(str(doc.data.get("kind")))
        if kind is not None and kind.includes:
            included = include.expand(doc, kind.includes, context)
            if included:
                problems.extend(included)
                continue
        try:
            envelope = Envelope.model_validate(doc.data, context={"kinds": tuple(KINDS)})
        except ValidationError as e:
            problems.extend(problem(doc, err, context, Envelope) for err in e.errors())
            continue
        policy = Policy(doc, envelope)
        if policy.name in seen:
            first = seen[policy.name].doc
            line, _ = first.pos(("metadata", "name"))
            problems.append(doc.problem(("metadata", "name"), policy.label, "metadata.name",
                                        f"policy name is already used at {first.file}:{line}"))
            continue
        seen[policy.name] = policy
        policies.append(policy)
    if not policies and not problems:
        shown = ", ".join(str(p) for p in paths)
        problems.append(Problem(shown, 0, 0, "", "", "no policy files (*.yml, *.yaml) found"))
    return policies, problems


def check_targets(policies: list[Policy], inventory: Inventory, source: str) -> list[Problem]:
    problems = []
    for policy in policies:
        for i, target in enumerate(policy.envelope.targets):
            if not inventory.knows(target):
                problems.append(policy.doc.problem(
                    ("targets", i), policy.label, f"targets[{i}]",
                    f"no host or group {target!r} in inventory {source}"))
    return problems


def host_spec(policy: Policy, host: HostInfo, renderer: Renderer, templates: Path) -> BaseModel:
    """The policy's spec rendered for one host and validated by its kind's model."""
    problems: list[Problem] = []
    variables = {**policy.kind.defaults, **renderer.variables(host)}
    for name in policy.kind.variables:  # spec fields the rest of the spec sees, rendered first
        value = policy.envelope.spec.get(name) if isinstance(policy.envelope.spec, dict) else None
        if isinstance(value, str):
            variables[name] = renderer.render(value, variables, policy.doc, ("spec", name),
                                              policy.label, problems)
    raw = renderer.render(policy.envelope.spec, variables, policy.doc, ("spec",),
                          policy.label, problems)
    if problems:
        raise Problems(problems)
    spec_model = policy.kind.Spec
    context: dict[str, object] = {"templates": templates, "renderer": renderer,
                                  "variables": variables,
                                  "mode": policy.envelope.mode,
                                  "policy": policy.envelope.metadata.name}
    if policy.envelope.schedule is not None:
        from agent.timing import interval

        context["interval"] = interval(policy.envelope.schedule)
    try:
        spec: BaseModel = spec_model.model_validate(raw, context=context)
        return spec
    except ValidationError as e:
        raise Problems(
            problem(policy.doc, err, policy.label, spec_model, ("spec",)) for err in e.errors()
        ) from None
