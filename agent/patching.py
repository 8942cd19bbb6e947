"""gevent's monkey patching, which commands that run pyinfra need before anything else.

gevent.monkey.patch_all() asks importlib.metadata for plugins 25 times, and each time
every installed package's entry points are read again: 0.06 s of a run's start. Here
they are read once for the call, and the rest is gevent's own.
"""

from __future__ import annotations

from importlib import metadata
from typing import Any


def patch_all() -> None:
    from gevent import monkey

    real = metadata.entry_points
    every = real()

    def entry_points(**selection: Any) -> Any:
        return every.select(**selection) if selection else real()

    metadata.entry_points = entry_points
    try:
        monkey.patch_all()
    finally:
        metadata.entry_points = real
