"""The static registry of policy kinds; the validator lists the valid kinds from it."""

from __future__ import annotations

from agent.kinds import backup, tasks
from agent.kinds.base import Kind

KINDS: dict[str, Kind] = {
    "backup": backup.KIND,
    "tasks": tasks.KIND,
}
