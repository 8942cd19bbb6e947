"""The `deploy` kind: releases of one app on plain hosts, in waves.

What one host needs is here: spec.py (the policy's fields), host_release.py (the program
that keeps releases/VERSION and the current symlink on the host), plan.py (its jobs as
steps), conditions.py (analysis success conditions), observe.py and metrics.py (release
state per host). Across hosts — waves, health, analysis, traffic, rollback, the deploy's
state step by step — is the run service's (agent/deploys/). `apply` and the daemon only
read each host's release state; `opsagent deploy start` deploys.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from agent.core.hosts import HostInfo
from agent.core.results import OpResult
from agent.core.steps import Observation, Sequence, Step
from agent.kinds.contract import Action, Facts, Finding
from agent.kinds.deploy import observe
from agent.kinds.deploy import plan as planning
from agent.kinds.deploy.spec import SLOT_VARIABLES, DeploySpec

if TYPE_CHECKING:  # the metrics library: only when metrics are exported
    from prometheus_client.core import Metric


class DeployKind:
    name = "deploy"
    Spec = DeploySpec
    actions: dict[str, Action[DeploySpec, Any]] = {}
    includes: tuple[str, ...] = ()
    variables = ("version",)
    defaults: dict[str, Any] = SLOT_VARIABLES

    def plan(self, spec: DeploySpec, host: HostInfo) -> list[Step | Sequence]:
        return planning.read(spec, host)

    def observe(self, spec: DeploySpec, host: HostInfo, ops: list[OpResult]) -> Observation | None:
        return observe.observe(ops)

    def families(self, rows: Facts) -> Iterable[Metric]:
        from agent.kinds.deploy import metrics

        return metrics.families(rows)

    def findings(self, rows: Facts) -> list[Finding]:
        return []


KIND = DeployKind()
