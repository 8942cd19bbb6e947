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

A step is a kind's action (KIND.VERB: backup.list, backup.restore; see
`opsagent explain playbook`) or, with `hosts`, a pyinfra
operation in the `tasks` kind's syntax. Strings are Jinja2 over `vars` (which may use
each other; operation steps also see each host's inventory variables and `host`).
Steps run in order; the first that fails stops the playbook.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

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
