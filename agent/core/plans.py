"""What a run will do: per host, each policy's planned steps in order, and each policy's spec."""

from __future__ import annotations

from dataclasses import dataclass, field

from pydantic import BaseModel

from agent.core.hosts import Host
from agent.core.rollout import Health, Rollout
from agent.core.steps import Sequence, Step


@dataclass(frozen=True)
class PolicyRef:
    name: str
    kind: str
    mode: str  # enforce | audit
    rollout: Rollout | None = field(default=None, compare=False)  # None: every host at once

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
    health: tuple[tuple[str, Health], ...] = ()  # policy -> its rollout's check, for this host
    unreachable: str = ""  # why the host is known to be down before the run (its facts)

    def health_of(self, policy: str) -> Health | None:
        return next((h for name, h in self.health if name == policy), None)


@dataclass(frozen=True)
class RunPlan:
    hosts: tuple[HostPlan, ...]
    policies: tuple[PolicyRef, ...]
    source: str = ""  # the inventory's path, or @local
