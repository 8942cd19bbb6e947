"""opsagent.yml: a project's defaults for every command, as ansible.cfg is for Ansible's.

Found as $OPSAGENT_PROJECT, else ./opsagent.yml. Command-line options win over it, and
$OPSAGENT_STATE_DIR over its state_dir; relative paths are read from its own folder:

    inventory: inventories/prod.yml
    policies: [policies]
    templates: templates
    state_dir: /var/lib/opsagent
"""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from agent.policy.messages import load_settings

NAME = "opsagent.yml"
LOCAL = "@local"


class Project(BaseModel):
    """Defaults for validate, plan, apply, run, backup, status, history, report and audit."""

    model_config = ConfigDict(extra="forbid")

    inventory: str | None = Field(None, description="Inventory file, or @local, when -i is not "
                                                    "given.")
    policies: list[str] | None = Field(None, description="Policy files or folders when none "
                                                         "are named.")
    templates: str | None = Field(None, description="Where relative template sources are "
                                                    "found, when --templates is not given.")
    state_dir: str | None = Field(None, description="The state store's folder, when neither "
                                                    "--state-dir nor $OPSAGENT_STATE_DIR is set.")
    audit_syslog: str | None = Field(None, description="apply also sends each audit entry to "
                                     "this syslog socket (e.g. /dev/log) as it is kept, for "
                                     "journald or rsyslog to forward off the host.")


def project_file() -> Path | None:
    given = os.environ.get("OPSAGENT_PROJECT")
    if given:
        return Path(given)
    return Path(NAME) if Path(NAME).is_file() else None


def load_project() -> tuple[Project, Path | None]:
    """The project file's settings with paths made absolute; raises Problems."""
    path = project_file()
    if path is None:
        return Project(), None
    found = load_settings(path, "project", Project)
    base = path.resolve().parent

    def absolute(value: str | None) -> str | None:
        return value if value is None or value == LOCAL else str(base / value)

    return Project(inventory=absolute(found.inventory),
                   policies=[str(base / p) for p in found.policies] if found.policies else None,
                   templates=absolute(found.templates), state_dir=absolute(found.state_dir),
                   audit_syslog=found.audit_syslog), path
