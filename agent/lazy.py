"""Modules a dependency imports and almost never uses, loaded on their first use.

paramiko imports invoke (about 0.1 s, a fifth of a run's start) only to run the
commands of a `Match exec` line in an ssh_config file, and pyinfra's SSH connector
replaces it with a runner of its own (pyinfra/connectors/sshuserclient/config.py).
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types
from typing import Any

DEFERRED = ("invoke",)


class Deferred(types.ModuleType):
    """Stands in for a module until an attribute of it is read."""

    def __getattr__(self, attribute: str) -> Any:
        real = self.__dict__.get("_real")
        if real is None:
            if sys.modules.get(self.__name__) is self:
                del sys.modules[self.__name__]
            real = self.__dict__["_real"] = importlib.import_module(self.__name__)
        return getattr(real, attribute)


def defer(name: str) -> None:
    """Put a stand-in for the module in sys.modules, unless it is loaded or missing."""
    if name in sys.modules:
        return
    spec = importlib.util.find_spec(name)
    if spec is None:
        return  # not installed: importing it fails as it would have
    module = Deferred(name)
    module.__spec__ = spec
    sys.modules[name] = module


def install() -> None:
    for name in DEFERRED:
        defer(name)
