"""What a maintenance run tells the store, the metrics and the report, from the lines of
its host programs: the host's repositories by state (healthy, needs-maintenance, locked,
fsck-failing, error) and their size on disk, per task when it last ran and whether it
succeeded, the bytes the cleanup reclaimed by part, and what a person should look at. Check-mode runs and runs
outside the window count too: they read the host as it is."""

from __future__ import annotations

import time
from typing import Any

from agent.core.results import OpResult, Status
from agent.core.steps import Observation
from agent.kinds.contract import Facts, Finding
from agent.kinds.maintenance.plan import CLEANUP, ID, PACKAGES
from agent.kinds.program import lines

STATES = ("healthy", "needs-maintenance", "locked", "fsck-failing", "error")
PERSON = ("locked", "fsck-failing", "error")  # states that are findings
PARTS = ("journal", "apt_cache", "paths")


def observe(ops: list[OpResult]) -> Observation | None:
    now = time.time()
    facts: dict[str, Any] = {}
    said = []
    git = _op(ops, ID)
    if git is not None:
        facts.update(_git(git, now))
        counts = facts["repositories"]
        said.append("git repositories: " + (", ".join(f"{n} {s}" for s, n in counts.items() if n)
                                            or "none found"))
    updates = _op(ops, PACKAGES)
    if updates is not None:
        facts["packages"] = got = _packages(updates, now)
        said.append(f"packages: {len(got['upgraded'])} upgraded, {got['pending_security']} security "
                    f"and {got['pending_all']} in all pending"
                    + (", reboot required" if got["reboot_required"] else ""))
    cleanup = _op(ops, CLEANUP)
    if cleanup is not None:
        facts["cleanup"] = found = _cleanup(cleanup, now)
        said.append(f"cleanup: {sum(found['bytes'].values())} bytes "
                    f"{'to reclaim' if cleanup.planned else 'reclaimed'}")
    if not facts:
        return None
    for key, op in (("packages", updates), ("cleanup", cleanup)):
        if op is not None and not op.planned and op.status is not Status.SKIPPED:
            facts.setdefault("tasks", {})[key] = {"at": now, "ok": int(op.status is not Status.FAILED)}
    problems = facts.get("problems", []) + (facts.get("cleanup") or {}).pop("problems", [])
    problems += (facts.get("packages") or {}).pop("problems", [])
    facts.update(at=now, problems=problems)
    return Observation(facts, summary="; ".join(said))


def _op(ops: list[OpResult], key: str) -> OpResult | None:
    return next((o for o in ops if o.id == key and o.status is not Status.SKIPPED), None)


def _git(op: OpResult, now: float) -> dict[str, Any]:
    repos = [r for r in lines(op.stdout, "REPO ") if isinstance(r.get("path"), str)]
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
    read = [r.get("after") or r.get("before") for r in repos]
    facts: dict[str, Any] = {"repositories": counts, "problems": problems,
                             "cleared_locks": sum(len(r.get("cleared", [])) for r in repos),
                             "size_bytes": 1024 * sum(int(r.get("size_kib", 0)) for r in read if r)}
    if tasks:
        facts["tasks"] = tasks
    return facts


def _packages(op: OpResult, now: float) -> dict[str, Any]:
    """Updates pending (security, all), what was upgraded and restarted, and whether the
    host asks for a reboot."""
    found = lines(op.stdout, "PACKAGES ")
    last = found[-1] if found else {}
    pending = last.get("pending") or {}
    return {"pending_security": int(pending.get("security", 0)), "pending_all": int(pending.get("all", 0)),
            "upgraded": list(last.get("upgraded", [])), "restarted": list(last.get("restarted", [])),
            "services_pending": int(last.get("services_pending", 0)),
            "reboot_required": int(last.get("reboot_required", 0)), "at": now,
            "problems": [{"path": "packages", "state": "failed", "why": why}
                         for why in last.get("failed", [])]}


def _cleanup(op: OpResult, now: float) -> dict[str, Any]:
    """Bytes reclaimed (or, in check mode and outside the window, to reclaim) by part."""
    amounts = dict.fromkeys(PARTS, 0)
    problems = []
    for part in lines(op.stdout, "CLEANUP "):
        name = str(part.get("part"))
        if name in amounts:
            amounts[name] += int(part.get("bytes") or 0)
        if part.get("error"):
            problems.append({"path": part.get("path") or name, "state": "cleanup failed",
                             "why": part["error"]})
    return {"bytes": amounts, "pending": int(op.planned), "at": now, "problems": problems}


def findings(rows: Facts) -> list[Finding]:
    """Each repository left locked, failing fsck or failing a task at the last run."""
    found = []
    for policy, host, facts in rows:
        for problem in facts.get("problems", []):
            found.append(Finding(policy, host, problem["path"], problem["state"],
                                 facts.get("at", 0.0), problem.get("why", "")))
    return found
