"""A Jinja sandbox whose cost is bounded: what one render may build, and how long it may take.

Jinja's own sandbox keeps templates away from Python's internals, but not from
exhausting memory (`{{ 'x' * 100000 * 100000 }}`) or CPU (nested loops). Here:
- the environment is immutable (no `list.append` to grow data in a loop) and has no
  `namespace` or `lipsum`;
- `*`, `**`, `%` and `+` refuse results past MAX_ITEMS items (characters, list items,
  digits), and so does every call and filter whose arguments or result pass it;
- a render runs under a deadline (SECONDS) when it runs on the main thread, where a
  timer signal can interrupt it; elsewhere the caller isolates it (the daemon validates
  reloads in a child process with resource limits).
"""

from __future__ import annotations

import functools
import re
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

from jinja2.exceptions import SecurityError
from jinja2.sandbox import ImmutableSandboxedEnvironment

MAX_ITEMS = 1_000_000
SECONDS = 5.0
WIDTH = re.compile(r"%[-#0 +]*(\d+)|%[-#0 +]*(?:\d+)?\.(\d+)")  # printf widths and precisions


class TooCostly(SecurityError):
    """A render that would build too much or take too long."""


def _size(value: Any) -> int:
    if isinstance(value, str | bytes | list | tuple | dict | set | frozenset):
        return len(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return value.bit_length() // 3  # about its decimal digits
    return 0


def _check(value: Any) -> Any:
    if _size(value) > MAX_ITEMS:
        raise TooCostly(f"a value of more than {MAX_ITEMS} characters or items")
    return value


def _check_args(args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    for arg in (*args, *kwargs.values()):
        if isinstance(arg, int) and not isinstance(arg, bool) and abs(arg) > MAX_ITEMS:
            raise TooCostly(f"a number over {MAX_ITEMS} given to a call")


def _bounded_filter(f: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(f)
    def run(*args: Any, **kwargs: Any) -> Any:
        _check_args(args[1:], kwargs)  # args[0] may be the environment or context
        return _check(f(*args, **kwargs))

    return run


class BoundedEnvironment(ImmutableSandboxedEnvironment):
    intercepted_binops = frozenset({"*", "**", "%", "+"})

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        for name in ("namespace", "lipsum"):
            self.globals.pop(name, None)
        self.filters = {name: _bounded_filter(f) for name, f in self.filters.items()}

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator == "*":
            count = right if isinstance(left, str | list | tuple) else left
            item = left if count is right else right
            if isinstance(count, int) and _size(item) * max(count, 0) > MAX_ITEMS:
                raise TooCostly(f"a value of more than {MAX_ITEMS} characters or items")
        elif operator == "%" and isinstance(left, str):
            for match in WIDTH.finditer(left):
                if int(match.group(1) or match.group(2)) > MAX_ITEMS:
                    raise TooCostly(f"a width of more than {MAX_ITEMS} characters")
        elif (operator == "**" and isinstance(left, int) and isinstance(right, int)
              and right > 0 and max(left.bit_length(), 1) * right > MAX_ITEMS * 3):
            raise TooCostly(f"a number of more than {MAX_ITEMS} digits")
        return _check(super().call_binop(context, operator, left, right))

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N805
        _check_args(args, kwargs)
        return _check(super().call(__context, __obj, *args, **kwargs))


def _expired(signum: int, frame: FrameType | None) -> None:
    raise TooCostly(f"rendering took longer than {SECONDS:g} s")


@contextmanager
def deadline(seconds: float | None = None) -> Iterator[None]:
    """Interrupt the block after `seconds` (default SECONDS) with TooCostly (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGALRM, _expired)
    signal.setitimer(signal.ITIMER_REAL, SECONDS if seconds is None else seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
