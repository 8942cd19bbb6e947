"""What a deploy policy's runs tell the store, per host: the STATE line the host program
ends every job with (current and verified release, releases there, failed ones)."""

from __future__ import annotations

from typing import Any

from agent.core.results import OpResult, Status
from agent.core.steps import Observation
from agent.kinds.deploy.plan import ID
from agent.kinds.program import lines

STATE = "STATE "


def state(ops: list[OpResult]) -> dict[str, Any] | None:
    """The last STATE a host's commands printed (None when none did)."""
    found = None
    for op in ops:
        if op.id == ID and op.status is not Status.SKIPPED:
            found = next(reversed(lines(op.stdout, STATE)), found)
    return found


def observe(ops: list[OpResult]) -> Observation | None:
    if any(op.planned for op in ops):
        return None
    found = state(ops)
    if found is None:
        return None
    return Observation({"current": found.get("current"), "verified": found.get("verified"),
                        "releases": found.get("releases", []), "failed": found.get("failed", []),
                        "switched": found.get("switched")})
