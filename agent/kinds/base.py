"""What every policy kind shares: the host it plans for, the steps it plans, its interface."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict, Field


@dataclass(frozen=True)
class HostInfo:
    """What a kind may know about a host when planning: its name, groups and variables."""

    name: str
    groups: tuple[str, ...] = ()
    vars: Mapping[str, Any] = field(default_factory=dict)


class Guard(BaseModel):
    """Ansible-style conditions that make a command idempotent: it runs only when needed."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    creates: str | None = Field(None, description="Skip when this path exists.")
    removes: str | None = Field(None, description="Skip when this path does not exist.")
    unless: str | None = Field(None, description="Skip when this shell command succeeds.")
    only_if: str | None = Field(None, description="Run only when this shell command succeeds.")

    def is_empty(self) -> bool:
        return not (self.creates or self.removes or self.unless or self.only_if)


@dataclass(frozen=True)
class Step:
    """One pyinfra operation by dotted name with its arguments: data, not a pyinfra call."""

    name: str
    operation: str  # e.g. "files.line"
    args: Mapping[str, Any]
    guard: Guard | None = None


class Kind(Protocol):
    """A policy kind: a pydantic model of its `spec`, and a planner of steps per host."""

    name: str
    Spec: type[BaseModel]

    def plan(self, spec: Any, host: HostInfo) -> list[Step]: ...
