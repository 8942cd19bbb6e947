"""Durations written the way operators write them: 90s, 5m, 1h30m, 1d, 1w."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import BeforeValidator

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_PART = re.compile(r"(\d+)([smhdw])")


def parse_duration(value: object) -> int:
    """Seconds in a duration such as '1h30m'; a bare integer is seconds."""
    if isinstance(value, bool):
        raise ValueError(f"expected a duration like 90s, 5m, 1h or 1d, got {value!r}")
    if isinstance(value, int) and value >= 0:
        return value
    text = str(value).strip().replace(" ", "")
    if text and _PART.sub("", text) == "":
        return sum(int(n) * _UNITS[unit] for n, unit in _PART.findall(text))
    raise ValueError(f"expected a duration like 90s, 5m, 1h or 1d, got {value!r}")


Duration = Annotated[int, BeforeValidator(parse_duration)]
