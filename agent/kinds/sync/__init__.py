"""The `sync` kind: one project's git repositories kept in step across several remotes.

The target host keeps a bare work mirror of each repository and, on each run, fetches
the remotes whose refs changed, fast-forwards the remotes that are behind, merges (and
verifies) diverged branches whose rule says merge, reports the rest, saves every ref it
replaces (refs/opsagent/backup/RUN/...) and every commit a remote dropped
(refs/opsagent/kept/RUN/...), pushes leased, asks each remote again after a push, and
fails loudly if any commit a remote held is reachable from nothing.

The folder: spec.py (the policy's fields), git_*.py (the program run on the host, joined
by plan.program()), plan.py (one command for all repositories), observe.py (facts and
findings) and metrics.py, actions.py (sync rollback).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from agent.core.hosts import HostInfo
from agent.core.results import OpResult
from agent.core.steps import Observation, Sequence, Step
from agent.kinds.contract import Action, Facts, Finding
from agent.kinds.sync import observe
from agent.kinds.sync import plan as planning
from agent.kinds.sync.actions import ACTIONS
from agent.kinds.sync.spec import SyncSpec

if TYPE_CHECKING:  # the metrics library: only when metrics are exported
    from prometheus_client.core import Metric


class SyncKind:
    name = "sync"
    Spec = SyncSpec
    actions: dict[str, Action[SyncSpec, Any]] = ACTIONS
    includes: tuple[str, ...] = ()
    variables: tuple[str, ...] = ()
    defaults: dict[str, Any] = {}

    def plan(self, spec: SyncSpec, host: HostInfo) -> list[Step | Sequence]:
        return planning.plan(spec, host)

    def observe(self, spec: SyncSpec, host: HostInfo, ops: list[OpResult]) -> Observation | None:
        return observe.observe(spec, ops)

    def families(self, rows: Facts) -> Iterable[Metric]:
        from agent.kinds.sync import metrics

        return metrics.families(rows)

    def findings(self, rows: Facts) -> list[Finding]:
        return observe.findings(rows)


KIND = SyncKind()
