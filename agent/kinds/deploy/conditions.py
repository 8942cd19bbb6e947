"""An analysis metric's success condition: `>= 0.99` (a query's value), or for a probe
`success_rate >= 0.99 and p99 <= 300ms`; each part is NAME OP NUMBER[UNIT], joined by
`and`. Times are seconds (ms and s accepted), shares 0..1 (% accepted).

A probe with `baseline: true` also measures the stable hosts, at the same time, and its
parts may compare against them (Kayenta's baseline, so that a slowdown of every host is
not blamed on the canary): `p99 <= 1.5 * baseline.p99 + 20ms`,
`success_rate >= baseline.success_rate - 1%`."""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

PROBE = ("success_rate", "p50", "p90", "p95", "p99", "max", "mean")
RESULT = "result"  # a query's value
_OPS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge, "<=": operator.le, ">": operator.gt, "<": operator.lt, "==": operator.eq,
    "!=": operator.ne}
_NUMBER = r"-?\d+(?:\.\d+)?"
_PART = re.compile(
    rf"^\s*(?P<name>[a-z_0-9]*)\s*(?P<op>>=|<=|==|!=|>|<)\s*(?:"
    rf"(?P<number>{_NUMBER})\s*(?P<unit>ms|s|%)?|"
    rf"(?:(?P<factor>{_NUMBER})\s*\*\s*)?baseline\.(?P<of>[a-z_0-9]+)"
    rf"(?:\s*(?P<sign>[+-])\s*(?P<offset>\d+(?:\.\d+)?)\s*(?P<offunit>ms|s|%)?)?)\s*$")
_UNIT = {None: 1.0, "s": 1.0, "ms": 0.001, "%": 0.01}


@dataclass(frozen=True)
class Part:
    name: str
    op: str
    bound: float  # the number, or the offset added to factor * baseline.of
    factor: float = 1.0
    of: str = ""  # a baseline value's name; "" for a plain number

    def limit(self, baseline: Mapping[str, float]) -> float | None:
        if not self.of:
            return self.bound
        value = baseline.get(self.of)
        return None if value is None or math.isnan(value) else self.factor * value + self.bound


def parse_condition(text: str, probe: bool, baseline: bool = False) -> list[Part]:
    """The parts of a condition; raises ValueError saying what is wrong."""
    parts: list[Part] = []
    known = PROBE if probe else (RESULT,)
    for piece in re.split(r"\s+and\s+", text.strip()):
        match = _PART.match(piece)
        if not match:
            raise ValueError(f"cannot read {piece!r}: expected NAME OP NUMBER, e.g. "
                             + ("'p99 <= 300ms'" if probe else "'>= 0.99'"))
        name = match["name"] or (PROBE[0] if probe else RESULT)
        if name not in known:
            raise ValueError(f"{name!r} is not measured here; expected one of {', '.join(known)}")
        if match["of"] is None:
            parts.append(Part(name, match["op"], float(match["number"]) * _UNIT[match["unit"]]))
            continue
        if not baseline:
            raise ValueError(f"{piece!r} compares with the baseline: set http_probe.baseline: true")
        if match["of"] not in PROBE:
            raise ValueError(f"baseline.{match['of']} is not measured; expected one of "
                             + ", ".join(f"baseline.{n}" for n in PROBE))
        offset = float(match["offset"] or 0) * _UNIT[match["offunit"]]
        parts.append(Part(name, match["op"], -offset if match["sign"] == "-" else offset,
                          float(match["factor"] or 1), match["of"]))
    return parts


def holds(parts: list[Part], values: Mapping[str, float],
          baseline: Mapping[str, float] | None = None) -> bool | None:
    """Whether every part holds; None when a value it needs is missing (no data)."""
    for part in parts:
        value, limit = values.get(part.name), part.limit(baseline or {})
        if value is None or math.isnan(value) or limit is None:
            return None
        if not _OPS[part.op](value, limit):
            return False
    return True
