"""The `maintenance` kind: housekeeping that acts only inside its window and only where
it is needed. Today: git repositories (prune, geometric repack, pack-refs, commit-graph by
thresholds; fsck at its own frequency; stale locks cleared, written repositories skipped)
and disk cleanup (journal, apt cache, old files; bytes reclaimed).

The folder: window.py (days, start, duration, time zone), spec.py, host_git.py and
host_cleanup.py (the programs run on the host), plan.py (the window settled, the
commands), observe.py (facts and findings), metrics.py.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from agent.core.hosts import HostInfo
from agent.core.results import OpResult
from agent.core.rollout import Rollout
from agent.core.steps import Observation, Sequence, Step
from agent.kinds.contract import Action, Facts, Finding
from agent.kinds.maintenance import observe
from agent.kinds.maintenance import plan as planning
from agent.kinds.maintenance.spec import MaintenanceSpec

if TYPE_CHECKING:  # the metrics library: only when metrics are exported
    from prometheus_client.core import Metric


class MaintenanceKind:
    name = "maintenance"
    Spec = MaintenanceSpec
    actions: dict[str, Action[MaintenanceSpec, Any]] = {}
    includes: tuple[str, ...] = ()
    variables: tuple[str, ...] = ()
    defaults: dict[str, Any] = {}

    def plan(self, spec: MaintenanceSpec, host: HostInfo) -> list[Step | Sequence]:
        return planning.plan(spec, host)

    def observe(self, spec: MaintenanceSpec, host: HostInfo, ops: list[OpResult]
                ) -> Observation | None:
        return observe.observe(ops)

    def rollout(self, spec: MaintenanceSpec) -> Rollout | None:
        return planning.rollout(spec)

    def families(self, rows: Facts) -> Iterable[Metric]:
        from agent.kinds.maintenance import metrics

        return metrics.families(rows)

    def findings(self, rows: Facts) -> list[Finding]:
        return observe.findings(rows)


KIND = MaintenanceKind()
