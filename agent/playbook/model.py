"""A playbook document: a one-shot procedure of ordered steps, with variables.

    apiVersion: opsagent/v1
    kind: playbook
    metadata: {name: restore, description: ...}
    vars: {policy: demo-backup, to: /var/tmp/restore}     # -e NAME=VALUE overrides
    steps:
      - backup.list: {policy: "{{ policy }}"}
      - name: restore it
        backup.restore: {policy: "{{ policy }}", to: "{{ to }}"}
      - name: show what came back
        hosts: ["@local"]
        server.shell: {commands: ["ls -l {{ to }}"]}

A step is an opsagent action (backup.list, backup.restore) or, with `hosts`, a pyinfra
operation in the `tasks` kind's syntax. Strings are Jinja2 over `vars` (which may use
each other; operation steps also see each host's inventory variables and `host`).
Steps run in order; the first that fails stops the playbook.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from agent.policy.model import Metadata


class PlaybookMetadata(Metadata):
    description: str = Field("", description="One line: what the procedure does.")


class Playbook(BaseModel):
    """The document; each step is checked once the variables are rendered into it."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    api_version: Literal["opsagent/v1"] = Field(alias="apiVersion", description="Always opsagent/v1.")
    kind: Literal["playbook"] = Field(description="Always playbook.")
    metadata: PlaybookMetadata
    vars: dict[str, Any] = Field(default_factory=dict, description="Defaults for Jinja2 "
                                 "variables in steps; `-e NAME=VALUE` overrides one.")
    policies: list[str] = Field(["policies"], description="Where the policies that steps name "
                                "are read (relative to the working directory).")
    steps: list[dict[str, Any]] = Field(min_length=1, description="Run in order.")


def _none_if_empty(value: Any) -> Any:
    return None if value == "" else value


class BackupAction(BaseModel):
    """What every backup.* action names: the policy, and which of its hosts."""

    model_config = ConfigDict(extra="forbid")

    policy: str = Field(description="A backup policy's name.")
    host: str | None = Field(None, description="Only this host; empty or omitted: every "
                             "host the policy backs up (a restore needs exactly one).")

    _host = field_validator("host", mode="before")(_none_if_empty)


class ListAction(BackupAction):
    """backup.list: print the archives of each host a backup policy backs up."""


class RestoreAction(BackupAction):
    """backup.restore: extract an archive into a new or empty folder on its host."""

    archive: str = Field("latest", description="An archive name, or latest: the host's newest.")
    to: str = Field(description="An absolute, new or empty folder on the host.")
    paths: list[str] = Field(default_factory=list, description="Only these paths as backed up "
                             "(a list, or one string of space-separated paths); empty: all.")

    @field_validator("paths", mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        return value.split() if isinstance(value, str) else value


ACTIONS: dict[str, type[BackupAction]] = {"backup.list": ListAction, "backup.restore": RestoreAction}
