"""Measurements of an analysis: HTTP probes sent by opsagent itself (success rate and
latency percentiles over every request to the hosts on the new version) and Prometheus
instant queries (one number). A measurement is passed, failed or inconclusive (no data,
or an error reaching the source: never taken for success)."""

from __future__ import annotations

import json
import math
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from typing import Any

from agent.kinds.deploy.conditions import holds, parse_condition
from agent.kinds.deploy.spec import Metric, Probe, Prometheus

PASSED, FAILED, INCONCLUSIVE = "passed", "failed", "inconclusive"


def measure(metrics: list[Metric], stop: Callable[[], bool], stable: list[Metric] | None = None
            ) -> tuple[str, dict[str, Any]]:
    """One measurement of one metric, given its per-host versions (one per host on the new
    version; a query is the same on each, so the first is used) and, for a probe with a
    baseline, those of as many stable hosts, probed at the same time."""
    metric = metrics[0]
    baseline: dict[str, Any] = {}
    if metric.prometheus is not None:
        values = query(metric.prometheus)
    else:
        probes = [m.http_probe for m in metrics if m.http_probe is not None]
        others = [m.http_probe for m in stable or [] if m.http_probe is not None]
        compared = bool(metric.http_probe and metric.http_probe.baseline)
        values, baseline = probe(probes, others[:len(probes)] if compared else [], stop)
        if compared:
            values["baseline"] = baseline
    parts = parse_condition(metric.success, probe=metric.http_probe is not None,
                            baseline=bool(metric.http_probe and metric.http_probe.baseline))
    verdict = holds(parts, _numbers(values), _numbers(baseline))
    return (INCONCLUSIVE if verdict is None else PASSED if verdict else FAILED), values


def _numbers(values: dict[str, Any]) -> dict[str, float]:
    return {k: v for k, v in values.items() if isinstance(v, float)}


def query(prometheus: Prometheus) -> dict[str, Any]:
    url = (prometheus.address.rstrip("/") + "/api/v1/query?"
           + urllib.parse.urlencode({"query": prometheus.query}))
    try:
        with urllib.request.urlopen(url, timeout=10) as answer:  # noqa: S310 - the policy's URL
            data = json.loads(answer.read())
    except (urllib.error.URLError, OSError, ValueError) as e:
        return {"error": f"{prometheus.address}: {getattr(e, 'reason', e)}"}
    result = data.get("data", {})
    kind, found = result.get("resultType"), result.get("result")
    try:
        if kind == "scalar":
            value = float(found[1])
        elif kind == "vector" and found:
            value = float(found[0]["value"][1])
        else:
            return {"error": "no data"}
    except (TypeError, ValueError, KeyError, IndexError):
        return {"error": f"cannot read the answer: {str(found)[:200]}"}
    return {"error": "no data"} if math.isnan(value) else {"result": value}


def probe(probes: list[Probe], baseline: list[Probe], stop: Callable[[], bool]
          ) -> tuple[dict[str, Any], dict[str, Any]]:
    """`requests` GETs to each probe's URL, interleaved with as many to each baseline
    probe's: success rate and latencies (seconds) of each side."""
    seen: dict[bool, list[tuple[float, bool]]] = {False: [], True: []}
    rounds = max((p.requests for p in probes), default=0)
    for i in range(rounds):
        for is_baseline, one in [(False, p) for p in probes] + [(True, p) for p in baseline]:
            if stop():
                break
            if i < one.requests:
                started = time.monotonic()
                status = _status(one)
                seen[is_baseline].append((time.monotonic() - started, status == one.expect))
    return _summary(seen[False]), (_summary(seen[True]) if baseline else {})


def _summary(seen: list[tuple[float, bool]]) -> dict[str, Any]:
    if not seen:
        return {"error": "no requests sent"}
    latencies = sorted(t for t, _ in seen)
    total = len(seen)
    return {"requests": total, "success_rate": sum(ok for _, ok in seen) / total,
            "p50": _pct(latencies, 50), "p90": _pct(latencies, 90), "p95": _pct(latencies, 95),
            "p99": _pct(latencies, 99), "max": latencies[-1], "mean": sum(latencies) / total}


def _status(one: Probe) -> int:
    try:
        with urllib.request.urlopen(one.url, timeout=one.timeout) as answer:  # noqa: S310
            answer.read()
            return int(answer.status)
    except urllib.error.HTTPError as e:
        return int(e.code)
    except (urllib.error.URLError, OSError, ValueError):
        return 0


def _pct(ordered: list[float], percent: int) -> float:
    """The nearest-rank percentile."""
    rank = max(1, math.ceil(percent / 100 * len(ordered)))
    return ordered[rank - 1]
