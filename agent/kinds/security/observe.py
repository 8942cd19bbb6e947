"""What a security run tells the store, the metrics and the report: per host, each
control's result and severity (with its evidence: what was read, expected and found),
the counts by result and the compliance score."""

from __future__ import annotations

import datetime
import time
from typing import Any

from agent.core.results import OpResult, Status
from agent.core.steps import Observation
from agent.kinds.contract import Facts, Finding
from agent.kinds.program import lines
from agent.kinds.security.plan import ID
from agent.kinds.security.spec import SecuritySpec

RESULTS = ("pass", "fail", "waived", "na", "error")
PERSON = ("high", "critical")  # failing controls of these severities are findings


def observe(spec: SecuritySpec, ops: list[OpResult]) -> Observation | None:
    """The last judgement of every control on the host (audit mode and check mode too:
    the checks read the host as it is), and the evidence to seal: per control what was
    read, expected and found. None when the checks did not run."""
    op = next((o for o in ops if o.id == ID and o.status is not Status.SKIPPED), None)
    if op is None:
        return None
    found = results(op.stdout)
    if not found:
        return None
    severity = {c.id: c.severity for c in spec.effective}
    controls: list[dict[str, Any]] = []  # a list: the store merges mappings, not lists
    for done in found:
        entry: dict[str, Any] = {"id": done["id"], "result": done["result"],
                                 "severity": severity.get(done["id"])}
        for key in ("waiver", "note"):
            if done.get(key):
                entry[key] = done[key]
        entry["parts"] = done.get("parts", [])
        controls.append(entry)
    counts = {r: sum(1 for c in controls if c["result"] == r) for r in RESULTS}
    judged = counts["pass"] + counts["fail"] + counts["error"]
    now = time.time()
    facts: dict[str, Any] = {"controls": controls, "counts": counts, "at": now,
                             "score": counts["pass"] / judged if judged else 1.0}
    summary = (f"{len(controls)} controls: {counts['pass']} pass, {counts['fail']} fail, "
               f"{counts['waived']} waived, {counts['na']} not applicable, {counts['error']} error")
    if not spec.evidence:
        return Observation(facts, summary=summary)
    document = {"checked_at": datetime.datetime.fromtimestamp(now, datetime.UTC).isoformat(),
                "mode": spec.mode, "controls": controls, "reads": evidence(op.stdout)}
    return Observation(facts, evidence=document, summary=summary)


def results(stdout: str) -> list[dict[str, Any]]:
    return [d for d in lines(stdout, "RESULT ") if isinstance(d.get("id"), str)]


def evidence(stdout: str) -> dict[str, Any]:
    found = lines(stdout, "EVIDENCE ")
    return found[-1] if found else {}


def findings(rows: Facts) -> list[Finding]:
    """Each high or critical control that fails (or cannot be judged) on a host."""
    found = []
    for policy, host, facts in rows:
        for seen in facts.get("controls", []):
            control = seen["id"]
            if seen.get("result") in ("fail", "error") and seen.get("severity") in PERSON:
                bad = [p for p in seen.get("parts", []) if p.get("result") in ("fail", "error")]
                detail = "; ".join(f"{p['what']}: {p['found']}, expected {p['expected']}"
                                   for p in bad[:3]) or seen["result"]
                if seen.get("note"):
                    detail += f" ({seen['note']})"
                found.append(Finding(policy, host, control, f"{seen['result']} "
                                     f"({seen['severity']})", facts.get("at", 0.0), detail))
    return found
