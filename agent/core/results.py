"""What a run found and did: RunResult -> HostResult -> OpResult. The engine alone makes them."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from enum import StrEnum


class Status(StrEnum):
    OK = "ok"  # already as wanted
    CHANGED = "changed"  # changed (or, planned: would change)
    RAN = "ran"  # a command with no guard ran: it cannot say whether it changed anything
    FAILED = "failed"
    SKIPPED = "skipped"  # not attempted: an earlier step of its policy failed, or host down


@dataclass
class OpResult:
    policy: str
    kind: str
    name: str
    operation: str
    status: Status
    planned: bool = False  # True: judged, not executed (check mode, or an audit policy)
    stdout: str = ""
    stderr: str = ""
    error: str = ""
    diff: str = ""
    duration: float = 0.0
    warning: str = ""  # done, with a warning (e.g. borg's exit code 1)
    id: str = ""  # a command's stable id (Command.key); "" for pyinfra operations


@dataclass
class HostResult:
    host: str
    ops: list[OpResult] = field(default_factory=list)
    unreachable: bool = False
    error: str = ""
    waves: dict[str, int] = field(default_factory=dict)  # policy -> its rollout's wave

    def counts(self) -> Counter[str]:
        """ok, changed, ran, failed, skipped; and would_change, would_run for judged-only
        operations (check mode, audit policies), which changed nothing."""
        tally: Counter[str] = Counter(dict.fromkeys(
            ("ok", "changed", "ran", "failed", "skipped", "would_change", "would_run"), 0))
        for op in self.ops:
            if op.planned and op.status in (Status.CHANGED, Status.RAN):
                tally["would_change" if op.status is Status.CHANGED else "would_run"] += 1
            else:
                tally[op.status.value] += 1
        return tally

    @property
    def failed(self) -> bool:
        return (self.unreachable or bool(self.error)
                or any(op.status is Status.FAILED for op in self.ops))


@dataclass
class RunResult:
    hosts: list[HostResult]
    check: bool
    duration: float = 0.0

    @property
    def failed(self) -> bool:
        return any(h.failed for h in self.hosts)
