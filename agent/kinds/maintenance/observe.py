"""What a maintenance run tells the store, the metrics and the report, from the REPO
lines of its host program: the host's repositories by state (healthy, needs-maintenance,
locked, fsck-failing, error), the ones a person should look at, and per task when it
last ran and whether it succeeded. Check-mode runs and runs outside the window count
too: they read the repositories as they are."""

from __future__ import annotations

import time
from typing import Any

from agent.core.results import OpResult, Status
from agent.core.steps import Observation
from agent.kinds.contract import Facts, Finding
from agent.kinds.maintenance.plan import ID
from agent.kinds.program import lines

STATES = ("healthy", "needs-maintenance", "locked", "fsck-failing", "error")
PERSON = ("locked", "fsck-failing", "error")  # states that are findings


def observe(ops: list[OpResult]) -> Observation | None:
    op = next((o for o in ops if o.id == ID and o.status is not Status.SKIPPED), None)
    if op is None:
        return None
    repos = [r for r in lines(op.stdout, "REPO ") if isinstance(r.get("path"), str)]
    summary = lines(op.stdout, "GIT ")
    if not repos and not summary:
        return None
    now = time.time()
    counts = dict.fromkeys(STATES, 0)
    problems: list[dict[str, Any]] = []  # a list: the store merges mappings, not lists
    tasks: dict[str, dict[str, Any]] = {}
    for repo in repos:
        state = "healthy" if repo.get("state") == "maintained" else str(repo.get("state"))
        counts[state if state in counts else "error"] += 1
        if state in PERSON:
            problems.append({"path": repo["path"], "state": state, "why": repo.get("why", "")})
        if op.planned or repo.get("state") not in ("maintained", "error"):
            continue
        for task in repo.get("tasks", []):
            failed = repo.get("state") == "error" and str(repo.get("why", "")).startswith(f"git {task}:")
            done = tasks.setdefault(task, {"at": now, "ok": 1, "repositories": 0})
            done["repositories"] += 1
            done["ok"] = int(done["ok"] and not failed)
    cleared = sum(len(r.get("cleared", [])) for r in repos)
    facts: dict[str, Any] = {"repositories": counts, "problems": problems, "at": now,
                             "cleared_locks": cleared}
    if tasks:
        facts["tasks"] = tasks
    said = ", ".join(f"{n} {s}" for s, n in counts.items() if n) or "no repository found"
    return Observation(facts, summary=f"git repositories: {said}")


def findings(rows: Facts) -> list[Finding]:
    """Each repository left locked, failing fsck or failing a task at the last run."""
    found = []
    for policy, host, facts in rows:
        for problem in facts.get("problems", []):
            found.append(Finding(policy, host, problem["path"], problem["state"],
                                 facts.get("at", 0.0), problem.get("why", "")))
    return found
