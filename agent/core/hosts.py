"""A host as kinds plan for it (HostInfo) and as the engine reaches it (Host, SSH)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

LOCAL = "@local"


@dataclass(frozen=True)
class HostInfo:
    """What a kind may know about a host when planning: its name, groups and variables."""

    name: str
    groups: tuple[str, ...] = ()
    vars: Mapping[str, Any] = field(default_factory=dict)
    facts: Mapping[str, Any] | None = None  # read from the host when a policy uses them


class SSH(BaseModel):
    """How to reach a host over SSH; unset fields fall back to pyinfra's defaults."""

    model_config = ConfigDict(extra="forbid")

    hostname: str | None = Field(None, description="Address; defaults to the host's name.")
    port: int | None = Field(None, ge=1, le=65535)
    user: str | None = None
    key: str | None = Field(None, description="Private key file.")
    known_hosts_file: str | None = None
    strict_host_key_checking: Literal["yes", "no", "accept-new", "off"] | None = None
    config_file: str | None = Field(None, description="ssh_config file to read.")
    connect_timeout: int | None = Field(None, ge=1)


@dataclass(frozen=True)
class Host:
    """A host as the engine needs it: planning facts plus how to connect."""

    info: HostInfo
    ssh: SSH = field(default_factory=SSH)

    @property
    def name(self) -> str:
        return self.info.name

    @property
    def is_local(self) -> bool:
        return self.info.name == LOCAL
