"""agent/engine/speedups.py keeps pyinfra's results: the global arguments a fact is read
with, kept per host, are the ones pyinfra computes, host data and arguments included."""

from __future__ import annotations

from typing import Any

from pyinfra.api import Config, Inventory, State
from pyinfra.api import arguments as pyinfra_arguments

from agent.engine import speedups


def host_of(data: dict[str, Any]) -> tuple[State, Any]:
    inventory = Inventory(([("web", data)], {}))
    state = State(inventory=inventory, config=Config())
    return state, inventory.get_host("web")


def test_kept_defaults_are_pyinfras_own_and_follow_host_data() -> None:
    for data in ({}, {"_sudo": True, "_sudo_user": "deploy", "_env": {"A": "1"}}):
        state, host = host_of(data)
        for kwargs in ({"path": "/etc/x"}, {}):
            expected = pyinfra_arguments.pop_global_arguments(state, host, dict(kwargs))
            for _ in range(2):  # computed, then kept
                assert speedups._pop_global_arguments(state, host, dict(kwargs)) == expected
        assert speedups._pop_global_arguments(state, host, {})[0]["_sudo"] is bool(data)


def test_a_fact_with_global_arguments_of_its_own_is_read_as_pyinfra_reads_it() -> None:
    state, host = host_of({})
    speedups._pop_global_arguments(state, host, {})  # the defaults are kept
    kwargs = {"path": "/x", "_sudo": True}
    args, found = speedups._pop_global_arguments(state, host, kwargs)
    assert args["_sudo"] is True and found == ["_sudo"] and kwargs == {"path": "/x"}
