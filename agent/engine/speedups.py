"""pyinfra's hot spots when thousands of facts are read, patched once when the engine is
imported. Each keeps pyinfra's result; each is measured (bench/compare.py, 50 hosts).

- all_global_arguments() reads the global arguments' type hints (typing.get_type_hints)
  on every fact and operation: they never change, read them once.
- make_formatted_string_command() splits each fact's command template with shlex on
  every read: the split of a template is kept.
- pop_global_arguments(), for a fact read outside any operation with no global argument
  of its own, looks every global argument up in the host's data (an exception per miss):
  those defaults are kept per host. Inside an operation, or with arguments, it runs as
  pyinfra wrote it.
"""

from __future__ import annotations

import shlex
from functools import cache, lru_cache
from types import SimpleNamespace
from typing import Any

from pyinfra.api import arguments, command, facts
from pyinfra.context import ctx_config

_pop = arguments.pop_global_arguments


def _pop_global_arguments(state: Any, host: Any, kwargs: dict[str, Any]
                          ) -> tuple[Any, list[str]]:
    if (kwargs and any(key.startswith("_") for key in kwargs)) or host.current_deploy_kwargs \
            or ctx_config.isset() or host.current_op_global_arguments:
        popped: tuple[Any, list[str]] = _pop(state, host, kwargs)
        return popped
    kept = host.__dict__.get("_opsagent_global_defaults")
    if kept is None:
        kept = host.__dict__["_opsagent_global_defaults"] = _pop(state, host, {})[0]
    return dict(kept), []


def install() -> None:
    arguments.all_global_arguments = cache(arguments.all_global_arguments)
    command.shlex = SimpleNamespace(split=lru_cache(4096)(shlex.split), quote=shlex.quote)
    facts.pop_global_arguments = _pop_global_arguments
