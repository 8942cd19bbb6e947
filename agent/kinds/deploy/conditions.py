"""An analysis metric's success condition: `>= 0.99` (a query's value), or for a probe
`success_rate >= 0.99 and p99 <= 300ms`; each part is NAME OP NUMBER[UNIT], joined by
`and`. Times are seconds (ms and s accepted), shares 0..1 (% accepted)."""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Mapping

PROBE = ("success_rate", "p50", "p90", "p95", "p99", "max", "mean")
RESULT = "result"  # a query's value
_OPS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge, "<=": operator.le, ">": operator.gt, "<": operator.lt, "==": operator.eq,
    "!=": operator.ne}
_PART = re.compile(r"^\s*([a-z_0-9]*)\s*(>=|<=|==|!=|>|<)\s*(-?\d+(?:\.\d+)?)\s*(ms|s|%)?\s*$")
_UNIT = {None: 1.0, "s": 1.0, "ms": 0.001, "%": 0.01}

Part = tuple[str, str, float]


def parse_condition(text: str, probe: bool) -> list[Part]:
    """The parts of a condition; raises ValueError saying what is wrong."""
    parts: list[Part] = []
    for piece in re.split(r"\s+and\s+", text.strip()):
        match = _PART.match(piece)
        if not match:
            raise ValueError(f"cannot read {piece!r}: expected NAME OP NUMBER, e.g. "
                             + ("'p99 <= 300ms'" if probe else "'>= 0.99'"))
        name, op, number, unit = match.groups()
        name = name or (PROBE[0] if probe else RESULT)
        known = PROBE if probe else (RESULT,)
        if name not in known:
            raise ValueError(f"{name!r} is not measured here; expected one of {', '.join(known)}")
        parts.append((name, op, float(number) * _UNIT[unit]))
    return parts


def holds(parts: list[Part], values: Mapping[str, float]) -> bool | None:
    """Whether every part holds; None when a value it needs is missing (no data)."""
    for name, op, bound in parts:
        value = values.get(name)
        if value is None or math.isnan(value):
            return None
        if not _OPS[op](value, bound):
            return False
    return True
