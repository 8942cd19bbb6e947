"""What a sync run tells the metrics: each repository's branches by state, from its SUMMARY."""

from __future__ import annotations

import json
import time
from typing import Any

from agent.core.results import OpResult, Status
from agent.core.steps import Observation
from agent.kinds.sync.plan import REPO

SUMMARY = "SUMMARY "


def observe(ops: list[OpResult]) -> Observation | None:
    """Facts for the store: per repository, branches by state, degraded, last success.
    Merged into the previous ones, so a repository keeps its last success time. None in
    check mode."""
    if not ops or any(op.planned for op in ops):
        return None
    now = time.time()
    repositories: dict[str, Any] = {}
    for op in ops:
        if not op.id.startswith(REPO) or op.status is Status.SKIPPED:
            continue
        summary = summary_of(op.stdout)
        states: dict[str, int] = {}
        for state in summary.get("branches", {}).values():
            states[state] = states.get(state, 0) + 1
        ok = op.status is not Status.FAILED
        facts: dict[str, Any] = {"ok": int(ok), "degraded": int(bool(summary.get("down"))),
                                 "branches": states, "pushed": summary.get("pushed", 0),
                                 "lost": summary.get("lost", 0), "at": now}
        if ok and not summary.get("down"):
            facts["last_success"] = now
        repositories[op.id.removeprefix(REPO)] = facts
    return Observation({"repositories": repositories})


def summary_of(stdout: str) -> dict[str, Any]:
    for line in reversed(stdout.splitlines()):
        if line.startswith(SUMMARY):
            try:
                found = json.loads(line[len(SUMMARY):])
            except ValueError:
                return {}
            return found if isinstance(found, dict) else {}
    return {}
