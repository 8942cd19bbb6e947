"""The `security` kind: controls (a shipped baseline and the team's own) checked on every
target host in one round trip, with evidence; enforce mode also fixes what a control
knows how to fix; waivers excuse a host from a control until their day.

The folder: checks.py (what a check reads and expects), spec.py (controls, fixes,
waivers), profiles/ (the shipped profiles), host_read.py and host_check.py (the program
run on the host, joined by plan.program()), plan.py, observe.py (facts and findings),
metrics.py.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from agent.core.hosts import HostInfo
from agent.core.results import OpResult
from agent.core.steps import Observation, Sequence, Step
from agent.kinds.contract import Action, Facts, Finding
from agent.kinds.security import observe
from agent.kinds.security import plan as planning
from agent.kinds.security.spec import SecuritySpec

if TYPE_CHECKING:  # the metrics library: only when metrics are exported
    from prometheus_client.core import Metric


class SecurityKind:
    name = "security"
    Spec = SecuritySpec
    actions: dict[str, Action[SecuritySpec, Any]] = {}
    includes: tuple[str, ...] = ()
    variables: tuple[str, ...] = ()
    defaults: dict[str, Any] = {}

    def plan(self, spec: SecuritySpec, host: HostInfo) -> list[Step | Sequence]:
        return planning.plan(spec, host)

    def observe(self, spec: SecuritySpec, host: HostInfo, ops: list[OpResult]
                ) -> Observation | None:
        return observe.observe(spec, ops)

    def families(self, rows: Facts) -> Iterable[Metric]:
        from agent.kinds.security import metrics

        return metrics.families(rows)

    def findings(self, rows: Facts) -> list[Finding]:
        return observe.findings(rows)


KIND = SecurityKind()
