"""A run's commands see only what they are given, on @local too.

pyinfra's @local connector starts every command with the controller's environment, which
holds whatever the operator exported (the {env:} secrets among them). While hosts are
worked, the process's environment is cut down to what a command needs (on_host.KEEP);
{env:} references still read the full one, and it is all back when the run ends.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

from agent.core.secrets import read_environment_from
from agent.engine.on_host import kept


@contextmanager
def explicit_environment() -> Iterator[None]:
    saved = dict(os.environ)
    read_environment_from(saved)
    os.environ.clear()
    os.environ.update(kept(saved))
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)
        read_environment_from(None)
