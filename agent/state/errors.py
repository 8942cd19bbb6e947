"""The state store's error: kept apart so that every module of agent.state can raise it."""

from __future__ import annotations


class StateError(RuntimeError):
    """The state store cannot be opened or written; the message names its file."""
