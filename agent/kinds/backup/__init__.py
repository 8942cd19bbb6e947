"""The `backup` kind: borg on each target host, as a borgmatic user would set it up.

One sequence per host, run there in one call: make the repository if it is missing
(never again), hooks and database dumps, the archive (only when this host's newest is
older than `frequency`), prune and compact only after a successful create, each check
at its own frequency, statistics for the metrics, and on_error hooks when anything failed.

The folder: spec.py (the policy's fields), borg.py (borg command lines), plan.py (the
sequence), observe.py (facts from its results), metrics.py (metric families from them),
actions.py (backup list and backup restore).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from agent.core.hosts import HostInfo
from agent.core.results import OpResult
from agent.core.steps import Observation, Sequence, Step
from agent.kinds.backup import observe
from agent.kinds.backup import plan as planning
from agent.kinds.backup.actions import ACTIONS
from agent.kinds.backup.spec import BackupSpec
from agent.kinds.contract import Facts, Finding

if TYPE_CHECKING:  # the metrics library: only when metrics are exported
    from prometheus_client.core import Metric


class BackupKind:
    name = "backup"
    Spec = BackupSpec
    actions = ACTIONS
    includes: tuple[str, ...] = ()
    variables: tuple[str, ...] = ()
    defaults: dict[str, Any] = {}

    def plan(self, spec: BackupSpec, host: HostInfo) -> list[Step | Sequence]:
        return planning.plan(spec, host)

    def observe(self, spec: BackupSpec, host: HostInfo, ops: list[OpResult]) -> Observation | None:
        return observe.observe(spec, ops)

    def families(self, rows: Facts) -> Iterable[Metric]:
        from agent.kinds.backup import metrics

        return metrics.families(rows)

    def findings(self, rows: Facts) -> list[Finding]:
        return []  # failed checks and drills are failed operations, and alerts


KIND = BackupKind()
