"""`opsagent plan`: check mode. What would change per host and policy; nothing is touched."""

from __future__ import annotations

from agent.cli import apply


def main(argv: list[str]) -> int:
    return apply.main(argv, check=True)
