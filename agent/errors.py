"""Problems a person can act on: each names file, line, column, where in the policy, and what."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True, order=True)
class Problem:
    file: str
    line: int
    col: int
    context: str = ""  # e.g. "tasks 'demo'" or "inventory"
    field: str = ""  # dotted path inside the document, e.g. "spec.tasks[0].files.line.path"
    message: str = ""

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}:{self.col}: " if self.line else f"{self.file}: "
        if self.context and self.field:
            return f"{where}{self.context} > {self.field}: {self.message}"
        if self.context or self.field:
            return f"{where}{self.context or self.field}: {self.message}"
        return f"{where}{self.message}"


class Problems(Exception):
    """Raised with every problem found, so that all of them are reported at once."""

    def __init__(self, problems: Iterable[Problem]) -> None:
        self.problems = sorted(set(problems))
        super().__init__("\n".join(str(p) for p in self.problems))


def dotted(loc: Iterable[str | int]) -> str:
    """('spec', 'tasks', 0, 'files.line') -> 'spec.tasks[0].files.line'."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out
