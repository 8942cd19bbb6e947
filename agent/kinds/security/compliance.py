"""The compliance section of a report, from the security facts kept per policy and host:
per control across hosts, and per host across controls (with the results themselves,
for JUnit's test cases)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from agent.kinds.security.observe import RESULTS

SEVERITY_ORDER = {"critical": 0, "high": 1, "medium": 2, "low": 3}


@dataclass(frozen=True)
class ControlRow:
    policy: str
    control: str
    severity: str
    counts: dict[str, int]
    failing: list[str]  # hosts where it fails or cannot be judged
    waived: list[str]


@dataclass(frozen=True)
class HostRow:
    policy: str
    host: str
    checked: float
    score: float
    counts: dict[str, int]
    results: list[dict[str, Any]] = field(default_factory=list)  # id, result, severity, detail


@dataclass
class Compliance:
    controls: list[ControlRow] = field(default_factory=list)
    hosts: list[HostRow] = field(default_factory=list)


def compliance(rows: list[tuple[str, str, dict[str, Any]]]) -> Compliance:
    found = Compliance()
    per: dict[tuple[str, str], dict[str, Any]] = {}
    for policy, host, facts in sorted(rows, key=lambda r: (r[0], r[1])):
        results = []
        for seen in facts.get("controls", []):
            entry = per.setdefault((policy, seen["id"]), {
                "severity": seen.get("severity") or "medium", "counts": dict.fromkeys(RESULTS, 0),
                "failing": [], "waived": []})
            result = seen.get("result", "error")
            entry["counts"][result] = entry["counts"].get(result, 0) + 1
            if result in ("fail", "error"):
                entry["failing"].append(host)
            elif result == "waived":
                entry["waived"].append(host)
            results.append({"id": seen["id"], "result": result, "severity": entry["severity"],
                            "detail": detail(seen)})
        found.hosts.append(HostRow(policy, host, float(facts.get("at", 0.0)),
                                   float(facts.get("score", 0.0)),
                                   dict(facts.get("counts", {})), results))
    found.controls = [ControlRow(policy, control, e["severity"], e["counts"], e["failing"],
                                 e["waived"])
                      for (policy, control), e in per.items()]
    found.controls.sort(key=lambda c: (-len(c.failing), SEVERITY_ORDER.get(c.severity, 9),
                                       c.policy, c.control))
    return found


def detail(seen: dict[str, Any]) -> str:
    """What was found, for a control that did not pass; its waiver, for a waived one."""
    bad = [p for p in seen.get("parts", []) if p.get("result") in ("fail", "error")]
    text = "; ".join(f"{p['what']}: {p['found']}, expected {p['expected']}" for p in bad[:3])
    if seen.get("waiver"):
        w = seen["waiver"]
        text += f" (waived until {w.get('expires')} by {w.get('owner')}: {w.get('reason')})"
    if seen.get("note"):
        text += f" ({seen['note']})"
    return text.strip()
