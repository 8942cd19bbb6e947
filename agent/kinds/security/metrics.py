"""The security kind's metric families. Label sets stay bounded: per policy and host the
counts by result and a score; per policy and control (never control × host) the hosts
failing it, with its severity; the soonest waiver end per control."""

from __future__ import annotations

import datetime
from collections.abc import Iterator
from typing import Any

from prometheus_client.core import GaugeMetricFamily, Metric

from agent.kinds.security.observe import RESULTS

Rows = list[tuple[str, str, dict[str, Any]]]


def families(rows: Rows) -> Iterator[Metric]:
    """rows: (policy, host, facts) of every security policy and host."""
    controls = GaugeMetricFamily("opsagent_security_controls", "Controls by result on the "
                                 "host at its last check: pass, fail, waived, na (not "
                                 "applicable), error.", labels=["policy", "host", "result"])
    score = GaugeMetricFamily("opsagent_security_score", "Share of the host's judged controls "
                              "that pass: pass / (pass + fail + error); waived and not "
                              "applicable ones count in neither.", labels=["policy", "host"])
    checked = GaugeMetricFamily("opsagent_security_last_check_timestamp_seconds", "When the "
                                "host's controls were last checked.", labels=["policy", "host"])
    for policy, host, facts in rows:
        counts = facts.get("counts", {})
        for result in RESULTS:
            controls.add_metric([policy, host, result], counts.get(result, 0))
        if "score" in facts:
            score.add_metric([policy, host], facts["score"])
        if "at" in facts:
            checked.add_metric([policy, host], facts["at"])
    yield controls
    yield score
    yield checked
    failing = GaugeMetricFamily("opsagent_security_control_failing_hosts", "Hosts where the "
                                "control fails or cannot be judged (waived ones apart).",
                                labels=["policy", "control", "severity"])
    waivers = GaugeMetricFamily("opsagent_security_waiver_expiry_timestamp_seconds", "When the "
                                "soonest waiver of the control that is in use ends.",
                                labels=["policy", "control"])
    per: dict[tuple[str, str], list[Any]] = {}  # (policy, control): [severity, failing, ends]
    for policy, _, facts in rows:
        for seen in facts.get("controls", []):
            control = seen["id"]
            entry = per.setdefault((policy, control), [seen.get("severity") or "medium", 0, None])
            if seen.get("result") in ("fail", "error"):
                entry[1] += 1
            ends = _end(seen.get("waiver"))
            if ends is not None and (entry[2] is None or ends < entry[2]):
                entry[2] = ends
    for (policy, control), (severity, count, ends) in sorted(per.items()):
        failing.add_metric([policy, control, severity], count)
        if ends is not None:
            waivers.add_metric([policy, control], ends)
    yield failing
    yield waivers


def _end(waiver: Any) -> float | None:
    """A waiver's end (00:00 UTC of its expiry day) as a timestamp."""
    if not isinstance(waiver, dict) or "expires" not in waiver:
        return None
    try:
        day = datetime.date.fromisoformat(str(waiver["expires"]))
    except ValueError:
        return None
    return datetime.datetime(day.year, day.month, day.day, tzinfo=datetime.UTC).timestamp()
