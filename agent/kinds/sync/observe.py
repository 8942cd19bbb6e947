"""What a sync run tells the metrics and the report: per repository, its branches by
state, its running counts of outcomes, its open conflicts and when every remote was last
in step (the host program keeps those next to its mirror), from its SUMMARY line."""

from __future__ import annotations

import time
from typing import Any

from agent.core.results import OpResult, Status
from agent.core.steps import Observation
from agent.kinds.contract import Finding
from agent.kinds.program import lines
from agent.kinds.sync.plan import ID
from agent.kinds.sync.spec import SyncSpec

SUMMARY = "SUMMARY "


def observe(spec: SyncSpec, ops: list[OpResult]) -> Observation | None:
    """Facts for the store, per repository (each replaces the repository's last ones).
    None in check mode."""
    if not ops or any(op.planned for op in ops):
        return None
    now = time.time()
    repositories: dict[str, Any] = {}
    for op in ops:
        if op.id != ID or op.status is Status.SKIPPED:
            continue
        for summary in summaries(op.stdout):
            states: dict[str, int] = {}
            for state in summary.get("branches", {}).values():
                states[state] = states.get(state, 0) + 1
            facts: dict[str, Any] = {
                "ok": int(summary.get("code") != 1), "degraded": int(bool(summary.get("down"))),
                "branches": states, "pushed": summary.get("pushed", 0),
                "lost": summary.get("lost", 0), "at": now, "seconds": summary.get("seconds", 0),
                "outcomes": summary.get("outcomes", {}), "conflicts": summary.get("conflicts", {})}
            if summary.get("last_success"):
                facts["last_success"] = summary["last_success"]
            if spec.interval:
                facts["interval"] = spec.interval
            repositories[str(summary.get("repository"))] = facts
    return Observation({"repositories": repositories})


def summaries(stdout: str) -> list[dict[str, Any]]:
    """Each repository's SUMMARY line, in order."""
    return [d for d in lines(stdout, SUMMARY) if isinstance(d.get("repository"), str)]


def findings(rows: list[tuple[str, str, dict[str, Any]]]) -> list[Finding]:
    """Each branch left in conflict, verify failed or diverged, with its files and which
    remote holds which head."""
    found = []
    for policy, host, facts in rows:
        for repo, seen in sorted(facts.get("repositories", {}).items()):
            for branch, conflict in sorted(seen.get("conflicts", {}).items()):
                heads = ", ".join(f"{r} {sha[:10]}" for r, sha in sorted(conflict["heads"].items()))
                files = ", ".join(conflict.get("files", []))
                found.append(Finding(policy, host, f"{repo} {branch}", conflict["state"],
                                     conflict.get("since", seen.get("at", 0.0)),
                                     f"heads: {heads}" + (f"; files: {files}" if files else "")))
    return found
