"""The static registry of policy kinds; the validator lists the valid kinds from it.

A kind's module is imported when the registry is first asked for it, so validating a
policy of one kind does not pay for the others' models (about 0.1 s for all of them).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from importlib import import_module
from typing import Any

from agent.kinds.contract import Kind

NAMES = ("backup", "deploy", "maintenance", "security", "sync", "tasks")


class Registry(Mapping[str, "Kind[Any]"]):
    """{name: Kind}, each imported on first use."""

    def __getitem__(self, name: str) -> Kind[Any]:
        if name not in NAMES:
            raise KeyError(name)
        kind: Kind[Any] = import_module(f"agent.kinds.{name}").KIND
        return kind

    def __iter__(self) -> Iterator[str]:
        return iter(NAMES)

    def __len__(self) -> int:
        return len(NAMES)


KINDS = Registry()
