"""Ansible-style guards (creates, removes, unless, only_if) as one fact and one operation."""

from __future__ import annotations

import shlex
from collections.abc import Generator
from typing import Any

from pyinfra import host
from pyinfra.api import FactBase, operation

from agent.core.steps import Guard
from agent.engine import catalog


def guard_script(guard: Guard) -> str:
    """A shell condition that is true when the guarded command should run."""
    parts = []
    if guard.creates:
        parts.append(f"! test -e {shlex.quote(guard.creates)}")
    if guard.removes:
        parts.append(f"test -e {shlex.quote(guard.removes)}")
    if guard.unless:
        parts.append(f"! ( {guard.unless} ) >/dev/null 2>&1")
    if guard.only_if:
        parts.append(f"( {guard.only_if} ) >/dev/null 2>&1")
    return " && ".join(parts)


class GuardAllows(FactBase[bool]):  # type: ignore[misc]
    """True when the guard's condition says the command is still needed."""

    def command(self, script: str) -> str:
        return f"if {script}; then echo run; else echo skip; fi"

    def process(self, output: list[str]) -> bool:
        return bool(output) and output[-1].strip() == "run"


@operation(is_idempotent=False)  # type: ignore[untyped-decorator]
def guarded(op_name: str, args: dict[str, Any], script: str) -> Generator[Any, None, None]:
    """Run the named operation only when the guard allows it."""
    if not host.get_fact(GuardAllows, script=script):
        host.noop("guard: nothing to do")
        return
    yield from catalog.operation(op_name)._inner(**args)
