"""pyinfra reports diffs and errors only as log records: collect them per host and step."""

from __future__ import annotations

import logging
import re
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager

from pyinfra.context import ctx_host

_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_PREFIX = re.compile(r"^\[[^\]]+\]\s*(nested\s+)?")


class Capture(logging.Handler):
    """Records of the `pyinfra` logger, keyed by (host name, step index)."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.step: dict[str, int] = {}  # host name -> index of the step being worked on
        self.diffs: dict[tuple[str, int], list[str]] = defaultdict(list)
        self.errors: dict[tuple[str, int], list[str]] = defaultdict(list)
        self.general: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        text = _ANSI.sub("", record.getMessage())
        host = ctx_host.get() if ctx_host.isset() else None
        name = getattr(host, "name", None)
        if name is None or name not in self.step:
            if record.levelno >= logging.WARNING:
                self.general.append(text)
            return
        key = (name, self.step[name])
        text = _PREFIX.sub("", text)
        if record.levelno >= logging.WARNING:
            self.errors[key].append(text)
        elif text.startswith(("Will create", "Will modify", "Will remove", "  ")) or (
            text == "" and key in self.diffs
        ):
            self.diffs[key].append(text)

    def diff(self, host: str, index: int) -> str:
        return "\n".join(self.diffs.get((host, index), [])).strip("\n")

    def error(self, host: str, index: int) -> str:
        return "\n".join(self.errors.get((host, index), []))

    def about(self, host: str) -> str:
        """Host-level messages (e.g. why it could not connect)."""
        return "\n".join(line for line in self.general if f"[{host}]" in line)


@contextmanager
def capture() -> Iterator[Capture]:
    handler = Capture()
    log = logging.getLogger("pyinfra")
    saved = (log.level, log.propagate)
    log.setLevel(logging.INFO)
    log.propagate = False
    log.addHandler(handler)
    try:
        yield handler
    finally:
        log.removeHandler(handler)
        log.setLevel(saved[0])
        log.propagate = saved[1]
