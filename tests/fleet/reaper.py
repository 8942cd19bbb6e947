"""A watchdog that tears a fleet down when the process that owns it dies, however it dies.

The owner keeps the write end of a pipe; the reaper, in a session of its own (so Ctrl-C
in the owner's terminal does not reach it), blocks reading the other end. End of file
comes when the owner closes it or exits, also by SIGKILL or a CI timeout; the reaper
then sweeps the slot.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from tests.fleet.fleet import Fleet, sweep

REPO = Path(__file__).resolve().parents[2]


class Reaper:
    def __init__(self, slot: int) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.fleet", "--slot", str(slot), "reap"],
            stdin=subprocess.PIPE, start_new_session=True, cwd=REPO,
        )

    def release(self) -> None:
        """The owner tore the fleet down itself; let the reaper check and go."""
        stdin: IO[bytes] | None = self.proc.stdin
        if stdin is not None:
            stdin.close()
        self.proc.wait(timeout=60)


@contextmanager
def owned(slot: int) -> Iterator[Fleet]:
    """Fleet `slot` for this process: what a killed earlier run left is swept first, and
    it is torn down after, by this process or, if it dies, by a reaper."""
    sweep(slot)
    watchdog = Reaper(slot)
    made = Fleet(slot)
    try:
        yield made
    finally:
        made.down()
        watchdog.release()


def wait_for_owner_then_sweep(slot: int) -> None:
    sys.stdin.buffer.read()  # returns at end of file: the owner is gone or done
    sweep(slot)
