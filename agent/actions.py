"""Kind actions (backup list, backup restore, ...), for `opsagent KIND VERB` and playbook
steps `KIND.VERB`: found in the registry, checked, and run through the run service.

An action that changes hosts takes their locks and is recorded (history, audit log);
check mode prints its preview instead. One that only reads runs its commands' check
variant, locks nothing and records nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, create_model, field_validator

from agent.core.plans import HostPlan, PlannedStep, PolicyRef, RunPlan
from agent.core.results import HostResult
from agent.kinds import KINDS
from agent.kinds.contract import Action, Kind, Outcome


def find(name: str) -> tuple[Kind[Any], Action[Any, Any]] | None:
    """KIND.VERB's kind and action, or None."""
    kind_name, _, verb = name.partition(".")
    kind = KINDS.get(kind_name)
    if kind is None or verb not in kind.actions:
        return None
    return kind, kind.actions[verb]


def names() -> list[str]:
    """Every KIND.VERB, for messages and explain."""
    return [f"{k}.{v}" for k, kind in KINDS.items() for v in kind.actions]


def _none_if_empty(value: Any) -> Any:
    return None if value == "" else value


class Target(BaseModel):
    """What every action names: the policy, and which of its hosts."""

    model_config = ConfigDict(extra="forbid")

    policy: str = Field(description="The policy's name.", examples=["etc-and-home"])
    host: str | None = Field(None, description="Only this host; empty or omitted: every host "
                             "of the policy (an action on one host needs exactly one).",
                             examples=["web1"])

    _host = field_validator("host", mode="before")(_none_if_empty)


@cache
def step_model(name: str) -> type[BaseModel]:
    """The playbook step's model for KIND.VERB: the policy and host, then the action's args."""
    found = find(name)
    assert found is not None
    _, action = found
    model: type[BaseModel] = create_model(name, __base__=(Target, action.Args),
                                          __doc__=f"{name}: {action.help}.")
    return model


@dataclass(frozen=True)
class Call:
    """An action with its policy's plan and its checked arguments, ready to run."""

    kind: Kind[Any]
    action: Action[Any, Any]
    plan: RunPlan  # the policy's plan, for the chosen hosts
    ref: PolicyRef
    args: BaseModel

    @property
    def label(self) -> str:
        return f"{self.kind.name} {self.action.verb}"

    def problem(self, choose: str) -> tuple[str, str]:
        """(field, why) the call cannot be tried; ("", "") when it can.

        choose says how to pick a host, e.g. "with --host"."""
        hosts = [hp.host.name for hp in self.plan.hosts]
        if self.action.one_host and len(hosts) != 1:
            return "host", (f"{self.label} works on one host, and policy {self.ref.name!r} "
                            f"has {', '.join(hosts)}; choose one {choose}")
        return self.action.problem(self.args)

    def run(self, state: Path, command: str, *, check: bool, timeout: int, lock_wait: int,
            audit_syslog: str | None = None) -> tuple[list[Outcome], str]:
        """Each host's outcome, and why the run could not be recorded ("" if it was)."""
        from agent import runs
        from agent.state.store import Store

        hosts = [(hp, _spec(hp, self.ref)) for hp in self.plan.hosts]
        if self.action.changes and check:
            preview = self.action.preview or (lambda s, h, a: f"{h.name}: would {self.label}")
            return [Outcome(True, (preview(spec, hp.host.info, self.args),))
                    for hp, spec in hosts], ""
        plan = RunPlan(tuple(
            HostPlan(hp.host, tuple(PlannedStep(self.ref, s)
                                    for s in self.action.run(spec, hp.host.info, self.args)),
                     hp.specs)
            for hp, spec in hosts), (self.ref,), self.plan.source)
        if self.action.changes:
            with Store(state) as store:
                done = runs.run(plan, store, command, check=False, connect_timeout=timeout,
                                lock_wait=lock_wait, modes={}, observing=False,
                                audit_syslog=audit_syslog)
        else:
            done = runs.run(plan, None, command, check=True, connect_timeout=timeout)
        by_host = {h.host: h for h in done.result.hosts}
        outcomes = []
        for hp, spec in hosts:
            result = by_host[hp.host.name]
            why = _failure(result)
            outcomes.append(Outcome(False, (f"{hp.host.name}: {why}",)) if why else
                            self.action.outcome(spec, hp.host.info, self.args, result))
        return outcomes, done.error


def _spec(host_plan: HostPlan, ref: PolicyRef) -> Any:
    return next(s for r, s in host_plan.specs if r == ref)


def _failure(host: HostResult) -> str:
    """Why the host's commands gave no usable output; "" when they did."""
    failed = next((op for op in host.ops if op.error), None)
    if host.unreachable or host.error or failed is not None or not host.ops:
        return host.error or (failed.error if failed else "") or "no result"
    return ""
