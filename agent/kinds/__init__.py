"""The static registry of policy kinds; the validator lists the valid kinds from it."""

from __future__ import annotations

from typing import Any

from agent.kinds import backup, deploy, maintenance, security, sync, tasks
from agent.kinds.contract import Kind

KINDS: dict[str, Kind[Any]] = {
    "backup": backup.KIND,
    "deploy": deploy.KIND,
    "maintenance": maintenance.KIND,
    "security": security.KIND,
    "sync": sync.KIND,
    "tasks": tasks.KIND,
}
